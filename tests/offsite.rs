//! Off-site copies (SPEC §9) against a real S3-protocol server: moto's standalone
//! server (`pip install 'moto[server]'`, started here on a free loopback port).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use taskledger::config::{Config, OffsiteConfig};

const BUCKET: &str = "tl-backups";
const PREFIX: &str = "site-a/";

/// A moto S3 server process; killed on drop.
struct S3 {
    port: u16,
    child: Child,
    http: reqwest::Client,
}

impl S3 {
    async fn start_on(port: u16) -> S3 {
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server not found: pip install 'moto[server]' (.ci/run does)");
        let s3 = S3 {
            port,
            child,
            http: reqwest::Client::new(),
        };
        for _ in 0..300 {
            if s3.http.get(s3.url("")).send().await.is_ok() {
                let r = s3
                    .http
                    .put(s3.url(BUCKET))
                    .send()
                    .await
                    .expect("create bucket");
                assert!(r.status().is_success(), "create bucket: {}", r.status());
                return s3;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto_server did not come up on port {port}");
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    async fn object(&self, name: &str) -> Option<Vec<u8>> {
        let r = self
            .http
            .get(self.url(&format!("{BUCKET}/{PREFIX}{name}")))
            .send()
            .await
            .expect("GET object");
        if r.status() == StatusCode::NOT_FOUND {
            return None;
        }
        assert!(r.status().is_success(), "GET object: {}", r.status());
        Some(r.bytes().await.expect("body").to_vec())
    }

    /// Overwrites an object as another client with write access would.
    async fn put_object(&self, name: &str, bytes: Vec<u8>) {
        use object_store::ObjectStoreExt;
        let c = offsite(self.port);
        let store = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_region("us-east-1")
            .with_endpoint(c.endpoint.expect("endpoint"))
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_access_key_id(c.access_key_id.expect("key"))
            .with_secret_access_key(c.secret_access_key.expect("secret"))
            .build()
            .expect("S3 client");
        let key = object_store::path::Path::from(format!("{PREFIX}{name}"));
        store.put(&key, bytes.into()).await.expect("PUT object");
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn offsite(port: u16) -> OffsiteConfig {
    OffsiteConfig {
        bucket: BUCKET.into(),
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: "us-east-1".into(),
        access_key_id: Some("AKIDTESTKEY".into()),
        secret_access_key: Some("test-secret-never-logged".into()),
        prefix: PREFIX.into(),
        restore_latest: false,
    }
}

fn with_offsite(port: u16) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| c.offsite = Some(offsite(port))
}

async fn until(what: &str, secs: u64, mut f: impl AsyncFnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn backup(s: &TestServer, t: &str) -> Value {
    let (st, v) = s.post(t, "/api/backup/create", json!({})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["backup"].clone()
}

async fn download(s: &TestServer, t: &str, name: &str) -> Vec<u8> {
    s.client
        .get(s.url(&format!("/api/backup/download/{name}")))
        .bearer_auth(t)
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("bytes")
        .to_vec()
}

async fn offsite_health(s: &TestServer) -> Value {
    s.health().await["backup"]["offsite"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backup_is_copied_read_back_and_listed() {
    let s3 = S3::start_on(free_port()).await;
    let s = TestServer::start_with(with_offsite(s3.port)).await;
    let t = s.admin_token().await;
    s.create_group(&t, "Copied").await;
    let b = backup(&s, &t).await;
    let name = str_of(&b, "name").to_string();
    assert_eq!(b["offsite"], "pending");
    until("the copy", 30, async || {
        offsite_health(&s).await["pending"] == 0 && s3.object(&name).await.is_some()
    })
    .await;
    let h = offsite_health(&s).await;
    assert_eq!(h["enabled"], true);
    assert!(h["lastCopiedAt"].is_string(), "{h}");
    assert!(h["lastError"].is_null(), "{h}");
    assert_eq!(
        s3.object(&name).await.expect("object"),
        download(&s, &t, &name).await
    );

    let (_, list) = s.get(&t, "/api/backup/list").await;
    assert_eq!(list["backups"][0]["offsite"], "copied", "{list}");
    let (st, remote) = s.get(&t, "/api/backup/list?source=offsite").await;
    assert_eq!(st, StatusCode::OK, "{remote}");
    let r = arr(&remote, "backups")
        .iter()
        .find(|x| x["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} not listed off-site: {remote}"));
    assert_eq!(r["sha256"], b["sha256"]);
    assert_eq!(r["size"], b["size"]);
    // Credentials never appear in health or metrics.
    let (_, metrics) = s.get_text("/metrics").await;
    assert!(
        metrics.contains("taskledger_offsite_pending 0"),
        "{metrics}"
    );
    for text in [metrics, s.health().await.to_string()] {
        assert!(!text.contains("test-secret-never-logged") && !text.contains("AKIDTESTKEY"));
    }

    // Restore from the bucket, and a tampered or truncated object is refused.
    s.create_group(&t, "After").await;
    let (st, v) = s
        .post(
            &t,
            "/api/backup/restore",
            json!({"backupName": name, "source": "offsite"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, g) = s.get(&t, "/api/groups").await;
    assert_eq!(arr(&g, "groups").len(), 1);
    let good = s3.object(&name).await.expect("object");
    let mut tampered = good.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x55;
    let before = s.events().await;
    for (what, bytes) in [
        ("tampered", tampered),
        ("truncated", good[..good.len() / 2].to_vec()),
    ] {
        s3.put_object(&name, bytes).await;
        let (st, v) = s
            .post(
                &t,
                "/api/backup/restore",
                json!({"backupName": name, "source": "offsite"}),
            )
            .await;
        assert_error((st, v), StatusCode::UNPROCESSABLE_ENTITY, what);
        assert_eq!(s.events().await, before, "{what} changed the store");
    }
    let (st, v) = s
        .post(
            &t,
            "/api/backup/restore",
            json!({"backupName": "backup_2020-01-01_000000.tar.gz", "source": "offsite"}),
        )
        .await;
    assert_error((st, v), StatusCode::NOT_FOUND, "unknown off-site backup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_that_is_down_loses_nothing_and_slows_nothing() {
    let port = free_port();
    let s = TestServer::start_with(with_offsite(port)).await;
    let t = s.admin_token().await;
    let mut names = Vec::new();
    for i in 0..3 {
        s.create_group(&t, &format!("g{i}")).await;
        // Labelled: names stay distinct (and in creation order) within one second.
        let (st, v) = s
            .post(&t, "/api/backup/create", json!({"label": format!("g{i}")}))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        names.push(str_of(&v["backup"], "name").to_string());
    }
    until("the failure to show", 60, async || {
        offsite_health(&s).await["lastError"].is_string()
    })
    .await;
    let h = offsite_health(&s).await;
    assert_eq!(h["pending"], 3, "{h}");
    assert!(!h.to_string().contains("test-secret-never-logged"));
    // Writes go on at full speed meanwhile.
    let t0 = Instant::now();
    for i in 0..20 {
        s.create_group(&t, &format!("during outage {i}")).await;
    }
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "writes slowed: {:?}",
        t0.elapsed()
    );
    // A restart with copies pending resumes them once the bucket is back.
    let dir = s.stop().await;
    let s3 = S3::start_on(port).await;
    let s = TestServer::start_in(dir, with_offsite(port)).await;
    until("the backlog to drain", 60, async || {
        offsite_health(&s).await["pending"] == 0
    })
    .await;
    for n in &names {
        assert!(s3.object(n).await.is_some(), "{n} never copied");
    }
    assert!(offsite_health(&s).await["lastError"].is_null());
    // In order: oldest first.
    let t = s.admin_token().await;
    let (_, remote) = s.get(&t, "/api/backup/list?source=offsite").await;
    let mut copied: Vec<(String, String)> = arr(&remote, "backups")
        .iter()
        .map(|b| {
            (
                str_of(b, "name").to_string(),
                str_of(b, "copiedAt").to_string(),
            )
        })
        .collect();
    copied.sort();
    assert_eq!(copied.len(), 3, "{remote}");
    assert!(
        copied.windows(2).all(|w| w[0].1 <= w[1].1),
        "not copied oldest first: {copied:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_removes_the_off_site_copy_too() {
    let s3 = S3::start_on(free_port()).await;
    let port = s3.port;
    let s = TestServer::start_with(move |c| {
        c.offsite = Some(offsite(port));
        c.backup.auto_backup_enabled = true;
        c.backup.auto_backup_interval_ms = 1200;
        c.backup.max_backups = 1;
    })
    .await;
    let t = s.admin_token().await;
    s.create_group(&t, "first").await;
    let mut first = String::new();
    until("the first automatic backup off-site", 30, async || {
        let (_, l) = s.get(&t, "/api/backup/list").await;
        match arr(&l, "backups")
            .iter()
            .find(|b| b["kind"] == "auto" && b["offsite"] == "copied")
        {
            Some(b) => {
                first = str_of(b, "name").to_string();
                true
            }
            None => false,
        }
    })
    .await;
    s.create_group(&t, "second").await;
    until("the rotated copy to go", 30, async || {
        s3.object(&first).await.is_none()
    })
    .await;
    let (_, remote) = s.get(&t, "/api/backup/list?source=offsite").await;
    assert_eq!(arr(&remote, "backups").len(), 1, "{remote}");
    assert_ne!(remote["backups"][0]["name"], first.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_machine_restores_the_newest_off_site_backup() {
    let s3 = S3::start_on(free_port()).await;
    let port = s3.port;
    let a = TestServer::start_with(with_offsite(port)).await;
    let t = a.admin_token().await;
    a.create_group(&t, "survives the machine").await;
    let b = backup(&a, &t).await;
    let name = str_of(&b, "name").to_string();
    until("the copy", 30, async || s3.object(&name).await.is_some()).await;
    a.stop().await;

    let latest = move |c: &mut Config| {
        c.offsite = Some(OffsiteConfig {
            restore_latest: true,
            ..offsite(port)
        })
    };
    let fresh = TestServer::start_with(latest).await;
    let t = fresh.admin_token().await;
    let (_, g) = fresh.get(&t, "/api/groups").await;
    assert_eq!(arr(&g, "groups")[0]["name"], "survives the machine");
    let (_, audit) = fresh.get(&t, "/api/backup/audit").await;
    assert!(audit.to_string().contains(&name), "{audit}");
    fresh.create_group(&t, "local work").await;
    let dir = fresh.stop().await;
    // A store with events is never overwritten by it.
    let again = TestServer::start_in(dir, latest).await;
    let t = again.admin_token().await;
    let (_, g) = again.get(&t, "/api/groups").await;
    assert_eq!(arr(&g, "groups").len(), 2);
}
