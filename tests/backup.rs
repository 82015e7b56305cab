//! Backups and restores through the real server: round trip, hostile and damaged
//! archives, restore under concurrent load, the drop folder (live, at start, slow
//! copies), locks, the schedule with paused time, and crashes during a backup.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use taskledger::config::Config;

mod common;

/// The shared harness with an admin token; the calls these tests repeat are below.
type Server = common::Authed;

/// Where an absolute-path member would land if extraction followed it.
fn abs_target() -> PathBuf {
    std::env::temp_dir().join(format!("taskledger-abs-{}.txt", std::process::id()))
}

fn config(root: &Path) -> Config {
    Config::for_dir(root)
}

impl Server {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn group(&self, name: &str) -> String {
        let (s, v) = self.post("/api/groups", json!({"name": name})).await;
        assert_eq!(s, 201, "{v}");
        v["group"]["_id"].as_str().unwrap().to_string()
    }

    async fn task(&self, gid: &str, name: &str) -> String {
        let (s, v) = self
            .post(&format!("/api/groups/{gid}/tasks"), json!({"name": name}))
            .await;
        assert_eq!(s, 201, "{v}");
        v["task"]["_id"].as_str().unwrap().to_string()
    }

    async fn group_names(&self) -> Vec<String> {
        let (s, v) = self.get("/api/groups").await;
        assert_eq!(s, 200);
        common::group_names_in(&v)
    }

    async fn events(&self) -> u64 {
        let (_, v) = self.get("/api/health").await;
        v["events"].as_u64().unwrap()
    }

    async fn backup(&self, label: &str) -> Value {
        let (s, v) = self
            .post("/api/backup/create", json!({"label": label}))
            .await;
        assert_eq!(s, 201, "{v}");
        v["backup"].clone()
    }

    async fn upload(&self, bytes: Vec<u8>) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}/api/backup/upload", self.base))
            .bearer_auth(&self.token)
            .body(bytes)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out).unwrap();
    out
}

/// A tar built by hand, so that hostile member names and types can be written.
fn tar_member(out: &mut Vec<u8>, name: &str, kind: u8, data: &[u8]) {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    let size = format!("{:011o}", data.len());
    h[124..135].copy_from_slice(size.as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| *b as u32).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    out.extend(std::iter::repeat_n(0u8, pad));
}

fn sha(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Rebuilds an archive from a real one's members, after `edit` changes them.
fn rebuild_archive(original: &[u8], edit: impl FnOnce(&mut Vec<(String, u8, Vec<u8>)>)) -> Vec<u8> {
    let raw = gunzip(original);
    let mut members = Vec::new();
    let mut ar = tar::Archive::new(&raw[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        members.push((name, b'0', data));
    }
    edit(&mut members);
    let mut out = Vec::new();
    for (name, kind, data) in &members {
        tar_member(&mut out, name, *kind, data);
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    gz(&out)
}

fn set_manifest_sha(members: &mut [(String, u8, Vec<u8>)]) {
    let events = members
        .iter()
        .find(|m| m.0 == "events.ndjson")
        .unwrap()
        .2
        .clone();
    let manifest = &mut members
        .iter_mut()
        .find(|m| m.0 == "manifest.json")
        .unwrap()
        .2;
    let mut m: Value = serde_json::from_slice(manifest).unwrap();
    m["files"]["events.ndjson"] = json!({"sha256": sha(&events), "bytes": events.len()});
    *manifest = serde_json::to_vec(&m).unwrap();
}

async fn download(s: &Server, name: &str) -> Vec<u8> {
    let r = s
        .client
        .get(format!("{}/api/backup/download/{name}", s.base))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/gzip");
    r.bytes().await.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_and_pre_restore_brings_the_later_state_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let g = s.group("Alpha").await;
    let t = s.task(&g, "Feature X").await;
    let (st, _) = s
        .post(&format!("/api/tasks/{t}/comments"), json!({"text": "hi"}))
        .await;
    assert_eq!(st, 201);
    let b = s.backup("before beta").await;
    assert_eq!(b["kind"], "manual");
    assert_eq!(b["label"], "before-beta");
    assert_eq!(b["events"].as_u64().unwrap(), s.events().await);
    assert!(b["name"].as_str().unwrap().ends_with("_before-beta.tar.gz"));
    s.group("Beta").await;
    let (st, _) = s
        .call(reqwest::Method::DELETE, &format!("/api/groups/{g}"), None)
        .await;
    assert_eq!(st, 200);
    let later = s.group_names().await;
    assert_eq!(later, vec!["Beta"]);
    let later_events = s.events().await;

    let (st, r) = s
        .post("/api/backup/restore", json!({"backupName": b["name"]}))
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        r["restored"],
        json!({"events": b["events"], "groups": 1, "tasks": 1, "comments": 1})
    );
    assert_eq!(s.group_names().await, vec!["Alpha"]);
    let (_, task) = s.get(&format!("/api/tasks/{t}")).await;
    assert_eq!(task["task"]["comments"][0]["text"], "hi");
    assert_eq!(s.events().await, b["events"].as_u64().unwrap());

    // The safety backup holds the state just before the restore.
    let safety = r["safetyBackup"].as_str().unwrap().to_string();
    let (_, list) = s.get("/api/backup/list").await;
    let sb = list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == safety.as_str())
        .unwrap()
        .clone();
    assert_eq!(sb["kind"], "pre-restore");
    assert_eq!(sb["lastEventId"].as_u64().unwrap(), later_events);
    let (st, _) = s
        .post("/api/backup/restore", json!({"backupName": safety}))
        .await;
    assert_eq!(st, 200);
    assert_eq!(s.group_names().await, vec!["Beta"]);
    assert_eq!(s.events().await, later_events);

    // New writes continue the restored log without gaps.
    s.group("Gamma").await;
    assert_eq!(s.events().await, later_events + 1);
    let (_, audit) = s.get("/api/backup/audit").await;
    let actions: Vec<&str> = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "BACKUP_RESTORED").count(),
        2
    );
    assert!(actions.contains(&"BACKUP_CREATED"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_and_hostile_archives_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let g = s.group("Keep").await;
    s.task(&g, "t1").await;
    s.task(&g, "t2").await;
    let b = s.backup("good").await;
    let good = download(&s, b["name"].as_str().unwrap()).await;
    s.group("After").await;
    let events = s.events().await;
    let names = s.group_names().await;

    let mut bad: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut corrupted = good.clone();
    let mid = corrupted.len() / 2;
    corrupted[mid] ^= 0xff;
    bad.push(("corrupted", corrupted));
    bad.push(("truncated", good[..good.len() - 10].to_vec()));
    bad.push(("not gzip", b"hello world".to_vec()));
    bad.push((
        "tampered event, checksum not updated",
        rebuild_archive(&good, |m| {
            let ev = &mut m.iter_mut().find(|x| x.0 == "events.ndjson").unwrap().2;
            let text = String::from_utf8(ev.clone())
                .unwrap()
                .replace("\"t2\"", "\"t3\"");
            *ev = text.into_bytes();
        }),
    ));
    bad.push((
        "event removed, checksum updated (gap)",
        rebuild_archive(&good, |m| {
            let ev = &mut m.iter_mut().find(|x| x.0 == "events.ndjson").unwrap().2;
            let text = String::from_utf8(ev.clone()).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            let kept: Vec<&str> = lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 1)
                .map(|(_, l)| *l)
                .collect();
            *ev = format!("{}\n", kept.join("\n")).into_bytes();
            set_manifest_sha(m);
        }),
    ));
    bad.push((
        "tar slip",
        rebuild_archive(&good, |m| {
            let data = m[1].2.clone();
            m.push(("../../escape.txt".into(), b'0', data));
        }),
    ));
    bad.push((
        "absolute path",
        rebuild_archive(&good, |m| {
            m.push((
                abs_target().to_string_lossy().to_string(),
                b'0',
                b"x".to_vec(),
            ))
        }),
    ));
    bad.push((
        "symlink",
        rebuild_archive(&good, |m| m.push(("link".into(), b'2', Vec::new()))),
    ));
    bad.push((
        "duplicate member",
        rebuild_archive(&good, |m| m.push(m[1].clone())),
    ));
    bad.push((
        "manifest not first",
        rebuild_archive(&good, |m| m.swap(0, 1)),
    ));

    for (what, bytes) in bad {
        let (st, v) = s.upload(bytes.clone()).await;
        assert_eq!(st, 422, "{what}: {v}");
        assert!(v["error"].as_str().unwrap().len() > 5, "{what}: {v}");
        // The same file by name through restore: refused too.
        std::fs::write(
            dir.path()
                .join("backups/backup_2020-01-01_000000_bad.tar.gz"),
            &bytes,
        )
        .unwrap();
        let (st, v) = s
            .post(
                "/api/backup/restore",
                json!({"backupName": "backup_2020-01-01_000000_bad.tar.gz"}),
            )
            .await;
        assert_eq!(st, 422, "{what}: {v}");
        assert_eq!(s.events().await, events, "{what} changed the log");
        assert_eq!(s.group_names().await, names, "{what} changed the state");
    }
    assert!(!dir.path().join("escape.txt").exists() && !abs_target().exists());
    // Only the archives we wrote remain; no scratch generations, no temp files.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("backups"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let gens: Vec<_> = std::fs::read_dir(dir.path().join("storage"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("gen-"))
        .collect();
    assert_eq!(gens.len(), 1, "{gens:?}");

    // Names with path parts are 400, unknown ones 404.
    for name in ["../x.tar.gz", "a/b.tar.gz", "a\\b.tar.gz", "x.zip"] {
        let (st, _) = s
            .post("/api/backup/restore", json!({"backupName": name}))
            .await;
        assert_eq!(st, 400, "{name}");
    }
    let (st, _) = s
        .post(
            "/api/backup/restore",
            json!({"backupName": "backup_1999-01-01_000000.tar.gz"}),
        )
        .await;
    assert_eq!(st, 404);
    // The good one still uploads and restores.
    let (st, v) = s.upload(good).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["backup"]["kind"], "uploaded");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_under_load_shows_old_or_new_never_a_mix() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(Server::start(config(dir.path())).await);
    let w = s.group("W").await;
    for i in 0..4 {
        let g = s.group(&format!("old-{i}")).await;
        s.task(&g, "x").await;
    }
    let b = s.backup("old").await;
    // The new state: the old groups gone, others in their place.
    let (_, groups) = s.get("/api/groups").await;
    for g in groups["groups"].as_array().unwrap() {
        if g["name"].as_str().unwrap().starts_with("old-") {
            s.call(
                reqwest::Method::DELETE,
                &format!("/api/groups/{}", g["_id"].as_str().unwrap()),
                None,
            )
            .await;
        }
    }
    for i in 0..3 {
        s.group(&format!("new-{i}")).await;
    }
    let old_set: HashSet<String> = ["W", "old-0", "old-1", "old-2", "old-3"]
        .iter()
        .map(|x| x.to_string())
        .collect();
    let new_set: HashSet<String> = ["W", "new-0", "new-1", "new-2"]
        .iter()
        .map(|x| x.to_string())
        .collect();

    let done = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let reads = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let (s, done, old_set, new_set, reads) = (
            s.clone(),
            done.clone(),
            old_set.clone(),
            new_set.clone(),
            reads.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut seen = (0, 0);
            while !done.load(Ordering::Relaxed) {
                let names: HashSet<String> = s.group_names().await.into_iter().collect();
                reads.fetch_add(1, Ordering::Relaxed);
                if names == old_set {
                    seen.0 += 1;
                } else if names == new_set {
                    seen.1 += 1;
                } else {
                    panic!("mixed state: {names:?}");
                }
            }
            seen
        }));
    }
    for _ in 0..2 {
        let (s, done, acked, w) = (s.clone(), done.clone(), acked.clone(), w.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                let (st, v) = s
                    .post(
                        &format!("/api/groups/{w}/tasks"),
                        json!({"name": format!("w{i}")}),
                    )
                    .await;
                assert_eq!(st, 201, "write failed during restore: {v}");
                acked
                    .lock()
                    .unwrap()
                    .push(v["task"]["_id"].as_str().unwrap().to_string());
                i += 1;
            }
            (i, 0)
        }));
    }
    // Readers and writers go on before and after the restore, for as long as it
    // takes them to do some work on each side (not for a guessed time).
    let progress = || (reads.load(Ordering::Relaxed), acked.lock().unwrap().len());
    async fn until(progress: &dyn Fn() -> (usize, usize), from: (usize, usize)) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while {
            let (r, w) = progress();
            r < from.0 + 10 || w < from.1 + 20
        } {
            assert!(Instant::now() < deadline, "readers or writers stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    until(&progress, (0, 0)).await;
    let (st, r) = s
        .post("/api/backup/restore", json!({"backupName": b["name"]}))
        .await;
    assert_eq!(st, 200, "{r}");
    until(&progress, progress()).await;
    done.store(true, Ordering::Relaxed);
    let mut reads = (0, 0);
    for t in tasks.drain(..3) {
        let (a, b) = t.await.unwrap();
        reads.0 += a;
        reads.1 += b;
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        reads.0 > 0 && reads.1 > 0,
        "readers saw both states: {reads:?}"
    );
    // Every acknowledged write is either live now or in the safety backup.
    let (_, wg) = s.get(&format!("/api/groups/{w}")).await;
    let live: HashSet<String> = wg["group"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["_id"].as_str().unwrap().to_string())
        .collect();
    let safety = download(&s, r["safetyBackup"].as_str().unwrap()).await;
    let safety_text = String::from_utf8_lossy(&gunzip(&safety)).to_string();
    for id in acked.lock().unwrap().iter() {
        assert!(
            live.contains(id) || safety_text.contains(id.as_str()),
            "acknowledged write {id} lost"
        );
    }
    Arc::try_unwrap(s).ok().unwrap().stop().await;
}

fn wait_for(mut cond: impl FnMut() -> bool, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

/// The bytes of a backup taken on another server holding one group (and a task).
async fn backup_of_another_server(group: &str, label: &str) -> Vec<u8> {
    let src = tempfile::tempdir().unwrap();
    let a = Server::start(config(src.path())).await;
    let g = a.group(group).await;
    a.task(&g, "carried over").await;
    let b = a.backup(label).await;
    let bytes = download(&a, b["name"].as_str().unwrap()).await;
    a.stop().await;
    bytes
}

/// A server with its drop folder watched and one local group ("Local").
async fn server_watching_its_drop_folder() -> (tempfile::TempDir, Server, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.backup.auto_restore_enabled = true;
    let s = Server::start(cfg).await;
    s.group("Local").await;
    let restore_dir = dir.path().join("restore");
    (dir, s, restore_dir)
}

/// A copy that arrives in pieces is seen by the watcher at every step and never
/// picked up half-written; once complete it is applied, and the state it
/// replaced is kept as a pre-restore backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_folder_applies_a_slow_copy_only_once_complete() {
    let bytes = backup_of_another_server("Migrated", "move").await;
    let (_dir, s, restore_dir) = server_watching_its_drop_folder().await;
    let scans = "taskledger_restore_dir_scans_total";
    let target = restore_dir.join("migrate.tar.gz");
    let mut f = std::fs::File::create(&target).unwrap();
    let chunk = bytes.len().div_ceil(6);
    for part in bytes.chunks(chunk) {
        f.write_all(part).unwrap();
        f.flush().unwrap();
        // The next piece comes once the watcher has looked at this one.
        let seen = common::metric_at(&s.client, &s.base, scans).await;
        common::until_metric(&s.client, &s.base, scans, |n| n > seen).await;
        assert!(
            !restore_dir.join("failed").join("migrate.tar.gz").exists()
                && !restore_dir.join("applied").join("migrate.tar.gz").exists(),
            "picked up before complete"
        );
        assert_eq!(s.group_names().await, vec!["Local"]);
    }
    drop(f);
    let applied = restore_dir.join("applied").join("migrate.tar.gz");
    assert!(wait_for(|| applied.exists(), 15), "not applied");
    assert_eq!(s.group_names().await, vec!["Migrated"]);
    let (_, list) = s.get("/api/backup/list").await;
    assert!(list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["kind"] == "pre-restore"));
    s.stop().await;
}

/// A bad file goes to `failed/` with a note saying why; nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_folder_fails_a_bad_file_with_a_note() {
    let (_dir, s, restore_dir) = server_watching_its_drop_folder().await;
    std::fs::write(restore_dir.join("broken.tar.gz"), b"junk").unwrap();
    let note = restore_dir.join("failed").join("broken.tar.gz.error.txt");
    assert!(wait_for(|| note.exists(), 15), "no error note");
    assert!(restore_dir.join("failed").join("broken.tar.gz").exists());
    assert!(std::fs::read_to_string(&note)
        .unwrap()
        .contains("invalid backup"));
    assert_eq!(s.group_names().await, vec!["Local"]);
    s.stop().await;
}

/// Hidden files and names that are not candidates (`.part`) are left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_folder_leaves_other_names_alone() {
    let (_dir, s, restore_dir) = server_watching_its_drop_folder().await;
    std::fs::write(restore_dir.join(".hidden.tar.gz"), b"junk").unwrap();
    std::fs::write(restore_dir.join("copying.tar.gz.part"), b"junk").unwrap();
    // Passes of the watcher that began after the files were there, and more
    // than a settle period (1.5 s) later: a candidate would have been tried.
    let scans = "taskledger_restore_dir_scans_total";
    let seen = common::metric_at(&s.client, &s.base, scans).await;
    let since = Instant::now();
    common::until_metric(&s.client, &s.base, scans, |n| n >= seen + 2.0).await;
    while since.elapsed() < Duration::from_millis(1600) {
        let now = common::metric_at(&s.client, &s.base, scans).await;
        common::until_metric(&s.client, &s.base, scans, |n| n > now).await;
    }
    assert!(restore_dir.join(".hidden.tar.gz").exists());
    assert!(restore_dir.join("copying.tar.gz.part").exists());
    assert!(
        !restore_dir.join("failed").exists()
            || std::fs::read_dir(restore_dir.join("failed"))
                .unwrap()
                .next()
                .is_none()
    );
    assert_eq!(s.group_names().await, vec!["Local"]);
    s.stop().await;
}

/// SPEC §3: a copy that pauses for a few seconds halfway (a slow network copy)
/// ends early while paused; it is retried when it grows, not failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_folder_copy_that_stalls_is_applied_not_failed() {
    let bytes = backup_of_another_server("Stalled copy", "stall").await;
    let (_dir, s, restore_dir) = server_watching_its_drop_folder().await;
    let target = restore_dir.join("stalls.tar.gz");
    let mut f = std::fs::File::create(&target).unwrap();
    f.write_all(&bytes[..bytes.len() / 2]).unwrap();
    f.flush().unwrap();
    // The watcher tried the half file once it settled, found it ends early, and keeps it.
    common::until_metric(
        &s.client,
        &s.base,
        "taskledger_restore_dir_waiting_files",
        |n| n == 1.0,
    )
    .await;
    assert!(
        !restore_dir.join("failed").join("stalls.tar.gz").exists(),
        "a stalled copy was failed"
    );
    assert!(target.exists(), "the stalled copy was moved away");
    f.write_all(&bytes[bytes.len() / 2..]).unwrap();
    drop(f);
    let applied = restore_dir.join("applied").join("stalls.tar.gz");
    assert!(wait_for(|| applied.exists(), 20), "not applied");
    assert_eq!(s.group_names().await, vec!["Stalled copy"]);
    s.stop().await;
}

/// Issue 19: many drop-folder restores in a row, valid backups (older ones after
/// newer) mixed with invalid files, then a graceful stop: `check` finds the
/// checkpoint written after the last restore equal to a replay of its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_folder_restores_in_a_row_leave_a_store_that_checks() {
    let (dir, s, restore_dir) = server_watching_its_drop_folder().await;
    let gid = s.group("Old").await;
    s.task(&gid, "old task").await;
    let older = s.backup("older").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.group("Middle").await;
    let newer = s.backup("newer").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    for i in 0..5 {
        s.group(&format!("Newest {i}")).await;
    }
    let older = download(&s, older["name"].as_str().unwrap()).await;
    let newer = download(&s, newer["name"].as_str().unwrap()).await;
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("00-newer.tar.gz", newer.clone()),
        ("01-junk.tar.gz", b"not a backup".to_vec()),
        ("02-older.tar.gz", older.clone()),
        ("03-not-a-snapshot.json", b"{\"data\": 1}".to_vec()),
        ("04-newer.tar.gz", newer),
        ("05-text.tar.gz", b"a text file, not an archive".to_vec()),
        ("06-older.tar.gz", older),
        ("07-junk.json", b"[]".to_vec()),
    ];
    // All at once, each moved in whole.
    for (name, bytes) in &files {
        let tmp = restore_dir.join(format!(".{name}"));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, restore_dir.join(name)).unwrap();
    }
    let settled = |sub: &str| {
        std::fs::read_dir(restore_dir.join(sub))
            .map(|d| {
                d.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().ends_with(".error.txt"))
                    .count()
            })
            .unwrap_or(0)
    };
    assert!(
        wait_for(|| settled("applied") + settled("failed") == files.len(), 60),
        "the drop folder did not take every file: {} applied, {} failed",
        settled("applied"),
        settled("failed")
    );
    assert_eq!((settled("applied"), settled("failed")), (4, 4));
    assert_eq!(s.group_names().await, vec!["Local", "Old"]);
    s.stop().await;
    let out = bin(dir.path(), &["check"]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check failed after the restores: {said}"
    );
    assert!(said.starts_with("ok:"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_folder_at_start_restores_before_serving() {
    let src = tempfile::tempdir().unwrap();
    let a = Server::start(config(src.path())).await;
    a.group("From backup").await;
    let b = a.backup("x").await;
    let bytes = download(&a, b["name"].as_str().unwrap()).await;
    a.stop().await;

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("restore")).unwrap();
    std::fs::write(dir.path().join("restore/a-first.tar.gz"), &bytes).unwrap();
    std::fs::write(dir.path().join("restore/b-second.tar.gz"), b"not a backup").unwrap();
    let mut cfg = config(dir.path());
    cfg.backup.auto_restore_enabled = true;
    let s = Server::start(cfg).await;
    // The first answer already shows the restored data.
    assert_eq!(s.group_names().await, vec!["From backup"]);
    assert!(dir.path().join("restore/applied/a-first.tar.gz").exists());
    assert!(dir
        .path()
        .join("restore/failed/b-second.tar.gz.error.txt")
        .exists());
    s.stop().await;
}

fn bin(dir: &Path, args: &[&str]) -> std::process::Command {
    common::binary(dir, args)
}

fn port() -> u16 {
    common::free_port()
}

/// Waits until /api/health answers 200: the port is bound before startup finishes.
fn wait_http(port: u16) {
    let healthy = || -> bool {
        use std::io::Read;
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        if s.write_all(b"GET /api/health HTTP/1.0\r\n\r\n").is_err() {
            return false;
        }
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200")
    };
    assert!(wait_for(healthy, 30), "server did not become healthy");
}

#[test]
fn live_lock_refuses_and_stale_lock_is_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let p = port();
    let mut first = bin(dir.path(), &["serve", "--addr", &format!("127.0.0.1:{p}")])
        .spawn()
        .unwrap();
    wait_http(p);
    let out = bin(
        dir.path(),
        &["serve", "--addr", &format!("127.0.0.1:{}", port())],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("storage is in use by pid {}", first.id())),
        "{err}"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    // The SIGKILLed server left its LOCK behind: the next start removes it.
    assert!(dir.path().join("storage/LOCK").exists());
    let out = bin(dir.path(), &["check"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!dir.path().join("storage/LOCK").exists());
}

/// Writes one group and `tasks` tasks into the store under `root`, in-process.
fn fill_log(root: &Path, tasks: usize) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cfg = config(root);
    cfg.ensure_dirs().unwrap();
    let store = taskledger::store::Store::open(
        &cfg.store.data_dir,
        Arc::new(taskledger::metrics::Metrics::new()),
    )
    .unwrap();
    rt.block_on(async {
        let gid = uuid::Uuid::new_v4();
        store
            .execute(
                "t",
                taskledger::domain::Command::CreateGroup {
                    id: gid.into(),
                    name: "big".into(),
                    discussion: None,
                },
            )
            .await
            .unwrap();
        let mut futs = Vec::new();
        for i in 0..tasks {
            futs.push(store.execute(
                "t",
                taskledger::domain::Command::CreateTask {
                    id: uuid::Uuid::new_v4().into(),
                    group_id: gid.into(),
                    name: format!("task {i} with a longer name to make the backup bigger"),
                    description: Some("d".repeat(100)),
                    status: None,
                    start_date: None,
                    end_date: None,
                },
            ));
            if futs.len() == 512 {
                for f in futs.drain(..) {
                    f.await.unwrap();
                }
            }
        }
        for f in futs {
            f.await.unwrap();
        }
    });
    store.close();
}

fn file_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect()
}

#[test]
fn crash_during_backup_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().to_path_buf();
    // A log big enough that a backup takes a while.
    fill_log(&root, 20_000);
    let p = port();
    let mut child = bin(&root, &["serve", "--addr", &format!("127.0.0.1:{p}")])
        .spawn()
        .unwrap();
    wait_http(p);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let backups = root.join("backups");
    rt.block_on(async {
        let c = reqwest::Client::new();
        let token = common::admin_login_at(&c, &format!("http://127.0.0.1:{p}")).await;
        let url = format!("http://127.0.0.1:{p}/api/backup/create");
        tokio::spawn(async move {
            let _ = c.post(url).bearer_auth(token).send().await;
        });
    });
    // Kill as soon as the backup has started writing.
    assert!(wait_for(
        || std::fs::read_dir(&backups)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with('.')),
        30
    ));
    child.kill().unwrap();
    child.wait().unwrap();
    // Drop the client's runtime so its request cannot reach the next server.
    drop(rt);
    let names = || file_names(&backups);
    assert!(
        names().iter().all(|n| n.starts_with('.')),
        "a partial backup is visible: {:?}",
        names()
    );
    // The next start sweeps the temporary files away.
    let p = port();
    let mut child = bin(&root, &["serve", "--addr", &format!("127.0.0.1:{p}")])
        .spawn()
        .unwrap();
    wait_http(p);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(names().is_empty(), "{:?}", names());
}

#[test]
fn cli_backup_create_verify_and_restore_round_trip_on_a_stopped_server() {
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().to_path_buf();
    let backups = root.join("backups");
    fill_log(&root, 300);
    let file = cli_backup(&root, "cli");
    let out = bin(
        &root,
        &["backup", "verify", backups.join(&file).to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("301 events"));
    let out = bin(&root, &["restore", backups.join(&file).to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("301 events"));
    assert!(check_ok(&root).contains("ok: 301 events"));
}

#[test]
fn cli_verify_and_restore_refuse_a_damaged_archive_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().to_path_buf();
    fill_log(&root, 300);
    let file = cli_backup(&root, "cli");
    let mut broken = std::fs::read(root.join("backups").join(&file)).unwrap();
    let mid = broken.len() / 3;
    broken[mid] ^= 0x55;
    let broken_path = root.join("broken.tar.gz");
    std::fs::write(&broken_path, &broken).unwrap();
    let out = bin(&root, &["backup", "verify", broken_path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let current = || std::fs::read(root.join("storage/CURRENT")).unwrap();
    let before = (current(), check_ok(&root));
    let out = bin(&root, &["restore", broken_path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!((current(), check_ok(&root)), before);
}

/// `taskledger check` passes; what it printed.
fn check_ok(root: &Path) -> String {
    let out = bin(root, &["check"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}");
    stdout
}

/// `backup create --label LABEL` on the stopped server; the new file's name.
fn cli_backup(root: &Path, label: &str) -> String {
    let out = bin(root, &["backup", "create", "--label", label])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    file_names(&root.join("backups"))
        .into_iter()
        .find(|n| n.ends_with(&format!("_{label}.tar.gz")))
        .unwrap()
}
