//! SPEC §2 Auth, users: listing without secrets, creation by the admin (name and
//! password rules, default role, conflicts, a race for one name) and what the
//! member role may and may not do.

mod common;

use common::shapes::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A server with an admin token and a member `alice` logged in.
struct WithMember {
    s: TestServer,
    admin: String,
    member: String,
}

async fn with_member() -> WithMember {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let (st, v) = s
        .post(
            &admin,
            "/api/auth/users",
            json!({"username": "alice", "password": "12345678"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let member = s.login("alice", "12345678").await;
    WithMember { s, admin, member }
}

/// Posts each body to the user route and asserts it is refused with `want`
/// and wrote nothing.
async fn assert_refused(s: &TestServer, admin: &str, bodies: &[Value], want: StatusCode) {
    let before = s.events().await;
    for body in bodies {
        assert_error(
            s.post(admin, "/api/auth/users", body.clone()).await,
            want,
            &format!("create user {}", short(body)),
        );
    }
    assert_eq!(s.events().await, before, "a rejected user wrote an event");
}

async fn usernames(s: &TestServer, token: &str) -> Vec<String> {
    let (st, v) = s.get(token, "/api/auth/users").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let mut names: Vec<String> = arr(&v, "users")
        .iter()
        .map(|u| str_of(u, "username").to_string())
        .collect();
    names.sort_unstable();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_server_lists_only_the_admin_without_secrets() {
    let s = TestServer::start().await;
    let token = s.admin_token().await;
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
    s.stop().await;
}

/// Also the shortest password: 8 characters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_user_defaults_to_member_and_shows_no_secret() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let before = s.events().await;
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
    assert_eq!(s.events().await, before + 1, "one event per created user");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longest_username_and_password_with_admin_role_are_accepted() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let before = s.events().await;
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
    assert_eq!(s.events().await, before + 1, "one event per created user");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_users_are_listed() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let long_name = "u".repeat(64);
    for body in [
        json!({"username": "alice", "password": "12345678"}),
        json!({"username": long_name, "password": "p".repeat(256), "role": "admin"}),
    ] {
        let (st, v) = s.post(&admin, "/api/auth/users", body).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    assert_eq!(
        usernames(&s, &admin).await,
        ["admin", "alice", long_name.as_str()]
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_username_is_409() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let (st, v) = s
        .post(
            &admin,
            "/api/auth/users",
            json!({"username": "alice", "password": "12345678"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let taken = [
        json!({"username": "alice", "password": "another-password"}),
        json!({"username": "admin", "password": "another-password", "role": "member"}),
    ];
    assert_refused(&s, &admin, &taken, StatusCode::CONFLICT).await;
    s.stop().await;
}

/// 1–64 characters, no whitespace anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_username_is_400() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let bad = [
        json!({"username": "a b", "password": "12345678"}),
        json!({"username": " lead", "password": "12345678"}),
        json!({"username": "tab\tname", "password": "12345678"}),
        json!({"username": "new\nline", "password": "12345678"}),
        json!({"username": "u".repeat(65), "password": "12345678"}),
        json!({"username": "", "password": "12345678"}),
    ];
    assert_refused(&s, &admin, &bad, StatusCode::BAD_REQUEST).await;
    assert_eq!(usernames(&s, &admin).await, ["admin"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_outside_8_to_256_characters_is_400() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let bad = [
        json!({"username": "bob", "password": "1234567"}),
        json!({"username": "bob", "password": "p".repeat(257)}),
        json!({"username": "bob", "password": ""}),
    ];
    assert_refused(&s, &admin, &bad, StatusCode::BAD_REQUEST).await;
    assert_eq!(usernames(&s, &admin).await, ["admin"]);
    s.stop().await;
}

/// Roles are exactly `admin` and `member`, case included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_role_is_400() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let bad = [
        json!({"username": "bob", "password": "12345678", "role": "owner"}),
        json!({"username": "bob", "password": "12345678", "role": "Admin"}),
        json!({"username": "bob", "password": "12345678", "role": ""}),
        json!({"username": "bob", "password": "12345678", "role": 1}),
    ];
    assert_refused(&s, &admin, &bad, StatusCode::BAD_REQUEST).await;
    assert_eq!(usernames(&s, &admin).await, ["admin"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_mistyped_user_fields_are_400() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let bad = [
        json!({"username": "bob"}),
        json!({"password": "12345678"}),
        json!({"username": 7, "password": "12345678"}),
        json!({"username": "bob", "password": 12345678}),
        json!(["bob", "12345678"]),
        json!("bob"),
    ];
    assert_refused(&s, &admin, &bad, StatusCode::BAD_REQUEST).await;
    assert_eq!(usernames(&s, &admin).await, ["admin"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_user_json_is_400() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let before = s.events().await;
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
    assert_eq!(s.events().await, before, "a rejected user wrote an event");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_creations_of_one_name_create_exactly_one_user() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let before = s.events().await;
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
    assert_eq!(s.events().await, before + 1, "one event for the race");
    assert_eq!(usernames(&s, &admin).await, ["admin", "dave"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_login_answers_the_member_role() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let (st, v) = s
        .post(
            &admin,
            "/api/auth/users",
            json!({"username": "alice", "password": "12345678"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
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
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_may_list_users() {
    let WithMember { s, member, .. } = with_member().await;
    let (st, v) = s.get(&member, "/api/auth/users").await;
    assert_eq!(st, StatusCode::OK, "members may list users: {v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_may_create_and_delete_groups_and_tasks() {
    let WithMember { s, member, .. } = with_member().await;
    let group = s.create_group(&member, "Member group").await;
    let gid = str_of(&group, "_id");
    let task = s.create_task(&member, gid, json!({"name": "m-task"})).await;
    let tid = str_of(&task, "_id");
    let (st, v) = s.delete(&member, &format!("/api/tasks/{tid}")).await;
    assert_eq!((st, v), (StatusCode::OK, json!({"success": true})));
    let (st, v) = s.delete(&member, &format!("/api/groups/{gid}")).await;
    assert_eq!((st, v), (StatusCode::OK, json!({"success": true})));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_may_change_a_task_status() {
    let WithMember { s, member, .. } = with_member().await;
    let group = s.create_group(&member, "Member group").await;
    let task = s
        .create_task(&member, str_of(&group, "_id"), json!({"name": "m-task"}))
        .await;
    let (st, v) = s
        .put(
            &member,
            &format!("/api/tasks/{}/status", str_of(&task, "_id")),
            json!({"status": "Completed"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["task"]["status"], "Completed");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_comment_is_authored_by_the_member() {
    let WithMember { s, member, .. } = with_member().await;
    let group = s.create_group(&member, "Member group").await;
    let task = s
        .create_task(&member, str_of(&group, "_id"), json!({"name": "m-task"}))
        .await;
    let (st, v) = s
        .post(
            &member,
            &format!("/api/tasks/{}/comments", str_of(&task, "_id")),
            json!({"text": "member note"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["comment"]["author"], "alice");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_work_is_logged_under_the_member_name() {
    let WithMember { s, member, .. } = with_member().await;
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
    let (st, v) = s
        .post(
            &member,
            &format!("/api/tasks/{tid}/comments"),
            json!({"text": "member note"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let entries = logs(&s, &member, &format!("/api/logs/group/{gid}")).await;
    assert_eq!(entries.len(), 4);
    assert!(
        entries.iter().all(|e| e["user_name"] == "alice"),
        "{entries:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_may_not_create_users() {
    let WithMember { s, admin, member } = with_member().await;
    let before = s.events().await;
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
    assert_eq!(s.events().await, before);
    let (_, v) = s.get(&admin, "/api/auth/users").await;
    assert_eq!(arr(&v, "users").len(), 2, "{v}");
    s.stop().await;
}
