//! A small harness for black-box HTTP tests: a real server on 127.0.0.1:0 over a
//! temporary data dir, and helpers that answer `(StatusCode, serde_json::Value)`.
#![allow(dead_code)]

pub mod shapes;

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use taskledger::config::Config;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-password";

type RunResult = Result<(), taskledger::RunError>;

pub struct TestServer {
    pub base: String,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    dir: Option<TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<RunResult>>,
}

impl TestServer {
    /// A server over a fresh temporary dir with the defaults of `Config::for_dir`.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Same, after `tune` has adjusted the config.
    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, tune).await
    }

    /// A server over an existing dir (e.g. the one a stopped server handed back).
    pub async fn start_in(dir: TempDir, tune: impl FnOnce(&mut Config)) -> TestServer {
        let mut cfg = Config::for_dir(dir.path());
        tune(&mut cfg);
        let mut server = Self::start_config(cfg).await;
        server.dir = Some(dir);
        server
    }

    /// A server on a config whose directories the caller owns.
    pub async fn start_config(cfg: Config) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(taskledger::run(cfg, listener, async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let server = TestServer {
            base: format!("http://{addr}"),
            addr,
            client,
            dir: None,
            shutdown: Some(tx),
            handle: Some(handle),
        };
        server.wait_ready().await;
        server
    }

    /// The listener is bound before `run` opens the store, so poll the health
    /// route until it answers (or the server task has died).
    async fn wait_ready(&self) {
        for _ in 0..600 {
            if let Some(h) = &self.handle {
                assert!(!h.is_finished(), "server task ended before serving");
            }
            let r = self
                .client
                .get(self.url("/api/health"))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if let Ok(resp) = r {
                if resp.status() == StatusCode::OK {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("server at {} never became ready", self.base);
    }

    /// The drop folder of a server started over a temporary dir.
    pub fn restore_dir(&self) -> std::path::PathBuf {
        self.dir
            .as_ref()
            .expect("a temporary dir")
            .path()
            .join("restore")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Stops the server (graceful shutdown, store closed, lock released) and hands
    /// back the data dir, so another server can be started on it.
    pub async fn stop(mut self) -> TempDir {
        self.halt().await;
        self.dir.take().expect("data dir")
    }

    /// Stops a server started with [`TestServer::start_config`].
    pub async fn shutdown(mut self) {
        self.halt().await;
    }

    async fn halt(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let res = tokio::time::timeout(Duration::from_secs(60), h)
                .await
                .expect("server did not stop within 60 s")
                .expect("server task panicked");
            if let Err(e) = res {
                panic!("server ended with an error: {e}");
            }
        }
    }

    /// Any request; the answer must be JSON (a test failure otherwise).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method.clone(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request failed");
        Self::json_of(&method, path, resp).await
    }

    /// A request with a raw body and an optional raw Authorization header.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method.clone(), self.url(path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(a) = authorization {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        let resp = req.send().await.expect("request failed");
        Self::json_of(&method, path, resp).await
    }

    async fn json_of(method: &Method, path: &str, resp: reqwest::Response) -> (StatusCode, Value) {
        let status = resp.status();
        let ctype = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = resp.text().await.expect("response body");
        let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("{method} {path} -> {status}: body is not JSON ({e}); content-type {ctype:?}; body {text:?}")
        });
        assert!(
            ctype.starts_with("application/json"),
            "{method} {path} -> {status}: content-type is {ctype:?}"
        );
        (status, value)
    }

    /// A GET answering plain text (for /metrics).
    pub async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let resp = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request failed");
        let status = resp.status();
        (status, resp.text().await.expect("response body"))
    }

    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, path, Some(token), Some(&body))
            .await
    }

    pub async fn put(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::PUT, path, Some(token), Some(&body)).await
    }

    pub async fn delete(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.send(Method::DELETE, path, Some(token), None).await
    }

    /// Logs in and answers the token (a test failure unless it is a 200).
    pub async fn login(&self, user: &str, password: &str) -> String {
        let body = serde_json::json!({"username": user, "password": password});
        let (status, v) = self
            .send(Method::POST, "/api/auth/login", None, Some(&body))
            .await;
        assert_eq!(status, StatusCode::OK, "login as {user}: {v}");
        v["token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| panic!("login answer without a token: {v}"))
            .to_string()
    }

    pub async fn admin_token(&self) -> String {
        self.login(ADMIN, ADMIN_PASSWORD).await
    }

    pub async fn health(&self) -> Value {
        let (status, v) = self.send(Method::GET, "/api/health", None, None).await;
        assert_eq!(status, StatusCode::OK, "health: {v}");
        v
    }

    /// The `events` count of `/api/health`.
    pub async fn events(&self) -> u64 {
        let v = self.health().await;
        v["events"]
            .as_u64()
            .unwrap_or_else(|| panic!("health without an integer events: {v}"))
    }

    /// Creates a group and answers it (201 asserted).
    pub async fn create_group(&self, token: &str, name: &str) -> Value {
        let (status, v) = self
            .post(token, "/api/groups", serde_json::json!({"name": name}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "create group {name:?}: {v}");
        v["group"].clone()
    }

    /// Creates a task in a group and answers it (201 asserted).
    pub async fn create_task(&self, token: &str, group_id: &str, body: Value) -> Value {
        let (status, v) = self
            .post(
                token,
                &format!("/api/groups/{group_id}/tasks"),
                body.clone(),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "create task {body}: {v}");
        v["task"].clone()
    }
}

impl TestServer {
    /// Writes `head` (request line and headers, without the blank line), then
    /// `body` as chunks of `chunk` bytes with `Transfer-Encoding: chunked`, so the
    /// server sees no Content-Length. Answers the status and the JSON body.
    pub async fn send_chunked(&self, head: &str, body: &[u8], chunk: usize) -> (u16, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let head = format!(
            "{head}\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            self.addr
        );
        sock.write_all(head.as_bytes()).await.expect("write head");
        // The server may answer and close before it has read everything: a
        // failed write is fine, the answer is what counts.
        for part in body.chunks(chunk.max(1)) {
            let mut frame = format!("{:x}\r\n", part.len()).into_bytes();
            frame.extend_from_slice(part);
            frame.extend_from_slice(b"\r\n");
            if sock.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = sock.write_all(b"0\r\n\r\n").await;
        let mut raw = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(30), sock.read_to_end(&mut raw)).await;
        let text = String::from_utf8_lossy(&raw).to_string();
        let status: u16 = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
        let (headers, rest) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no header end in {text:?}"));
        let chunked_answer = headers
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let json_text = if chunked_answer {
            // One or more chunks: keep the data lines only.
            let mut out = String::new();
            let mut lines = rest.split("\r\n");
            while let Some(size) = lines.next() {
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                if n == 0 {
                    break;
                }
                out.push_str(lines.next().unwrap_or(""));
            }
            out
        } else {
            rest.to_string()
        };
        let v = serde_json::from_str(&json_text)
            .unwrap_or_else(|e| panic!("answer body is not JSON ({e}): {text:?}"));
        (status, v)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A test that failed before `stop` still tells the server to go away.
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Asserts the status and the SPEC §2 error shape: exactly
/// `{"success":false,"error":"<non-empty string>"}`.
#[track_caller]
pub fn assert_error(got: (StatusCode, Value), want: StatusCode, what: &str) {
    let (status, v) = got;
    assert_eq!(status, want, "{what}: body {v}");
    assert_error_body(&v, what);
}

#[track_caller]
pub fn assert_error_body(v: &Value, what: &str) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{what}: error body is not an object: {v}"));
    assert_eq!(obj.len(), 2, "{what}: error body has extra keys: {v}");
    assert_eq!(obj.get("success"), Some(&Value::Bool(false)), "{what}: {v}");
    let msg = obj.get("error").and_then(Value::as_str);
    assert!(
        msg.is_some_and(|m| !m.trim().is_empty()),
        "{what}: error must be a non-empty string: {v}"
    );
}

/// Asserts an object has exactly these keys.
#[track_caller]
pub fn assert_keys(v: &Value, keys: &[&str], what: &str) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not an object: {v}"));
    let mut got: Vec<&str> = obj.keys().map(String::as_str).collect();
    got.sort_unstable();
    let mut want: Vec<&str> = keys.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "{what}: keys of {v}");
}

/// `2025-11-10T15:30:45.123Z`: RFC 3339, UTC, exactly three fraction digits.
pub fn is_utc_millis(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 24 {
        return false;
    }
    let seps = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (23, b'Z'),
    ];
    for (i, c) in b.iter().enumerate() {
        match seps.iter().find(|(at, _)| *at == i) {
            Some((_, want)) if c != want => return false,
            Some(_) => {}
            None if !c.is_ascii_digit() => return false,
            None => {}
        }
    }
    let num = |from: usize, to: usize| s[from..to].parse::<u32>().unwrap_or(u32::MAX);
    (1..=12).contains(&num(5, 7))
        && (1..=31).contains(&num(8, 10))
        && num(11, 13) <= 23
        && num(14, 16) <= 59
        && num(17, 19) <= 60
}

#[track_caller]
pub fn assert_ts(v: &Value, what: &str) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what}: timestamp is not a string: {v}"));
    assert!(
        is_utc_millis(s),
        "{what}: {s:?} is not RFC 3339 UTC with milliseconds"
    );
}

pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {v}"))
}

/// The names in a `GET /api/groups` answer, in its order.
pub fn group_names_in(v: &Value) -> Vec<String> {
    arr(v, "groups")
        .iter()
        .map(|g| str_of(g, "name").to_string())
        .collect()
}

pub fn arr<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not an array in {v}"))
}

/// The built `taskledger` binary with `args`, on the data, backup and restore
/// dirs under `root`, with the admin password of these tests and the background
/// work off.
pub fn binary(root: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_taskledger"));
    c.args(args)
        .arg("--data-dir")
        .arg(root.join("storage"))
        .arg("--backup-dir")
        .arg(root.join("backups"))
        .arg("--restore-dir")
        .arg(root.join("restore"))
        .env("TASKLEDGER_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("AUTO_BACKUP_ENABLED", "false")
        .env("AUTO_RESTORE_ENABLED", "false")
        .env("RUST_LOG", "warn");
    c
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A server plus an admin token, for tests that mostly act as the admin.
pub struct Authed {
    pub server: TestServer,
    pub base: String,
    pub client: reqwest::Client,
    pub token: String,
}

impl Authed {
    pub async fn start(cfg: Config) -> Authed {
        let server = TestServer::start_config(cfg).await;
        let token = server.admin_token().await;
        Authed {
            base: server.base.clone(),
            client: server.client.clone(),
            token,
            server,
        }
    }

    pub async fn stop(self) {
        self.server.shutdown().await;
    }
}

/// POSTs JSON to a server that is not a [`TestServer`] (a spawned binary) and
/// returns the JSON answer; `token` adds the bearer header.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: Value,
) -> Value {
    let mut req = client.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON answer")
}

/// Logs in as the admin of a spawned binary and returns the token.
pub async fn admin_login_at(client: &reqwest::Client, base: &str) -> String {
    let body = serde_json::json!({"username": ADMIN, "password": ADMIN_PASSWORD});
    let r = post_json(client, &format!("{base}/api/auth/login"), None, body).await;
    r["token"].as_str().expect("token").to_string()
}

/// The value of an unlabelled metric on a server's `/metrics` page.
pub async fn metric_at(client: &reqwest::Client, base: &str, name: &str) -> f64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics request")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} is not on /metrics"))
}

/// Waits (polling, with a deadline) until a metric satisfies `ok`: how a test
/// learns that background work took its turn, instead of sleeping and hoping.
pub async fn until_metric(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    ok: impl Fn(f64) -> bool,
) -> f64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = metric_at(client, base, name).await;
        if ok(v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} stayed at {v} for 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A spawned process that is killed when the test lets go of it, even when an
/// assertion fails first (a leaked server would outlive the test run).
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
