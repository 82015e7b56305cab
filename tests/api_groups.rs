//! SPEC §2 Groups: the group shape, name and discussion limits, list, get,
//! update and delete (which takes the group's tasks and comments along), and
//! that a rejected request writes no event (§5).

mod common;

use std::time::Duration;

use common::shapes::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Posts each body as a new group and asserts a 400 that wrote nothing.
async fn assert_create_refused(s: &TestServer, t: &str, bodies: Vec<Value>) {
    let before = s.events().await;
    for body in bodies {
        let what = format!("create group {}", short(&body));
        assert_error(
            s.post(t, "/api/groups", body).await,
            StatusCode::BAD_REQUEST,
            &what,
        );
    }
    assert_eq!(s.events().await, before, "bad input wrote events");
    let (_, v) = s.get(t, "/api/groups").await;
    assert_eq!(arr(&v, "groups").len(), 0, "{v}");
}

/// Group B holding task `t1` with comments `c1` and `c2`, between empty groups A
/// and C.
struct ThreeGroups {
    s: TestServer,
    t: String,
    a: Value,
    b: Value,
    c: Value,
    tid: String,
}

async fn three_groups() -> ThreeGroups {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let a = s.create_group(&t, "A").await;
    let b = s.create_group(&t, "B").await;
    let c = s.create_group(&t, "C").await;
    let task = s
        .create_task(
            &t,
            str_of(&b, "_id"),
            json!({"name": "t1", "description": "first"}),
        )
        .await;
    let tid = str_of(&task, "_id").to_string();
    for text in ["c1", "c2"] {
        let (st, v) = s
            .post(
                &t,
                &format!("/api/tasks/{tid}/comments"),
                json!({"text": text}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    ThreeGroups { s, t, a, b, c, tid }
}

// ───────────────────────────── create ─────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_group_has_the_group_shape_and_a_trimmed_name() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let start = s.events().await;
    let (st, v) = s
        .post(
            &t,
            "/api/groups",
            json!({"name": "  Project Alpha \t", "discussion": "kick-off notes"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["success"], true);
    let g = &v["group"];
    assert_group(g, "created group");
    assert_eq!(g["name"], "Project Alpha", "name is trimmed");
    assert_eq!(g["discussion"], "kick-off notes");
    assert_eq!(g["taskCount"], 0);
    assert_eq!(g["tasks"], json!([]));
    assert_eq!(g["createdAt"], g["updatedAt"]);
    assert_eq!(s.events().await, start + 1, "one event per created group");
    let (_, v) = s.get(&t, "/api/groups").await;
    assert_eq!(arr(&v, "groups").len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_discussion_defaults_to_empty() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let (st, v) = s.post(&t, "/api/groups", json!({"name": "plain"})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["group"]["discussion"], "", "discussion defaults to empty");
    s.stop().await;
}

/// 200 characters, not bytes: multi-byte names count characters, and padding
/// is trimmed before counting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_name_of_200_characters_is_accepted() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let start = s.events().await;
    let ok_names = [
        "n".repeat(200),
        "é".repeat(200),
        format!("  {}  ", "m".repeat(200)),
    ];
    for name in &ok_names {
        let (st, v) = s.post(&t, "/api/groups", json!({"name": name})).await;
        assert_eq!(st, StatusCode::CREATED, "name of {} chars: {v}", name.len());
        assert_eq!(v["group"]["name"], json!(name.trim()));
    }
    assert_eq!(s.events().await, start + 3, "one event per created group");
    let (_, v) = s.get(&t, "/api/groups").await;
    assert_eq!(arr(&v, "groups").len(), 3);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_discussion_of_10000_characters_is_accepted() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let (st, v) = s
        .post(
            &t,
            "/api/groups",
            json!({"name": "long talk", "discussion": "d".repeat(10_000)}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(
        v["group"]["discussion"].as_str().map(str::len),
        Some(10_000)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_or_blank_group_name_is_400() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let bad = vec![
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "\t\n"}),
    ];
    assert_create_refused(&s, &t, bad).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_name_over_200_characters_is_400() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let bad = vec![
        json!({"name": "n".repeat(201)}),
        json!({"name": "é".repeat(201)}),
    ];
    assert_create_refused(&s, &t, bad).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_mistyped_group_name_is_400() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let bad = vec![
        json!({}),
        json!({"name": null}),
        json!({"name": 5}),
        json!({"name": ["a"]}),
        json!({"name": {"a": 1}}),
        json!({"name": true}),
        json!({"discussion": "no name"}),
    ];
    assert_create_refused(&s, &t, bad).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_or_mistyped_group_discussion_is_400() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let bad = vec![
        json!({"name": "ok", "discussion": "d".repeat(10_001)}),
        json!({"name": "ok", "discussion": 5}),
        json!({"name": "ok", "discussion": ["x"]}),
    ];
    assert_create_refused(&s, &t, bad).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_body_that_is_not_an_object_is_400() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let bad = vec![
        json!([{"name": "in an array"}]),
        json!("a string"),
        json!(42),
        json!(null),
        json!(true),
    ];
    assert_create_refused(&s, &t, bad).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_group_json_is_400() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let start = s.events().await;
    let auth = format!("Bearer {t}");
    for raw in [
        &b"{\"name\": \"x\""[..],
        b"",
        b"   ",
        b"name=x",
        b"{'name':'x'}",
    ] {
        assert_error(
            s.send_raw(Method::POST, "/api/groups", Some(&auth), raw.to_vec())
                .await,
            StatusCode::BAD_REQUEST,
            &format!("create group raw {:?}", String::from_utf8_lossy(raw)),
        );
    }
    assert_eq!(s.events().await, start, "bad input wrote events");
    let (_, v) = s.get(&t, "/api/groups").await;
    assert_eq!(arr(&v, "groups").len(), 0);
    s.stop().await;
}

// ───────────────────────────── list and get ─────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_groups_get_distinct_ids() {
    let g = three_groups().await;
    let (aid, bid, cid) = (
        str_of(&g.a, "_id"),
        str_of(&g.b, "_id"),
        str_of(&g.c, "_id"),
    );
    assert!(aid != bid && bid != cid && aid != cid, "ids must differ");
    g.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_list_is_oldest_first_with_tasks_and_comments() {
    let ThreeGroups { s, t, .. } = three_groups().await;
    let (st, v) = s.get(&t, "/api/groups").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let groups = arr(&v, "groups");
    let names: Vec<&str> = groups.iter().map(|g| str_of(g, "name")).collect();
    assert_eq!(names, ["A", "B", "C"]);
    for g in groups {
        assert_group(g, "listed group");
    }
    assert_eq!(groups[1]["taskCount"], 1);
    assert_eq!(groups[1]["tasks"][0]["commentCount"], 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_get_nests_tasks_with_comments_oldest_first() {
    let ThreeGroups { s, t, b, tid, .. } = three_groups().await;
    let bid = str_of(&b, "_id");
    let (st, v) = s.get(&t, &format!("/api/groups/{bid}")).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let g = &v["group"];
    assert_group(g, "fetched group");
    assert_eq!(g["_id"], json!(bid));
    assert_eq!(g["taskCount"], 1);
    assert_eq!(g["tasks"][0]["_id"], json!(tid));
    assert_eq!(g["tasks"][0]["description"], "first");
    let texts: Vec<&str> = arr(&g["tasks"][0], "comments")
        .iter()
        .map(|c| str_of(c, "text"))
        .collect();
    assert_eq!(texts, ["c1", "c2"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_unknown_or_garbage_group_id_is_404() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    for id in [unknown_id(7), "not-an-id".to_string(), "123".to_string()] {
        let p = format!("/api/groups/{id}");
        assert_error(
            s.get(&t, &p).await,
            StatusCode::NOT_FOUND,
            &format!("GET {p}"),
        );
    }
    s.stop().await;
}

// ───────────────────────────── update ─────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_update_trims_the_name_sets_the_discussion_and_moves_updated_at() {
    let ThreeGroups { s, t, b, .. } = three_groups().await;
    let bid = str_of(&b, "_id");
    // Timestamps have millisecond resolution: without a pause the update can
    // land in the millisecond of the creation and updatedAt could not move.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let (st, v) = s
        .put(
            &t,
            &format!("/api/groups/{bid}"),
            json!({"name": "  B2  ", "discussion": "new talk"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let g2 = &v["group"];
    assert_group(g2, "updated group");
    assert_eq!(g2["name"], "B2");
    assert_eq!(g2["discussion"], "new talk");
    assert_eq!(g2["createdAt"], b["createdAt"]);
    assert!(
        str_of(g2, "updatedAt") > str_of(&b, "updatedAt"),
        "updatedAt did not move: {} -> {}",
        b["updatedAt"],
        g2["updatedAt"]
    );
    assert_eq!(g2["taskCount"], 1, "tasks survive an update");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_update_of_the_discussion_alone_keeps_the_name() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let (st, v) = s
        .post(
            &t,
            "/api/groups",
            json!({"name": "B2", "discussion": "new talk"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let bid = str_of(&v["group"], "_id");
    let (st, v) = s
        .put(&t, &format!("/api/groups/{bid}"), json!({"discussion": ""}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["group"]["name"], "B2");
    assert_eq!(v["group"]["discussion"], "");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_update_is_visible_to_reads() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let b = s.create_group(&t, "B").await;
    let bid = str_of(&b, "_id");
    let (st, v) = s
        .put(&t, &format!("/api/groups/{bid}"), json!({"name": "B2"}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, v) = s.get(&t, &format!("/api/groups/{bid}")).await;
    assert_eq!(v["group"]["name"], "B2", "update is visible to reads");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_group_update_is_400_and_changes_nothing() {
    let ThreeGroups { s, t, b, .. } = three_groups().await;
    let bid = str_of(&b, "_id");
    let events = s.events().await;
    let snapshot = s.get(&t, &format!("/api/groups/{bid}")).await.1;
    for body in [
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "n".repeat(201)}),
        json!({"name": 3}),
        json!({"discussion": "d".repeat(10_001)}),
        json!({"discussion": false}),
        json!(["B3"]),
        json!("B3"),
    ] {
        assert_error(
            s.put(&t, &format!("/api/groups/{bid}"), body.clone()).await,
            StatusCode::BAD_REQUEST,
            &format!("update group {}", short(&body)),
        );
    }
    assert_eq!(s.get(&t, &format!("/api/groups/{bid}")).await.1, snapshot);
    assert_eq!(s.events().await, events, "bad input wrote events");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_of_unknown_or_garbage_group_id_is_404() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    for id in [unknown_id(7), "not-an-id".to_string(), "123".to_string()] {
        let p = format!("/api/groups/{id}");
        assert_error(
            s.put(&t, &p, json!({"name": "x"})).await,
            StatusCode::NOT_FOUND,
            &format!("PUT {p}"),
        );
    }
    s.stop().await;
}

// ───────────────────────────── delete ─────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_of_unknown_or_garbage_group_id_is_404() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    for id in [unknown_id(7), "not-an-id".to_string(), "123".to_string()] {
        let p = format!("/api/groups/{id}");
        assert_error(
            s.delete(&t, &p).await,
            StatusCode::NOT_FOUND,
            &format!("DELETE {p}"),
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_group_answers_success_and_keeps_the_others() {
    let ThreeGroups { s, t, a, b, c, .. } = three_groups().await;
    let bid = str_of(&b, "_id");
    let (st, v) = s.delete(&t, &format!("/api/groups/{bid}")).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"success": true}));
    let (_, v) = s.get(&t, "/api/groups").await;
    let ids: Vec<&str> = arr(&v, "groups").iter().map(|g| str_of(g, "_id")).collect();
    assert_eq!(ids, [str_of(&a, "_id"), str_of(&c, "_id")]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_group_its_tasks_and_their_comments_are_404() {
    let ThreeGroups { s, t, b, tid, .. } = three_groups().await;
    let bid = str_of(&b, "_id");
    let (st, v) = s.delete(&t, &format!("/api/groups/{bid}")).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let gone = [
        s.get(&t, &format!("/api/groups/{bid}")).await,
        s.get(&t, &format!("/api/tasks/{tid}")).await,
        s.get(&t, &format!("/api/tasks/{tid}/comments")).await,
        s.put(&t, &format!("/api/tasks/{tid}"), json!({"name": "x"}))
            .await,
        s.put(
            &t,
            &format!("/api/tasks/{tid}/status"),
            json!({"status": "New"}),
        )
        .await,
        s.post(
            &t,
            &format!("/api/tasks/{tid}/comments"),
            json!({"text": "x"}),
        )
        .await,
        s.post(
            &t,
            &format!("/api/groups/{bid}/tasks"),
            json!({"name": "x"}),
        )
        .await,
        s.delete(&t, &format!("/api/tasks/{tid}")).await,
        s.delete(&t, &format!("/api/groups/{bid}")).await,
    ];
    for (i, got) in gone.into_iter().enumerate() {
        assert_error(
            got,
            StatusCode::NOT_FOUND,
            &format!("after delete, request #{i}"),
        );
    }
    s.stop().await;
}

/// SPEC §12, read your writes: every 2xx answer to a write carries
/// `X-Taskledger-Seq`, the sequence of its last event (or of the log, for a
/// write that changed nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_answer_names_its_sequence() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let seq_of = |r: &reqwest::Response| -> u64 {
        r.headers()["x-taskledger-seq"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let send = |m: Method, path: String, body: Value| {
        s.client
            .request(m, s.url(&path))
            .bearer_auth(&t)
            .json(&body)
            .send()
    };
    let r = send(Method::POST, "/api/groups".into(), json!({"name": "G"}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(seq_of(&r), s.events().await);
    let gid = r.json::<Value>().await.unwrap()["group"]["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = send(
        Method::POST,
        format!("/api/groups/{gid}/tasks"),
        json!({"name": "T"}),
    )
    .await
    .unwrap();
    let tid = r.json::<Value>().await.unwrap()["task"]["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let writes = [
        (
            Method::PUT,
            format!("/api/groups/{gid}"),
            json!({"name": "G2"}),
        ),
        (
            Method::PUT,
            format!("/api/tasks/{tid}"),
            json!({"description": "d"}),
        ),
        (
            Method::PUT,
            format!("/api/tasks/{tid}/status"),
            json!({"status": "Completed"}),
        ),
        (
            Method::POST,
            format!("/api/tasks/{tid}/comments"),
            json!({"text": "c"}),
        ),
        // Changes nothing: the log's end.
        (
            Method::PUT,
            format!("/api/tasks/{tid}/status"),
            json!({"status": "Completed"}),
        ),
        (
            Method::POST,
            "/api/auth/users".into(),
            json!({"username": "u1", "password": "password-1"}),
        ),
        (Method::DELETE, format!("/api/tasks/{tid}"), json!({})),
        (Method::DELETE, format!("/api/groups/{gid}"), json!({})),
    ];
    for (m, path, body) in writes {
        let what = format!("{m} {path}");
        let r = send(m, path, body).await.unwrap();
        assert!(r.status().is_success(), "{what}: {}", r.status());
        assert_eq!(seq_of(&r), s.events().await, "{what}");
    }
    // A refused write carries none.
    let r = send(Method::POST, "/api/groups".into(), json!({"name": ""}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get("x-taskledger-seq").is_none());
}
