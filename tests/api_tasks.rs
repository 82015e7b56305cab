//! SPEC §2 Tasks: the task shape and defaults, name, description, status and
//! date rules on create and update, the status route, and delete (which takes
//! the task's comments along); a rejected request writes no event (§5).

mod common;

use std::time::Duration;

use common::shapes::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A server, an admin token and one empty group `G`.
struct InGroup {
    s: TestServer,
    t: String,
    gid: String,
}

impl InGroup {
    fn tasks_path(&self) -> String {
        format!("/api/groups/{}/tasks", self.gid)
    }

    /// The ids of the group's tasks, in the order the group lists them.
    async fn task_ids(&self) -> Vec<String> {
        let (st, v) = self
            .s
            .get(&self.t, &format!("/api/groups/{}", self.gid))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        arr(&v["group"], "tasks")
            .iter()
            .map(|t| str_of(t, "_id").to_string())
            .collect()
    }
}

async fn in_group() -> InGroup {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let g = s.create_group(&t, "G").await;
    let gid = str_of(&g, "_id").to_string();
    InGroup { s, t, gid }
}

/// Posts each body as a new task of the group and asserts a 400 that wrote
/// nothing.
async fn assert_create_refused(g: &InGroup, bodies: Vec<Value>) {
    let start = g.s.events().await;
    for body in bodies {
        let what = format!("create task {}", short(&body));
        assert_error(
            g.s.post(&g.t, &g.tasks_path(), body).await,
            StatusCode::BAD_REQUEST,
            &what,
        );
    }
    assert_eq!(g.s.events().await, start, "bad input wrote events");
    assert_eq!(g.task_ids().await, Vec::<String>::new());
}

/// PUTs `body` on `task` and checks the answer: every field of `want`, the
/// same ids and createdAt, a later updatedAt, GET agreeing, one event.
async fn assert_update(g: &InGroup, task: &Value, body: Value, want: Value) {
    let tp = format!("/api/tasks/{}", str_of(task, "_id"));
    let before = g.s.events().await;
    // Timestamps have millisecond resolution: without a pause the update can
    // land in the millisecond of the creation and updatedAt could not move.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let (st, v) = g.s.put(&g.t, &tp, body.clone()).await;
    assert_eq!(st, StatusCode::OK, "PUT {body}: {v}");
    let got = &v["task"];
    assert_task(got, "updated task");
    for (k, w) in want.as_object().expect("want is an object") {
        assert_eq!(&got[k], w, "after PUT {body}: field {k}");
    }
    assert_eq!(got["_id"], task["_id"]);
    assert_eq!(got["groupId"], json!(g.gid));
    assert_eq!(got["createdAt"], task["createdAt"]);
    assert!(
        str_of(got, "updatedAt") > str_of(task, "updatedAt"),
        "updatedAt did not move"
    );
    let (_, fetched) = g.s.get(&g.t, &tp).await;
    assert_eq!(fetched["task"], *got, "GET after PUT {body}");
    assert_eq!(g.s.events().await, before + 1, "one event per PUT");
}

// ───────────────────────────── create ─────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_task_has_the_task_shape_and_defaults() {
    let g = in_group().await;
    let start = g.s.events().await;
    let (st, v) =
        g.s.post(&g.t, &g.tasks_path(), json!({"name": "  Feature X "}))
            .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["success"], true);
    let task = &v["task"];
    assert_task(task, "new task");
    assert_eq!(task["name"], "Feature X");
    assert_eq!(task["groupId"], json!(g.gid));
    assert_eq!(task["status"], "New");
    assert_eq!(task["description"], "");
    assert_eq!(task["startDate"], Value::Null);
    assert_eq!(task["endDate"], Value::Null);
    assert_eq!(task["comments"], json!([]));
    assert_eq!(task["commentCount"], 0);
    assert_eq!(task["createdAt"], task["updatedAt"]);
    assert_eq!(g.s.events().await, start + 1, "one event per created task");
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_with_every_field_is_created_and_read_back_as_given() {
    let g = in_group().await;
    let full =
        g.s.create_task(
            &g.t,
            &g.gid,
            json!({"name": "Full", "description": "all fields", "status": "Backlog",
                   "startDate": "2025-01-02", "endDate": "2025-03-04"}),
        )
        .await;
    assert_eq!(full["description"], "all fields");
    assert_eq!(full["status"], "Backlog");
    assert_eq!(full["startDate"], "2025-01-02");
    assert_eq!(full["endDate"], "2025-03-04");
    let (st, v) =
        g.s.get(&g.t, &format!("/api/tasks/{}", str_of(&full, "_id")))
            .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_task(&v["task"], "fetched task");
    assert_eq!(v["task"], full, "GET answers what POST answered");
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_may_be_created_in_every_status() {
    let g = in_group().await;
    for status in STATUSES {
        let task =
            g.s.create_task(
                &g.t,
                &g.gid,
                json!({"name": format!("s {status}"), "status": status}),
            )
            .await;
        assert_eq!(task["status"], status);
    }
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_dates_and_a_10000_character_description_are_accepted() {
    let g = in_group().await;
    let nulls = g
        .s
        .create_task(
            &g.t,
            &g.gid,
            json!({"name": "nulls", "startDate": null, "endDate": null, "description": "d".repeat(10_000)}),
        )
        .await;
    assert_eq!(nulls["startDate"], Value::Null);
    assert_eq!(nulls["endDate"], Value::Null);
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leap_day_date_is_accepted() {
    let g = in_group().await;
    let leap =
        g.s.create_task(
            &g.t,
            &g.gid,
            json!({"name": "leap", "startDate": "2024-02-29"}),
        )
        .await;
    assert_eq!(leap["startDate"], "2024-02-29");
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_holds_its_created_tasks_in_creation_order() {
    let g = in_group().await;
    let start = g.s.events().await;
    let mut created = Vec::new();
    let mut bodies = vec![
        json!({"name": "  Feature X "}),
        json!({"name": "Full", "description": "all fields", "status": "Backlog",
               "startDate": "2025-01-02", "endDate": "2025-03-04"}),
    ];
    bodies.extend(
        STATUSES
            .iter()
            .map(|status| json!({"name": format!("s {status}"), "status": status})),
    );
    bodies.push(json!({"name": "nulls", "startDate": null, "endDate": null, "description": "d".repeat(10_000)}));
    bodies.push(json!({"name": "leap", "startDate": "2024-02-29"}));
    for body in bodies {
        let task = g.s.create_task(&g.t, &g.gid, body).await;
        created.push(str_of(&task, "_id").to_string());
    }
    assert_eq!(g.s.events().await, start + created.len() as u64);
    let (_, v) = g.s.get(&g.t, &format!("/api/groups/{}", g.gid)).await;
    assert_group(&v["group"], "group with tasks");
    let ids: Vec<&str> = arr(&v["group"], "tasks")
        .iter()
        .map(|t| str_of(t, "_id"))
        .collect();
    assert_eq!(ids, created);
    assert_eq!(v["group"]["taskCount"], json!(created.len()));
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_blank_mistyped_or_over_long_task_name_is_400() {
    let g = in_group().await;
    let bad = vec![
        json!({}),
        json!({"name": ""}),
        json!({"name": "  "}),
        json!({"name": "n".repeat(201)}),
        json!({"name": 1}),
        json!({"name": null}),
    ];
    assert_create_refused(&g, bad).await;
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_or_mistyped_task_description_is_400() {
    let g = in_group().await;
    let bad = vec![
        json!({"name": "x", "description": "d".repeat(10_001)}),
        json!({"name": "x", "description": 5}),
    ];
    assert_create_refused(&g, bad).await;
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_body_that_is_not_an_object_is_400() {
    let g = in_group().await;
    assert_create_refused(&g, vec![json!(["x"]), json!("x")]).await;
    g.s.stop().await;
}

/// Status names are exact, case and spacing included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_task_status_is_400() {
    let g = in_group().await;
    let bad = [
        json!("Done"),
        json!("new"),
        json!("in progress"),
        json!(""),
        json!(3),
        json!(["New"]),
    ]
    .into_iter()
    .map(|status| json!({"name": "x", "status": status}))
    .collect();
    assert_create_refused(&g, bad).await;
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_or_impossible_task_date_is_400() {
    let g = in_group().await;
    let mut bad = Vec::new();
    for date in [
        json!("2025-13-01"),
        json!("2025-2-3"),
        json!("x"),
        json!("2025-02-30"),
        json!("2023-02-29"),
        json!("2025-01-01T00:00:00Z"),
        json!("01-02-2025"),
        json!(""),
        json!(20250101),
    ] {
        bad.push(json!({"name": "x", "startDate": date.clone()}));
        bad.push(json!({"name": "x", "endDate": date}));
    }
    assert_create_refused(&g, bad).await;
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_in_unknown_group_is_404() {
    let g = in_group().await;
    let start = g.s.events().await;
    for id in [unknown_id(3), "garbage".to_string()] {
        assert_error(
            g.s.post(
                &g.t,
                &format!("/api/groups/{id}/tasks"),
                json!({"name": "x"}),
            )
            .await,
            StatusCode::NOT_FOUND,
            &format!("task in group {id}"),
        );
    }
    assert_eq!(g.s.events().await, start, "bad input wrote events");
    g.s.stop().await;
}

/// SPEC §2: "Dates are `YYYY-MM-DD` or null". A sign, a leading space or a
/// one-digit month is not that form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_or_padded_date_is_400_on_create() {
    let g = in_group().await;
    let events = g.s.events().await;
    let mut accepted = Vec::new();
    for date in ["+202-01-01", "-001-01-01", " 2025-1-01", "2025-01-1 "] {
        for field in ["startDate", "endDate"] {
            let (st, v) =
                g.s.post(&g.t, &g.tasks_path(), json!({"name": "x", field: date}))
                    .await;
            if st != StatusCode::BAD_REQUEST {
                accepted.push(format!(
                    "POST {field}={date:?} -> {st} {}",
                    v["task"][field]
                ));
            } else {
                assert_error_body(&v, "bad date");
            }
        }
    }
    assert!(
        accepted.is_empty(),
        "dates not in YYYY-MM-DD form were accepted:\n{}",
        accepted.join("\n")
    );
    assert_eq!(g.s.events().await, events);
    g.s.stop().await;
}

// ───────────────────────────── update ─────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_update_trims_the_name_and_keeps_the_rest() {
    let g = in_group().await;
    let task =
        g.s.create_task(
            &g.t,
            &g.gid,
            json!({"name": "Feature X", "startDate": "2025-01-01"}),
        )
        .await;
    assert_update(
        &g,
        &task,
        json!({"name": " Renamed "}),
        json!({"name": "Renamed", "description": "", "status": "New", "startDate": "2025-01-01", "endDate": null}),
    )
    .await;
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_update_sets_the_description() {
    let g = in_group().await;
    let task =
        g.s.create_task(
            &g.t,
            &g.gid,
            json!({"name": "Renamed", "startDate": "2025-01-01"}),
        )
        .await;
    assert_update(
        &g,
        &task,
        json!({"description": "desc"}),
        json!({"name": "Renamed", "description": "desc", "status": "New", "startDate": "2025-01-01", "endDate": null}),
    )
    .await;
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_update_sets_the_status() {
    let g = in_group().await;
    let task =
        g.s.create_task(
            &g.t,
            &g.gid,
            json!({"name": "Renamed", "description": "desc", "startDate": "2025-01-01"}),
        )
        .await;
    assert_update(
        &g,
        &task,
        json!({"status": "Completed"}),
        json!({"name": "Renamed", "description": "desc", "status": "Completed", "startDate": "2025-01-01", "endDate": null}),
    )
    .await;
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_update_sets_both_dates() {
    let g = in_group().await;
    let task = g
        .s
        .create_task(
            &g.t,
            &g.gid,
            json!({"name": "Renamed", "description": "desc", "status": "Completed", "startDate": "2025-01-01"}),
        )
        .await;
    assert_update(
        &g,
        &task,
        json!({"startDate": "2025-02-01", "endDate": "2025-02-10"}),
        json!({"name": "Renamed", "description": "desc", "status": "Completed", "startDate": "2025-02-01", "endDate": "2025-02-10"}),
    )
    .await;
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_update_with_null_clears_one_date() {
    let g = in_group().await;
    let task =
        g.s.create_task(
            &g.t,
            &g.gid,
            json!({"name": "Renamed", "description": "desc", "status": "Completed",
                   "startDate": "2025-02-01", "endDate": "2025-02-10"}),
        )
        .await;
    assert_update(
        &g,
        &task,
        json!({"startDate": null}),
        json!({"name": "Renamed", "description": "desc", "status": "Completed", "startDate": null, "endDate": "2025-02-10"}),
    )
    .await;
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_update_sets_several_fields_at_once() {
    let g = in_group().await;
    let task = g
        .s
        .create_task(
            &g.t,
            &g.gid,
            json!({"name": "Renamed", "description": "desc", "status": "Completed", "endDate": "2025-02-10"}),
        )
        .await;
    assert_update(
        &g,
        &task,
        json!({"endDate": null, "status": "Approved", "description": ""}),
        json!({"name": "Renamed", "description": "", "status": "Approved", "startDate": null, "endDate": null}),
    )
    .await;
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_task_update_is_400_and_changes_nothing() {
    let g = in_group().await;
    let task =
        g.s.create_task(&g.t, &g.gid, json!({"name": "Renamed"}))
            .await;
    let tp = format!("/api/tasks/{}", str_of(&task, "_id"));
    let events = g.s.events().await;
    let snapshot = g.s.get(&g.t, &tp).await.1;
    for body in [
        json!({"status": "nope"}),
        json!({"status": 1}),
        json!({"startDate": "2025-2-3"}),
        json!({"endDate": "2025-13-01"}),
        json!({"startDate": 5}),
        json!({"name": ""}),
        json!({"name": 5}),
        json!({"name": "n".repeat(201)}),
        json!({"description": "d".repeat(10_001)}),
        json!("Renamed"),
        json!([]),
    ] {
        let what = format!("PUT task {}", short(&body));
        assert_error(
            g.s.put(&g.t, &tp, body).await,
            StatusCode::BAD_REQUEST,
            &what,
        );
    }
    assert_eq!(g.s.get(&g.t, &tp).await.1, snapshot);
    assert_eq!(g.s.events().await, events, "bad input wrote events");
    g.s.stop().await;
}

/// SPEC §2: "Dates are `YYYY-MM-DD` or null", on update as on create.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_or_padded_date_is_400_on_update() {
    let g = in_group().await;
    let task = g.s.create_task(&g.t, &g.gid, json!({"name": "d"})).await;
    let tp = format!("/api/tasks/{}", str_of(&task, "_id"));
    let events = g.s.events().await;
    let mut accepted = Vec::new();
    for date in ["+202-01-01", "-001-01-01", " 2025-1-01", "2025-01-1 "] {
        for field in ["startDate", "endDate"] {
            let (st, v) = g.s.put(&g.t, &tp, json!({field: date})).await;
            if st != StatusCode::BAD_REQUEST {
                accepted.push(format!("PUT {field}={date:?} -> {st} {}", v["task"][field]));
            }
        }
    }
    assert!(
        accepted.is_empty(),
        "dates not in YYYY-MM-DD form were accepted:\n{}",
        accepted.join("\n")
    );
    assert_eq!(g.s.events().await, events);
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_of_unknown_or_garbage_task_id_is_404() {
    let g = in_group().await;
    for id in [unknown_id(4), "zzz".to_string()] {
        assert_error(
            g.s.put(&g.t, &format!("/api/tasks/{id}"), json!({"name": "x"}))
                .await,
            StatusCode::NOT_FOUND,
            &format!("PUT unknown task {id}"),
        );
    }
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_unknown_or_garbage_task_id_is_404() {
    let g = in_group().await;
    for id in [unknown_id(4), "zzz".to_string()] {
        assert_error(
            g.s.get(&g.t, &format!("/api/tasks/{id}")).await,
            StatusCode::NOT_FOUND,
            &format!("GET unknown task {id}"),
        );
    }
    g.s.stop().await;
}

// ───────────────────────────── status ─────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_route_sets_every_status_and_keeps_the_rest() {
    let g = in_group().await;
    let task =
        g.s.create_task(&g.t, &g.gid, json!({"name": "Renamed"}))
            .await;
    let sp = format!("/api/tasks/{}/status", str_of(&task, "_id"));
    let before = g.s.events().await;
    for status in STATUSES {
        let (st, v) = g.s.put(&g.t, &sp, json!({"status": status})).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_task(&v["task"], "status answer");
        assert_eq!(v["task"]["status"], status);
        assert_eq!(v["task"]["name"], "Renamed", "status change keeps the rest");
    }
    assert_eq!(
        g.s.events().await,
        before + 5,
        "one event per status change"
    );
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_status_body_is_400() {
    let g = in_group().await;
    let task = g.s.create_task(&g.t, &g.gid, json!({"name": "x"})).await;
    let sp = format!("/api/tasks/{}/status", str_of(&task, "_id"));
    let before = g.s.events().await;
    for body in [
        json!({}),
        json!({"status": null}),
        json!({"status": "bogus"}),
        json!({"status": "completed"}),
        json!({"status": 2}),
        json!({"name": "x"}),
        json!("Approved"),
    ] {
        assert_error(
            g.s.put(&g.t, &sp, body.clone()).await,
            StatusCode::BAD_REQUEST,
            &format!("PUT status {body}"),
        );
    }
    assert_eq!(g.s.events().await, before);
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_unknown_or_garbage_task_id_is_404() {
    let g = in_group().await;
    let before = g.s.events().await;
    for id in [unknown_id(5), "zzz".to_string()] {
        assert_error(
            g.s.put(
                &g.t,
                &format!("/api/tasks/{id}/status"),
                json!({"status": "New"}),
            )
            .await,
            StatusCode::NOT_FOUND,
            &format!("status of unknown task {id}"),
        );
    }
    assert_eq!(g.s.events().await, before);
    g.s.stop().await;
}

// ───────────────────────────── comments and delete ─────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_comment_count_follows_its_comments() {
    let g = in_group().await;
    let task = g.s.create_task(&g.t, &g.gid, json!({"name": "x"})).await;
    let tp = format!("/api/tasks/{}", str_of(&task, "_id"));
    for text in ["one", "two"] {
        let (st, v) =
            g.s.post(&g.t, &format!("{tp}/comments"), json!({"text": text}))
                .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    let (_, v) = g.s.get(&g.t, &tp).await;
    assert_eq!(v["task"]["commentCount"], 2);
    assert_eq!(arr(&v["task"], "comments").len(), 2);
    g.s.stop().await;
}

/// A task with two comments and a sibling task; answers (task path, sibling).
async fn task_with_comments_and_a_sibling(g: &InGroup) -> (String, Value) {
    let task = g.s.create_task(&g.t, &g.gid, json!({"name": "goes"})).await;
    let tp = format!("/api/tasks/{}", str_of(&task, "_id"));
    for text in ["one", "two"] {
        let (st, v) =
            g.s.post(&g.t, &format!("{tp}/comments"), json!({"text": text}))
                .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    let other =
        g.s.create_task(&g.t, &g.gid, json!({"name": "stays"}))
            .await;
    (tp, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_task_and_its_comments_are_404() {
    let g = in_group().await;
    let (tp, _) = task_with_comments_and_a_sibling(&g).await;
    let (st, v) = g.s.delete(&g.t, &tp).await;
    assert_eq!((st, v), (StatusCode::OK, json!({"success": true})));
    assert_error(
        g.s.get(&g.t, &tp).await,
        StatusCode::NOT_FOUND,
        "GET deleted task",
    );
    assert_error(
        g.s.get(&g.t, &format!("{tp}/comments")).await,
        StatusCode::NOT_FOUND,
        "comments of deleted task",
    );
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_task_twice_is_404() {
    let g = in_group().await;
    let task = g.s.create_task(&g.t, &g.gid, json!({"name": "goes"})).await;
    let tp = format!("/api/tasks/{}", str_of(&task, "_id"));
    let (st, v) = g.s.delete(&g.t, &tp).await;
    assert_eq!((st, v), (StatusCode::OK, json!({"success": true})));
    assert_error(
        g.s.delete(&g.t, &tp).await,
        StatusCode::NOT_FOUND,
        "delete twice",
    );
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_task_keeps_the_group_and_other_tasks() {
    let g = in_group().await;
    let (tp, other) = task_with_comments_and_a_sibling(&g).await;
    let (st, v) = g.s.delete(&g.t, &tp).await;
    assert_eq!((st, v), (StatusCode::OK, json!({"success": true})));
    let (_, v) = g.s.get(&g.t, &format!("/api/groups/{}", g.gid)).await;
    assert_eq!(v["group"]["taskCount"], 1);
    assert_eq!(v["group"]["tasks"][0]["_id"], other["_id"]);
    g.s.stop().await;
}
