//! Upgrades proven by fixtures: what earlier taskledger versions wrote — a data
//! dir, a backup archive, the Kafka messages they published — is read by today's
//! binary, which serves exactly the state those versions served.
//!
//! Each directory under `tests/fixtures/formats/` was made by `make.sh` there
//! (see its README): `data/` (the data dir after a graceful stop), `backup.tar.gz`
//! (a backup taken after the last mutation), `kafka.jsonl` (the topic) and
//! `expected.json` (the API's answers at the time of the backup, keyed by route).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use common::TestServer;
use reqwest::StatusCode;
use serde_json::Value;

/// Every fixture set, oldest first, with the format of the projection checkpoint
/// its version left in the data dir (`None`: that version wrote none).
const FIXTURES: &[(&str, Option<u32>)] = &[
    // The first release.
    ("v0.1.0-db728c4", None),
    // Checkpoint format 3, which later versions ignore (a full replay instead).
    ("v0.1.0-1e9db2c", Some(3)),
    // Checkpoint format 4, read at start by today's binary.
    ("v0.1.0-6d11a50", Some(4)),
];

const ADMIN_PASSWORD: &str = "fixture-admin-pw-1";
const MEMBER: &str = "dhaya";
const MEMBER_PASSWORD: &str = "fixture-member-pw-1";
const HEALTH: &str = "/api/health";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/formats")
        .join(name)
}

fn expected(dir: &Path) -> BTreeMap<String, Value> {
    let path = dir.join("expected.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: BTreeMap<String, Value> = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: not a JSON object: {e}", path.display()));
    assert!(
        v.contains_key(HEALTH) && v.contains_key("/api/groups"),
        "{}: health or groups missing",
        path.display()
    );
    v
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A temporary root whose `storage/` is a copy of the fixture's data dir.
fn data_copy(dir: &Path) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    copy_dir(&dir.join("data"), &root.path().join("storage"));
    root
}

#[track_caller]
fn assert_ran(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Where two JSON values first differ, as a path (`None` if equal).
fn first_difference(path: &str, got: &Value, want: &Value) -> Option<String> {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            let keys: BTreeSet<&String> = g.keys().chain(w.keys()).collect();
            keys.into_iter().find_map(|k| match (g.get(k), w.get(k)) {
                (Some(a), Some(b)) => first_difference(&format!("{path}.{k}"), a, b),
                (a, b) => Some(format!("{path}.{k}: got {a:?}, want {b:?}")),
            })
        }
        (Value::Array(g), Value::Array(w)) => {
            if g.len() != w.len() {
                return Some(format!("{path}: {} items, want {}", g.len(), w.len()));
            }
            g.iter()
                .zip(w)
                .enumerate()
                .find_map(|(i, (a, b))| first_difference(&format!("{path}[{i}]"), a, b))
        }
        _ if got == want => None,
        _ => Some(format!("{path}: got {got}, want {want}")),
    }
}

/// Every route of `expected.json` answers exactly what it recorded (for health,
/// the recorded fields only).
async fn assert_serves(server: &TestServer, expected: &BTreeMap<String, Value>, what: &str) {
    let token = server.login(common::ADMIN, ADMIN_PASSWORD).await;
    // The member's password hash, written by the old version, still verifies.
    server.login(MEMBER, MEMBER_PASSWORD).await;
    for (route, want) in expected {
        let got = if route == HEALTH {
            let h = server.health().await;
            let fields = want.as_object().expect("health fields");
            Value::Object(fields.keys().map(|k| (k.clone(), h[k].clone())).collect())
        } else {
            let (status, v) = server.get(&token, route).await;
            assert_eq!(status, StatusCode::OK, "{what}: GET {route}: {v}");
            v
        };
        if let Some(d) = first_difference("", &got, want) {
            panic!(
                "{what}: GET {route} differs from expected.json at {d}\n got: {got}\nwant: {want}"
            );
        }
    }
}

/// The format of the one `gen-*/checkpoint` in a data dir, from its header
/// (`TLCKPT\0\0`, then the format as a little-endian u32); `None` if there is none.
fn checkpoint_format(data: &Path) -> Option<u32> {
    let found: Vec<PathBuf> = std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().path().join("checkpoint"))
        .filter(|p| p.is_file())
        .collect();
    assert!(found.len() <= 1, "more than one checkpoint: {found:?}");
    let bytes = std::fs::read(found.first()?).unwrap();
    assert!(
        bytes.len() > 12 && bytes.starts_with(b"TLCKPT\0\0"),
        "{}: not a checkpoint",
        found[0].display()
    );
    Some(u32::from_le_bytes(bytes[8..12].try_into().unwrap()))
}

/// Today's server on a copy of the fixture's data dir serves the recorded state;
/// afterwards `check` passes on that dir, and on an untouched copy.
async fn data_dir_is_served(name: &str, checkpoint: Option<u32>) {
    let dir = fixture(name);
    let expected = expected(&dir);
    assert_eq!(
        checkpoint_format(&dir.join("data")),
        checkpoint,
        "{name}: the checkpoint in data/"
    );

    let server = TestServer::start_in(data_copy(&dir), |_| {}).await;
    assert_serves(&server, &expected, &format!("{name} data dir")).await;
    let served = server.stop().await;
    let out = common::binary(served.path(), &["check"]).output().unwrap();
    assert_ran(&out, &format!("{name}: check after serving"));

    let untouched = data_copy(&dir);
    let out = common::binary(untouched.path(), &["check"])
        .output()
        .unwrap();
    assert_ran(&out, &format!("{name}: check of the untouched data dir"));
}

/// The fixture's backup verifies, restores into a fresh data dir with the CLI,
/// and the server then serves the recorded state (the backup is the last thing
/// the fixture run did).
async fn backup_is_restored(name: &str) {
    let dir = fixture(name);
    let expected = expected(&dir);
    let backup = dir.join("backup.tar.gz");
    let backup = backup.to_str().unwrap();
    let root = tempfile::tempdir().unwrap();

    let out = common::binary(root.path(), &["backup", "verify", backup])
        .output()
        .unwrap();
    assert_ran(&out, &format!("{name}: backup verify"));
    let out = common::binary(root.path(), &["restore", backup])
        .output()
        .unwrap();
    assert_ran(&out, &format!("{name}: restore"));

    let server = TestServer::start_in(root, |_| {}).await;
    assert_serves(&server, &expected, &format!("{name} restored backup")).await;
    let restored = server.stop().await;
    let out = common::binary(restored.path(), &["check"])
        .output()
        .unwrap();
    assert_ran(&out, &format!("{name}: check after the restore"));
}

#[track_caller]
fn text<'a>(v: &'a Value, key: &str, what: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: {key} is not a string in {v}"))
}

/// Every activity-log entry of `expected.json`, by id (the same entry appears on
/// its group's and its task's log; both copies must agree).
fn log_entries(expected: &BTreeMap<String, Value>) -> BTreeMap<u64, Value> {
    let mut by_id: BTreeMap<u64, Value> = BTreeMap::new();
    for (route, v) in expected {
        let Some(logs) = v.get("logs").and_then(Value::as_array) else {
            continue;
        };
        for e in logs {
            let id = e["id"].as_u64().unwrap_or_else(|| panic!("{route}: {e}"));
            if let Some(seen) = by_id.insert(id, e.clone()) {
                assert_eq!(&seen, e, "{route}: entry {id} differs between routes");
            }
        }
    }
    by_id
}

/// Every line of `kafka.jsonl` is a §4 message of an event in the recorded logs,
/// in log order, and every logged event was published.
fn kafka_messages_match_the_log(name: &str) {
    let dir = fixture(name);
    let expected = expected(&dir);
    let entries = log_entries(&expected);
    assert!(
        !entries.is_empty(),
        "{name}: no log entries in expected.json"
    );
    let path = dir.join("kafka.jsonl");
    let text_all = std::fs::read_to_string(&path).unwrap();

    let mut last_seq = 0u64;
    let mut published = BTreeSet::new();
    for (n, line) in text_all.lines().enumerate() {
        let what = format!("{name}: kafka.jsonl line {}", n + 1);
        let m: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: {e}"));
        common::assert_keys(
            &m,
            &["partition", "offset", "key", "headers", "value"],
            &what,
        );
        assert_eq!(m["partition"], 0, "{what}");
        assert_eq!(m["offset"].as_u64(), Some(n as u64), "{what}: offsets");
        let seq: u64 = text(&m["headers"], "taskledger-event-id", &what)
            .parse()
            .unwrap_or_else(|e| panic!("{what}: event id header: {e}"));
        assert!(seq > last_seq, "{what}: event {seq} after {last_seq}");
        last_seq = seq;
        published.insert(seq);

        let v: Value = serde_json::from_str(text(&m, "value", &what))
            .unwrap_or_else(|e| panic!("{what}: value is not JSON: {e}"));
        common::assert_keys(&v, &["eventType", "timestamp", "payload"], &what);
        common::assert_ts(&v["timestamp"], &what);
        let p = &v["payload"];
        common::assert_keys(
            p,
            &[
                "entity",
                "entityId",
                "groupId",
                "groupName",
                "taskId",
                "taskName",
                "changes",
                "user",
                "workspace",
                "timestamp",
            ],
            &what,
        );
        assert_eq!(p["timestamp"], v["timestamp"], "{what}");
        assert_eq!(p["workspace"], "default", "{what}");
        assert_eq!(m["key"], p["groupId"], "{what}: key is the group id");

        let e = entries
            .get(&seq)
            .unwrap_or_else(|| panic!("{what}: event {seq} is in no log of expected.json"));
        let pairs = [
            ("eventType", &v["eventType"], "event_type"),
            ("timestamp", &v["timestamp"], "timestamp"),
            ("entity", &p["entity"], "entity"),
            ("entityId", &p["entityId"], "entity_id"),
            ("groupId", &p["groupId"], "group_id"),
            ("groupName", &p["groupName"], "group_name"),
            ("taskId", &p["taskId"], "task_id"),
            ("taskName", &p["taskName"], "task_name"),
            ("changes", &p["changes"], "changes"),
            ("user", &p["user"], "user_name"),
        ];
        for (field, got, entry_field) in pairs {
            assert_eq!(
                got, &e[entry_field],
                "{what}: {field} against the log entry's {entry_field}: {e}"
            );
        }
    }
    let logged: BTreeSet<u64> = entries.keys().copied().collect();
    assert_eq!(
        published, logged,
        "{name}: published events against logged ones"
    );
}

/// The three tests of one fixture set, `FIXTURES[$i]`.
macro_rules! fixture_tests {
    ($module:ident, $i:expr) => {
        mod $module {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn data_dir_is_served_as_it_was() {
                let (name, checkpoint) = super::FIXTURES[$i];
                super::data_dir_is_served(name, checkpoint).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn backup_restores_as_it_was() {
                super::backup_is_restored(super::FIXTURES[$i].0).await;
            }

            #[test]
            fn kafka_messages_match_its_log() {
                super::kafka_messages_match_the_log(super::FIXTURES[$i].0);
            }
        }
    };
}

fixture_tests!(first_release_db728c4, 0);
fixture_tests!(checkpoint_format_3_1e9db2c, 1);
fixture_tests!(today_6d11a50, 2);

#[test]
fn every_fixture_set_is_tested_and_complete() {
    let root = fixture("");
    let mut on_disk: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = FIXTURES.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "fixture dirs against FIXTURES");
    for (name, _) in FIXTURES {
        for f in ["data", "backup.tar.gz", "kafka.jsonl", "expected.json"] {
            assert!(fixture(name).join(f).exists(), "{name}/{f} is missing");
        }
    }
}
