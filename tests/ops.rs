//! Operations (SPEC §11) and the input defects of issue 8: CORS, JSON logs,
//! bounded metric labels, early 413, the request timeout, and strict input.

mod common;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use taskledger::config::Cors;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn preflight(s: &TestServer, origin: &str) -> reqwest::Response {
    s.client
        .request(Method::OPTIONS, s.url("/api/groups"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .expect("preflight")
}

fn allowed(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let s = TestServer::start_with(|c| {
        c.http.cors = Cors::Origins(vec!["https://tasks.example.com".into()])
    })
    .await;
    let ok = preflight(&s, "https://tasks.example.com").await;
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(allowed(&ok).as_deref(), Some("https://tasks.example.com"));
    let methods = ok
        .headers()
        .get("access-control-allow-methods")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(methods.contains("POST"), "{methods}");
    assert_eq!(allowed(&preflight(&s, "https://evil.example").await), None);

    let any = TestServer::start_with(|c| c.http.cors = Cors::Any).await;
    assert_eq!(
        allowed(&preflight(&any, "https://anywhere.example").await).as_deref(),
        Some("*")
    );
    let none = TestServer::start().await;
    assert_eq!(
        allowed(&preflight(&none, "https://tasks.example.com").await),
        None
    );
}

#[test]
fn bad_cors_and_log_settings_stop_the_start() {
    let dir = tempfile::tempdir().expect("dir");
    for (k, v) in [("CORS_ORIGIN", "tasks.example.com"), ("LOG_FORMAT", "xml")] {
        let out = binary(dir.path(), &["serve", "--addr", "127.0.0.1:0"])
            .env(k, v)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{k}={v}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(k),
            "{k}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn json_logs_are_one_object_per_line_and_never_coloured() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let mut child = binary(
        dir.path(),
        &["serve", "--addr", &format!("127.0.0.1:{port}")],
    )
    .env("LOG_FORMAT", "json")
    .env("RUST_LOG", "info")
    .stdout(std::process::Stdio::piped())
    .spawn()
    .expect("start");
    let out = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    for line in BufReader::new(out).lines() {
        let line = line.expect("line");
        let serving = line.contains("taskledger is serving");
        lines.push(line);
        if serving {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(lines.len() >= 2, "{lines:?}");
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{l}"
        );
        assert!(!l.contains('\u{1b}'), "colour codes in {l}");
    }
    // The text format, written to a pipe, carries no colour codes either.
    let mut child = binary(
        dir.path(),
        &["serve", "--addr", &format!("127.0.0.1:{}", free_port())],
    )
    .env("RUST_LOG", "info")
    .stdout(std::process::Stdio::piped())
    .spawn()
    .expect("start");
    let out = child.stdout.take().expect("stdout");
    let first = BufReader::new(out)
        .lines()
        .next()
        .expect("a line")
        .expect("line");
    let _ = child.kill();
    let _ = child.wait();
    assert!(!first.contains('\u{1b}'), "{first:?}");
}

#[tokio::test]
async fn metric_labels_do_not_grow_with_made_up_methods() {
    let s = TestServer::start().await;
    for m in ["FROB", "XYZZY", "PLUGH"] {
        let method = Method::from_bytes(m.as_bytes()).expect("method");
        let r = s
            .client
            .request(method, s.url("/api/groups"))
            .send()
            .await
            .expect("send");
        assert!(r.status().is_client_error(), "{m}: {}", r.status());
    }
    let (_, metrics) = s.get_text("/metrics").await;
    for m in ["FROB", "XYZZY", "PLUGH"] {
        assert!(!metrics.contains(m), "{m} became a label");
    }
    assert!(metrics.contains("method=\"other\""), "{metrics}");
}

/// Sends raw bytes and answers the status line's code, within `secs`.
async fn raw(s: &TestServer, bytes: &[u8], secs: u64) -> Option<u16> {
    let mut sock = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    sock.write_all(bytes).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(secs), sock.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    text.split(' ').nth(1).and_then(|c| c.parse().ok())
}

#[tokio::test]
async fn a_huge_declared_body_is_refused_from_the_header() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    for path in ["/api/groups", "/api/backup/upload"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\nContent-Length: 1099511627776\r\n\r\n{{\"name\":\"a\"}}"
        );
        let started = Instant::now();
        assert_eq!(raw(&s, head.as_bytes(), 5).await, Some(413), "{path}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}

#[tokio::test]
async fn a_request_over_the_time_limit_is_a_503_with_the_error_shape() {
    let s = TestServer::start_with(|c| c.request_timeout = Duration::from_millis(1)).await;
    // A login hashes with Argon2: far longer than a millisecond.
    let (st, v) = s
        .send(
            Method::POST,
            "/api/auth/login",
            None,
            Some(&json!({"username": ADMIN, "password": ADMIN_PASSWORD})),
        )
        .await;
    assert_error((st, v), StatusCode::SERVICE_UNAVAILABLE, "slow request");
}

#[tokio::test]
async fn strict_input_refuses_what_is_ambiguous_or_unprintable() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let g = s.create_group(&t, "Strict").await;
    let gid = str_of(&g, "_id").to_string();
    let before = s.events().await;
    let auth = format!("Bearer {t}");
    for (what, path, body) in [
        (
            "duplicate keys",
            "/api/groups",
            br#"{"name":"a","name":"b"}"#.to_vec(),
        ),
        (
            "NUL in a name",
            "/api/groups",
            br#"{"name":"a\u0000b"}"#.to_vec(),
        ),
        (
            "escape in a name",
            "/api/groups",
            br#"{"name":"a\u001bb"}"#.to_vec(),
        ),
        (
            "null discussion",
            "/api/groups",
            br#"{"name":"a","discussion":null}"#.to_vec(),
        ),
        (
            "null label",
            "/api/backup/create",
            br#"{"label":null}"#.to_vec(),
        ),
        (
            "control char username",
            "/api/auth/users",
            br#"{"username":"a\u0007b","password":"long-enough"}"#.to_vec(),
        ),
    ] {
        let (st, v) = s.send_raw(Method::POST, path, Some(&auth), body).await;
        assert_error((st, v), StatusCode::BAD_REQUEST, what);
    }
    let (st, v) = s
        .send_raw(
            Method::PUT,
            &format!("/api/groups/{gid}"),
            Some(&auth),
            br#"{"name":null}"#.to_vec(),
        )
        .await;
    assert_error((st, v), StatusCode::BAD_REQUEST, "null name on update");
    let (st, v) = s
        .get(&t, &format!("/api/logs/group/{gid}?limit=%205"))
        .await;
    assert_error((st, v), StatusCode::BAD_REQUEST, "limit with a space");
    let long = "a".repeat(300);
    let (st, v) = s
        .get(&t, &format!("/api/backup/download/{long}.tar.gz"))
        .await;
    assert_error((st, v), StatusCode::BAD_REQUEST, "name over 255 bytes");
    assert_eq!(s.events().await, before, "nothing changed");
    // Free text keeps its line breaks and tabs.
    let (st, v) = s
        .post(
            &t,
            "/api/groups",
            json!({"name": "ok", "discussion": "line 1\n\tline 2"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
}

/// Issue 8, defect 6: idle connections do not starve the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_connections_leave_health_answering() {
    let s = TestServer::start().await;
    let mut idle = Vec::new();
    for _ in 0..2000 {
        match tokio::net::TcpStream::connect(s.addr).await {
            Ok(c) => idle.push(c),
            Err(e) => panic!("connect {}: {e}", idle.len()),
        }
    }
    let started = Instant::now();
    let r = s
        .client
        .get(s.url("/api/health"))
        .send()
        .await
        .expect("health");
    assert!(r.status().is_success());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "health took {:?}",
        started.elapsed()
    );
    let t = s.admin_token().await;
    s.create_group(&t, "still writable").await;
    drop(idle);
}

/// Issue 8, defect 5: SIGTERM ends the process even while a client holds a
/// half-sent request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_despite_a_half_sent_request() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let mut child = binary(
        dir.path(),
        &["serve", "--addr", &format!("127.0.0.1:{port}")],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("start");
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client
            .get(format!("http://127.0.0.1:{port}/api/health"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    sock.write_all(b"POST /api/groups HTTP/1.1\r\nHost: x\r\nContent-Le")
        .await
        .expect("write");
    let started = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still running 15 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(sock);
}

/// Issue 8, defect 12: `--help` names every setting of SPEC §1 and §9.
#[test]
fn help_lists_every_setting() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taskledger"))
        .arg("--help")
        .output()
        .expect("run --help");
    let text = String::from_utf8_lossy(&out.stdout);
    for setting in [
        "TASKLEDGER_ADDR",
        "TASKLEDGER_DATA_DIR",
        "TASKLEDGER_BACKUP_DIR",
        "TASKLEDGER_RESTORE_DIR",
        "TASKLEDGER_ADMIN_PASSWORD",
        "TASKLEDGER_TOKEN_TTL_SECS",
        "AUTO_BACKUP_ENABLED",
        "AUTO_BACKUP_INTERVAL",
        "MAX_BACKUPS",
        "AUTO_RESTORE_ENABLED",
        "KAFKA_ENABLED",
        "KAFKA_BROKER",
        "KAFKA_TOPIC",
        "CORS_ORIGIN",
        "LOG_FORMAT",
        "S3_BUCKET_NAME",
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "S3_PREFIX",
        "RESTORE_FROM_OFFSITE",
        "RUST_LOG",
    ] {
        assert!(text.contains(setting), "--help does not mention {setting}");
    }
}

/// Issue 8, defect 9: over-long targets and headers answer in the JSON error shape.
#[tokio::test]
async fn over_long_targets_and_headers_get_the_json_error_shape() {
    let s = TestServer::start().await;
    let long = "a".repeat(20_000);
    let (st, v) = s
        .send(Method::GET, &format!("/api/groups/{long}"), None, None)
        .await;
    assert_error((st, v), StatusCode::URI_TOO_LONG, "long target");
    let r = s
        .client
        .get(s.url("/api/health"))
        .header("X-Big", "b".repeat(100_000))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let body: Value = r.json().await.expect("JSON body");
    assert_eq!(body["success"], false);
    assert!(body["error"].is_string(), "{body}");
}

/// Issue 19, defect 3: under a hard limit of open files, idle connections held
/// open by the hundred must not lock everyone out: at the cap, the connection
/// idle longest is closed to admit a new one, so a client with a request to make
/// is answered within a second (health and a write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_at_the_fd_limit_do_not_lock_out_requests() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // 256 open files (soft and hard): the server's budget is its minimum, 64 connections.
    let bin = binary(
        dir.path(),
        &["serve", "--addr", &format!("127.0.0.1:{port}")],
    );
    let mut limited = std::process::Command::new("bash");
    limited
        .args(["-c", "ulimit -n 256 && exec \"$0\" \"$@\""])
        .arg(bin.get_program())
        .args(bin.get_args())
        .envs(bin.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let server = Reaped(limited.spawn().unwrap());
    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while fresh()
        .get(format!("{base}/api/health"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = admin_login_at(&fresh(), &base).await;
    // Far more idle connections than the budget; none sends a byte.
    let mut idle = Vec::new();
    for _ in 0..400 {
        idle.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap(),
        );
    }
    for i in 0..5 {
        let c = fresh();
        let started = Instant::now();
        let health = c.get(format!("{base}/api/health")).send().await;
        assert!(
            health.as_ref().is_ok_and(|r| r.status() == StatusCode::OK),
            "health {i} was not answered within 1 s: {health:?}"
        );
        let write = c
            .post(format!("{base}/api/groups"))
            .bearer_auth(&token)
            .json(&json!({"name": format!("admitted {i}")}))
            .send()
            .await;
        assert!(
            write
                .as_ref()
                .is_ok_and(|r| r.status() == StatusCode::CREATED),
            "write {i} was not answered within 1 s: {write:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    drop(idle);
    drop(server);
}
