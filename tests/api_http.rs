//! SPEC §2 errors at the HTTP level: unknown routes (404) and the web app behind
//! them (§10), wrong methods (405), the 1 MiB body limit (413, chunked too),
//! percent-encoded garbage ids, and "bad input never changes state".

mod common;

use common::shapes::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A server with group `small` holding task `x`.
struct Small {
    s: TestServer,
    t: String,
    gid: String,
    tid: String,
}

async fn small() -> Small {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let g = s.create_group(&t, "small").await;
    let gid = str_of(&g, "_id").to_string();
    let task = s.create_task(&t, &gid, json!({"name": "x"})).await;
    let tid = str_of(&task, "_id").to_string();
    Small { s, t, gid, tid }
}

/// Everything a client can read back, to compare before and after a rejected
/// request.
struct Observed {
    events: u64,
    groups: Value,
    users: Value,
    group_log: Value,
}

async fn observe(s: &TestServer, t: &str, gid: &str) -> Observed {
    Observed {
        events: s.events().await,
        groups: s.get(t, "/api/groups").await.1,
        users: s.get(t, "/api/auth/users").await.1,
        group_log: s.get(t, &format!("/api/logs/group/{gid}")).await.1,
    }
}

#[track_caller]
fn assert_unchanged(after: Observed, before: &Observed) {
    assert_eq!(after.events, before.events, "bad input appended events");
    assert_eq!(after.groups, before.groups, "bad input changed the groups");
    assert_eq!(after.users, before.users, "bad input changed the users");
    assert_eq!(
        after.group_log, before.group_log,
        "bad input changed the activity log"
    );
}

/// Group `Keep` with task `Keep task` and one comment.
async fn keep() -> Small {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let g = s.create_group(&t, "Keep").await;
    let gid = str_of(&g, "_id").to_string();
    let task = s.create_task(&t, &gid, json!({"name": "Keep task"})).await;
    let tid = str_of(&task, "_id").to_string();
    let (st, _) = s
        .post(
            &t,
            &format!("/api/tasks/{tid}/comments"),
            json!({"text": "keep"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    Small { s, t, gid, tid }
}

const BIG: usize = 1024 * 1024 + 16;

// ───────────────────────────── routes and methods ─────────────────────────────

/// SPEC §10: non-API paths serve the web application, so it can be bookmarked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_api_paths_serve_the_web_app() {
    let s = TestServer::start().await;
    for p in ["/", "/nope"] {
        let (status, body) = s.get_text(p).await;
        assert_eq!(status, StatusCode::OK, "GET {p}");
        assert!(
            body.contains("<html"),
            "GET {p} serves the app: {body:.200}"
        );
    }
    s.stop().await;
}

const UNKNOWN_ROUTES: [&str; 5] = [
    "/api/nope",
    "/api/groups/a/b/c",
    "/api",
    "/api/task",
    "/api/logs",
];

/// 404, not 401: there is nothing to protect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_api_route_without_a_token_is_404() {
    let s = TestServer::start().await;
    for p in UNKNOWN_ROUTES {
        assert_error(
            s.send(Method::GET, p, None, None).await,
            StatusCode::NOT_FOUND,
            &format!("GET {p} without token"),
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_api_route_with_a_token_is_404() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    for p in UNKNOWN_ROUTES {
        assert_error(
            s.get(&t, p).await,
            StatusCode::NOT_FOUND,
            &format!("GET {p} with token"),
        );
    }
    assert_error(
        s.post(&t, "/api/nope", json!({"a": 1})).await,
        StatusCode::NOT_FOUND,
        "POST unknown route",
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_is_405_with_or_without_a_token() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let wrong: [(Method, &str); 6] = [
        (Method::PATCH, "/api/groups"),
        (Method::DELETE, "/api/groups"),
        (Method::DELETE, "/api/health"),
        (Method::POST, "/api/tasks/x"),
        (Method::GET, "/api/auth/login"),
        (Method::POST, "/api/logs/groups"),
    ];
    for (m, p) in wrong {
        for token in [None, Some(t.as_str())] {
            let (st, v) = s.send(m.clone(), p, token, None).await;
            assert_error(
                (st, v),
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("{m} {p} (token: {})", token.is_some()),
            );
        }
    }
    s.stop().await;
}

// ───────────────────────────── body size ─────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_1_mib_is_413_and_changes_nothing() {
    let Small { s, t, gid, tid } = small().await;
    let events = s.events().await;
    let snapshot = s.get(&t, "/api/groups").await.1;
    let huge = "h".repeat(BIG);
    let big: [(Method, String, Value); 5] = [
        (Method::POST, "/api/groups".into(), json!({"name": huge})),
        (
            Method::PUT,
            format!("/api/groups/{gid}"),
            json!({"discussion": huge}),
        ),
        (
            Method::POST,
            format!("/api/groups/{gid}/tasks"),
            json!({"name": "x", "description": huge}),
        ),
        (
            Method::PUT,
            format!("/api/tasks/{tid}"),
            json!({"description": huge}),
        ),
        (
            Method::POST,
            format!("/api/tasks/{tid}/comments"),
            json!({"text": huge}),
        ),
    ];
    let auth = format!("Bearer {t}");
    for (m, p, body) in big {
        let body = serde_json::to_vec(&body).expect("JSON");
        assert_error(
            s.send_raw(m.clone(), &p, Some(&auth), body).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("{m} {p} with 1 MiB+"),
        );
    }
    assert_eq!(s.events().await, events);
    assert_eq!(s.get(&t, "/api/groups").await.1, snapshot);
    s.stop().await;
}

/// Under the body limit, the field limits judge: 400, not 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_under_1_mib_with_an_over_long_field_is_400() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let events = s.events().await;
    let (st, v) = s
        .post(
            &t,
            "/api/groups",
            json!({"name": "x", "discussion": "d".repeat(1000 * 1000)}),
        )
        .await;
    assert_error((st, v), StatusCode::BAD_REQUEST, "900 kB discussion");
    assert_eq!(s.events().await, events);
    s.stop().await;
}

/// The exact boundary: 1 MiB is read (and judged on its fields), one byte more
/// is 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_of_exactly_1_mib_is_read_and_one_byte_more_is_413() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let events = s.events().await;
    let auth = format!("Bearer {t}");
    let (prefix, suffix) = (r#"{"name":"x","discussion":""#, r#""}"#);
    for (total, want) in [
        (1024 * 1024, StatusCode::BAD_REQUEST),
        (1024 * 1024 + 1, StatusCode::PAYLOAD_TOO_LARGE),
    ] {
        let fill = "d".repeat(total - prefix.len() - suffix.len());
        let body = format!("{prefix}{fill}{suffix}").into_bytes();
        assert_eq!(body.len(), total);
        assert_error(
            s.send_raw(Method::POST, "/api/groups", Some(&auth), body)
                .await,
            want,
            &format!("body of {total} bytes"),
        );
    }
    assert_eq!(s.events().await, events);
    s.stop().await;
}

/// No token is needed to send a big body, so the limit must hold before auth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_body_over_1_mib_is_413() {
    let s = TestServer::start().await;
    let body = json!({"username": "admin", "password": "h".repeat(BIG)});
    assert_error(
        s.send_raw(
            Method::POST,
            "/api/auth/login",
            None,
            serde_json::to_vec(&body).expect("JSON"),
        )
        .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "1 MiB+ login",
    );
    assert_eq!(s.events().await, 1, "only the admin's creation is logged");
    s.stop().await;
}

fn chunked_head(t: &str) -> String {
    format!(
        "POST /api/groups HTTP/1.1\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json"
    )
}

/// Without a Content-Length the server cannot refuse up front; it must still
/// stop reading at the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_over_1_mib_is_413_and_changes_nothing() {
    let Small { s, t, .. } = small().await;
    let events = s.events().await;
    let snapshot = s.get(&t, "/api/groups").await.1;
    let body = json!({"name": "n".repeat(2 * 1024 * 1024)}).to_string();
    let (st, v) = s
        .send_chunked(&chunked_head(&t), body.as_bytes(), 64 * 1024)
        .await;
    assert_eq!(st, 413, "chunked 2 MiB: {v}");
    assert_error_body(&v, "chunked 2 MiB");
    assert_eq!(s.events().await, events);
    assert_eq!(s.get(&t, "/api/groups").await.1, snapshot);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_chunked_body_is_accepted() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let events = s.events().await;
    let (st, v) = s
        .send_chunked(&chunked_head(&t), br#"{"name":"chunky"}"#, 3)
        .await;
    assert_eq!(st, 201, "small chunked body: {v}");
    assert_eq!(v["group"]["name"], "chunky");
    assert_eq!(s.events().await, events + 1);
    s.stop().await;
}

// ───────────────────────────── ids ─────────────────────────────

/// An id that is not valid UTF-8 once percent-decoded is still just an id that
/// names nothing: 404 like every other garbage id, not a generic 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percent_encoded_non_utf8_id_is_404() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    for p in [
        "/api/groups/%FF",
        "/api/tasks/%FF",
        "/api/tasks/%C3%28/comments",
    ] {
        assert_error(
            s.get(&t, p).await,
            StatusCode::NOT_FOUND,
            &format!("GET {p}"),
        );
    }
    assert_error(
        s.put(&t, "/api/groups/%FF", json!({"name": "x"})).await,
        StatusCode::NOT_FOUND,
        "PUT /api/groups/%FF",
    );
    s.stop().await;
}

/// On the log routes such an id is one with no history: an empty list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percent_encoded_non_utf8_id_has_an_empty_history() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    for p in ["/api/logs/group/%FF", "/api/logs/task/%FF"] {
        let (st, v) = s.get(&t, p).await;
        assert_eq!(st, StatusCode::OK, "GET {p}: {v}");
        assert_eq!(v["logs"], json!([]), "GET {p}");
    }
    s.stop().await;
}

// ───────────────────────────── bad input never changes state ─────────────────────────────

/// Sends each raw body and asserts a 400.
async fn assert_raw_refused(k: &Small, raw: Vec<(Method, String, &[u8])>) {
    let auth = format!("Bearer {}", k.t);
    for (m, p, body) in raw {
        let (st, v) =
            k.s.send_raw(m.clone(), &p, Some(&auth), body.to_vec())
                .await;
        assert_error(
            (st, v),
            StatusCode::BAD_REQUEST,
            &format!(
                "{m} {p} raw {:?}",
                String::from_utf8_lossy(&body[..body.len().min(40)])
            ),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400_and_changes_nothing() {
    let k = keep().await;
    let (gid, tid) = (&k.gid, &k.tid);
    let before = observe(&k.s, &k.t, gid).await;
    let raw: Vec<(Method, String, &[u8])> = vec![
        (Method::POST, "/api/groups".into(), b"{"),
        (Method::POST, "/api/groups".into(), b"{\"name\":\"a\"}}"),
        (Method::POST, "/api/groups".into(), b"\xff\xfe"),
        (Method::PUT, format!("/api/groups/{gid}"), b"nul\x00l"),
        (Method::POST, format!("/api/groups/{gid}/tasks"), b"[1,2"),
        (Method::PUT, format!("/api/tasks/{tid}"), b"{\"name\":}"),
        (Method::PUT, format!("/api/tasks/{tid}/status"), b""),
        (
            Method::POST,
            format!("/api/tasks/{tid}/comments"),
            b"\"text\"",
        ),
        (
            Method::POST,
            "/api/auth/users".into(),
            b"{\"username\":\"x\"",
        ),
    ];
    assert_raw_refused(&k, raw).await;
    assert_unchanged(observe(&k.s, &k.t, gid).await, &before);
    k.s.stop().await;
}

/// Deep nesting and huge numbers must be refused without exhausting the stack
/// or memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_or_huge_number_json_is_400_and_changes_nothing() {
    let k = keep().await;
    let before = observe(&k.s, &k.t, &k.gid).await;
    let deep_array = "[".repeat(100_000);
    let deep_object = format!("{{\"name\":{}", "{\"a\":".repeat(50_000));
    let huge_number = format!("{{\"name\":1{}}}", "0".repeat(5000));
    let raw: Vec<(Method, String, &[u8])> = vec![
        (
            Method::POST,
            "/api/groups".to_string(),
            deep_array.as_bytes(),
        ),
        (
            Method::POST,
            "/api/groups".to_string(),
            deep_object.as_bytes(),
        ),
        (
            Method::POST,
            "/api/groups".to_string(),
            huge_number.as_bytes(),
        ),
        (
            Method::PUT,
            format!("/api/tasks/{}", k.tid),
            deep_array.as_bytes(),
        ),
    ];
    assert_raw_refused(&k, raw).await;
    assert_unchanged(observe(&k.s, &k.t, &k.gid).await, &before);
    k.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_or_unknown_target_on_every_mutation_route_changes_nothing() {
    let k = keep().await;
    let (gid, tid) = (&k.gid, &k.tid);
    let before = observe(&k.s, &k.t, gid).await;
    let typed: Vec<(Method, String, Value, StatusCode)> = vec![
        (
            Method::POST,
            "/api/groups".into(),
            json!({"name": " "}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            format!("/api/groups/{gid}"),
            json!({"name": ""}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            format!("/api/groups/{}", unknown_id(1)),
            json!({"name": "x"}),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::DELETE,
            format!("/api/groups/{}", unknown_id(1)),
            json!({}),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("/api/groups/{gid}/tasks"),
            json!({"name": "x", "status": "Nope"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            format!("/api/groups/{gid}/tasks"),
            json!({"name": "x", "endDate": "2025-1-1"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            format!("/api/groups/{}/tasks", unknown_id(2)),
            json!({"name": "x"}),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::PUT,
            format!("/api/tasks/{tid}"),
            json!({"name": "ok", "startDate": "bad"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            format!("/api/tasks/{tid}"),
            json!({"name": "ok", "status": "bad"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            format!("/api/tasks/{tid}/status"),
            json!({"status": "bad"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            format!("/api/tasks/{}", unknown_id(3)),
            json!({}),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("/api/tasks/{tid}/comments"),
            json!({"text": ""}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            format!("/api/tasks/{}/comments", unknown_id(4)),
            json!({"text": "x"}),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/api/auth/users".into(),
            json!({"username": "admin", "password": "12345678"}),
            StatusCode::CONFLICT,
        ),
        (
            Method::POST,
            "/api/auth/users".into(),
            json!({"username": "x y", "password": "12345678"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/auth/users".into(),
            json!({"username": "xy", "password": "short"}),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (m, p, body, want) in typed {
        let what = format!("{m} {p} {body}");
        assert_error(k.s.send(m, &p, Some(&k.t), Some(&body)).await, want, &what);
    }
    assert_unchanged(observe(&k.s, &k.t, gid).await, &before);
    k.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutation_without_a_valid_token_is_401_and_changes_nothing() {
    let k = keep().await;
    let before = observe(&k.s, &k.t, &k.gid).await;
    assert_error(
        k.s.send(
            Method::POST,
            "/api/groups",
            None,
            Some(&json!({"name": "no token"})),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "create group without token",
    );
    assert_error(
        k.s.send(
            Method::DELETE,
            &format!("/api/groups/{}", k.gid),
            Some("garbage"),
            None,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "delete with a garbage token",
    );
    assert_unchanged(observe(&k.s, &k.t, &k.gid).await, &before);
    k.s.stop().await;
}

/// Reads one HTTP/1.1 answer (head and its Content-Length body) off a socket.
async fn read_answer(sock: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&raw).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), sock.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        assert!(n > 0, "connection closed mid-answer: {text:?}");
        raw.extend_from_slice(&buf[..n]);
    }
}

/// A socket with a POST head declaring `length` body bytes already sent.
async fn post_head(s: &TestServer, path: &str, length: u64) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut sock = tokio::net::TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.expect("head");
    sock
}

/// A client that sends a whole over-limit body before reading gets its 413 (not
/// a reset), and the connection stays usable: the server read the overshoot
/// and threw it away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_somewhat_over_the_limit_gets_413_and_the_connection_lives_on() {
    use tokio::io::AsyncWriteExt;
    let s = TestServer::start().await;
    let mut sock = post_head(&s, "/api/auth/login", BIG as u64).await;
    sock.write_all(&vec![b' '; BIG])
        .await
        .expect("the whole body is accepted");
    let answer = read_answer(&mut sock).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("request body is too large"), "{answer}");
    sock.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("second request");
    let answer = read_answer(&mut sock).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    s.stop().await;
}

/// A body declared far too big is not waited for: 413 at once, and the answer
/// says the connection closes (the body was never read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_declared_body_gets_413_at_once_with_connection_close() {
    let s = TestServer::start().await;
    let mut sock = post_head(&s, "/api/groups", 1 << 40).await;
    let answer = read_answer(&mut sock).await.to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    s.stop().await;
}
