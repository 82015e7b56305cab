//! Durability: a 2xx mutation is on disk. The real binary is SIGKILLed in the
//! middle of concurrent writes; after a restart on the same data dir every
//! acknowledged write is there and `taskledger check` finds the store consistent.

use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;

fn spawn(dir: &Path, port: u16) -> Child {
    common::binary(dir, &["serve", "--addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts")
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/api/health")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not become healthy");
}

async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> Value {
    let r = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    r.json().await.expect("JSON answer")
}

/// A spawned server on a fresh port over `dir`, healthy, with an admin token.
struct Up {
    child: Child,
    port: u16,
    base: String,
    client: reqwest::Client,
    token: String,
}

async fn start(dir: &Path) -> Up {
    let port = common::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let child = spawn(dir, port);
    wait_healthy(&client, &base).await;
    let token = common::admin_login_at(&client, &base).await;
    Up {
        child,
        port,
        base,
        client,
        token,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let Up {
        mut child,
        port,
        base,
        client,
        token,
    } = start(dir.path()).await;
    let group = common::post_json(
        &client,
        &format!("{base}/api/groups"),
        Some(&token),
        json!({"name": "durable"}),
    )
    .await;
    let gid = group["group"]["_id"].as_str().unwrap().to_string();

    // Eight writers, each remembering what the server acknowledged.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (client, base, token, gid, acked) = (
            client.clone(),
            base.clone(),
            token.clone(),
            gid.clone(),
            acked.clone(),
        );
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let r = client
                    .post(format!("{base}/api/groups/{gid}/tasks"))
                    .bearer_auth(&token)
                    .json(&json!({"name": format!("w{w}-{i}")}))
                    .send()
                    .await;
                let Ok(r) = r else { break };
                if r.status().as_u16() != 201 {
                    break;
                }
                let Ok(v) = r.json::<Value>().await else {
                    break;
                };
                acked
                    .lock()
                    .unwrap()
                    .push(v["task"]["_id"].as_str().unwrap().to_string());
            }
        }));
    }
    // Let load build up, then kill mid-flight.
    let start = Instant::now();
    while acked.lock().unwrap().len() < 300 && start.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL"); // Child::kill is SIGKILL on Unix.
    child.wait().unwrap();
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 300,
        "only {} writes acknowledged before the kill",
        acked.len()
    );

    // The lock left behind is stale; check must pass on the crashed store.
    let out = common::binary(dir.path(), &["check"]).output().unwrap();
    assert!(
        out.status.success(),
        "check failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    let mut child = spawn(dir.path(), port);
    wait_healthy(&client, &base).await;
    let token = common::admin_login_at(&client, &base).await;
    let g = get_json(&client, &format!("{base}/api/groups/{gid}"), &token).await;
    let present: std::collections::HashSet<&str> = g["group"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["_id"].as_str().unwrap())
        .collect();
    let missing: Vec<_> = acked
        .iter()
        .filter(|id| !present.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    // The log has exactly one event per stored task, plus the group and the admin.
    let health: Value = client
        .get(format!("{base}/api/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["events"].as_u64().unwrap(), present.len() as u64 + 2);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// SPEC §6, last paragraph: a log that lost acknowledged events is never served.
/// The start is refused (exit 2, one line), unless `restore/` holds a backup,
/// which is applied first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_lost_its_tail_is_refused_or_restored() {
    let dir = tempfile::tempdir().unwrap();
    let Up {
        mut child,
        port,
        base,
        client,
        token,
    } = start(dir.path()).await;
    for i in 0..5 {
        let url = format!("{base}/api/groups");
        common::post_json(
            &client,
            &url,
            Some(&token),
            json!({"name": format!("g{i}")}),
        )
        .await;
    }
    let url = format!("{base}/api/backup/create");
    let backup = common::post_json(&client, &url, Some(&token), json!({})).await;
    let backup_name = backup["backup"]["name"].as_str().unwrap().to_string();
    let url = format!("{base}/api/groups");
    common::post_json(&client, &url, Some(&token), json!({"name": "last"})).await;
    // A clean stop: the mark and the checkpoint both say 7 events.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap();

    // The log loses its last event behind the server's back.
    {
        let gen = taskledger::store::open_offline(&dir.path().join("storage")).unwrap();
        assert!(gen.db.pop_max().unwrap().is_some());
        gen.db.flush().unwrap();
    }
    let out = common::binary(
        dir.path(),
        &["serve", "--addr", &format!("127.0.0.1:{port}")],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines().any(|l| l.ends_with(
            "log ends at event 6 but event 7 was acknowledged; restore the newest backup"
        )),
        "{err}"
    );
    let out = common::binary(dir.path(), &["check"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("was acknowledged"));

    // With a backup waiting in restore/, it is applied and the server serves it.
    std::fs::create_dir_all(dir.path().join("restore")).unwrap();
    std::fs::copy(
        dir.path().join("backups").join(&backup_name),
        dir.path().join("restore").join(&backup_name),
    )
    .unwrap();
    let mut child = spawn(dir.path(), port);
    wait_healthy(&client, &base).await;
    let token = common::admin_login_at(&client, &base).await;
    let groups = get_json(&client, &format!("{base}/api/groups"), &token).await;
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["g0", "g1", "g2", "g3", "g4"]);
    assert!(dir
        .path()
        .join("restore/applied")
        .join(&backup_name)
        .exists());
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Issue 8, defect 1: a missing or dangling `CURRENT` must never make the store
/// start empty and delete the live generation as a "leftover": the start and
/// `check` are refused (exit 2, one line naming the generations), nothing is
/// deleted, and putting CURRENT back serves the data again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_dangling_current_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = start(dir.path()).await;
    let url = format!("{}/api/groups", up.base);
    common::post_json(
        &up.client,
        &url,
        Some(&up.token),
        json!({"name": "keep me"}),
    )
    .await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &up.child.id().to_string()])
        .status();
    up.child.wait().unwrap();
    let storage = dir.path().join("storage");
    let current = std::fs::read_to_string(storage.join("CURRENT")).unwrap();
    let live = storage.join(format!("gen-{}", current.trim()));

    for bad in [None, Some(&b"7\n"[..]), Some(&b"\xff\xfe\x00\x01"[..])] {
        match bad {
            None => std::fs::remove_file(storage.join("CURRENT")).unwrap(),
            Some(bytes) => std::fs::write(storage.join("CURRENT"), bytes).unwrap(),
        }
        let addr = format!("127.0.0.1:{}", common::free_port());
        for args in [vec!["serve", "--addr", addr.as_str()], vec!["check"]] {
            let mut child = common::binary(dir.path(), &args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    child.kill().unwrap();
                    panic!("{args:?} with CURRENT {bad:?} did not refuse; it is running");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{args:?} with CURRENT {bad:?}: {err}"
            );
            assert!(err.contains(&format!("gen-{}", current.trim())), "{err}");
            // One line that names the file and what is wrong with it.
            let line = err.trim_end();
            assert!(!line.contains('\n'), "{args:?}: more than one line: {err}");
            assert!(line.contains("storage/CURRENT: "), "{err}");
            let why = [
                "is missing",
                "names gen-7, which does not exist",
                "not text",
            ];
            assert!(why.iter().any(|w| line.contains(w)), "{err}");
            assert!(
                live.join("db").exists(),
                "{args:?} deleted the live generation"
            );
        }
    }
    std::fs::write(storage.join("CURRENT"), &current).unwrap();
    let mut up = start(dir.path()).await;
    let url = format!("{}/api/groups", up.base);
    let groups = get_json(&up.client, &url, &up.token).await;
    assert_eq!(groups["groups"][0]["name"], "keep me");
    up.child.kill().unwrap();
    up.child.wait().unwrap();
}

/// Stops a spawned server gracefully and waits for it.
fn stop(up: Up) {
    let mut child = up.child;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap();
}

async fn group_names(up: &Up) -> Vec<String> {
    let groups = get_json(&up.client, &format!("{}/api/groups", up.base), &up.token).await;
    groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect()
}

/// The names in the data dir that start with `prefix`.
fn entries(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Issue 19, defect 2: with CURRENT missing, dangling or not text, a backup
/// waiting in `restore/` at start, or `taskledger restore FILE`, replaces the
/// store: the generations found are kept aside (never deleted), the backup
/// becomes the new generation, the server starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_rescues_a_store_whose_current_is_unusable() {
    let dir = tempfile::tempdir().unwrap();
    let up = start(dir.path()).await;
    let b = common::post_json(
        &up.client,
        &format!("{}/api/backup/create", up.base),
        Some(&up.token),
        json!({}),
    )
    .await;
    let backup = dir
        .path()
        .join("backups")
        .join(b["backup"]["name"].as_str().unwrap());
    common::post_json(
        &up.client,
        &format!("{}/api/groups", up.base),
        Some(&up.token),
        json!({"name": "after the backup"}),
    )
    .await;
    stop(up);
    let storage = dir.path().join("storage");
    let bad: [Option<&[u8]>; 3] = [None, Some(b"41\n"), Some(b"\xc3\x28\xff")];
    for (round, bad) in bad.into_iter().enumerate() {
        match bad {
            None => std::fs::remove_file(storage.join("CURRENT")).unwrap(),
            Some(bytes) => std::fs::write(storage.join("CURRENT"), bytes).unwrap(),
        }
        let gens_before = entries(&storage, "gen-");
        let aside_before = entries(&storage, "unreferenced-gen-").len();
        if round == 1 {
            // The CLI: the backup given on the command line.
            let out = common::binary(dir.path(), &["restore", backup.to_str().unwrap()])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "restore with CURRENT {bad:?}: {err}");
        } else {
            // The drop folder, at start.
            std::fs::create_dir_all(dir.path().join("restore")).unwrap();
            std::fs::copy(
                &backup,
                dir.path()
                    .join("restore")
                    .join(format!("rescue-{round}.tar.gz")),
            )
            .unwrap();
        }
        let up = start(dir.path()).await;
        assert!(
            group_names(&up).await.is_empty(),
            "CURRENT {bad:?}: not the backup's state"
        );
        stop(up);
        let aside = entries(&storage, "unreferenced-gen-");
        assert_eq!(
            aside.len(),
            aside_before + gens_before.len(),
            "CURRENT {bad:?}: {gens_before:?} were not all kept aside: {aside:?}"
        );
        let out = common::binary(dir.path(), &["check"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// Issue 8, defect 2: damaged sled files refuse the start with one line and
/// exit 2 (no panic, no backtrace), `check` says the same, and a backup waiting
/// in `restore/` is applied instead, the damaged generation kept aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_is_refused_or_replaced_by_a_waiting_backup() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = start(dir.path()).await;
    let base = up.base.clone();
    for name in ["kept", "also kept"] {
        common::post_json(
            &up.client,
            &format!("{base}/api/groups"),
            Some(&up.token),
            json!({"name": name}),
        )
        .await;
    }
    let b = common::post_json(
        &up.client,
        &format!("{base}/api/backup/create"),
        Some(&up.token),
        json!({}),
    )
    .await;
    let name = b["backup"]["name"].as_str().unwrap().to_string();
    up.child.kill().unwrap();
    up.child.wait().unwrap();
    let _ = up.port;

    // sled's settings file with two bytes flipped: sled refuses it.
    let conf = dir.path().join("storage/gen-1/conf");
    let mut bytes = std::fs::read(&conf).unwrap();
    bytes[10] ^= 0xff;
    bytes[11] ^= 0xff;
    std::fs::write(&conf, &bytes).unwrap();
    for args in [vec!["serve", "--addr", "127.0.0.1:0"], vec!["check"]] {
        let out = common::binary(dir.path(), &args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.contains("the store in gen-1 is damaged")
                && last.ends_with("restore the newest backup"),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{err}"
        );
    }

    std::fs::create_dir_all(dir.path().join("restore")).unwrap();
    std::fs::copy(
        dir.path().join("backups").join(&name),
        dir.path().join("restore").join(&name),
    )
    .unwrap();
    let up = start(dir.path()).await;
    let groups = get_json(&up.client, &format!("{}/api/groups", up.base), &up.token).await;
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["kept", "also kept"]);
    assert!(dir.path().join("restore/applied").join(&name).exists());
    let aside = std::fs::read_dir(dir.path().join("storage"))
        .unwrap()
        .flatten()
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("damaged-gen-1-")
        });
    assert!(aside, "the damaged generation was not kept aside");
    let mut child = up.child;
    child.kill().unwrap();
    child.wait().unwrap();
}
