//! Live updates (SPEC §13) through the real server: order and shape, filters,
//! resuming with Last-Event-ID, reset after a restore, keep-alive, a client that
//! does not read, shutdown, the per-user cap, and auth by `?token=`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// One SSE block: `event`, `id`, the joined `data` lines, and whether it was
/// only comments/`retry` (no data).
#[derive(Debug, Clone, Default)]
struct Frame {
    event: Option<String>,
    id: Option<String>,
    data: String,
    comments: Vec<String>,
}

impl Frame {
    fn is_entry(&self) -> bool {
        self.event.is_none() && !self.data.is_empty()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("data is not JSON ({e}): {:?}", self.data))
    }
}

/// A reader of one event stream.
struct Sse {
    resp: reqwest::Response,
    buf: String,
    ended: bool,
}

/// A client without a total timeout: a stream lasts as long as the test wants.
fn stream_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

async fn open_raw(
    s: &TestServer,
    client: &reqwest::Client,
    token: Option<&str>,
    query: &str,
    last_id: Option<&str>,
) -> reqwest::Response {
    let mut req = client.get(s.url(&format!("/api/events/stream{query}")));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(l) = last_id {
        req = req.header("Last-Event-ID", l);
    }
    req.send().await.expect("stream request")
}

impl Sse {
    async fn open(s: &TestServer, token: &str, query: &str, last_id: Option<&str>) -> Sse {
        let resp = open_raw(s, &stream_client(), Some(token), query, last_id).await;
        Sse::from(resp)
    }

    fn from(resp: reqwest::Response) -> Sse {
        assert_eq!(resp.status(), StatusCode::OK, "stream status");
        let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ctype.starts_with("text/event-stream"), "{ctype}");
        Sse {
            resp,
            buf: String::new(),
            ended: false,
        }
    }

    /// The next frame; None once the stream has ended. Panics after `within`.
    async fn frame(&mut self, within: Duration) -> Option<Frame> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(at) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..at + 2).collect();
                let mut f = Frame::default();
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        f.comments.push(c.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        f.event = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("id:") {
                        f.id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if !f.data.is_empty() {
                            f.data.push('\n');
                        }
                        f.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                return Some(f);
            }
            if self.ended {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no complete frame within {within:?}");
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Err(_) => panic!("no complete frame within {within:?}; have {:?}", self.buf),
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) | Ok(Err(_)) => self.ended = true,
            }
        }
    }

    /// The next entry or reset (comments skipped).
    async fn event(&mut self) -> Frame {
        loop {
            let f = self
                .frame(Duration::from_secs(10))
                .await
                .expect("the stream ended");
            if !f.data.is_empty() || f.event.is_some() {
                return f;
            }
        }
    }

    /// The next `n` entries, each asserted to be an entry (not a reset).
    async fn entries(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::new();
        while out.len() < n {
            let f = self.event().await;
            assert!(f.is_entry(), "expected an entry, got {f:?}");
            let v = f.json();
            assert_eq!(
                f.id.as_deref(),
                Some(v["id"].as_u64().expect("entry id").to_string().as_str()),
                "id: line and entry id differ: {f:?}"
            );
            out.push(v);
        }
        out
    }

    /// Nothing but comments arrives for `quiet`.
    async fn assert_quiet(&mut self, quiet: Duration) {
        let deadline = Instant::now() + quiet;
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.buf.contains("\n\n") || !self.ended {
                match tokio::time::timeout(left, self.frame(Duration::from_secs(60))).await {
                    Err(_) => return,
                    Ok(Some(f)) => assert!(
                        f.data.is_empty() && f.event.is_none(),
                        "unexpected frame {f:?}"
                    ),
                    Ok(None) => panic!("the stream ended"),
                }
            }
        }
    }
}

fn ids(entries: &[Value]) -> Vec<u64> {
    entries.iter().map(|e| e["id"].as_u64().unwrap()).collect()
}

async fn comment(s: &TestServer, token: &str, task: &str, text: &str) -> u64 {
    let (st, v) = s
        .post(
            token,
            &format!("/api/tasks/{task}/comments"),
            json!({"text": text}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    s.events().await
}

async fn metric(s: &TestServer, name: &str) -> f64 {
    metric_at(&s.client, &s.base, name).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_arrive_in_log_order_in_the_log_entry_shape() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let mut sse = Sse::open(&s, &t, "", None).await;
    let g = s.create_group(&t, "Alpha").await;
    let gid = str_of(&g, "_id").to_string();
    let task = s.create_task(&t, &gid, json!({"name": "Feature X"})).await;
    let tid = str_of(&task, "_id").to_string();
    // A user event has no activity entry: skipped, not sent.
    let (st, _) = s
        .post(
            &t,
            "/api/auth/users",
            json!({"username": "bob", "password": "bob-password"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = s
        .put(
            &t,
            &format!("/api/tasks/{tid}/status"),
            json!({"status": "In Progress"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    comment(&s, &t, &tid, "hello").await;
    let got = sse.entries(4).await;
    let kinds: Vec<(&str, &str)> = got
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap(),
                e["entity"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("created", "Group"),
            ("created", "Task"),
            ("status_changed", "Task"),
            ("commented", "Task"),
        ]
    );
    let seq = ids(&got);
    assert!(seq.windows(2).all(|w| w[0] < w[1]), "{seq:?}");
    // Exactly what the activity log serves for the same events.
    let (_, logs) = s.get(&t, &format!("/api/logs/group/{gid}")).await;
    let mut from_log = arr(&logs, "logs").clone();
    from_log.reverse();
    assert_eq!(got, from_log);
    for e in &got {
        assert_keys(e, &shapes::LOG_KEYS, "entry");
    }
    assert!(metric(&s, "taskledger_stream_entries_sent_total").await >= 4.0);
    assert_eq!(metric(&s, "taskledger_stream_open").await, 1.0);
    drop(sse);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_and_task_filters_narrow_the_stream() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let a = str_of(&s.create_group(&t, "A").await, "_id").to_string();
    let b = str_of(&s.create_group(&t, "B").await, "_id").to_string();
    let ta = str_of(&s.create_task(&t, &a, json!({"name": "ta"})).await, "_id").to_string();
    let ta2 = str_of(&s.create_task(&t, &a, json!({"name": "ta2"})).await, "_id").to_string();
    let tb = str_of(&s.create_task(&t, &b, json!({"name": "tb"})).await, "_id").to_string();
    let mut by_group = Sse::open(&s, &t, &format!("?groupId={a}"), None).await;
    let mut by_task = Sse::open(&s, &t, &format!("?taskId={ta}"), None).await;
    let mut both = Sse::open(&s, &t, &format!("?groupId={b}&taskId={ta}"), None).await;
    comment(&s, &t, &tb, "in b").await;
    comment(&s, &t, &ta2, "in a, other task").await;
    s.create_task(&t, &b, json!({"name": "tb2"})).await;
    comment(&s, &t, &ta, "in a, ta").await;
    s.create_task(&t, &a, json!({"name": "ta3"})).await;
    let (st, _) = s.delete(&t, &format!("/api/tasks/{ta}")).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s.delete(&t, &format!("/api/groups/{a}")).await;
    assert_eq!(st, StatusCode::OK);

    let g = by_group.entries(5).await;
    assert!(g.iter().all(|e| e["group_id"] == a.as_str()), "{g:?}");
    let changes: Vec<&str> = g
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        changes,
        vec!["commented", "commented", "created", "deleted", "deleted"]
    );
    assert_eq!(g[4]["entity"], "Group");
    let tk = by_task.entries(2).await;
    assert!(tk.iter().all(|e| e["task_id"] == ta.as_str()), "{tk:?}");
    assert_eq!(tk[0]["event_type"], "commented");
    assert_eq!(tk[1]["event_type"], "deleted");
    // Task ta is in group A: nothing passes both filters.
    both.assert_quiet(Duration::from_millis(500)).await;
    // Bad ids are refused.
    let c = stream_client();
    let r = open_raw(&s, &c, Some(&t), "?groupId=", None).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_error_body(&v, "empty groupId");
    let r = open_raw(&s, &c, Some(&t), "?taskId=a%01b", None).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_with_last_event_id_gets_exactly_what_it_missed() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let g = str_of(&s.create_group(&t, "G").await, "_id").to_string();
    let task = str_of(&s.create_task(&t, &g, json!({"name": "x"})).await, "_id").to_string();
    let mut sse = Sse::open(&s, &t, &format!("?groupId={g}"), None).await;
    for i in 0..3 {
        comment(&s, &t, &task, &format!("seen {i}")).await;
    }
    let seen = sse.entries(3).await;
    let last = *ids(&seen).last().unwrap();
    drop(sse);
    // Missed while away: some in the group, one elsewhere.
    let other = str_of(&s.create_group(&t, "other").await, "_id").to_string();
    let mut missed = Vec::new();
    for i in 0..5 {
        missed.push(comment(&s, &t, &task, &format!("missed {i}")).await);
    }
    s.create_task(&t, &other, json!({"name": "elsewhere"}))
        .await;

    let mut back = Sse::open(&s, &t, &format!("?groupId={g}"), Some(&last.to_string())).await;
    let caught = back.entries(5).await;
    assert_eq!(ids(&caught), missed);
    // Then live, with nothing repeated at the seam.
    let next = comment(&s, &t, &task, "live").await;
    let live = back.entries(1).await;
    assert_eq!(ids(&live), vec![next]);
    back.assert_quiet(Duration::from_millis(300)).await;

    // The query form, for clients that cannot set the header.
    let mut q = Sse::open(&s, &t, &format!("?groupId={g}&lastEventId={last}"), None).await;
    let mut want = missed.clone();
    want.push(next);
    assert_eq!(ids(&q.entries(6).await), want);
    // The header wins over the query (EventSource keeps the URL on reconnect).
    let mut h = Sse::open(
        &s,
        &t,
        &format!("?groupId={g}&lastEventId=0"),
        Some(&missed[3].to_string()),
    )
    .await;
    assert_eq!(ids(&h.entries(2).await), vec![missed[4], next]);
    let c = stream_client();
    let r = open_raw(&s, &c, Some(&t), "", Some("abc")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_sends_reset_and_stale_ids_get_reset() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let g = str_of(&s.create_group(&t, "G").await, "_id").to_string();
    let task = str_of(&s.create_task(&t, &g, json!({"name": "x"})).await, "_id").to_string();
    let (st, b) = s.post(&t, "/api/backup/create", json!({})).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let backup_events = b["backup"]["events"].as_u64().unwrap();
    let mut sse = Sse::open(&s, &t, "", None).await;
    for i in 0..3 {
        comment(&s, &t, &task, &format!("after backup {i}")).await;
    }
    let seen = sse.entries(3).await;
    let last = *ids(&seen).last().unwrap();
    assert!(last > backup_events);

    let (st, r) = s
        .post(
            &t,
            "/api/backup/restore",
            json!({"backupName": b["backup"]["name"]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    let end = s.events().await;
    let f = sse.event().await;
    assert_eq!(f.event.as_deref(), Some("reset"), "{f:?}");
    assert_eq!(f.id.as_deref(), Some(end.to_string().as_str()));
    // The stream goes on with the new generation.
    let next = comment(&s, &t, &task, "after restore").await;
    assert_eq!(ids(&sse.entries(1).await), vec![next]);

    // A client that was away during the restore, with an id of the old log
    // past the restored one's end.
    assert!(last > s.events().await);
    let mut again = Sse::open(&s, &t, "", Some(&last.to_string())).await;
    let f = again.event().await;
    assert_eq!(f.event.as_deref(), Some("reset"), "{f:?}");
    assert_eq!(f.id.as_deref(), Some(next.to_string().as_str()));
    // Then live entries of the new generation.
    let after = comment(&s, &t, &task, "later").await;
    assert_eq!(ids(&again.entries(1).await), vec![after]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_gets_a_keep_alive_comment_within_15_s() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let mut sse = Sse::open(&s, &t, "", None).await;
    let started = Instant::now();
    loop {
        let f = sse
            .frame(Duration::from_secs(16))
            .await
            .expect("the stream ended");
        assert!(f.data.is_empty(), "unexpected entry {f:?}");
        if f.comments.iter().any(|c| c == "keep-alive") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(16));
    }
    assert!(started.elapsed() <= Duration::from_secs(15));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_dropped_and_slows_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let g = str_of(&s.create_group(&t, "G").await, "_id").to_string();
    // A small receive window, so the kernel does not absorb the whole stream.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stuck = sock.connect(s.addr).await.unwrap();
    stuck
        .write_all(
            format!(
                "GET /api/events/stream HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {t}\r\n\r\n",
                s.addr
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut reader = Sse::open(&s, &t, "", None).await;
    until_metric(&s.client, &s.base, "taskledger_stream_open", |v| v >= 2.0).await;
    // A client that reads, at the same time.
    let reading = tokio::spawn(async move {
        let got = reader.entries(2000).await;
        (reader, got)
    });

    let started = Instant::now();
    let name = "n".repeat(150);
    let mut writers = Vec::new();
    for w in 0..8 {
        let client = s.client.clone();
        let url = s.url(&format!("/api/groups/{g}/tasks"));
        let (t, name) = (t.clone(), name.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..250 {
                let r = client
                    .post(&url)
                    .bearer_auth(&t)
                    .json(&json!({"name": format!("{name}{w}-{i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::CREATED);
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(60), "2,000 writes took {took:?}");
    // The reading client gets every one of them.
    let (reader, got) = reading.await.unwrap();
    assert!(ids(&got).windows(2).all(|w| w[0] < w[1]));
    // The stuck one is dropped, and its connection closed.
    until_metric(
        &s.client,
        &s.base,
        "taskledger_stream_dropped_slow_total",
        |v| v >= 1.0,
    )
    .await;
    let mut sink = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stuck.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the slow client's connection stayed open");
    until_metric(&s.client, &s.base, "taskledger_stream_open", |v| v == 1.0).await;
    drop(reader);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_streams_promptly() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let mut a = Sse::open(&s, &t, "", None).await;
    let mut b = Sse::open(&s, &t, "?groupId=x", None).await;
    // Both are past their opening frame.
    a.frame(Duration::from_secs(5)).await.unwrap();
    b.frame(Duration::from_secs(5)).await.unwrap();
    let started = Instant::now();
    let stopping = tokio::spawn(s.stop());
    for sse in [&mut a, &mut b] {
        while sse.frame(Duration::from_secs(5)).await.is_some() {}
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "streams ended {:?} after shutdown began",
        started.elapsed()
    );
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("the server stopped within 5 s")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_are_capped_per_user() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let c = stream_client();
    let mut open = Vec::new();
    for _ in 0..16 {
        open.push(Sse::from(open_raw(&s, &c, Some(&t), "", None).await));
    }
    let r = open_raw(&s, &c, Some(&t), "", None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let v: Value = r.json().await.unwrap();
    assert_error_body(&v, "17th stream");
    // Another session of the same user counts too; another user does not.
    let t2 = s.admin_token().await;
    let r = open_raw(&s, &c, Some(&t2), "", None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let (st, _) = s
        .post(
            &t,
            "/api/auth/users",
            json!({"username": "carol", "password": "carol-password"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let carol = s.login("carol", "carol-password").await;
    let _c1 = Sse::from(open_raw(&s, &c, Some(&carol), "", None).await);
    assert_eq!(metric(&s, "taskledger_stream_open").await, 17.0);
    // A closed stream frees its place.
    open.pop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = open_raw(&s, &c, Some(&t), "", None).await;
        if r.status() == StatusCode::OK {
            break;
        }
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(Instant::now() < deadline, "the closed stream still counts");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(open);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_the_query_authenticates_and_a_bad_one_is_401() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let c = stream_client();
    let mut sse = Sse::from(open_raw(&s, &c, None, &format!("?token={t}"), None).await);
    let g = s.create_group(&t, "via token").await;
    let got = sse.entries(1).await;
    assert_eq!(got[0]["group_id"], g["_id"]);
    for (q, auth) in [
        ("?token=not-a-token", None),
        ("", None),
        ("?token=", None),
        ("", Some("Bearer nope")),
    ] {
        let mut req = c.get(s.url(&format!("/api/events/stream{q}")));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{q} {auth:?}");
        let v: Value = r.json().await.unwrap();
        assert_error_body(&v, "bad token");
    }
    // A revoked token no longer opens a stream.
    let (st, _) = s.post(&t, "/api/auth/logout", json!({})).await;
    assert_eq!(st, StatusCode::OK);
    let r = open_raw(&s, &c, None, &format!("?token={t}"), None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    s.stop().await;
}
