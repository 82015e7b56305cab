//! The SPEC §2 shapes of groups, tasks, comments, users and log entries, and the
//! small helpers the API tests share (written once here, used by tests/api_*.rs).

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{arr, assert_keys, assert_ts, str_of, TestServer};

pub const GROUP_KEYS: [&str; 7] = [
    "_id",
    "name",
    "discussion",
    "tasks",
    "taskCount",
    "createdAt",
    "updatedAt",
];
pub const TASK_KEYS: [&str; 11] = [
    "_id",
    "groupId",
    "name",
    "description",
    "status",
    "startDate",
    "endDate",
    "comments",
    "commentCount",
    "createdAt",
    "updatedAt",
];
pub const COMMENT_KEYS: [&str; 7] = [
    "_id",
    "taskId",
    "text",
    "author",
    "timestamp",
    "createdAt",
    "updatedAt",
];
pub const LOG_KEYS: [&str; 12] = [
    "id",
    "timestamp",
    "event_type",
    "entity",
    "entity_id",
    "group_id",
    "group_name",
    "task_id",
    "task_name",
    "changes",
    "user_name",
    "workspace",
];
pub const USER_KEYS: [&str; 3] = ["_id", "username", "role"];
pub const STATUSES: [&str; 5] = ["New", "Backlog", "In Progress", "Completed", "Approved"];

/// A well-formed id that names nothing.
pub fn unknown_id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// A JSON body, cut to 80 characters for failure messages.
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s,
    }
}

#[track_caller]
pub fn assert_group(g: &Value, what: &str) {
    assert_keys(g, &GROUP_KEYS, what);
    assert!(!str_of(g, "_id").is_empty(), "{what}: empty _id");
    assert_ts(&g["createdAt"], what);
    assert_ts(&g["updatedAt"], what);
    let tasks = arr(g, "tasks");
    assert_eq!(g["taskCount"], json!(tasks.len()), "{what}: taskCount");
    for t in tasks {
        assert_task(t, what);
        assert_eq!(t["groupId"], g["_id"], "{what}: nested task's groupId");
    }
}

#[track_caller]
pub fn assert_task(t: &Value, what: &str) {
    assert_keys(t, &TASK_KEYS, what);
    assert!(!str_of(t, "_id").is_empty(), "{what}: empty _id");
    assert!(
        STATUSES.contains(&str_of(t, "status")),
        "{what}: status {t}"
    );
    assert_ts(&t["createdAt"], what);
    assert_ts(&t["updatedAt"], what);
    let comments = arr(t, "comments");
    assert_eq!(
        t["commentCount"],
        json!(comments.len()),
        "{what}: commentCount"
    );
    for c in comments {
        assert_comment(c, what);
        assert_eq!(c["taskId"], t["_id"], "{what}: nested comment's taskId");
    }
}

#[track_caller]
pub fn assert_comment(c: &Value, what: &str) {
    assert_keys(c, &COMMENT_KEYS, what);
    assert!(!str_of(c, "_id").is_empty(), "{what}: empty _id");
    assert_ts(&c["timestamp"], what);
    assert_ts(&c["createdAt"], what);
    assert_ts(&c["updatedAt"], what);
}

#[track_caller]
pub fn assert_log_entry(e: &Value, what: &str) {
    assert_keys(e, &LOG_KEYS, what);
    assert!(e["id"].as_u64().is_some_and(|n| n >= 1), "{what}: id {e}");
    assert_ts(&e["timestamp"], what);
    assert_eq!(e["workspace"], "default", "{what}");
    assert!(
        [
            "created",
            "updated",
            "deleted",
            "status_changed",
            "commented"
        ]
        .contains(&str_of(e, "event_type")),
        "{what}: event_type {e}"
    );
    assert!(
        ["Group", "Task"].contains(&str_of(e, "entity")),
        "{what}: entity {e}"
    );
    assert!(!str_of(e, "changes").is_empty(), "{what}: changes {e}");
}

/// The `logs` of a log route (200 asserted), each entry shape-checked.
pub async fn logs(s: &TestServer, token: &str, path: &str) -> Vec<Value> {
    let (st, v) = s.get(token, path).await;
    assert_eq!(st, StatusCode::OK, "GET {path}: {v}");
    let list = arr(&v, "logs").clone();
    for e in &list {
        assert_log_entry(e, path);
    }
    list
}

pub fn ids_of(list: &[Value]) -> Vec<u64> {
    list.iter()
        .map(|e| e["id"].as_u64().expect("integer id"))
        .collect()
}

#[track_caller]
pub fn assert_newest_first(list: &[Value], what: &str) {
    let ids = ids_of(list);
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "{what}: ids not strictly decreasing: {ids:?}"
    );
}

/// The value of an unlabelled sample in Prometheus text.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (key, val) = l.rsplit_once(' ')?;
        (key == name).then(|| val.parse().ok()).flatten()
    })
}
