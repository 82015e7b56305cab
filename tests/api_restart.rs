//! SPEC §6 through the API: what a 2xx wrote, and the sessions, survive a
//! restart on the same data dir, and the log goes on without a gap (§5); 50
//! concurrent creations each get one event and are all listed.

mod common;

use std::collections::HashSet;

use common::shapes::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// What a client read before the restart, and the restarted server.
struct Restarted {
    s: TestServer,
    t: String,
    gid: String,
    tid: String,
    events: u64,
    groups: Value,
    users: Value,
    group_log: Value,
    summary: Value,
}

/// A group with a task (status changed, one comment) and a second user, read
/// back, then the server stopped and started again on the same dir.
async fn restarted() -> Restarted {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let g = s.create_group(&t, "Persisted").await;
    let gid = str_of(&g, "_id").to_string();
    let task = s
        .create_task(
            &t,
            &gid,
            json!({"name": "Durable", "status": "Backlog", "startDate": "2025-05-05"}),
        )
        .await;
    let tid = str_of(&task, "_id").to_string();
    let (st, _) = s
        .post(
            &t,
            &format!("/api/tasks/{tid}/comments"),
            json!({"text": "still here"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = s
        .put(
            &t,
            &format!("/api/tasks/{tid}/status"),
            json!({"status": "Approved"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s
        .post(
            &t,
            "/api/auth/users",
            json!({"username": "carol", "password": "carol-pass"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);

    let groups = s.get(&t, "/api/groups").await.1;
    let users = s.get(&t, "/api/auth/users").await.1;
    let group_log = s.get(&t, &format!("/api/logs/group/{gid}")).await.1;
    let summary = s.get(&t, "/api/logs/groups").await.1;
    let events = s.events().await;
    assert_eq!(events, 6);

    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |_| {}).await;
    Restarted {
        s,
        t,
        gid,
        tid,
        events,
        groups,
        users,
        group_log,
        summary,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_count_survives_a_restart() {
    let r = restarted().await;
    assert_eq!(r.s.events().await, r.events, "event count after restart");
    r.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_survives_a_restart() {
    let r = restarted().await;
    let (st, v) = r.s.get(&r.t, "/api/groups").await;
    assert_eq!(st, StatusCode::OK, "the old token still works: {v}");
    r.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_read_the_same_after_a_restart() {
    let r = restarted().await;
    assert_eq!(r.s.get(&r.t, "/api/groups").await.1, r.groups);
    r.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_read_the_same_after_a_restart() {
    let r = restarted().await;
    assert_eq!(r.s.get(&r.t, "/api/auth/users").await.1, r.users);
    r.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_log_reads_the_same_after_a_restart() {
    let r = restarted().await;
    assert_eq!(
        r.s.get(&r.t, &format!("/api/logs/group/{}", r.gid)).await.1,
        r.group_log
    );
    assert_eq!(r.s.get(&r.t, "/api/logs/groups").await.1, r.summary);
    r.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_status_and_comments_survive_a_restart() {
    let r = restarted().await;
    let (_, v) = r.s.get(&r.t, &format!("/api/tasks/{}", r.tid)).await;
    assert_eq!(v["task"]["status"], "Approved");
    assert_eq!(v["task"]["comments"][0]["text"], "still here");
    r.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_log_continues_without_a_gap_after_a_restart() {
    let r = restarted().await;
    let (st, _) =
        r.s.put(
            &r.t,
            &format!("/api/groups/{}", r.gid),
            json!({"name": "Persisted 2"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r.s.events().await, r.events + 1);
    let entries = logs(&r.s, &r.t, &format!("/api/logs/group/{}?limit=1", r.gid)).await;
    assert_eq!(entries[0]["id"], json!(r.events + 1));
    r.s.stop().await;
}

// ───────────────────────────── concurrency ─────────────────────────────

/// Group "Busy" after 50 concurrent task creations; `start` is the event count
/// before them and `ids` the ids the answers gave.
struct Busy {
    s: TestServer,
    t: String,
    gid: String,
    start: u64,
    ids: HashSet<String>,
}

async fn busy() -> Busy {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let g = s.create_group(&t, "Busy").await;
    let gid = str_of(&g, "_id").to_string();
    let start = s.events().await;

    let mut handles = Vec::new();
    for i in 0..50 {
        let client = s.client.clone();
        let url = s.url(&format!("/api/groups/{gid}/tasks"));
        let token = t.clone();
        handles.push(tokio::spawn(async move {
            let resp = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"name": format!("task {i}")}))
                .send()
                .await
                .expect("request");
            let status = resp.status();
            let v: Value = resp.json().await.expect("JSON answer");
            (i, status, v)
        }));
    }
    let mut ids = HashSet::new();
    for h in handles {
        let (i, status, v) = h.await.expect("task joined");
        assert_eq!(status, StatusCode::CREATED, "task {i}: {v}");
        assert_eq!(v["task"]["name"], json!(format!("task {i}")));
        assert!(
            ids.insert(str_of(&v["task"], "_id").to_string()),
            "duplicate id"
        );
    }
    Busy {
        s,
        t,
        gid,
        start,
        ids,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_task_creations_all_succeed_with_distinct_ids() {
    let b = busy().await;
    assert_eq!(b.ids.len(), 50);
    assert_eq!(b.s.events().await, b.start + 50);
    b.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrently_created_tasks_are_all_listed() {
    let b = busy().await;
    let (_, v) = b.s.get(&b.t, &format!("/api/groups/{}", b.gid)).await;
    assert_eq!(v["group"]["taskCount"], 50);
    let listed: HashSet<String> = arr(&v["group"], "tasks")
        .iter()
        .map(|x| str_of(x, "_id").to_string())
        .collect();
    assert_eq!(listed, b.ids, "every created task is listed");
    b.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creations_log_one_entry_each_without_gaps() {
    let b = busy().await;
    let entries = logs(&b.s, &b.t, &format!("/api/logs/group/{}", b.gid)).await;
    assert_eq!(entries.len(), 51);
    assert_newest_first(&entries, "busy log");
    let seqs = ids_of(&entries);
    assert_eq!(seqs[0], b.start + 50);
    assert_eq!(*seqs.last().unwrap(), b.start, "the group's creation");
    b.s.stop().await;
}
