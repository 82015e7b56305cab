//! SPEC §2 Health and metrics: the `/api/health` shape without auth, its event
//! count following every mutation and no rejected one (§5), and `/metrics`
//! counting appends and requests by route and status.

mod common;

use common::shapes::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[track_caller]
fn assert_event_count(h: &Value, n: u64, what: &str) {
    assert_eq!(h["events"], n, "{what}: {h}");
    assert_eq!(h["lastEventId"], n, "{what}: {h}");
}

/// A group `H` with one task, then every other kind of mutation on them (six);
/// `after` runs after each of the eight with the count the server should show.
async fn eight_mutations<F, Fut>(s: &TestServer, t: &str, mut after: F)
where
    F: FnMut(u64, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut expected = s.events().await;
    let g = s.create_group(t, "H").await;
    let gid = str_of(&g, "_id").to_string();
    expected += 1;
    after(expected, "after create group".into()).await;
    let task = s.create_task(t, &gid, json!({"name": "x"})).await;
    let tp = format!("/api/tasks/{}", str_of(&task, "_id"));
    expected += 1;
    after(expected, "after create task".into()).await;
    let mutations: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::PUT,
            format!("/api/groups/{gid}"),
            Some(json!({"name": "H2"})),
        ),
        (Method::PUT, tp.clone(), Some(json!({"description": "d"}))),
        (
            Method::PUT,
            format!("{tp}/status"),
            Some(json!({"status": "Backlog"})),
        ),
        (
            Method::POST,
            format!("{tp}/comments"),
            Some(json!({"text": "c"})),
        ),
        (Method::DELETE, tp.clone(), None),
        (Method::DELETE, format!("/api/groups/{gid}"), None),
    ];
    for (m, p, body) in mutations {
        let (st, v) = s.send(m.clone(), &p, Some(t), body.as_ref()).await;
        assert!(st.is_success(), "{m} {p}: {st} {v}");
        expected += 1;
        after(expected, format!("after {m} {p}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_has_the_spec_shape() {
    let s = TestServer::start().await;
    let h = s.health().await;
    assert_keys(
        &h,
        &[
            "success",
            "message",
            "version",
            "commit",
            "role",
            "events",
            "lastEventId",
            "backup",
            "kafka",
            "writable",
        ],
        "health",
    );
    assert_eq!(h["success"], true);
    assert_eq!(h["writable"], true);
    assert_eq!(h["message"], "taskledger is running");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(h["commit"], built_from());
    assert_eq!(h["role"], "primary");
    assert_keys(
        &h["backup"],
        &["available", "count", "latest", "offsite", "totalSizeMB"],
        "backup",
    );
    assert_keys(
        &h["backup"]["offsite"],
        &["enabled", "lastCopiedAt", "lastError", "pending"],
        "backup.offsite",
    );
    assert_eq!(h["backup"]["offsite"]["enabled"], false);
    assert_eq!(h["backup"]["available"], false);
    assert_eq!(h["backup"]["count"], 0);
    assert_eq!(h["backup"]["latest"], Value::Null);
    assert!(h["backup"]["totalSizeMB"].is_number(), "{h}");
    assert_keys(
        &h["kafka"],
        &["enabled", "connected", "lag", "lastPublishedEventId"],
        "kafka",
    );
    assert_eq!(h["kafka"]["enabled"], false);
    assert_eq!(h["kafka"]["connected"], false);
    assert!(h["kafka"]["lag"].is_u64(), "{h}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_server_has_logged_only_the_admin_creation() {
    let s = TestServer::start().await;
    let h = s.health().await;
    assert_eq!(
        h["events"], 1,
        "a fresh server has logged the admin's creation"
    );
    assert_eq!(h["lastEventId"], 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_needs_no_token_and_ignores_a_bad_one() {
    let s = TestServer::start().await;
    // `health()` sends no token and asserts the 200.
    s.health().await;
    let (st, _) = s
        .send_raw(
            Method::GET,
            "/api/health",
            Some("Bearer garbage"),
            Vec::new(),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_events_grow_by_one_per_mutation() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    eight_mutations(&s, &t, |n, what| {
        let s = &s;
        async move { assert_event_count(&s.health().await, n, &what) }
    })
    .await;
    s.stop().await;
}

/// Checked after each kind of mutation, so no state of the store lets a
/// rejected request slip an event in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_mutation_does_not_move_health_events() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    eight_mutations(&s, &t, |n, what| {
        let (s, t) = (&s, &t);
        async move {
            let (st, _) = s.post(t, "/api/groups", json!({"name": ""})).await;
            assert_eq!(st, StatusCode::BAD_REQUEST);
            assert_event_count(&s.health().await, n, &format!("a rejected mutation {what}"));
        }
    })
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_appends_and_not_rejected_requests() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let (st, metrics0) = s.get_text("/metrics").await;
    assert_eq!(st, StatusCode::OK);
    let appended0 = metric_value(&metrics0, "taskledger_events_appended_total")
        .expect("taskledger_events_appended_total in /metrics");
    // Rejected requests in between must not count as appends.
    eight_mutations(&s, &t, |_, _| {
        let (s, t) = (&s, &t);
        async move {
            let (st, _) = s.post(t, "/api/groups", json!({"name": ""})).await;
            assert_eq!(st, StatusCode::BAD_REQUEST);
        }
    })
    .await;
    let (st, text) = s.get_text("/metrics").await;
    assert_eq!(st, StatusCode::OK);
    assert!(text.contains("taskledger_events_appended_total"), "{text}");
    let appended = metric_value(&text, "taskledger_events_appended_total").unwrap();
    assert_eq!(appended - appended0, 8.0, "appends counted in /metrics");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route_and_status() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let (st, _) = s.post(&t, "/api/groups", json!({"name": ""})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, text) = s.get_text("/metrics").await;
    assert_eq!(st, StatusCode::OK);
    assert!(text.contains("taskledger_http_requests_total"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("taskledger_http_requests_total{")
                && l.contains("route=\"/api/groups\"")
                && l.contains("status=\"400\"")),
        "requests by route and status: {text}"
    );
    s.stop().await;
}

/// The commit this checkout is at, as the build script records it.
fn built_from() -> String {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git runs");
    assert!(out.status.success(), "not a git checkout");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `taskledger --version` names the version and the commit.
#[test]
fn version_names_the_commit() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taskledger"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!(
            "taskledger {} (commit {})",
            env!("CARGO_PKG_VERSION"),
            built_from()
        )
    );
}
