//! SPEC §2 Activity logs (and §5: one mutation, one event, one entry): entries
//! per group and task, their fields and sentences, summaries, history after
//! deletion, paging with `limit` and `before`, and ids with no history.

mod common;

use common::shapes::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Eight mutations in group "Project Alpha": Feature X created, updated,
/// status changed and commented on, the group updated, Feature Y created and
/// deleted. `first_seq..=last` are their event ids.
struct History {
    s: TestServer,
    t: String,
    gid: String,
    tid: String,
    t2id: String,
    first_seq: u64,
    last: u64,
}

async fn history() -> History {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let first_seq = s.events().await + 1;

    let g = s.create_group(&t, "Project Alpha").await;
    let gid = str_of(&g, "_id").to_string();
    let task = s.create_task(&t, &gid, json!({"name": "Feature X"})).await;
    let tid = str_of(&task, "_id").to_string();
    let tp = format!("/api/tasks/{tid}");
    assert_eq!(
        s.put(&t, &tp, json!({"description": "more"})).await.0,
        StatusCode::OK
    );
    assert_eq!(
        s.put(
            &t,
            &format!("{tp}/status"),
            json!({"status": "In Progress"})
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        s.post(&t, &format!("{tp}/comments"), json!({"text": "hi"}))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        s.put(
            &t,
            &format!("/api/groups/{gid}"),
            json!({"discussion": "d"})
        )
        .await
        .0,
        StatusCode::OK
    );
    let t2 = s.create_task(&t, &gid, json!({"name": "Feature Y"})).await;
    let t2id = str_of(&t2, "_id").to_string();
    assert_eq!(
        s.delete(&t, &format!("/api/tasks/{t2id}")).await.0,
        StatusCode::OK
    );
    let h = s.health().await;
    let last = h["lastEventId"].as_u64().expect("integer lastEventId");
    History {
        s,
        t,
        gid,
        tid,
        t2id,
        first_seq,
        last,
    }
}

impl History {
    async fn group_entries(&self) -> Vec<Value> {
        logs(&self.s, &self.t, &format!("/api/logs/group/{}", self.gid)).await
    }

    async fn delete_group(&self) {
        assert_eq!(
            self.s
                .delete(&self.t, &format!("/api/groups/{}", self.gid))
                .await
                .0,
            StatusCode::OK
        );
    }
}

// ───────────────────────────── entries ─────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mutation_appends_one_event() {
    let h = history().await;
    assert_eq!(h.last, h.first_seq + 7, "eight mutations, eight events");
    h.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_log_has_one_entry_per_mutation_newest_first_with_event_ids() {
    let h = history().await;
    let entries = h.group_entries().await;
    assert_eq!(entries.len(), 8, "{entries:#?}");
    assert_newest_first(&entries, "group log");
    let want_ids: Vec<u64> = (h.first_seq..=h.last).rev().collect();
    assert_eq!(
        ids_of(&entries),
        want_ids,
        "ids are the event sequence numbers"
    );
    h.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_log_entries_name_the_event_entity_group_task_and_user() {
    let h = history().await;
    let (gid, tid, t2id) = (h.gid.as_str(), h.tid.as_str(), h.t2id.as_str());
    // (event_type, entity, entity_id, task_id, task_name), oldest first
    type Expect<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<&'a str>);
    let expected: Vec<Expect> = vec![
        ("created", "Group", gid, None, None),
        ("created", "Task", tid, Some(tid), Some("Feature X")),
        ("updated", "Task", tid, Some(tid), Some("Feature X")),
        ("status_changed", "Task", tid, Some(tid), Some("Feature X")),
        ("commented", "Task", tid, Some(tid), Some("Feature X")),
        ("updated", "Group", gid, None, None),
        ("created", "Task", t2id, Some(t2id), Some("Feature Y")),
        ("deleted", "Task", t2id, Some(t2id), Some("Feature Y")),
    ];
    let entries = h.group_entries().await;
    assert_eq!(entries.len(), expected.len(), "{entries:#?}");
    for (e, (ty, entity, eid, task_id, task_name)) in entries.iter().rev().zip(&expected) {
        assert_eq!(e["event_type"], *ty, "{e}");
        assert_eq!(e["entity"], *entity, "{e}");
        assert_eq!(e["entity_id"], *eid, "{e}");
        assert_eq!(e["group_id"], json!(gid), "{e}");
        assert_eq!(e["group_name"], "Project Alpha", "{e}");
        assert_eq!(e["task_id"], json!(task_id), "{e}");
        assert_eq!(e["task_name"], json!(task_name), "{e}");
        assert_eq!(e["user_name"], "admin", "{e}");
        assert_eq!(e["workspace"], "default", "{e}");
    }
    h.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_changes_are_sentences_naming_the_entity() {
    let h = history().await;
    let entries = h.group_entries().await;
    let by_type = |ty: &str, ent: &str| -> Vec<String> {
        entries
            .iter()
            .filter(|e| e["event_type"] == ty && e["entity"] == ent)
            .map(|e| str_of(e, "changes").to_string())
            .collect()
    };
    assert_eq!(
        by_type("created", "Group"),
        ["Group 'Project Alpha' was created"]
    );
    assert_eq!(
        by_type("created", "Task"),
        [
            "Task 'Feature Y' was created",
            "Task 'Feature X' was created"
        ]
    );
    assert_eq!(by_type("deleted", "Task"), ["Task 'Feature Y' was deleted"]);
    for e in &entries {
        let ch = str_of(e, "changes");
        let name = e["task_name"].as_str().unwrap_or("Project Alpha");
        assert!(ch.contains(name), "changes {ch:?} should name {name:?}");
    }
    h.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_log_holds_only_that_task_newest_first() {
    let h = history().await;
    let task_entries = logs(&h.s, &h.t, &format!("/api/logs/task/{}", h.tid)).await;
    let types: Vec<&str> = task_entries
        .iter()
        .map(|e| str_of(e, "event_type"))
        .collect();
    assert_eq!(types, ["commented", "status_changed", "updated", "created"]);
    assert!(task_entries.iter().all(|e| e["task_id"] == json!(h.tid)));
    h.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_history_outlives_the_task() {
    let h = history().await;
    let t2_entries = logs(&h.s, &h.t, &format!("/api/logs/task/{}", h.t2id)).await;
    let types: Vec<&str> = t2_entries.iter().map(|e| str_of(e, "event_type")).collect();
    assert_eq!(types, ["deleted", "created"], "history outlives the task");
    h.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_summaries_count_entries_per_task() {
    let h = history().await;
    let (st, v) =
        h.s.get(&h.t, &format!("/api/logs/group/{}/tasks", h.gid))
            .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let tasks = arr(&v, "tasks");
    assert_eq!(tasks.len(), 2, "{v}");
    for ts in tasks {
        assert_keys(
            ts,
            &["task_id", "task_name", "log_count", "last_activity"],
            "task summary",
        );
        assert_ts(&ts["last_activity"], "task summary");
    }
    let x = tasks
        .iter()
        .find(|x| x["task_id"] == json!(h.tid))
        .expect("Feature X listed");
    assert_eq!(x["task_name"], "Feature X");
    assert_eq!(x["log_count"], 4);
    let y = tasks
        .iter()
        .find(|x| x["task_id"] == json!(h.t2id))
        .expect("Feature Y listed");
    assert_eq!(y["task_name"], "Feature Y");
    assert_eq!(y["log_count"], 2);
    h.s.stop().await;
}

// ───────────────────────────── after the group is deleted ─────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_history_outlives_the_group() {
    let h = history().await;
    h.delete_group().await;
    let entries = h.group_entries().await;
    assert_eq!(entries.len(), 9);
    assert_eq!(entries[0]["event_type"], "deleted");
    assert_eq!(entries[0]["entity"], "Group");
    assert_eq!(entries[0]["changes"], "Group 'Project Alpha' was deleted");
    assert_eq!(entries[0]["id"], json!(h.last + 1));
    h.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_history_outlives_its_group() {
    let h = history().await;
    h.delete_group().await;
    assert_eq!(
        logs(&h.s, &h.t, &format!("/api/logs/task/{}", h.tid))
            .await
            .len(),
        4
    );
    h.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_summary_lists_a_deleted_group_with_its_count() {
    let h = history().await;
    h.delete_group().await;
    let (st, v) = h.s.get(&h.t, "/api/logs/groups").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let groups = arr(&v, "groups");
    assert_eq!(groups.len(), 1, "{v}");
    assert_keys(
        &groups[0],
        &["group_id", "group_name", "log_count", "last_activity"],
        "group summary",
    );
    assert_eq!(groups[0]["group_id"], json!(h.gid));
    assert_eq!(groups[0]["group_name"], "Project Alpha");
    assert_eq!(groups[0]["log_count"], 9);
    assert_ts(&groups[0]["last_activity"], "group summary");
    h.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_summaries_outlive_the_group() {
    let h = history().await;
    h.delete_group().await;
    let (st, v) =
        h.s.get(&h.t, &format!("/api/logs/group/{}/tasks", h.gid))
            .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        arr(&v, "tasks").len(),
        2,
        "task summaries outlive the group: {v}"
    );
    h.s.stop().await;
}

// ───────────────────────────── paging ─────────────────────────────

/// Group "Paged" with 24 tasks: 25 log entries. `gp` is the group log path,
/// `tp` the log path of the first task.
struct Paged {
    s: TestServer,
    t: String,
    gid: String,
    gp: String,
    tp: String,
}

async fn paged(tasks: usize) -> Paged {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let g = s.create_group(&t, "Paged").await;
    let gid = str_of(&g, "_id").to_string();
    let mut first_task = String::new();
    for i in 0..tasks {
        let task = s
            .create_task(&t, &gid, json!({"name": format!("t{i}")}))
            .await;
        if i == 0 {
            first_task = str_of(&task, "_id").to_string();
        }
    }
    let gp = format!("/api/logs/group/{gid}");
    let tp = format!("/api/logs/task/{first_task}");
    Paged { s, t, gid, gp, tp }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_limit_covers_a_25_entry_log() {
    let p = paged(24).await;
    let all = logs(&p.s, &p.t, &p.gp).await;
    assert_eq!(all.len(), 25, "default limit covers 25 entries");
    assert_newest_first(&all, "full log");
    assert_eq!(logs(&p.s, &p.t, &format!("{}?limit=1000", p.gp)).await, all);
    p.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_joined_by_before_equal_the_whole_log() {
    let p = paged(24).await;
    let gp = &p.gp;
    let all = logs(&p.s, &p.t, gp).await;
    let mut paged = Vec::new();
    let mut sizes = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let q = match before {
            None => format!("{gp}?limit=10"),
            Some(b) => format!("{gp}?limit=10&before={b}"),
        };
        let page = logs(&p.s, &p.t, &q).await;
        sizes.push(page.len());
        if page.is_empty() {
            break;
        }
        assert_newest_first(&page, &q);
        if let Some(b) = before {
            assert!(
                ids_of(&page).iter().all(|&id| id < b),
                "{q} returned ids >= before"
            );
        }
        before = Some(page.last().unwrap()["id"].as_u64().unwrap());
        paged.extend(page);
        assert!(sizes.len() < 10, "paging does not end: {sizes:?}");
    }
    assert_eq!(sizes, [10, 10, 5, 0]);
    assert_eq!(
        paged, all,
        "pages joined equal the whole log: no overlap, no gap"
    );
    p.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_1_answers_the_newest_entry() {
    let p = paged(24).await;
    let all = logs(&p.s, &p.t, &p.gp).await;
    let one = logs(&p.s, &p.t, &format!("{}?limit=1", p.gp)).await;
    assert_eq!(one, all[..1].to_vec());
    p.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_log_pages_with_limit_and_before() {
    let p = paged(24).await;
    let task_log = logs(&p.s, &p.t, &format!("{}?limit=1", p.tp)).await;
    assert_eq!(task_log.len(), 1);
    assert_eq!(task_log[0]["event_type"], "created");
    let id = task_log[0]["id"].as_u64().unwrap();
    assert!(logs(&p.s, &p.t, &format!("{}?before={id}", p.tp))
        .await
        .is_empty());
    p.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_summaries_list_every_task_of_the_group() {
    let p = paged(24).await;
    let (_, v) =
        p.s.get(&p.t, &format!("/api/logs/group/{}/tasks", p.gid))
            .await;
    let tasks = arr(&v, "tasks");
    assert_eq!(tasks.len(), 24);
    assert!(tasks.iter().all(|x| x["log_count"] == 1), "{v}");
    p.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_outside_1_to_1000_or_not_an_integer_is_400() {
    let p = paged(1).await;
    for q in [
        "limit=0",
        "limit=1001",
        "limit=abc",
        "limit=-1",
        "limit=1.5",
        "limit=",
        "limit=99999999999999999999999",
    ] {
        for base in [&p.gp, &p.tp] {
            let path = format!("{base}?{q}");
            assert_error(p.s.get(&p.t, &path).await, StatusCode::BAD_REQUEST, &path);
        }
    }
    p.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_that_is_not_an_id_is_400() {
    let p = paged(1).await;
    for q in ["before=abc", "before=-3"] {
        for base in [&p.gp, &p.tp] {
            let path = format!("{base}?{q}");
            assert_error(p.s.get(&p.t, &path).await, StatusCode::BAD_REQUEST, &path);
        }
    }
    p.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_with_no_history_give_empty_lists() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    for id in [unknown_id(11), "not-an-id".to_string()] {
        for p in [
            format!("/api/logs/group/{id}"),
            format!("/api/logs/task/{id}"),
        ] {
            let (st, v) = s.get(&t, &p).await;
            assert_eq!(st, StatusCode::OK, "{p}: {v}");
            assert_eq!(v["logs"], json!([]), "{p}");
        }
        let p = format!("/api/logs/group/{id}/tasks");
        let (st, v) = s.get(&t, &p).await;
        assert_eq!(st, StatusCode::OK, "{p}: {v}");
        assert_eq!(v["tasks"], json!([]), "{p}");
    }
    s.stop().await;
}
