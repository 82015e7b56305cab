//! The web UI of SPEC §10: plain files from `ui/`, compiled into the binary so the
//! server needs no second process, no build step and no network.
//!
//! Every GET outside `/api` and `/metrics` that names no asset answers `index.html`,
//! so the application's own routes can be bookmarked and reloaded; `/api` keeps its
//! JSON 404.

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "ui/"]
struct Assets;

/// Only our own origin: the page must work offline, and nothing injected can phone out.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The router's fallback: assets and client routes for GET/HEAD, JSON 404 otherwise.
pub(crate) async fn fallback(req: Request) -> Response {
    let path = req.uri().path();
    let readable = req.method() == Method::GET || req.method() == Method::HEAD;
    if !readable || is_server_path(path) {
        return super::not_found().await.into_response();
    }
    let name = match path.trim_start_matches('/') {
        "" => "index.html",
        rel => rel,
    };
    match Assets::get(name) {
        Some(file) => serve(name, file, req.headers()),
        None => serve(
            "index.html",
            Assets::get("index.html").expect("ui/index.html is embedded"),
            req.headers(),
        ),
    }
}

/// Paths the application must never shadow: the API and the metrics endpoint,
/// matched by whole path segment.
fn is_server_path(path: &str) -> bool {
    ["/api", "/metrics"]
        .iter()
        .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn serve(name: &str, file: rust_embed::EmbeddedFile, req: &HeaderMap) -> Response {
    // File names carry no content hash, so every load revalidates; the ETag makes
    // that a bodiless 304, and an upgraded binary is picked up at once.
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    if name == "index.html" {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, file.data.into_owned()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_paths_are_whole_segments() {
        assert!(is_server_path("/api"));
        assert!(is_server_path("/api/nope"));
        assert!(is_server_path("/metrics"));
        assert!(is_server_path("/metrics/x"));
        assert!(!is_server_path("/"));
        assert!(!is_server_path("/groups/abc"));
        assert!(!is_server_path("/apiary"));
    }

    #[test]
    fn assets_are_embedded_with_types() {
        for f in ["index.html", "app.js", "app.css"] {
            assert!(Assets::get(f).is_some(), "{f} is embedded");
        }
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("x"), "application/octet-stream");
    }
}
