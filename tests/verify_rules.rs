//! Restore verification replays a backup through the domain's own rules
//! (issue 8, defect 3): a crafted log with an orphan task, a reused id or time
//! running backwards is refused (422) and changes nothing.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn line(id: u64, ts: &str, kind: &str, data: Value) -> (u64, Vec<u8>) {
    let v = json!({"id": id, "eventId": uuid::Uuid::new_v4().to_string(), "type": kind,
        "version": 1, "timestamp": ts, "user": "crafter", "workspace": "default", "data": data});
    (id, v.to_string().into_bytes())
}

fn group(id: u64, ts: &str, gid: &str) -> (u64, Vec<u8>) {
    line(
        id,
        ts,
        "GroupCreated",
        json!({"groupId": gid, "name": "G", "discussion": ""}),
    )
}

fn task(id: u64, ts: &str, tid: &str, gid: &str) -> (u64, Vec<u8>) {
    line(
        id,
        ts,
        "TaskCreated",
        json!({"taskId": tid, "groupId": gid, "groupName": "G",
        "name": "T", "description": "", "status": "New", "startDate": null, "endDate": null}),
    )
}

/// A backup file written from SPEC §3 alone (not with the server's writer), so
/// the refusals below are about the rules, not about a format both sides share.
fn archive(events: Vec<(u64, Vec<u8>)>) -> Vec<u8> {
    use sha2::Digest;
    let mut ndjson = Vec::new();
    for (_, line) in &events {
        ndjson.extend_from_slice(line);
        ndjson.push(b'\n');
    }
    let digest = hex::encode(sha2::Sha256::digest(&ndjson));
    let manifest = json!({"format": "taskledger-backup", "version": 1,
        "createdAt": "2025-01-01T00:00:00.000Z", "kind": "manual", "label": "crafted",
        "appVersion": "test", "events": events.len(),
        "firstEventId": events.first().map_or(0, |e| e.0),
        "lastEventId": events.last().map_or(0, |e| e.0),
        "files": {"events.ndjson": {"sha256": digest, "bytes": ndjson.len()}}})
    .to_string();
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, body) in [
        ("manifest.json", manifest.as_bytes()),
        ("events.ndjson", &ndjson[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, body).expect("tar member");
    }
    tar.into_inner().expect("tar").finish().expect("gzip")
}

async fn upload(s: &TestServer, t: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    s.send_raw(
        reqwest::Method::POST,
        "/api/backup/upload",
        Some(&format!("Bearer {t}")),
        bytes,
    )
    .await
}

#[tokio::test]
async fn a_log_that_breaks_the_rules_is_refused() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    s.create_group(&t, "Live").await;
    let before = s.events().await;
    let ts = "2025-01-01T00:00:00.000Z";
    let cases = vec![
        (
            "a task in a group that never existed",
            vec![task(1, ts, "t1", "nowhere")],
        ),
        (
            "a group id used twice",
            vec![group(1, ts, "g"), group(2, ts, "g")],
        ),
        (
            "a task id used twice",
            vec![
                group(1, ts, "g"),
                task(2, ts, "t", "g"),
                task(3, ts, "t", "g"),
            ],
        ),
        (
            "time running backwards",
            vec![group(1, ts, "g"), group(2, "2024-12-31T23:59:59.999Z", "h")],
        ),
        (
            "an update of a deleted task",
            vec![
                group(1, ts, "g"),
                task(2, ts, "t", "g"),
                line(
                    3,
                    ts,
                    "TaskDeleted",
                    json!({"taskId": "t", "groupId": "g", "groupName": "G", "name": "T"}),
                ),
                line(
                    4,
                    ts,
                    "TaskStatusChanged",
                    json!({"taskId": "t", "groupId": "g", "groupName": "G",
                    "taskName": "T", "from": "New", "to": "Completed"}),
                ),
            ],
        ),
    ];
    for (what, events) in cases {
        let (st, v) = upload(&s, &t, archive(events)).await;
        assert_error((st, v.clone()), StatusCode::UNPROCESSABLE_ENTITY, what);
        assert_eq!(s.events().await, before, "{what}: {v}");
    }
    // The same shapes, legal, pass: the refusals above were for the rules.
    let good = archive(vec![group(1, ts, "g"), task(2, ts, "t", "g")]);
    let (st, v) = upload(&s, &t, good).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let name = str_of(&v["backup"], "name").to_string();
    let (st, v) = s
        .post(&t, "/api/backup/restore", json!({"backupName": name}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s.delete(&t, "/api/tasks/t").await;
    assert_eq!(st, StatusCode::OK, "the restored task can be deleted: {v}");
}
