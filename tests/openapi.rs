//! `GET /api/openapi.json` (SPEC §11): served without auth, OpenAPI 3.1, and in
//! step with the router both ways — every documented operation is routed, and
//! every route in `src/api/mod.rs` is documented.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;

const ROUTER_SOURCE: &str = include_str!("../src/api/mod.rs");

/// (method, path) of every `.route(…)` in the router's source.
fn routed() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for chunk in ROUTER_SOURCE.split(".route(").skip(1) {
        let Some(path) = chunk.split('"').nth(1) else {
            continue;
        };
        // The handlers of this route: up to the route call's closing parenthesis.
        let mut depth = 1;
        let mut end = chunk.len();
        for (i, c) in chunk.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let body = &chunk[..end];
        for m in ["get", "post", "put", "delete"] {
            if body.contains(&format!("{m}(")) {
                out.push((m.to_string(), path.to_string()));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_document_and_the_router_agree() {
    let s = TestServer::start().await;
    let (st, doc) = s.send(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK, "{doc}");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    let routes = routed();
    assert!(
        routes.len() >= 30,
        "router source not understood: {routes:?}"
    );
    for (method, path) in &routes {
        let op = &paths
            .get(path)
            .unwrap_or_else(|| panic!("{method} {path} is routed but not documented"))[method];
        assert!(
            op.is_object(),
            "{method} {path} is routed but not documented"
        );
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path}"
        );
    }
    let t = s.admin_token().await;
    let auth = format!("Bearer {t}");
    for (path, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            assert!(
                routes.contains(&(method.clone(), path.clone())),
                "{method} {path} is documented but not routed"
            );
            let concrete = path
                .replace("{id}", "no-such-id")
                .replace("{month}", "2025-01")
                .replace("{name}", "backup_2025-01-01_000000.tar.gz");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let resp = s
                .client
                .request(m, s.url(&concrete))
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .body("{}")
                .send()
                .await
                .expect("request");
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            assert!(
                status != StatusCode::METHOD_NOT_ALLOWED && body["error"] != "route not found",
                "{method} {concrete}: {status} {body}"
            );
        }
    }
    // Answer types are described, not left open.
    let group = &doc["components"]["schemas"]["GroupView"];
    for field in shapes::GROUP_KEYS {
        assert!(
            group["properties"][field].is_object(),
            "GroupView.{field}: {group}"
        );
    }
}
