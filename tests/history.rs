//! Time travel (SPEC §7): the state at any instant, per group and task, monthly
//! stream snapshots, the archive, and point-in-time restore — at the edges.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const FIXTURE: &str = include_str!("fixtures/predecessor.json");

async fn import(s: &TestServer, t: &str, body: &str) -> (StatusCode, Value) {
    s.send_raw(
        reqwest::Method::POST,
        "/api/backup/import",
        Some(&format!("Bearer {t}")),
        body.as_bytes().to_vec(),
    )
    .await
}

fn names(snapshot: &Value) -> Vec<String> {
    snapshot["data"]["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("no data.groups in {snapshot}"))
        .iter()
        .map(|g| str_of(g, "name").to_string())
        .collect()
}

#[tokio::test]
async fn before_the_first_event_nothing_existed() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let g = s.create_group(&t, "Alpha").await;
    let id = str_of(&g, "_id");
    let (st, v) = s.get(&t, "/api/snapshot?at=2001-01-01T00:00:00.000Z").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["lastEventId"], 0);
    assert_eq!(v["at"], "2001-01-01T00:00:00.000Z");
    assert_eq!(v["snapshotId"], "snapshot_2001_01_01_00_00_00");
    assert_eq!(v["metadata"]["counts"]["groups"], 0);
    assert!(names(&v).is_empty());
    let (st, v) = s
        .get(&t, &format!("/api/groups/{id}?at=2001-01-01T00:00:00Z"))
        .await;
    assert_error((st, v), StatusCode::NOT_FOUND, "group before it existed");
}

#[tokio::test]
async fn an_event_id_includes_exactly_that_event() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let g = s.create_group(&t, "Before").await;
    let id = str_of(&g, "_id").to_string();
    let created = s.events().await;
    let (st, _) = s
        .put(&t, &format!("/api/groups/{id}"), json!({"name": "After"}))
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, v) = s.get(&t, &format!("/api/groups/{id}?at={created}")).await;
    assert_eq!(v["group"]["name"], "Before", "{v}");
    let (_, v) = s
        .get(&t, &format!("/api/groups/{id}?at={}", created + 1))
        .await;
    assert_eq!(v["group"]["name"], "After", "{v}");
    let (_, v) = s.get(&t, &format!("/api/snapshot?at={created}")).await;
    assert_eq!(v["lastEventId"], created);
    assert_eq!(names(&v), vec!["Before"]);
    // `at` for an event id is that event's own time.
    assert!(is_utc_millis(str_of(&v, "at")), "{v}");
}

#[tokio::test]
async fn equal_timestamps_are_told_apart_by_event_ids() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let same = "2025-05-05T05:05:05.005Z";
    let file = json!({"data": {"groups": [
        {"_id": "g-one", "name": "One", "createdAt": same, "updatedAt": same},
        {"_id": "g-two", "name": "Two", "createdAt": same, "updatedAt": same}
    ], "tasks": [], "comments": [], "users": []}});
    let (st, v) = import(&s, &t, &file.to_string()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, all) = s.get(&t, &format!("/api/snapshot?at={same}")).await;
    assert_eq!(names(&all), vec!["One", "Two"]);
    let first = all["lastEventId"].as_u64().expect("lastEventId") - 1;
    let (_, one) = s.get(&t, &format!("/api/snapshot?at={first}")).await;
    assert_eq!(names(&one), vec!["One"], "{one}");
    assert_eq!(one["at"], same);
    let (_, none) = s.get(&t, "/api/snapshot?at=2025-05-05T05:05:05.004Z").await;
    assert!(names(&none).is_empty());
}

#[tokio::test]
async fn a_deleted_group_is_still_there_in_the_past() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let g = s.create_group(&t, "Doomed").await;
    let gid = str_of(&g, "_id").to_string();
    let task = s.create_task(&t, &gid, json!({"name": "Inside"})).await;
    let tid = str_of(&task, "_id").to_string();
    let (st, _) = s
        .post(
            &t,
            &format!("/api/tasks/{tid}/comments"),
            json!({"text": "hi"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let before = s.events().await;
    let (st, _) = s.delete(&t, &format!("/api/groups/{gid}")).await;
    assert_eq!(st, StatusCode::OK);

    let (st, v) = s.get(&t, &format!("/api/groups/{gid}?at={before}")).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["group"]["tasks"][0]["comments"][0]["text"], "hi");
    assert_eq!(v["group"]["taskCount"], 1);
    let (st, v) = s.get(&t, &format!("/api/tasks/{tid}?at={before}")).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["task"]["commentCount"], 1);

    let (st, v) = s
        .get(&t, &format!("/api/groups/{gid}?at={}", before + 1))
        .await;
    assert_error((st, v), StatusCode::NOT_FOUND, "group after its deletion");
    let (st, v) = s
        .get(&t, &format!("/api/tasks/{tid}?at={}", before + 1))
        .await;
    assert_error(
        (st, v),
        StatusCode::NOT_FOUND,
        "task deleted with its group",
    );
    let (_, v) = s.get(&t, &format!("/api/snapshot?at={before}")).await;
    assert_eq!(
        v["metadata"]["counts"],
        json!({"groups": 1, "tasks": 1, "comments": 1, "users": 1})
    );
    assert_eq!(v["data"]["groups"][0]["tasks"][0], tid.as_str());
    assert_eq!(
        v["data"]["tasks"][0]["comments"].as_array().map(Vec::len),
        Some(1)
    );
    assert!(v["data"]["users"][0].get("passwordHash").is_none());
    assert_keys(
        &v["data"]["users"][0],
        &["_id", "username", "role", "createdAt"],
        "snapshot user",
    );
}

#[tokio::test]
async fn the_future_and_nonsense_are_bad_requests() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let g = s.create_group(&t, "Now").await;
    let id = str_of(&g, "_id");
    let last = s.events().await;
    for at in [
        "2999-01-01T00:00:00Z".to_string(),
        (last + 1).to_string(),
        "0".into(),
        "-1".into(),
        "yesterday".into(),
        "".into(),
    ] {
        for path in [
            format!("/api/snapshot?at={at}"),
            format!("/api/groups/{id}?at={at}"),
        ] {
            let (st, v) = s.get(&t, &path).await;
            assert_error((st, v), StatusCode::BAD_REQUEST, &path);
        }
    }
    let (st, v) = s
        .post(
            &t,
            "/api/backup/restore",
            json!({"at": "2999-01-01T00:00:00Z"}),
        )
        .await;
    assert_error((st, v), StatusCode::BAD_REQUEST, "restore into the future");
    assert_eq!(s.events().await, last, "nothing changed");
}

#[tokio::test]
async fn after_a_restore_history_is_the_restored_log() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    s.create_group(&t, "Kept").await;
    let (st, b) = s.post(&t, "/api/backup/create", json!({})).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let kept_last = b["backup"]["lastEventId"].as_u64().expect("lastEventId");
    s.create_group(&t, "Undone").await;
    let undone = s.events().await;
    let name = str_of(&b["backup"], "name").to_string();
    let (st, v) = s
        .post(&t, "/api/backup/restore", json!({"backupName": name}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, v) = s.get(&t, &format!("/api/snapshot?at={kept_last}")).await;
    assert_eq!(names(&v), vec!["Kept"]);
    // The undone event is not part of this log's history any more.
    let (_, now) = s.get(&t, "/api/snapshot").await;
    assert_eq!(names(&now), vec!["Kept"]);
    if s.events().await < undone {
        let (st, v) = s.get(&t, &format!("/api/snapshot?at={undone}")).await;
        assert_error((st, v), StatusCode::BAD_REQUEST, "an event of the old log");
    }
}

#[tokio::test]
async fn point_in_time_restore_undoes_everything_after() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    s.create_group(&t, "Keep me").await;
    let cut = s.events().await;
    let g = s.create_group(&t, "Mistake").await;
    s.create_task(&t, str_of(&g, "_id"), json!({"name": "also undone"}))
        .await;
    let (st, v) = s.post(&t, "/api/backup/restore", json!({"at": cut})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["lastEventId"], cut);
    assert!(is_utc_millis(str_of(&v, "at")), "{v}");
    assert_eq!(v["restored"]["groups"], 1);
    let safety = str_of(&v, "safetyBackup").to_string();
    let (_, list) = s.get(&t, "/api/groups").await;
    let groups: Vec<&str> = arr(&list, "groups")
        .iter()
        .map(|g| str_of(g, "name"))
        .collect();
    assert_eq!(groups, vec!["Keep me"]);
    // The undone events are kept in the pre-restore backup.
    let (_, b) = s.get(&t, "/api/backup/list").await;
    let pre = arr(&b, "backups")
        .iter()
        .find(|b| b["name"] == safety.as_str())
        .unwrap_or_else(|| panic!("safety backup {safety} listed: {b}"));
    assert_eq!(pre["kind"], "pre-restore");
    assert_eq!(pre["events"], cut + 2);
    let (_, audit) = s.get(&t, "/api/backup/audit").await;
    assert!(audit.to_string().contains("BACKUP_RESTORED"), "{audit}");
}

#[tokio::test]
async fn point_in_time_restore_of_a_backup_takes_its_prefix() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    s.create_group(&t, "First").await;
    let cut = s.events().await;
    s.create_group(&t, "Second").await;
    let (_, b) = s.post(&t, "/api/backup/create", json!({})).await;
    let name = str_of(&b["backup"], "name").to_string();
    s.create_group(&t, "Third").await;
    let (st, v) = s
        .post(
            &t,
            "/api/backup/restore",
            json!({"backupName": name, "at": cut.to_string()}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["lastEventId"], cut);
    let (_, now) = s.get(&t, "/api/snapshot").await;
    assert_eq!(names(&now), vec!["First"]);
    let (st, v) = s
        .post(
            &t,
            "/api/backup/restore",
            json!({"backupName": name, "at": 999_999}),
        )
        .await;
    assert_error((st, v), StatusCode::BAD_REQUEST, "at past the backup's end");
}

#[tokio::test]
async fn point_in_time_restore_under_writes_equals_the_prefix_replay() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    for i in 0..20 {
        s.create_group(&t, &format!("g{i}")).await;
    }
    let cut = s.events().await;
    let (_, expected) = s.get(&t, &format!("/api/snapshot?at={cut}")).await;
    let writer = {
        let (client, url, t) = (s.client.clone(), s.url("/api/groups"), t.clone());
        tokio::spawn(async move {
            for i in 0..60 {
                let _ = client
                    .post(&url)
                    .bearer_auth(&t)
                    .json(&json!({"name": format!("late{i}")}))
                    .send()
                    .await;
            }
        })
    };
    let (st, v) = s.post(&t, "/api/backup/restore", json!({"at": cut})).await;
    writer.await.expect("writer");
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, got) = s
        .get(&t, &format!("/api/snapshot?at={}", v["lastEventId"]))
        .await;
    assert_eq!(got["data"]["groups"], expected["data"]["groups"]);
    assert_eq!(got["data"]["users"], expected["data"]["users"]);
}

#[tokio::test]
async fn monthly_stream_snapshots_and_the_archive() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let (st, v) = import(&s, &t, FIXTURE).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let alpha = "65a1f0c2e4b0a1b2c3d4e501";
    let (st, v) = s.get(&t, &format!("/api/v1/snapshots/{alpha}")).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["streamId"], alpha);
    let months: Vec<&str> = arr(&v, "snapshots")
        .iter()
        .map(|m| str_of(m, "month"))
        .collect();
    assert_eq!(months, vec!["2025-01", "2025-02"], "{v}");
    let jan = &v["snapshots"][0];
    assert_eq!(jan["at"], "2025-01-31T23:59:59.999Z");
    assert_eq!(jan["state"]["name"], "Project Alpha");
    assert_eq!(jan["state"]["tasks"][0]["status"], "In Progress");
    assert_eq!(jan["state"]["updatedAt"], "2025-01-10T09:00:00.000Z");
    assert_eq!(
        v["snapshots"][1]["state"]["updatedAt"],
        "2025-02-01T10:00:00.000Z"
    );

    let (st, m) = s
        .get(&t, &format!("/api/v1/snapshots/{alpha}/2025-01"))
        .await;
    assert_eq!(st, StatusCode::OK, "{m}");
    assert_eq!(m["state"], jan["state"]);
    assert_eq!(m["lastEventId"], jan["lastEventId"]);
    let (st, m) = s
        .get(&t, &format!("/api/v1/snapshots/{alpha}/2024-12"))
        .await;
    assert_error((st, m), StatusCode::NOT_FOUND, "stream before it existed");
    for bad in ["2025-13", "2025-1", "january", "2999-01"] {
        let (st, m) = s.get(&t, &format!("/api/v1/snapshots/{alpha}/{bad}")).await;
        assert_error((st, m), StatusCode::BAD_REQUEST, bad);
    }
    // A task stream: its own months, its own state.
    let task = "65a1f0c2e4b0a1b2c3d4e604";
    let (_, v) = s.get(&t, &format!("/api/v1/snapshots/{task}")).await;
    let months: Vec<&str> = arr(&v, "snapshots")
        .iter()
        .map(|m| str_of(m, "month"))
        .collect();
    assert_eq!(months, vec!["2025-03", "2025-04"], "{v}");
    assert_eq!(v["snapshots"][0]["state"]["status"], "New");
    assert_eq!(v["snapshots"][1]["state"]["status"], "Completed");

    // Everything imported is older than 90 days: the archive pages through it.
    let (st, a) = s
        .get(&t, &format!("/api/v1/snapshots/{alpha}/archive?limit=2"))
        .await;
    assert_eq!(st, StatusCode::OK, "{a}");
    let logs = arr(&a, "logs");
    assert_eq!(logs.len(), 2);
    let newest = logs[0]["id"].as_u64().expect("id");
    assert!(newest > logs[1]["id"].as_u64().expect("id"), "newest first");
    let (_, rest) = s
        .get(
            &t,
            &format!("/api/v1/snapshots/{alpha}/archive?before={}", logs[1]["id"]),
        )
        .await;
    assert!(arr(&rest, "logs")
        .iter()
        .all(|e| e["id"].as_u64() < logs[1]["id"].as_u64()));
    let (st, v) = s
        .get(&t, &format!("/api/v1/snapshots/{alpha}/archive?limit=0"))
        .await;
    assert_error((st, v), StatusCode::BAD_REQUEST, "limit 0");
    // New activity is not archived.
    let g = s.create_group(&t, "Fresh").await;
    let (_, a) = s
        .get(
            &t,
            &format!("/api/v1/snapshots/{}/archive", str_of(&g, "_id")),
        )
        .await;
    assert!(arr(&a, "logs").is_empty(), "{a}");
    let (_, v) = s
        .get(&t, &format!("/api/v1/snapshots/{}", str_of(&g, "_id")))
        .await;
    assert_eq!(arr(&v, "snapshots").len(), 1, "{v}");
    assert_eq!(v["snapshots"][0]["state"]["name"], "Fresh");
}

/// A snapshot bigger than one streamed chunk (256 KiB) arrives whole and in
/// order, now and at a past instant (both images are streamed the same way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_larger_than_a_chunk_arrives_whole() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let text = "x".repeat(9_000);
    let mut mid = 0;
    for i in 0..60 {
        let (st, v) = s
            .post(
                &t,
                "/api/groups",
                json!({"name": format!("g{i:02}"), "discussion": text}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        if i == 39 {
            mid = s.events().await;
        }
    }
    let (st, now) = s.get(&t, "/api/snapshot").await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        now.to_string().len() > 2 * 256 * 1024,
        "spans several chunks"
    );
    let want: Vec<String> = (0..60).map(|i| format!("g{i:02}")).collect();
    assert_eq!(names(&now), want);
    assert_eq!(now["metadata"]["counts"]["groups"], 60);
    let (st, past) = s.get(&t, &format!("/api/snapshot?at={mid}")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(names(&past), want[..40].to_vec());
    assert!(arr(&past["data"], "groups")
        .iter()
        .all(|g| g["discussion"] == text.as_str()));
}
