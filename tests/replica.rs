//! SPEC §12, first half: a primary publishes its whole log to the log topic and
//! replicas rebuild the same state from it. Real servers (in process, or the
//! spawned binary where a kill -9 is needed) over librdkafka's mock cluster, a
//! Kafka-protocol broker on loopback TCP. The CI scenario against a broker
//! process (tansu) is `.ci/replica-e2e.sh`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rdkafka::mocking::MockCluster;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use taskledger::config::{Config, Role};

const LOG_TOPIC: &str = "taskledger-log";

type Cluster = MockCluster<'static, rdkafka::producer::DefaultProducerContext>;

fn cluster() -> Cluster {
    let c = MockCluster::new(1).expect("mock cluster");
    c.create_topic(LOG_TOPIC, 1, 1).expect("log topic");
    c
}

fn primary_config(dir: &std::path::Path, brokers: &str) -> Config {
    let mut c = Config::for_dir(dir);
    c.kafka.brokers = brokers.to_string();
    c.kafka.log_topic = Some(LOG_TOPIC.into());
    c
}

fn replica_config(dir: &std::path::Path, brokers: &str, primary: Option<&str>) -> Config {
    let mut c = primary_config(dir, brokers);
    c.role = Role::Replica;
    c.replica.primary_url = primary.map(str::to_string);
    c
}

/// A primary and a replica following it over one mock cluster, with the
/// admin's token (issued by the primary).
struct Pair {
    _mock: Cluster,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    primary: TestServer,
    replica: TestServer,
    token: String,
}

impl Pair {
    /// `primary_url`: what the replica redirects writes to; `None` is the primary itself.
    async fn start(primary_url: Option<&str>) -> Pair {
        let mock = cluster();
        let brokers = mock.bootstrap_servers();
        let pdir = tempfile::tempdir().unwrap();
        let primary = TestServer::start_config(primary_config(pdir.path(), &brokers)).await;
        let token = primary.admin_token().await;
        let rdir = tempfile::tempdir().unwrap();
        let url = primary_url.unwrap_or(&primary.base).to_string();
        let replica =
            TestServer::start_config(replica_config(rdir.path(), &brokers, Some(&url))).await;
        caught_up(&primary, &replica).await;
        until_status(
            &replica,
            &token,
            StatusCode::OK,
            "the admin's token reaching the replica",
        )
        .await;
        Pair {
            _mock: mock,
            _dirs: (pdir, rdir),
            primary,
            replica,
            token,
        }
    }

    async fn stop(self) {
        self.replica.shutdown().await;
        self.primary.shutdown().await;
    }
}

/// Waits (10 s at most) until `GET /api/groups` with `token` answers `want`.
async fn until_status(s: &TestServer, token: &str, want: StatusCode, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.get(token, "/api/groups").await.0 != want {
        assert!(Instant::now() < deadline, "waited 10 s for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Drops what describes the asking, not the state, from a snapshot answer.
fn strip_volatile(snap: &mut Value) {
    for volatile in ["snapshotId", "createdAt", "createdBy", "at"] {
        snap.as_object_mut().unwrap().remove(volatile);
    }
}

/// Waits until the replica has applied everything the primary has made durable.
async fn caught_up(primary: &TestServer, replica: &TestServer) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let want = primary.health().await["lastEventId"].as_u64().unwrap();
        let h = replica.health().await;
        if h["appliedSeq"].as_u64() == Some(want) && h["lastEventId"].as_u64() == Some(want) {
            return want;
        }
        assert!(
            Instant::now() < deadline,
            "replica stuck at {h} while the primary is at {want} ({})",
            primary.health().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Everything a reader can see, except what only describes the node.
async fn api_state(s: &TestServer, token: &str) -> Value {
    let mut out = serde_json::Map::new();
    for path in ["/api/groups", "/api/auth/users", "/api/logs/groups"] {
        let (st, v) = s.get(token, path).await;
        assert_eq!(st, StatusCode::OK, "{path}: {v}");
        out.insert(path.into(), v);
    }
    let (_, groups) = s.get(token, "/api/logs/groups").await;
    for g in arr(&groups, "groups") {
        let path = format!("/api/logs/group/{}?limit=1000", str_of(g, "group_id"));
        out.insert(path.clone(), s.get(token, &path).await.1);
    }
    let (_, mut snap) = s.get(token, "/api/snapshot").await;
    strip_volatile(&mut snap);
    out.insert("/api/snapshot".into(), snap);
    Value::Object(out)
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The first place two API states differ, for a readable failure.
fn same_state(replica: &Value, primary: &Value) {
    for (k, v) in primary.as_object().unwrap() {
        assert_eq!(replica.get(k), Some(v), "the replica differs at {k}");
    }
    assert_eq!(replica, primary);
}

/// A mix of every kind of write: groups, tasks, updates, status changes,
/// comments, deletions, a user.
async fn mixed_writes(s: &TestServer, token: &str, rounds: usize) {
    let (_, u) = s
        .post(
            token,
            "/api/auth/users",
            json!({"username": format!("member-{}", uuid_like()), "password": "member-password"}),
        )
        .await;
    assert!(u.get("user").is_some(), "{u}");
    for r in 0..rounds {
        let g = s.create_group(token, &format!("Group {r}")).await;
        let gid = str_of(&g, "_id").to_string();
        let mut tasks = Vec::new();
        for t in 0..3 {
            let task = s
                .create_task(
                    token,
                    &gid,
                    json!({"name": format!("Task {r}.{t}"), "description": "d"}),
                )
                .await;
            tasks.push(str_of(&task, "_id").to_string());
        }
        s.put(
            token,
            &format!("/api/tasks/{}/status", tasks[0]),
            json!({"status": "Completed"}),
        )
        .await;
        s.put(
            token,
            &format!("/api/tasks/{}", tasks[1]),
            json!({"name": "renamed"}),
        )
        .await;
        s.post(
            token,
            &format!("/api/tasks/{}/comments", tasks[1]),
            json!({"text": "a comment"}),
        )
        .await;
        s.delete(token, &format!("/api/tasks/{}", tasks[2])).await;
        if r % 4 == 3 {
            s.delete(token, &format!("/api/groups/{gid}")).await;
        } else {
            s.put(
                token,
                &format!("/api/groups/{gid}"),
                json!({"discussion": "talk"}),
            )
            .await;
        }
    }
}

/// The replica serves the primary's state after mixed writes, a restore on the
/// primary (a new generation), and honours the primary's tokens and logouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_serves_the_primarys_state_through_writes_and_a_restore() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    let pdir = tempfile::tempdir().unwrap();
    let primary = TestServer::start_config(primary_config(pdir.path(), &brokers)).await;
    let token = primary.admin_token().await;
    mixed_writes(&primary, &token, 20).await;
    let rdir = tempfile::tempdir().unwrap();
    let replica =
        TestServer::start_config(replica_config(rdir.path(), &brokers, Some(&primary.base))).await;
    let seq = caught_up(&primary, &replica).await;
    assert!(seq > 150, "only {seq} events");
    // The primary's token works on the replica, unchanged.
    same_state(
        &api_state(&replica, &token).await,
        &api_state(&primary, &token).await,
    );
    let h = replica.health().await;
    assert_eq!(h["role"], "replica");
    assert_eq!(h["lagEvents"], 0);
    assert!(h["lagSeconds"].as_f64().unwrap() < 5.0, "{h}");
    assert_eq!(primary.health().await["role"], "primary");

    // A restore on the primary: the replica switches to the restored state.
    let (st, b) = primary.post(&token, "/api/backup/create", json!({})).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let name = b["backup"]["name"].as_str().unwrap().to_string();
    mixed_writes(&primary, &token, 3).await;
    caught_up(&primary, &replica).await;
    let (st, r) = primary
        .post(&token, "/api/backup/restore", json!({"backupName": name}))
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    let before = replica.health().await["generation"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while replica.health().await["generation"].as_u64().unwrap() == before {
        assert!(
            Instant::now() < deadline,
            "the replica never switched generation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    mixed_writes(&primary, &token, 2).await;
    caught_up(&primary, &replica).await;
    same_state(
        &api_state(&replica, &token).await,
        &api_state(&primary, &token).await,
    );

    // A logout on the primary is honoured by the replica within its lag.
    let other = primary.admin_token().await;
    until_status(
        &replica,
        &other,
        StatusCode::OK,
        "a new token reaching the replica",
    )
    .await;
    let (st, _) = primary.post(&other, "/api/auth/logout", json!({})).await;
    assert_eq!(st, StatusCode::OK);
    until_status(
        &replica,
        &other,
        StatusCode::UNAUTHORIZED,
        "the replica to refuse a token logged out on the primary",
    )
    .await;
    assert_eq!(replica.get(&token, "/api/groups").await.0, StatusCode::OK);
    replica.shutdown().await;
    primary.shutdown().await;
}

/// Writes sent to a replica go to the primary (307, path and query kept), or
/// are refused with 503 when it knows no primary; its own backups it takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_a_replica_are_redirected_or_refused() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    let pdir = tempfile::tempdir().unwrap();
    let primary = TestServer::start_config(primary_config(pdir.path(), &brokers)).await;
    let token = primary.admin_token().await;
    let rdir = tempfile::tempdir().unwrap();
    let replica = TestServer::start_config(replica_config(
        rdir.path(),
        &brokers,
        Some("http://primary.example:3001"),
    ))
    .await;
    caught_up(&primary, &replica).await;
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (method, path) in [
        (Method::POST, "/api/groups?x=1&y=%20"),
        (Method::PUT, "/api/tasks/abc/status"),
        (Method::DELETE, "/api/groups/abc"),
        (Method::POST, "/api/auth/login"),
        (Method::POST, "/api/backup/restore"),
    ] {
        let r = no_follow
            .request(method.clone(), replica.url(path))
            .bearer_auth(&token)
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::TEMPORARY_REDIRECT,
            "{method} {path}"
        );
        assert_eq!(
            r.headers()["location"],
            format!("http://primary.example:3001{path}").as_str()
        );
    }
    // Its own backup files are its own.
    let (st, v) = replica.post(&token, "/api/backup/create", json!({})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    replica.shutdown().await;

    let rdir = tempfile::tempdir().unwrap();
    let alone = TestServer::start_config(replica_config(rdir.path(), &brokers, None)).await;
    caught_up(&primary, &alone).await;
    let (st, v) = alone
        .post(&token, "/api/groups", json!({"name": "x"}))
        .await;
    assert_error(
        (st, v.clone()),
        StatusCode::SERVICE_UNAVAILABLE,
        "write on a replica",
    );
    assert_eq!(v["error"], "read-only replica");
    assert_eq!(
        alone.events().await,
        primary.events().await,
        "the refused write wrote"
    );
    alone.shutdown().await;
    primary.shutdown().await;
}

/// Read your writes: a GET with `X-Taskledger-Min-Seq` (the `X-Taskledger-Seq`
/// of a write) sees that write on a replica, or gets 503 with `Retry-After`
/// after at most 5 s; the primary answers at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_reads_your_writes_or_says_when_it_cannot() {
    let pair = Pair::start(None).await;
    let (primary, replica, token) = (&pair.primary, &pair.replica, pair.token.clone());
    for i in 0..20 {
        let r = primary
            .client
            .post(primary.url("/api/groups"))
            .bearer_auth(&token)
            .json(&json!({"name": format!("mine {i}")}))
            .send()
            .await
            .unwrap();
        let seq = r.headers()["x-taskledger-seq"]
            .to_str()
            .unwrap()
            .to_string();
        let id = r.json::<Value>().await.unwrap()["group"]["_id"]
            .as_str()
            .unwrap()
            .to_string();
        let read = min_seq_get(replica, &token, &format!("/api/groups/{id}"), &seq).await;
        assert_eq!(
            read.status(),
            StatusCode::OK,
            "write {i} (seq {seq}) not visible"
        );
    }
    let started = Instant::now();
    let far = min_seq_get(replica, &token, "/api/groups", "1000000").await;
    let waited = started.elapsed();
    assert_eq!(far.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(far.headers()["retry-after"], "1");
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    let on_primary = min_seq_get(primary, &token, "/api/groups", "1").await;
    assert_eq!(on_primary.status(), StatusCode::OK);
    let bad = min_seq_get(replica, &token, "/api/groups", "soon").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    pair.stop().await;
}

/// A GET of `path` asking for a state at least as new as `seq`.
async fn min_seq_get(s: &TestServer, token: &str, path: &str, seq: &str) -> reqwest::Response {
    s.client
        .get(s.url(path))
        .bearer_auth(token)
        .header("X-Taskledger-Min-Seq", seq)
        .send()
        .await
        .unwrap()
}

/// Consistency under a concurrent writer: every state the replica serves is
/// exactly the primary's state at one sequence number (its `lastEventId`),
/// compared with the primary's own time travel to that event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_serves_the_primarys_state_at_one_sequence_under_load() {
    let pair = Pair::start(None).await;
    let (primary, replica, token) = (&pair.primary, &pair.replica, pair.token.clone());
    let writer = {
        let (base, client, token) = (primary.base.clone(), primary.client.clone(), token.clone());
        tokio::spawn(async move {
            for r in 0..60 {
                let g = post_json(
                    &client,
                    &format!("{base}/api/groups"),
                    Some(&token),
                    json!({"name": format!("G{r}")}),
                )
                .await;
                let gid = g["group"]["_id"].as_str().unwrap().to_string();
                for t in 0..4 {
                    let task = post_json(
                        &client,
                        &format!("{base}/api/groups/{gid}/tasks"),
                        Some(&token),
                        json!({"name": format!("T{t}")}),
                    )
                    .await;
                    let tid = task["task"]["_id"].as_str().unwrap().to_string();
                    client
                        .put(format!("{base}/api/tasks/{tid}/status"))
                        .bearer_auth(&token)
                        .json(&json!({"status": "Backlog"}))
                        .send()
                        .await
                        .unwrap();
                }
            }
        })
    };
    let mut samples = 0;
    let mut distinct = std::collections::HashSet::new();
    while !writer.is_finished() || samples < 5 {
        let (st, mut snap) = replica.get(&token, "/api/snapshot").await;
        assert_eq!(st, StatusCode::OK);
        let at = snap["lastEventId"].as_u64().unwrap();
        let (st, mut want) = primary.get(&token, &format!("/api/snapshot?at={at}")).await;
        assert_eq!(st, StatusCode::OK, "{want}");
        strip_volatile(&mut snap);
        strip_volatile(&mut want);
        assert_eq!(
            snap, want,
            "the replica served something that is not the primary at {at}"
        );
        distinct.insert(at);
        samples += 1;
    }
    writer.await.unwrap();
    assert!(distinct.len() >= 3, "the samples saw only {distinct:?}");
    caught_up(primary, replica).await;
    pair.stop().await;
}

/// A replica process and what it logs to stdout (read on a thread until it exits).
struct Spawned {
    child: std::process::Child,
    log: std::thread::JoinHandle<String>,
}

impl Spawned {
    /// SIGKILL, then everything it logged.
    fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = std::mem::replace(&mut self.log, std::thread::spawn(String::new));
        log.join().unwrap_or_default()
    }
}

// A failed assertion must not leave the process running.
impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_replica(root: &std::path::Path, brokers: &str, port: u16) -> Spawned {
    let mut child = binary(root, &["replica", "--addr", &format!("127.0.0.1:{port}")])
        .env("KAFKA_BROKER", brokers)
        .env("KAFKA_LOG_TOPIC", LOG_TOPIC)
        .env("RUST_LOG", "info,librdkafka=off")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("replica starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let log = std::thread::spawn(move || {
        use std::io::Read;
        let mut s = String::new();
        let _ = std::io::BufReader::new(stdout).read_to_string(&mut s);
        s
    });
    Spawned { child, log }
}

/// Waits (30 s at most) until the replica at `base` has applied `want`.
async fn until_applied(client: &reqwest::Client, base: &str, want: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while applied_at(client, base).await != Some(want) {
        assert!(
            Instant::now() < deadline,
            "{what}: not at {want} after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn applied_at(client: &reqwest::Client, base: &str) -> Option<u64> {
    let r = client.get(format!("{base}/api/health")).send().await.ok()?;
    r.json::<Value>().await.ok()?["appliedSeq"].as_u64()
}

/// A replica process killed with SIGKILL resumes from its own log (it does not
/// look for its place in the topic again) and catches up; a new replica with a
/// backup in its restore dir starts from that backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_resumes_from_its_own_log() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    let pdir = tempfile::tempdir().unwrap();
    let primary = TestServer::start_config(primary_config(pdir.path(), &brokers)).await;
    let token = primary.admin_token().await;
    mixed_writes(&primary, &token, 10).await;
    let (_, b) = primary.post(&token, "/api/backup/create", json!({})).await;
    let backup = pdir
        .path()
        .join("backups")
        .join(b["backup"]["name"].as_str().unwrap());
    mixed_writes(&primary, &token, 5).await;

    let rdir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(rdir.path().join("restore")).unwrap();
    std::fs::copy(&backup, rdir.path().join("restore").join("seed.tar.gz")).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let replica = spawn_replica(rdir.path(), &brokers, port);
    until_applied(&client, &base, primary.events().await, "the new replica").await;
    let first = replica.kill();
    assert!(
        first.contains("replica bootstrapped from a backup"),
        "{first}"
    );
    assert!(first.contains("found where the local log ends"), "{first}");

    mixed_writes(&primary, &token, 5).await;
    let replica = spawn_replica(rdir.path(), &brokers, port);
    until_applied(
        &client,
        &base,
        primary.events().await,
        "the restarted replica",
    )
    .await;
    let replica_state = {
        let r = client
            .get(format!("{base}/api/groups"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()
    };
    assert_eq!(replica_state, primary.get(&token, "/api/groups").await.1);
    let second = replica.kill();
    assert!(
        !second.contains("found where the local log ends"),
        "it looked again: {second}"
    );
    assert!(!second.contains("bootstrapped from a backup"), "{second}");
    assert!(second.contains("memory image built"), "{second}");
    primary.shutdown().await;
}

/// SPEC §13 on a replica: its live stream carries what it applies from the
/// primary's log, with the primary's sequence numbers as ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_streams_what_it_applies() {
    let pair = Pair::start(None).await;
    let (primary, replica, token) = (&pair.primary, &pair.replica, &pair.token);
    let mut stream = reqwest::Client::new()
        .get(replica.url("/api/events/stream"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let g = primary
        .create_group(token, "streamed-from-the-primary")
        .await;
    let seq = primary.events().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    while !text.contains("streamed-from-the-primary") {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "not on the replica's stream within 10 s: {text}"
        );
        if let Ok(Ok(Some(chunk))) = tokio::time::timeout(left, stream.chunk()).await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(text.contains(&format!("id: {seq}")), "{text}");
    assert!(text.contains(str_of(&g, "_id")), "{text}");
    drop(stream);
    pair.stop().await;
}
