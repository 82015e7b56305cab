//! Black-box HTTP tests of SPEC §2 (API), §5 (one event per mutation, no gaps)
//! and §6 (what a 2xx wrote survives a restart). Each test runs its own server
//! over a temporary dir and logs in once (Argon2 is slow in debug builds).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const GROUP_KEYS: [&str; 7] = [
    "_id",
    "name",
    "discussion",
    "tasks",
    "taskCount",
    "createdAt",
    "updatedAt",
];
const TASK_KEYS: [&str; 11] = [
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
const COMMENT_KEYS: [&str; 7] = [
    "_id",
    "taskId",
    "text",
    "author",
    "timestamp",
    "createdAt",
    "updatedAt",
];
const LOG_KEYS: [&str; 12] = [
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
const USER_KEYS: [&str; 3] = ["_id", "username", "role"];
const STATUSES: [&str; 5] = ["New", "Backlog", "In Progress", "Completed", "Approved"];

/// A well-formed id that names nothing.
fn unknown_id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// A JSON body, cut to 80 characters for failure messages.
fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s,
    }
}

#[track_caller]
fn assert_group(g: &Value, what: &str) {
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
fn assert_task(t: &Value, what: &str) {
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
fn assert_comment(c: &Value, what: &str) {
    assert_keys(c, &COMMENT_KEYS, what);
    assert!(!str_of(c, "_id").is_empty(), "{what}: empty _id");
    assert_ts(&c["timestamp"], what);
    assert_ts(&c["createdAt"], what);
    assert_ts(&c["updatedAt"], what);
}

#[track_caller]
fn assert_log_entry(e: &Value, what: &str) {
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
async fn logs(s: &TestServer, token: &str, path: &str) -> Vec<Value> {
    let (st, v) = s.get(token, path).await;
    assert_eq!(st, StatusCode::OK, "GET {path}: {v}");
    let list = arr(&v, "logs").clone();
    for e in &list {
        assert_log_entry(e, path);
    }
    list
}

fn ids_of(list: &[Value]) -> Vec<u64> {
    list.iter()
        .map(|e| e["id"].as_u64().expect("integer id"))
        .collect()
}

#[track_caller]
fn assert_newest_first(list: &[Value], what: &str) {
    let ids = ids_of(list);
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "{what}: ids not strictly decreasing: {ids:?}"
    );
}

// ───────────────────────────── auth ─────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_login_tokens_and_logout() {
    let s = TestServer::start().await;

    // A good login.
    let (st, v) = s
        .send(
            Method::POST,
            "/api/auth/login",
            None,
            Some(&json!({"username": "admin", "password": ADMIN_PASSWORD})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_keys(&v, &["success", "token", "data"], "login answer");
    assert_eq!(v["success"], true);
    let token = str_of(&v, "token").to_string();
    assert!(
        token.len() >= 16,
        "token too short to be a secret: {token:?}"
    );
    assert_keys(&v["data"], &USER_KEYS, "login data");
    assert_eq!(v["data"]["username"], "admin");
    assert_eq!(v["data"]["role"], "admin");
    assert!(!str_of(&v["data"], "_id").is_empty());

    // Wrong password and unknown user: both 401, same message.
    let wrong = s
        .send(
            Method::POST,
            "/api/auth/login",
            None,
            Some(&json!({"username": "admin", "password": "not-the-password"})),
        )
        .await;
    let unknown = s
        .send(
            Method::POST,
            "/api/auth/login",
            None,
            Some(&json!({"username": "nobody-here", "password": ADMIN_PASSWORD})),
        )
        .await;
    assert_eq!(wrong.1["error"], unknown.1["error"], "messages differ");
    assert_error(wrong, StatusCode::UNAUTHORIZED, "wrong password");
    assert_error(unknown, StatusCode::UNAUTHORIZED, "unknown user");

    // Malformed login bodies: 400, never 401/422.
    let bad_bodies: [&[u8]; 12] = [
        br#"{"username":"admin"}"#,
        br#"{"password":"admin-password"}"#,
        b"{}",
        br#"{"username":"admin","password":"admin-password""#,
        b"not json",
        b"",
        br#"{"username":"admin","password":12345678}"#,
        br#"{"username":["admin"],"password":"admin-password"}"#,
        br#"{"username":null,"password":"admin-password"}"#,
        b"[]",
        br#""admin""#,
        b"42",
    ];
    for body in bad_bodies {
        let what = format!("login body {:?}", String::from_utf8_lossy(body));
        assert_error(
            s.send_raw(Method::POST, "/api/auth/login", None, body.to_vec())
                .await,
            StatusCode::BAD_REQUEST,
            &what,
        );
    }

    // Every protected route wants a token.
    let g = unknown_id(1);
    let protected: Vec<(Method, String)> = vec![
        (Method::GET, "/api/groups".into()),
        (Method::POST, "/api/groups".into()),
        (Method::GET, format!("/api/groups/{g}")),
        (Method::PUT, format!("/api/groups/{g}")),
        (Method::DELETE, format!("/api/groups/{g}")),
        (Method::POST, format!("/api/groups/{g}/tasks")),
        (Method::GET, format!("/api/tasks/{g}")),
        (Method::PUT, format!("/api/tasks/{g}")),
        (Method::DELETE, format!("/api/tasks/{g}")),
        (Method::PUT, format!("/api/tasks/{g}/status")),
        (Method::GET, format!("/api/tasks/{g}/comments")),
        (Method::POST, format!("/api/tasks/{g}/comments")),
        (Method::GET, "/api/logs/groups".into()),
        (Method::GET, format!("/api/logs/group/{g}")),
        (Method::GET, format!("/api/logs/group/{g}/tasks")),
        (Method::GET, format!("/api/logs/task/{g}")),
        (Method::GET, "/api/auth/users".into()),
        (Method::POST, "/api/auth/users".into()),
        (Method::POST, "/api/auth/logout".into()),
    ];
    let body = json!({"name": "x", "text": "x", "status": "New", "username": "u1", "password": "12345678"});
    for (m, path) in &protected {
        let with_body = matches!(*m, Method::POST | Method::PUT);
        let got = s
            .send(m.clone(), path, None, with_body.then_some(&body))
            .await;
        assert_error(
            got,
            StatusCode::UNAUTHORIZED,
            &format!("{m} {path} without token"),
        );
    }

    // Malformed or garbage Authorization headers.
    let headers = [
        format!("Token {token}"),
        token.clone(),
        "Bearer".to_string(),
        "Bearer ".to_string(),
        "Basic YWRtaW46YWRtaW4tcGFzc3dvcmQ=".to_string(),
        "Bearer garbage".to_string(),
        format!("Bearer {token}x"),
        format!("Bearer {}", &token[1..]),
        format!("Bearer {token} {token}"),
    ];
    for h in &headers {
        assert_error(
            s.send_raw(Method::GET, "/api/groups", Some(h), Vec::new())
                .await,
            StatusCode::UNAUTHORIZED,
            &format!("Authorization: {h:?}"),
        );
    }

    // The token works; users never show a hash or password.
    let (st, v) = s.get(&token, "/api/groups").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["groups"], json!([]));
    let (st, v) = s.get(&token, "/api/auth/users").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let users = arr(&v, "users");
    assert_eq!(users.len(), 1, "{v}");
    assert_keys(&users[0], &USER_KEYS, "user");
    assert_eq!(users[0]["username"], "admin");
    assert_eq!(users[0]["role"], "admin");
    let text = v.to_string().to_lowercase();
    assert!(
        !text.contains("hash") && !text.contains("password") && !text.contains("argon"),
        "user list leaks secrets: {v}"
    );

    // Logout revokes exactly that token.
    let other = s.admin_token().await;
    assert_ne!(other, token, "two logins gave the same token");
    let (st, v) = s
        .send(Method::POST, "/api/auth/logout", Some(&token), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["success"], true);
    assert_error(
        s.get(&token, "/api/groups").await,
        StatusCode::UNAUTHORIZED,
        "revoked token",
    );
    assert_error(
        s.send(Method::POST, "/api/auth/logout", Some(&token), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "logout twice",
    );
    let (st, v) = s.get(&other, "/api/groups").await;
    assert_eq!(st, StatusCode::OK, "the other session survives: {v}");

    // None of this was a mutation: only the admin's creation is in the log.
    assert_eq!(s.events().await, 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_rejected() {
    let s = TestServer::start_with(|cfg| cfg.token_ttl_secs = 1).await;
    let token = s.admin_token().await;
    let (st, v) = s.get(&token, "/api/groups").await;
    assert_eq!(st, StatusCode::OK, "fresh token: {v}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_error(
        s.get(&token, "/api/groups").await,
        StatusCode::UNAUTHORIZED,
        "expired token",
    );
    assert_error(
        s.post(&token, "/api/groups", json!({"name": "late"})).await,
        StatusCode::UNAUTHORIZED,
        "expired token, mutation",
    );
    assert_eq!(s.events().await, 1, "the rejected mutation wrote an event");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_creation_rules_and_member_role() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let before = s.events().await;

    // Role defaults to member; 8 characters is the shortest password.
    let (st, v) = s
        .post(
            &admin,
            "/api/auth/users",
            json!({"username": "alice", "password": "12345678"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_keys(&v["user"], &USER_KEYS, "created user");
    assert_eq!(v["user"]["username"], "alice");
    assert_eq!(v["user"]["role"], "member");
    let text = v.to_string().to_lowercase();
    assert!(!text.contains("hash") && !text.contains("12345678"), "{v}");

    // 64-character username, 256-character password, explicit admin role.
    let long_name = "u".repeat(64);
    let (st, v) = s
        .post(
            &admin,
            "/api/auth/users",
            json!({"username": long_name, "password": "p".repeat(256), "role": "admin"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["user"]["username"], json!(long_name));
    assert_eq!(v["user"]["role"], "admin");
    assert_eq!(s.events().await, before + 2, "one event per created user");

    // Taken names conflict.
    for body in [
        json!({"username": "alice", "password": "another-password"}),
        json!({"username": "admin", "password": "another-password", "role": "member"}),
    ] {
        assert_error(
            s.post(&admin, "/api/auth/users", body.clone()).await,
            StatusCode::CONFLICT,
            &format!("duplicate {body}"),
        );
    }

    // Invalid input.
    let bad = [
        json!({"username": "a b", "password": "12345678"}),
        json!({"username": " lead", "password": "12345678"}),
        json!({"username": "tab\tname", "password": "12345678"}),
        json!({"username": "new\nline", "password": "12345678"}),
        json!({"username": "u".repeat(65), "password": "12345678"}),
        json!({"username": "", "password": "12345678"}),
        json!({"username": "bob", "password": "1234567"}),
        json!({"username": "bob", "password": "p".repeat(257)}),
        json!({"username": "bob", "password": ""}),
        json!({"username": "bob", "password": "12345678", "role": "owner"}),
        json!({"username": "bob", "password": "12345678", "role": "Admin"}),
        json!({"username": "bob", "password": "12345678", "role": ""}),
        json!({"username": "bob", "password": "12345678", "role": 1}),
        json!({"username": "bob"}),
        json!({"password": "12345678"}),
        json!({"username": 7, "password": "12345678"}),
        json!({"username": "bob", "password": 12345678}),
        json!(["bob", "12345678"]),
        json!("bob"),
    ];
    for body in bad {
        assert_error(
            s.post(&admin, "/api/auth/users", body.clone()).await,
            StatusCode::BAD_REQUEST,
            &format!("create user {body}"),
        );
    }
    assert_error(
        s.send_raw(
            Method::POST,
            "/api/auth/users",
            Some(&format!("Bearer {admin}")),
            b"{\"username\":".to_vec(),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "create user, bad JSON",
    );
    assert_eq!(
        s.events().await,
        before + 2,
        "a rejected user wrote an event"
    );

    // Racing creations of one name: exactly one wins, the others conflict.
    let racers: Vec<_> = (0..3)
        .map(|i| {
            let client = s.client.clone();
            let url = s.url("/api/auth/users");
            let token = admin.clone();
            tokio::spawn(async move {
                let resp = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"username": "dave", "password": format!("dave-pass-{i}")}))
                    .send()
                    .await
                    .expect("request");
                let st = resp.status();
                (st, resp.json::<Value>().await.expect("JSON answer"))
            })
        })
        .collect();
    let mut codes = Vec::new();
    for r in racers {
        let (st, v) = r.await.expect("joined");
        if st != StatusCode::CREATED {
            assert_error((st, v), StatusCode::CONFLICT, "racing user creation");
        }
        codes.push(st);
    }
    assert_eq!(
        codes.iter().filter(|c| **c == StatusCode::CREATED).count(),
        1,
        "{codes:?}"
    );
    assert_eq!(s.events().await, before + 3, "one event for the race");

    let (st, v) = s.get(&admin, "/api/auth/users").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let mut names: Vec<&str> = arr(&v, "users")
        .iter()
        .map(|u| str_of(u, "username"))
        .collect();
    names.sort_unstable();
    assert_eq!(names, vec!["admin", "alice", "dave", long_name.as_str()]);

    // A member logs in, works with groups, tasks, comments and logs…
    let (st, v) = s
        .send(
            Method::POST,
            "/api/auth/login",
            None,
            Some(&json!({"username": "alice", "password": "12345678"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["role"], "member");
    let member = str_of(&v, "token").to_string();

    let group = s.create_group(&member, "Member group").await;
    let gid = str_of(&group, "_id");
    let task = s.create_task(&member, gid, json!({"name": "m-task"})).await;
    let tid = str_of(&task, "_id");
    let (st, v) = s
        .put(
            &member,
            &format!("/api/tasks/{tid}/status"),
            json!({"status": "Completed"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["task"]["status"], "Completed");
    let (st, v) = s
        .post(
            &member,
            &format!("/api/tasks/{tid}/comments"),
            json!({"text": "member note"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["comment"]["author"], "alice");
    let entries = logs(&s, &member, &format!("/api/logs/group/{gid}")).await;
    assert_eq!(entries.len(), 4);
    assert!(
        entries.iter().all(|e| e["user_name"] == "alice"),
        "{entries:?}"
    );
    let (st, v) = s.get(&member, "/api/auth/users").await;
    assert_eq!(st, StatusCode::OK, "members may list users: {v}");
    let (st, v) = s.delete(&member, &format!("/api/tasks/{tid}")).await;
    assert_eq!((st, v), (StatusCode::OK, json!({"success": true})));
    let (st, v) = s.delete(&member, &format!("/api/groups/{gid}")).await;
    assert_eq!((st, v), (StatusCode::OK, json!({"success": true})));

    // …but may not create users.
    let after_work = s.events().await;
    assert_error(
        s.post(
            &member,
            "/api/auth/users",
            json!({"username": "mallory", "password": "12345678"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "member creates a user",
    );
    assert_error(
        s.post(
            &member,
            "/api/auth/users",
            json!({"username": "mallory", "password": "12345678", "role": "admin"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "member creates an admin",
    );
    assert_eq!(s.events().await, after_work);
    let (_, v) = s.get(&admin, "/api/auth/users").await;
    assert_eq!(arr(&v, "users").len(), 4, "{v}");
    s.stop().await;
}

// ───────────────────────────── groups ─────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_creation_shape_and_validation() {
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

    let (st, v) = s.post(&t, "/api/groups", json!({"name": "plain"})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["group"]["discussion"], "", "discussion defaults to empty");

    // Boundaries that are fine: 200 characters (also multi-byte, also padded),
    // a 10,000-character discussion.
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
    let created = 6;
    assert_eq!(s.events().await, start + created);

    // Invalid input.
    let bad = [
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "\t\n"}),
        json!({"name": "n".repeat(201)}),
        json!({"name": "é".repeat(201)}),
        json!({}),
        json!({"name": null}),
        json!({"name": 5}),
        json!({"name": ["a"]}),
        json!({"name": {"a": 1}}),
        json!({"name": true}),
        json!({"discussion": "no name"}),
        json!({"name": "ok", "discussion": "d".repeat(10_001)}),
        json!({"name": "ok", "discussion": 5}),
        json!({"name": "ok", "discussion": ["x"]}),
        json!([{"name": "in an array"}]),
        json!("a string"),
        json!(42),
        json!(null),
        json!(true),
    ];
    for body in bad {
        let what = format!("create group {}", short(&body));
        assert_error(
            s.post(&t, "/api/groups", body).await,
            StatusCode::BAD_REQUEST,
            &what,
        );
    }
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
    assert_eq!(s.events().await, start + created, "bad input wrote events");
    let (_, v) = s.get(&t, "/api/groups").await;
    assert_eq!(arr(&v, "groups").len(), created as usize);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_list_get_update_delete() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;

    let a = s.create_group(&t, "A").await;
    let b = s.create_group(&t, "B").await;
    let c = s.create_group(&t, "C").await;
    let (aid, bid, cid) = (str_of(&a, "_id"), str_of(&b, "_id"), str_of(&c, "_id"));
    assert!(aid != bid && bid != cid && aid != cid, "ids must differ");

    // A task with two comments in B.
    let task = s
        .create_task(&t, bid, json!({"name": "t1", "description": "first"}))
        .await;
    let tid = str_of(&task, "_id");
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

    // List: oldest first, each with its tasks and their comments.
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

    // Get: tasks with comments nested, comments oldest first.
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

    // Update: name trimmed, discussion set, updatedAt moves, createdAt stays.
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
    // Only the discussion: the name stays.
    let (st, v) = s
        .put(&t, &format!("/api/groups/{bid}"), json!({"discussion": ""}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["group"]["name"], "B2");
    assert_eq!(v["group"]["discussion"], "");
    let (_, v) = s.get(&t, &format!("/api/groups/{bid}")).await;
    assert_eq!(v["group"]["name"], "B2", "update is visible to reads");

    // Bad updates change nothing.
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

    // Unknown and garbage ids: 404 everywhere.
    for id in [unknown_id(7), "not-an-id".to_string(), "123".to_string()] {
        let p = format!("/api/groups/{id}");
        assert_error(
            s.get(&t, &p).await,
            StatusCode::NOT_FOUND,
            &format!("GET {p}"),
        );
        assert_error(
            s.put(&t, &p, json!({"name": "x"})).await,
            StatusCode::NOT_FOUND,
            &format!("PUT {p}"),
        );
        assert_error(
            s.delete(&t, &p).await,
            StatusCode::NOT_FOUND,
            &format!("DELETE {p}"),
        );
    }

    // Delete B: it, its task and the task's comments are gone.
    let (st, v) = s.delete(&t, &format!("/api/groups/{bid}")).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"success": true}));
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
    let (_, v) = s.get(&t, "/api/groups").await;
    let ids: Vec<&str> = arr(&v, "groups").iter().map(|g| str_of(g, "_id")).collect();
    assert_eq!(ids, [aid, cid]);
    s.stop().await;
}

// ───────────────────────────── tasks ─────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_creation_shape_and_validation() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let g = s.create_group(&t, "G").await;
    let gid = str_of(&g, "_id").to_string();
    let path = format!("/api/groups/{gid}/tasks");
    let start = s.events().await;
    let mut created = Vec::new();

    let (st, v) = s.post(&t, &path, json!({"name": "  Feature X "})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["success"], true);
    let task = &v["task"];
    assert_task(task, "new task");
    assert_eq!(task["name"], "Feature X");
    assert_eq!(task["groupId"], json!(gid));
    assert_eq!(task["status"], "New");
    assert_eq!(task["description"], "");
    assert_eq!(task["startDate"], Value::Null);
    assert_eq!(task["endDate"], Value::Null);
    assert_eq!(task["comments"], json!([]));
    assert_eq!(task["commentCount"], 0);
    assert_eq!(task["createdAt"], task["updatedAt"]);
    created.push(str_of(task, "_id").to_string());

    let full = s
        .create_task(
            &t,
            &gid,
            json!({"name": "Full", "description": "all fields", "status": "Backlog",
                   "startDate": "2025-01-02", "endDate": "2025-03-04"}),
        )
        .await;
    assert_eq!(full["description"], "all fields");
    assert_eq!(full["status"], "Backlog");
    assert_eq!(full["startDate"], "2025-01-02");
    assert_eq!(full["endDate"], "2025-03-04");
    created.push(str_of(&full, "_id").to_string());

    for status in STATUSES {
        let task = s
            .create_task(
                &t,
                &gid,
                json!({"name": format!("s {status}"), "status": status}),
            )
            .await;
        assert_eq!(task["status"], status);
        created.push(str_of(&task, "_id").to_string());
    }
    let nulls = s
        .create_task(
            &t,
            &gid,
            json!({"name": "nulls", "startDate": null, "endDate": null, "description": "d".repeat(10_000)}),
        )
        .await;
    assert_eq!(nulls["startDate"], Value::Null);
    assert_eq!(nulls["endDate"], Value::Null);
    created.push(str_of(&nulls, "_id").to_string());
    let leap = s
        .create_task(&t, &gid, json!({"name": "leap", "startDate": "2024-02-29"}))
        .await;
    assert_eq!(leap["startDate"], "2024-02-29");
    created.push(str_of(&leap, "_id").to_string());
    assert_eq!(s.events().await, start + created.len() as u64);

    // Invalid input.
    let mut bad = vec![
        json!({}),
        json!({"name": ""}),
        json!({"name": "  "}),
        json!({"name": "n".repeat(201)}),
        json!({"name": 1}),
        json!({"name": null}),
        json!({"name": "x", "description": "d".repeat(10_001)}),
        json!({"name": "x", "description": 5}),
        json!(["x"]),
        json!("x"),
    ];
    for status in [
        json!("Done"),
        json!("new"),
        json!("in progress"),
        json!(""),
        json!(3),
        json!(["New"]),
    ] {
        bad.push(json!({"name": "x", "status": status}));
    }
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
    for body in bad {
        let what = format!("create task {}", short(&body));
        assert_error(
            s.post(&t, &path, body).await,
            StatusCode::BAD_REQUEST,
            &what,
        );
    }

    // Unknown group.
    for id in [unknown_id(3), "garbage".to_string()] {
        assert_error(
            s.post(&t, &format!("/api/groups/{id}/tasks"), json!({"name": "x"}))
                .await,
            StatusCode::NOT_FOUND,
            &format!("task in group {id}"),
        );
    }
    assert_eq!(
        s.events().await,
        start + created.len() as u64,
        "bad input wrote events"
    );

    // The group holds exactly the created tasks, in creation order; each GETs back.
    let (_, v) = s.get(&t, &format!("/api/groups/{gid}")).await;
    assert_group(&v["group"], "group with tasks");
    let ids: Vec<&str> = arr(&v["group"], "tasks")
        .iter()
        .map(|t| str_of(t, "_id"))
        .collect();
    assert_eq!(ids, created);
    assert_eq!(v["group"]["taskCount"], json!(created.len()));
    let (st, v) = s.get(&t, &format!("/api/tasks/{}", created[1])).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_task(&v["task"], "fetched task");
    assert_eq!(v["task"], full, "GET answers what POST answered");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_update_status_and_delete() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let g = s.create_group(&t, "G").await;
    let gid = str_of(&g, "_id").to_string();
    let task = s
        .create_task(
            &t,
            &gid,
            json!({"name": "Feature X", "startDate": "2025-01-01"}),
        )
        .await;
    let tid = str_of(&task, "_id").to_string();
    let tp = format!("/api/tasks/{tid}");

    tokio::time::sleep(Duration::from_millis(10)).await;
    let steps: Vec<(Value, Value)> = vec![
        (
            json!({"name": " Renamed "}),
            json!({"name": "Renamed", "description": "", "status": "New", "startDate": "2025-01-01", "endDate": null}),
        ),
        (
            json!({"description": "desc"}),
            json!({"name": "Renamed", "description": "desc", "status": "New", "startDate": "2025-01-01", "endDate": null}),
        ),
        (
            json!({"status": "Completed"}),
            json!({"name": "Renamed", "description": "desc", "status": "Completed", "startDate": "2025-01-01", "endDate": null}),
        ),
        (
            json!({"startDate": "2025-02-01", "endDate": "2025-02-10"}),
            json!({"name": "Renamed", "description": "desc", "status": "Completed", "startDate": "2025-02-01", "endDate": "2025-02-10"}),
        ),
        (
            json!({"startDate": null}),
            json!({"name": "Renamed", "description": "desc", "status": "Completed", "startDate": null, "endDate": "2025-02-10"}),
        ),
        (
            json!({"endDate": null, "status": "Approved", "description": ""}),
            json!({"name": "Renamed", "description": "", "status": "Approved", "startDate": null, "endDate": null}),
        ),
    ];
    let mut before = s.events().await;
    for (body, want) in steps {
        let (st, v) = s.put(&t, &tp, body.clone()).await;
        assert_eq!(st, StatusCode::OK, "PUT {body}: {v}");
        let got = &v["task"];
        assert_task(got, "updated task");
        for (k, w) in want.as_object().unwrap() {
            assert_eq!(&got[k], w, "after PUT {body}: field {k}");
        }
        assert_eq!(got["_id"], json!(tid));
        assert_eq!(got["groupId"], json!(gid));
        assert_eq!(got["createdAt"], task["createdAt"]);
        assert!(
            str_of(got, "updatedAt") > str_of(&task, "updatedAt"),
            "updatedAt did not move"
        );
        let (_, fetched) = s.get(&t, &tp).await;
        assert_eq!(fetched["task"], *got, "GET after PUT {body}");
        before += 1;
        assert_eq!(s.events().await, before, "one event per PUT");
    }

    // Bad updates change nothing.
    let snapshot = s.get(&t, &tp).await.1;
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
        assert_error(s.put(&t, &tp, body).await, StatusCode::BAD_REQUEST, &what);
    }
    assert_eq!(s.get(&t, &tp).await.1, snapshot);
    for id in [unknown_id(4), "zzz".to_string()] {
        assert_error(
            s.put(&t, &format!("/api/tasks/{id}"), json!({"name": "x"}))
                .await,
            StatusCode::NOT_FOUND,
            &format!("PUT unknown task {id}"),
        );
        assert_error(
            s.get(&t, &format!("/api/tasks/{id}")).await,
            StatusCode::NOT_FOUND,
            &format!("GET unknown task {id}"),
        );
    }

    // PUT /status.
    let sp = format!("{tp}/status");
    for status in STATUSES {
        let (st, v) = s.put(&t, &sp, json!({"status": status})).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_task(&v["task"], "status answer");
        assert_eq!(v["task"]["status"], status);
        assert_eq!(v["task"]["name"], "Renamed", "status change keeps the rest");
    }
    before += 5;
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
            s.put(&t, &sp, body.clone()).await,
            StatusCode::BAD_REQUEST,
            &format!("PUT status {body}"),
        );
    }
    for id in [unknown_id(5), "zzz".to_string()] {
        assert_error(
            s.put(
                &t,
                &format!("/api/tasks/{id}/status"),
                json!({"status": "New"}),
            )
            .await,
            StatusCode::NOT_FOUND,
            &format!("status of unknown task {id}"),
        );
    }
    assert_eq!(s.events().await, before);

    // commentCount follows the comments.
    for text in ["one", "two"] {
        let (st, v) = s
            .post(&t, &format!("{tp}/comments"), json!({"text": text}))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    let (_, v) = s.get(&t, &tp).await;
    assert_eq!(v["task"]["commentCount"], 2);
    assert_eq!(arr(&v["task"], "comments").len(), 2);
    let other = s.create_task(&t, &gid, json!({"name": "stays"})).await;

    // Delete: the task and its comments go; the group and other tasks stay.
    let (st, v) = s.delete(&t, &tp).await;
    assert_eq!((st, v), (StatusCode::OK, json!({"success": true})));
    assert_error(
        s.get(&t, &tp).await,
        StatusCode::NOT_FOUND,
        "GET deleted task",
    );
    assert_error(
        s.get(&t, &format!("{tp}/comments")).await,
        StatusCode::NOT_FOUND,
        "comments of deleted task",
    );
    assert_error(
        s.delete(&t, &tp).await,
        StatusCode::NOT_FOUND,
        "delete twice",
    );
    let (_, v) = s.get(&t, &format!("/api/groups/{gid}")).await;
    assert_eq!(v["group"]["taskCount"], 1);
    assert_eq!(v["group"]["tasks"][0]["_id"], other["_id"]);
    s.stop().await;
}

// ───────────────────────────── comments ─────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_create_list_and_validate() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let g = s.create_group(&t, "G").await;
    let task = s
        .create_task(&t, str_of(&g, "_id"), json!({"name": "T"}))
        .await;
    let tid = str_of(&task, "_id");
    let cp = format!("/api/tasks/{tid}/comments");

    let (st, v) = s.post(&t, &cp, json!({"text": "first"})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["success"], true);
    let c = &v["comment"];
    assert_comment(c, "new comment");
    assert_eq!(c["text"], "first");
    assert_eq!(c["author"], "admin");
    assert_eq!(c["taskId"], json!(tid));
    assert_eq!(c["timestamp"], c["createdAt"]);

    let texts = ["second", &"x".repeat(10_000), "ünïcødé ✓"];
    for text in texts {
        let (st, v) = s.post(&t, &cp, json!({"text": text})).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        assert_eq!(v["comment"]["text"], text);
    }
    let start = s.events().await;
    for body in [
        json!({"text": ""}),
        json!({}),
        json!({"text": null}),
        json!({"text": "x".repeat(10_001)}),
        json!({"text": 5}),
        json!({"text": ["a"]}),
        json!("text"),
    ] {
        let what = format!("comment {}", short(&body));
        assert_error(s.post(&t, &cp, body).await, StatusCode::BAD_REQUEST, &what);
    }
    for id in [unknown_id(9), "nope".to_string()] {
        let p = format!("/api/tasks/{id}/comments");
        assert_error(
            s.post(&t, &p, json!({"text": "x"})).await,
            StatusCode::NOT_FOUND,
            &format!("POST {p}"),
        );
        assert_error(
            s.get(&t, &p).await,
            StatusCode::NOT_FOUND,
            &format!("GET {p}"),
        );
    }
    assert_eq!(s.events().await, start, "bad comments wrote events");

    let (st, v) = s.get(&t, &cp).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let list = arr(&v, "comments");
    for c in list {
        assert_comment(c, "listed comment");
        assert_eq!(c["author"], "admin");
    }
    let got: Vec<&str> = list.iter().map(|c| str_of(c, "text")).collect();
    assert_eq!(got, ["first", "second", texts[1], texts[2]], "oldest first");
    let stamps: Vec<&str> = list.iter().map(|c| str_of(c, "createdAt")).collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");

    let (_, v) = s.get(&t, &format!("/api/tasks/{tid}")).await;
    assert_eq!(v["task"]["commentCount"], 4);
    assert_eq!(v["task"]["comments"], json!(list));
    s.stop().await;
}

// ───────────────────────────── activity logs ─────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_log_entries_follow_mutations() {
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
    // A second task in the same group, deleted.
    let t2 = s.create_task(&t, &gid, json!({"name": "Feature Y"})).await;
    let t2id = str_of(&t2, "_id").to_string();
    assert_eq!(
        s.delete(&t, &format!("/api/tasks/{t2id}")).await.0,
        StatusCode::OK
    );

    let h = s.health().await;
    let last = h["lastEventId"].as_u64().unwrap();
    assert_eq!(last, first_seq + 7, "eight mutations, eight events");

    // (event_type, entity, entity_id, task_id, task_name)
    type Expect<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<&'a str>);
    let expected: Vec<Expect> = vec![
        ("created", "Group", gid.as_str(), None, None),
        ("created", "Task", &tid, Some(&tid), Some("Feature X")),
        ("updated", "Task", &tid, Some(&tid), Some("Feature X")),
        (
            "status_changed",
            "Task",
            &tid,
            Some(&tid),
            Some("Feature X"),
        ),
        ("commented", "Task", &tid, Some(&tid), Some("Feature X")),
        ("updated", "Group", gid.as_str(), None, None),
        ("created", "Task", &t2id, Some(&t2id), Some("Feature Y")),
        ("deleted", "Task", &t2id, Some(&t2id), Some("Feature Y")),
    ];
    let entries = logs(&s, &t, &format!("/api/logs/group/{gid}")).await;
    assert_eq!(entries.len(), expected.len(), "{entries:#?}");
    assert_newest_first(&entries, "group log");
    let ids = ids_of(&entries);
    let want_ids: Vec<u64> = (first_seq..=last).rev().collect();
    assert_eq!(ids, want_ids, "ids are the event sequence numbers");
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

    // Task log: only that task's entries, newest first.
    let task_entries = logs(&s, &t, &format!("/api/logs/task/{tid}")).await;
    let types: Vec<&str> = task_entries
        .iter()
        .map(|e| str_of(e, "event_type"))
        .collect();
    assert_eq!(types, ["commented", "status_changed", "updated", "created"]);
    assert!(task_entries.iter().all(|e| e["task_id"] == json!(tid)));
    let t2_entries = logs(&s, &t, &format!("/api/logs/task/{t2id}")).await;
    let types: Vec<&str> = t2_entries.iter().map(|e| str_of(e, "event_type")).collect();
    assert_eq!(types, ["deleted", "created"], "history outlives the task");

    // Per-task summaries of the group.
    let (st, v) = s.get(&t, &format!("/api/logs/group/{gid}/tasks")).await;
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
        .find(|x| x["task_id"] == json!(tid))
        .expect("Feature X listed");
    assert_eq!(x["task_name"], "Feature X");
    assert_eq!(x["log_count"], 4);
    let y = tasks
        .iter()
        .find(|x| x["task_id"] == json!(t2id))
        .expect("Feature Y listed");
    assert_eq!(y["task_name"], "Feature Y");
    assert_eq!(y["log_count"], 2);

    // Delete the group: its history stays readable.
    assert_eq!(
        s.delete(&t, &format!("/api/groups/{gid}")).await.0,
        StatusCode::OK
    );
    let entries = logs(&s, &t, &format!("/api/logs/group/{gid}")).await;
    assert_eq!(entries.len(), 9);
    assert_eq!(entries[0]["event_type"], "deleted");
    assert_eq!(entries[0]["entity"], "Group");
    assert_eq!(entries[0]["changes"], "Group 'Project Alpha' was deleted");
    assert_eq!(entries[0]["id"], json!(last + 1));
    assert_eq!(
        logs(&s, &t, &format!("/api/logs/task/{tid}")).await.len(),
        4
    );
    let (st, v) = s.get(&t, "/api/logs/groups").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let groups = arr(&v, "groups");
    assert_eq!(groups.len(), 1, "{v}");
    assert_keys(
        &groups[0],
        &["group_id", "group_name", "log_count", "last_activity"],
        "group summary",
    );
    assert_eq!(groups[0]["group_id"], json!(gid));
    assert_eq!(groups[0]["group_name"], "Project Alpha");
    assert_eq!(groups[0]["log_count"], 9);
    assert_ts(&groups[0]["last_activity"], "group summary");
    let (st, v) = s.get(&t, &format!("/api/logs/group/{gid}/tasks")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        arr(&v, "tasks").len(),
        2,
        "task summaries outlive the group: {v}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_log_paging_and_limits() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let g = s.create_group(&t, "Paged").await;
    let gid = str_of(&g, "_id").to_string();
    let mut first_task = String::new();
    for i in 0..24 {
        let task = s
            .create_task(&t, &gid, json!({"name": format!("t{i}")}))
            .await;
        if i == 0 {
            first_task = str_of(&task, "_id").to_string();
        }
    }
    let gp = format!("/api/logs/group/{gid}");
    let all = logs(&s, &t, &gp).await;
    assert_eq!(all.len(), 25, "default limit covers 25 entries");
    assert_newest_first(&all, "full log");
    assert_eq!(logs(&s, &t, &format!("{gp}?limit=1000")).await, all);

    // Pages of 10 with before=<last id of the previous page>.
    let mut paged = Vec::new();
    let mut sizes = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let q = match before {
            None => format!("{gp}?limit=10"),
            Some(b) => format!("{gp}?limit=10&before={b}"),
        };
        let page = logs(&s, &t, &q).await;
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
    let one = logs(&s, &t, &format!("{gp}?limit=1")).await;
    assert_eq!(one, all[..1].to_vec());

    // Task log paging too.
    let tp = format!("/api/logs/task/{first_task}");
    let task_log = logs(&s, &t, &format!("{tp}?limit=1")).await;
    assert_eq!(task_log.len(), 1);
    assert_eq!(task_log[0]["event_type"], "created");
    let id = task_log[0]["id"].as_u64().unwrap();
    assert!(logs(&s, &t, &format!("{tp}?before={id}")).await.is_empty());

    // Out-of-range or non-integer limits (and a non-integer before) are 400.
    for q in [
        "limit=0",
        "limit=1001",
        "limit=abc",
        "limit=-1",
        "limit=1.5",
        "limit=",
        "limit=99999999999999999999999",
        "before=abc",
        "before=-3",
    ] {
        for base in [&gp, &tp] {
            let p = format!("{base}?{q}");
            assert_error(s.get(&t, &p).await, StatusCode::BAD_REQUEST, &p);
        }
    }

    // Ids with no history: empty lists.
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
    let (_, v) = s.get(&t, &format!("/api/logs/group/{gid}/tasks")).await;
    let tasks = arr(&v, "tasks");
    assert_eq!(tasks.len(), 24);
    assert!(tasks.iter().all(|x| x["log_count"] == 1), "{v}");
    s.stop().await;
}

// ───────────────────────────── health and metrics ─────────────────────────────

fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (key, val) = l.rsplit_once(' ')?;
        (key == name).then(|| val.parse().ok()).flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics() {
    let s = TestServer::start().await;

    let h = s.health().await;
    assert_keys(
        &h,
        &[
            "success",
            "message",
            "version",
            "events",
            "lastEventId",
            "backup",
            "kafka",
            "writable",
        ],
        "health",
    );
    assert_eq!(h["success"], true);
    assert_eq!(h["writable"], true);
    assert_eq!(h["message"], "taskledger is running");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        h["events"], 1,
        "a fresh server has logged the admin's creation"
    );
    assert_eq!(h["lastEventId"], 1);
    assert_keys(
        &h["backup"],
        &["available", "count", "latest", "offsite", "totalSizeMB"],
        "backup",
    );
    assert_keys(
        &h["backup"]["offsite"],
        &["enabled", "lastCopiedAt", "lastError", "pending"],
        "backup.offsite",
    );
    assert_eq!(h["backup"]["offsite"]["enabled"], false);
    assert_eq!(h["backup"]["available"], false);
    assert_eq!(h["backup"]["count"], 0);
    assert_eq!(h["backup"]["latest"], Value::Null);
    assert!(h["backup"]["totalSizeMB"].is_number(), "{h}");
    assert_keys(
        &h["kafka"],
        &["enabled", "connected", "lag", "lastPublishedEventId"],
        "kafka",
    );
    assert_eq!(h["kafka"]["enabled"], false);
    assert_eq!(h["kafka"]["connected"], false);
    assert!(h["kafka"]["lag"].is_u64(), "{h}");

    // No token needed, and a bad token does not matter either.
    let (st, _) = s
        .send_raw(
            Method::GET,
            "/api/health",
            Some("Bearer garbage"),
            Vec::new(),
        )
        .await;
    assert_eq!(st, StatusCode::OK);

    let t = s.admin_token().await;
    let (st, metrics0) = s.get_text("/metrics").await;
    assert_eq!(st, StatusCode::OK);
    let appended0 = metric_value(&metrics0, "taskledger_events_appended_total")
        .expect("taskledger_events_appended_total in /metrics");

    // events grows by exactly one per mutation, and not on a rejected one.
    let g = s.create_group(&t, "H").await;
    let gid = str_of(&g, "_id").to_string();
    let mut expected = 2;
    let check = |h: Value, n: u64, what: &str| {
        assert_eq!(h["events"], n, "{what}: {h}");
        assert_eq!(h["lastEventId"], n, "{what}: {h}");
    };
    check(s.health().await, expected, "after create group");
    let task = s.create_task(&t, &gid, json!({"name": "x"})).await;
    let tp = format!("/api/tasks/{}", str_of(&task, "_id"));
    expected += 1;
    check(s.health().await, expected, "after create task");
    let mutations: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::PUT,
            format!("/api/groups/{gid}"),
            Some(json!({"name": "H2"})),
        ),
        (Method::PUT, tp.clone(), Some(json!({"description": "d"}))),
        (
            Method::PUT,
            format!("{tp}/status"),
            Some(json!({"status": "Backlog"})),
        ),
        (
            Method::POST,
            format!("{tp}/comments"),
            Some(json!({"text": "c"})),
        ),
        (Method::DELETE, tp.clone(), None),
        (Method::DELETE, format!("/api/groups/{gid}"), None),
    ];
    for (m, p, body) in mutations {
        let (st, v) = s.send(m.clone(), &p, Some(&t), body.as_ref()).await;
        assert!(st.is_success(), "{m} {p}: {st} {v}");
        expected += 1;
        check(s.health().await, expected, &format!("after {m} {p}"));
        let (st, _) = s.post(&t, "/api/groups", json!({"name": ""})).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        check(s.health().await, expected, "after a rejected mutation");
    }

    let (st, text) = s.get_text("/metrics").await;
    assert_eq!(st, StatusCode::OK);
    assert!(text.contains("taskledger_http_requests_total"), "{text}");
    assert!(text.contains("taskledger_events_appended_total"), "{text}");
    let appended = metric_value(&text, "taskledger_events_appended_total").unwrap();
    assert_eq!(appended - appended0, 8.0, "appends counted in /metrics");
    assert!(
        text.lines()
            .any(|l| l.starts_with("taskledger_http_requests_total{")
                && l.contains("route=\"/api/groups\"")
                && l.contains("status=\"400\"")),
        "requests by route and status: {text}"
    );
    s.stop().await;
}

// ───────────────────────────── edges ─────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_wrong_methods_and_big_bodies() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;

    // SPEC §10: non-API paths serve the web application, so it can be bookmarked.
    for p in ["/", "/nope"] {
        let (status, body) = s.get_text(p).await;
        assert_eq!(status, StatusCode::OK, "GET {p}");
        assert!(
            body.contains("<html"),
            "GET {p} serves the app: {body:.200}"
        );
    }

    for p in [
        "/api/nope",
        "/api/groups/a/b/c",
        "/api",
        "/api/task",
        "/api/logs",
    ] {
        assert_error(
            s.send(Method::GET, p, None, None).await,
            StatusCode::NOT_FOUND,
            &format!("GET {p} without token"),
        );
        assert_error(
            s.get(&t, p).await,
            StatusCode::NOT_FOUND,
            &format!("GET {p} with token"),
        );
    }
    assert_error(
        s.post(&t, "/api/nope", json!({"a": 1})).await,
        StatusCode::NOT_FOUND,
        "POST unknown route",
    );

    let wrong: [(Method, &str); 6] = [
        (Method::PATCH, "/api/groups"),
        (Method::DELETE, "/api/groups"),
        (Method::DELETE, "/api/health"),
        (Method::POST, "/api/tasks/x"),
        (Method::GET, "/api/auth/login"),
        (Method::POST, "/api/logs/groups"),
    ];
    for (m, p) in wrong {
        for token in [None, Some(t.as_str())] {
            let (st, v) = s.send(m.clone(), p, token, None).await;
            assert_error(
                (st, v),
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("{m} {p} (token: {})", token.is_some()),
            );
        }
    }

    // Over 1 MiB: 413 with the JSON error body, and nothing changes.
    let g = s.create_group(&t, "small").await;
    let gid = str_of(&g, "_id").to_string();
    let task = s.create_task(&t, &gid, json!({"name": "x"})).await;
    let tid = str_of(&task, "_id").to_string();
    let events = s.events().await;
    let snapshot = s.get(&t, "/api/groups").await.1;
    let huge = "h".repeat(1024 * 1024 + 16);
    let big: [(Method, String, Value); 5] = [
        (Method::POST, "/api/groups".into(), json!({"name": huge})),
        (
            Method::PUT,
            format!("/api/groups/{gid}"),
            json!({"discussion": huge}),
        ),
        (
            Method::POST,
            format!("/api/groups/{gid}/tasks"),
            json!({"name": "x", "description": huge}),
        ),
        (
            Method::PUT,
            format!("/api/tasks/{tid}"),
            json!({"description": huge}),
        ),
        (
            Method::POST,
            format!("/api/tasks/{tid}/comments"),
            json!({"text": huge}),
        ),
    ];
    for (m, p, body) in big {
        assert_error(
            s.send(m.clone(), &p, Some(&t), Some(&body)).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("{m} {p} with 1 MiB+"),
        );
    }
    // Just under the limit but over the field limit: 400, not 413.
    let (st, v) = s
        .post(
            &t,
            "/api/groups",
            json!({"name": "x", "discussion": "d".repeat(1000 * 1000)}),
        )
        .await;
    assert_error((st, v), StatusCode::BAD_REQUEST, "900 kB discussion");
    // The exact boundary: 1 MiB is read (and judged on its fields), one byte more is 413.
    let auth = format!("Bearer {t}");
    let (prefix, suffix) = (r#"{"name":"x","discussion":""#, r#""}"#);
    for (total, want) in [
        (1024 * 1024, StatusCode::BAD_REQUEST),
        (1024 * 1024 + 1, StatusCode::PAYLOAD_TOO_LARGE),
    ] {
        let fill = "d".repeat(total - prefix.len() - suffix.len());
        let body = format!("{prefix}{fill}{suffix}").into_bytes();
        assert_eq!(body.len(), total);
        assert_error(
            s.send_raw(Method::POST, "/api/groups", Some(&auth), body)
                .await,
            want,
            &format!("body of {total} bytes"),
        );
    }
    // Login is limited too (no token needed to send a big body).
    assert_error(
        s.send(
            Method::POST,
            "/api/auth/login",
            None,
            Some(&json!({"username": "admin", "password": huge})),
        )
        .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "1 MiB+ login",
    );
    // Without a Content-Length (chunked), the limit still holds.
    let head = format!(
        "POST /api/groups HTTP/1.1\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json"
    );
    let body = json!({"name": "n".repeat(2 * 1024 * 1024)}).to_string();
    let (st, v) = s.send_chunked(&head, body.as_bytes(), 64 * 1024).await;
    assert_eq!(st, 413, "chunked 2 MiB: {v}");
    assert_error_body(&v, "chunked 2 MiB");
    assert_eq!(s.events().await, events);
    assert_eq!(s.get(&t, "/api/groups").await.1, snapshot);

    // A small chunked body is fine.
    let (st, v) = s.send_chunked(&head, br#"{"name":"chunky"}"#, 3).await;
    assert_eq!(st, 201, "small chunked body: {v}");
    assert_eq!(v["group"]["name"], "chunky");
    assert_eq!(s.events().await, events + 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_never_changes_state() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let g = s.create_group(&t, "Keep").await;
    let gid = str_of(&g, "_id").to_string();
    let task = s.create_task(&t, &gid, json!({"name": "Keep task"})).await;
    let tid = str_of(&task, "_id").to_string();
    let (st, _) = s
        .post(
            &t,
            &format!("/api/tasks/{tid}/comments"),
            json!({"text": "keep"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);

    let events = s.events().await;
    let groups = s.get(&t, "/api/groups").await.1;
    let users = s.get(&t, "/api/auth/users").await.1;
    let glog = s.get(&t, &format!("/api/logs/group/{gid}")).await.1;

    let auth = format!("Bearer {t}");
    let raw: Vec<(Method, String, &[u8])> = vec![
        (Method::POST, "/api/groups".into(), b"{"),
        (Method::POST, "/api/groups".into(), b"{\"name\":\"a\"}}"),
        (Method::POST, "/api/groups".into(), b"\xff\xfe"),
        (Method::PUT, format!("/api/groups/{gid}"), b"nul\x00l"),
        (Method::POST, format!("/api/groups/{gid}/tasks"), b"[1,2"),
        (Method::PUT, format!("/api/tasks/{tid}"), b"{\"name\":}"),
        (Method::PUT, format!("/api/tasks/{tid}/status"), b""),
        (
            Method::POST,
            format!("/api/tasks/{tid}/comments"),
            b"\"text\"",
        ),
        (
            Method::POST,
            "/api/auth/users".into(),
            b"{\"username\":\"x\"",
        ),
    ];
    let deep_array = "[".repeat(100_000);
    let deep_object = format!("{{\"name\":{}", "{\"a\":".repeat(50_000));
    let huge_number = format!("{{\"name\":1{}}}", "0".repeat(5000));
    let raw: Vec<(Method, String, &[u8])> = raw
        .into_iter()
        .chain([
            (
                Method::POST,
                "/api/groups".to_string(),
                deep_array.as_bytes(),
            ),
            (
                Method::POST,
                "/api/groups".to_string(),
                deep_object.as_bytes(),
            ),
            (
                Method::POST,
                "/api/groups".to_string(),
                huge_number.as_bytes(),
            ),
            (
                Method::PUT,
                format!("/api/tasks/{tid}"),
                deep_array.as_bytes(),
            ),
        ])
        .collect();
    for (m, p, body) in raw {
        let (st, v) = s.send_raw(m.clone(), &p, Some(&auth), body.to_vec()).await;
        assert_error(
            (st, v),
            StatusCode::BAD_REQUEST,
            &format!(
                "{m} {p} raw {:?}",
                String::from_utf8_lossy(&body[..body.len().min(40)])
            ),
        );
    }
    let typed: Vec<(Method, String, Value, StatusCode)> = vec![
        (
            Method::POST,
            "/api/groups".into(),
            json!({"name": " "}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            format!("/api/groups/{gid}"),
            json!({"name": ""}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            format!("/api/groups/{}", unknown_id(1)),
            json!({"name": "x"}),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::DELETE,
            format!("/api/groups/{}", unknown_id(1)),
            json!({}),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("/api/groups/{gid}/tasks"),
            json!({"name": "x", "status": "Nope"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            format!("/api/groups/{gid}/tasks"),
            json!({"name": "x", "endDate": "2025-1-1"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            format!("/api/groups/{}/tasks", unknown_id(2)),
            json!({"name": "x"}),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::PUT,
            format!("/api/tasks/{tid}"),
            json!({"name": "ok", "startDate": "bad"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            format!("/api/tasks/{tid}"),
            json!({"name": "ok", "status": "bad"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            format!("/api/tasks/{tid}/status"),
            json!({"status": "bad"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            format!("/api/tasks/{}", unknown_id(3)),
            json!({}),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("/api/tasks/{tid}/comments"),
            json!({"text": ""}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            format!("/api/tasks/{}/comments", unknown_id(4)),
            json!({"text": "x"}),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/api/auth/users".into(),
            json!({"username": "admin", "password": "12345678"}),
            StatusCode::CONFLICT,
        ),
        (
            Method::POST,
            "/api/auth/users".into(),
            json!({"username": "x y", "password": "12345678"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/auth/users".into(),
            json!({"username": "xy", "password": "short"}),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (m, p, body, want) in typed {
        let what = format!("{m} {p} {body}");
        assert_error(s.send(m, &p, Some(&t), Some(&body)).await, want, &what);
    }
    // The same batch without a token is 401 and writes nothing either.
    assert_error(
        s.send(
            Method::POST,
            "/api/groups",
            None,
            Some(&json!({"name": "no token"})),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "create group without token",
    );
    assert_error(
        s.send(
            Method::DELETE,
            &format!("/api/groups/{gid}"),
            Some("garbage"),
            None,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "delete with a garbage token",
    );

    assert_eq!(s.events().await, events, "bad input appended events");
    assert_eq!(s.get(&t, "/api/groups").await.1, groups);
    assert_eq!(s.get(&t, "/api/auth/users").await.1, users);
    assert_eq!(s.get(&t, &format!("/api/logs/group/{gid}")).await.1, glog);
    s.stop().await;
}

// ───────────────────────────── durability and concurrency ─────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_and_sessions_survive_a_restart() {
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

    let before_groups = s.get(&t, "/api/groups").await.1;
    let before_users = s.get(&t, "/api/auth/users").await.1;
    let before_log = s.get(&t, &format!("/api/logs/group/{gid}")).await.1;
    let before_summary = s.get(&t, "/api/logs/groups").await.1;
    let events = s.events().await;
    assert_eq!(events, 6);

    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |_| {}).await;

    assert_eq!(s.events().await, events, "event count after restart");
    let (st, v) = s.get(&t, "/api/groups").await;
    assert_eq!(st, StatusCode::OK, "the old token still works: {v}");
    assert_eq!(v, before_groups);
    assert_eq!(s.get(&t, "/api/auth/users").await.1, before_users);
    assert_eq!(
        s.get(&t, &format!("/api/logs/group/{gid}")).await.1,
        before_log
    );
    assert_eq!(s.get(&t, "/api/logs/groups").await.1, before_summary);
    let (_, v) = s.get(&t, &format!("/api/tasks/{tid}")).await;
    assert_eq!(v["task"]["status"], "Approved");
    assert_eq!(v["task"]["comments"][0]["text"], "still here");

    // The log continues without a gap.
    let (st, _) = s
        .put(
            &t,
            &format!("/api/groups/{gid}"),
            json!({"name": "Persisted 2"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(s.events().await, events + 1);
    let entries = logs(&s, &t, &format!("/api/logs/group/{gid}?limit=1")).await;
    assert_eq!(entries[0]["id"], json!(events + 1));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_task_creation() {
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
    assert_eq!(ids.len(), 50);

    let (_, v) = s.get(&t, &format!("/api/groups/{gid}")).await;
    assert_eq!(v["group"]["taskCount"], 50);
    let listed: HashSet<String> = arr(&v["group"], "tasks")
        .iter()
        .map(|x| str_of(x, "_id").to_string())
        .collect();
    assert_eq!(listed, ids, "every created task is listed");
    assert_eq!(s.events().await, start + 50);

    // One log entry each, with sequence numbers that have no gap.
    let entries = logs(&s, &t, &format!("/api/logs/group/{gid}")).await;
    assert_eq!(entries.len(), 51);
    assert_newest_first(&entries, "busy log");
    let seqs = ids_of(&entries);
    assert_eq!(seqs[0], start + 50);
    assert_eq!(*seqs.last().unwrap(), start, "the group's creation");
    s.stop().await;
}

// ───────────────────────────── found bugs ─────────────────────────────

/// SPEC §2: "Dates are `YYYY-MM-DD` or null". A sign, a leading space or a
/// one-digit month is not that form, on create and on update alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_dates_are_strictly_yyyy_mm_dd() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let g = s.create_group(&t, "Dates").await;
    let gid = str_of(&g, "_id").to_string();
    let task = s.create_task(&t, &gid, json!({"name": "d"})).await;
    let tp = format!("/api/tasks/{}", str_of(&task, "_id"));
    let events = s.events().await;
    let mut accepted = Vec::new();
    for date in ["+202-01-01", "-001-01-01", " 2025-1-01", "2025-01-1 "] {
        for field in ["startDate", "endDate"] {
            let (st, v) = s
                .post(
                    &t,
                    &format!("/api/groups/{gid}/tasks"),
                    json!({"name": "x", field: date}),
                )
                .await;
            if st != StatusCode::BAD_REQUEST {
                accepted.push(format!(
                    "POST {field}={date:?} -> {st} {}",
                    v["task"][field]
                ));
            } else {
                assert_error_body(&v, "bad date");
            }
            let (st, v) = s.put(&t, &tp, json!({field: date})).await;
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
    assert_eq!(s.events().await, events);
    s.stop().await;
}

/// An id that is not valid UTF-8 once percent-decoded is still just an id that
/// names nothing: 404 like every other garbage id (an empty history on the log
/// routes), not a generic 400 "bad request".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percent_encoded_garbage_ids_are_not_found() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    for p in [
        "/api/groups/%FF",
        "/api/tasks/%FF",
        "/api/tasks/%C3%28/comments",
    ] {
        assert_error(
            s.get(&t, p).await,
            StatusCode::NOT_FOUND,
            &format!("GET {p}"),
        );
    }
    assert_error(
        s.put(&t, "/api/groups/%FF", json!({"name": "x"})).await,
        StatusCode::NOT_FOUND,
        "PUT /api/groups/%FF",
    );
    for p in ["/api/logs/group/%FF", "/api/logs/task/%FF"] {
        let (st, v) = s.get(&t, p).await;
        assert_eq!(st, StatusCode::OK, "GET {p}: {v}");
        assert_eq!(v["logs"], json!([]), "GET {p}");
    }
    s.stop().await;
}
