//! SPEC §6 at the syscall level: the real binary runs under an LD_PRELOAD shim
//! (tests/shim/faults.c, built here with the system C compiler) that logs every
//! fsync/fdatasync with the file it hits and can fail, hold or fake them, and can
//! make statvfs report a full disk. Plus a real tiny filesystem (tmpfs) when the
//! machine lets us mount one, and kill -9 in the middle of a checkpoint.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;

/// Builds the shim once per test binary.
fn shim() -> &'static Path {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/shim/faults.c");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("taskledger-faults.so");
        let status = std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-o"])
            .arg(&out)
            .arg(&src)
            .arg("-ldl")
            .status()
            .expect("a C compiler (cc) to build the fault shim");
        assert!(status.success(), "building the fault shim failed");
        out
    })
}

struct Server {
    child: Child,
    base: String,
    client: reqwest::Client,
    token: String,
    root: PathBuf,
    ctl: PathBuf,
}

impl Server {
    async fn start(root: &Path) -> Server {
        Self::start_on(root, root).await
    }

    /// Data, backup and restore dirs under `dirs`; the shim's control files under `root`.
    async fn start_on(root: &Path, dirs: &Path) -> Server {
        let ctl = root.join("shim");
        std::fs::create_dir_all(&ctl).unwrap();
        let port = common::free_port();
        let child = common::binary(dirs, &["serve", "--addr", &format!("127.0.0.1:{port}")])
            .env("LD_PRELOAD", shim())
            .env("TL_SHIM_DIR", &ctl)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("binary starts");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{base}/api/health")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "server did not become healthy");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let token = common::admin_login_at(&client, &base).await;
        Server {
            child,
            base,
            client,
            token,
            root: root.to_path_buf(),
            ctl,
        }
    }

    fn set(&self, flag: &str, on: bool) {
        let p = self.ctl.join(flag);
        if on {
            std::fs::write(p, b"").unwrap();
        } else {
            let _ = std::fs::remove_file(p);
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON")
    }

    async fn group_names(&self) -> Vec<String> {
        self.get("/api/groups").await["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// fdatasync/fsync calls on the sled data file so far.
    fn data_syncs(&self) -> usize {
        std::fs::read_to_string(self.ctl.join("syncs.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                let mut it = l.splitn(2, ' ');
                let (call, path) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
                (call == "fdatasync" || call == "fsync")
                    && path.contains("/gen-")
                    && path.ends_with("/db")
            })
            .count()
    }

    fn kill(mut self) -> PathBuf {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.root.clone()
    }

    fn terminate(&self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_was_fdatasynced() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let before = s.data_syncs();
    const N: usize = 20;
    for i in 0..N {
        let (status, _) = s
            .post("/api/groups", json!({"name": format!("g{i}")}))
            .await;
        assert_eq!(status, 201);
    }
    let after = s.data_syncs();
    assert!(
        after - before >= N,
        "{N} sequential acknowledged writes, but only {} syncs of the data file",
        after - before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_visible_before_its_fsync_returns() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (status, g) = s.post("/api/groups", json!({"name": "visible"})).await;
    assert_eq!(status, 201);
    let gid = g["group"]["_id"].as_str().unwrap().to_string();
    let events = s.get("/api/health").await["events"].as_u64().unwrap();

    s.set("hold-sync", true);
    let syncs_before = s.data_syncs();
    let (client, base, token) = (s.client.clone(), s.base.clone(), s.token.clone());
    let pending = tokio::spawn(async move {
        client
            .post(format!("{base}/api/groups/{gid}/tasks"))
            .bearer_auth(token)
            .json(&json!({"name": "held"}))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    // The write reached sled and its fsync is now held: the shim logs each call
    // before holding it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.data_syncs() <= syncs_before {
        assert!(Instant::now() < deadline, "no fsync after the write");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        !pending.is_finished(),
        "the write was answered before its fsync"
    );
    let groups = s.get("/api/groups").await;
    assert_eq!(groups["groups"][0]["taskCount"], 0, "dirty read: {groups}");
    let logs = s.get("/api/logs/groups").await;
    assert_eq!(
        logs["groups"][0]["log_count"], 1,
        "dirty activity read: {logs}"
    );
    assert_eq!(
        s.get("/api/health").await["events"].as_u64().unwrap(),
        events
    );

    s.set("hold-sync", false);
    let status = pending.await.unwrap().unwrap();
    assert_eq!(status, 201);
    let groups = s.get("/api/groups").await;
    assert_eq!(groups["groups"][0]["taskCount"], 1);
    assert_eq!(
        s.get("/api/health").await["events"].as_u64().unwrap(),
        events + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_makes_the_store_read_only_until_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    assert_eq!(
        s.post("/api/groups", json!({"name": "before"})).await.0,
        201
    );
    let events = s.get("/api/health").await["events"].as_u64().unwrap();

    s.set("fail-sync", true);
    let (status, body) = s.post("/api/groups", json!({"name": "lost"})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["error"],
        "storage is read-only after a write failure; restart the server"
    );
    s.set("fail-sync", false);
    // Fatal: even with the disk healthy again, writes stay refused.
    let (status, body) = s.post("/api/groups", json!({"name": "after"})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        s.group_names().await,
        vec!["before"],
        "reads go on, nothing failed shows"
    );
    let health = s.get("/api/health").await;
    assert_eq!(health["writable"], false);
    assert_eq!(health["events"].as_u64().unwrap(), events);

    let root = s.kill();
    let s = Server::start(&root).await;
    assert_eq!(s.get("/api/health").await["writable"], true);
    assert_eq!(
        s.post("/api/groups", json!({"name": "recovered"})).await.0,
        201
    );
    let names = s.group_names().await;
    assert!(names.contains(&"recovered".to_string()) && !names.contains(&"after".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_507_and_writes_resume_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let events = s.get("/api/health").await["events"].as_u64().unwrap();
    s.set("full", true);
    let (status, body) = s.post("/api/groups", json!({"name": "no room"})).await;
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"], "insufficient storage");
    // Bad input is still a 400, not a 507.
    assert_eq!(s.post("/api/groups", json!({"name": ""})).await.0, 400);
    let health = s.get("/api/health").await;
    assert_eq!(health["writable"], true, "a full disk is not fatal");
    assert_eq!(health["events"].as_u64().unwrap(), events);
    s.set("full", false);
    assert_eq!(s.post("/api/groups", json!({"name": "room"})).await.0, 201);
    assert_eq!(s.group_names().await, vec!["room"]);
}

/// A real small filesystem: the data dir on a 64 MiB tmpfs that a file fills.
/// Needs permission to mount; where that is missing the test says so and passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_really_full_filesystem_answers_507() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("tiny");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let s = Server::start_on(dir.path(), &mnt).await;
    assert_eq!(s.post("/api/groups", json!({"name": "fits"})).await.0, 201);
    // Fill the filesystem up to its last few hundred KB.
    let fill = |name: &str, keep: u64| {
        let free = nix::sys::statvfs::statvfs(&mnt).unwrap();
        let bytes =
            (free.blocks_available() as u64 * free.fragment_size() as u64).saturating_sub(keep);
        if bytes > 0 {
            let ok = std::process::Command::new("fallocate")
                .args(["-l", &bytes.to_string()])
                .arg(mnt.join(name))
                .status()
                .unwrap();
            assert!(ok.success());
        }
        mnt.join(name)
    };
    let filler = fill("filler", 256 * 1024);
    for i in 0..5 {
        let (status, body) = s
            .post("/api/groups", json!({"name": format!("x{i}")}))
            .await;
        assert_eq!(status, 507, "{body}");
    }
    assert_eq!(s.get("/api/health").await["writable"], true);
    // Not one byte left: a backup cannot be written either, and says why.
    let last = fill("filler-last", 0);
    let (status, body) = s.post("/api/backup/create", json!({})).await;
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"], "insufficient storage", "{body}");
    let left: Vec<_> = std::fs::read_dir(mnt.join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "no partial backup is left: {left:?}");
    let _ = std::fs::remove_file(&last);
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(s.post("/api/groups", json!({"name": "again"})).await.0, 201);
    assert_eq!(s.group_names().await, vec!["fits", "again"]);
    drop(s);
}

/// SIGKILL while a checkpoint is being written (held inside its fsync): the next
/// start ignores the half-written file, loses nothing, and `check` is clean. A
/// checkpoint damaged on disk is ignored too: the log wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_checkpoint_and_a_damaged_checkpoint_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    for i in 0..30 {
        assert_eq!(
            s.post("/api/groups", json!({"name": format!("g{i:02}")}))
                .await
                .0,
            201
        );
    }
    let want = s.group_names().await;
    // A clean stop writes a checkpoint: hold it in its fsync, then SIGKILL.
    s.set("hold-ckpt", true);
    s.terminate();
    let deadline = Instant::now() + Duration::from_secs(10);
    let gen_dir = dir.path().join("storage/gen-1");
    // Written and now held inside its fsync (the shim logs the call first).
    let in_fsync = || {
        std::fs::read_to_string(dir.path().join("shim/syncs.log"))
            .unwrap_or_default()
            .lines()
            .any(|l| l.ends_with("/.checkpoint.tmp"))
    };
    while !in_fsync() {
        assert!(Instant::now() < deadline, "no checkpoint reached its fsync");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gen_dir.join(".checkpoint.tmp").exists());
    let root = s.kill();
    std::fs::remove_file(root.join("shim/hold-ckpt")).unwrap();
    assert!(!gen_dir.join("checkpoint").exists());

    let s = Server::start(&root).await;
    assert_eq!(s.group_names().await, want);
    // This clean stop completes its checkpoint; then damage it.
    s.terminate();
    let root = s.kill_after_exit().await;
    let ck = gen_dir.join("checkpoint");
    let mut bytes = std::fs::read(&ck).expect("a checkpoint after a clean stop");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&ck, bytes).unwrap();
    let out = common::binary(&root, &["check"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("checkpoint"),
        "check reports the damaged checkpoint: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = Server::start(&root).await;
    assert_eq!(s.group_names().await, want);
    assert_eq!(s.post("/api/groups", json!({"name": "more"})).await.0, 201);
    let root = s.kill();
    let out = common::binary(&root, &["check"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

impl Server {
    /// Waits for a process told to stop to exit on its own.
    async fn kill_after_exit(mut self) -> PathBuf {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "server did not stop");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.root.clone()
    }
}
