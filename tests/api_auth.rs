//! SPEC §2 Auth: login, bearer tokens on every protected route, logout and token
//! expiry. None of it is a mutation, so the log keeps only the admin's creation.

mod common;

use std::time::{Duration, Instant};

use common::shapes::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn login_with(s: &TestServer, body: Value) -> (StatusCode, Value) {
    s.send(Method::POST, "/api/auth/login", None, Some(&body))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_answers_a_token_and_the_user() {
    let s = TestServer::start().await;
    let (st, v) = login_with(&s, json!({"username": "admin", "password": ADMIN_PASSWORD})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_keys(&v, &["success", "token", "data"], "login answer");
    assert_eq!(v["success"], true);
    let token = str_of(&v, "token");
    assert!(
        token.len() >= 16,
        "token too short to be a secret: {token:?}"
    );
    assert_keys(&v["data"], &USER_KEYS, "login data");
    assert_eq!(v["data"]["username"], "admin");
    assert_eq!(v["data"]["role"], "admin");
    assert!(!str_of(&v["data"], "_id").is_empty());
    assert_eq!(s.events().await, 1, "a login is not a mutation");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_wrong_password_is_401() {
    let s = TestServer::start().await;
    assert_error(
        login_with(
            &s,
            json!({"username": "admin", "password": "not-the-password"}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "wrong password",
    );
    assert_eq!(s.events().await, 1, "a failed login is not a mutation");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_unknown_user_is_401() {
    let s = TestServer::start().await;
    assert_error(
        login_with(
            &s,
            json!({"username": "nobody-here", "password": ADMIN_PASSWORD}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unknown user",
    );
    assert_eq!(s.events().await, 1, "a failed login is not a mutation");
    s.stop().await;
}

/// SPEC §2: the same message, so the answer does not tell which names exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_user_get_the_same_message() {
    let s = TestServer::start().await;
    let wrong = login_with(
        &s,
        json!({"username": "admin", "password": "not-the-password"}),
    )
    .await;
    let unknown = login_with(
        &s,
        json!({"username": "nobody-here", "password": ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(wrong.1["error"], unknown.1["error"], "messages differ");
    s.stop().await;
}

/// 400, never 401 (the credentials were not even read) nor axum's 422.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_login_body_is_400() {
    let s = TestServer::start().await;
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
    assert_eq!(s.events().await, 1, "a failed login is not a mutation");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protected_route_without_a_token_is_401() {
    let s = TestServer::start().await;
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
    // A body every route would accept, so only the missing token can be the fault.
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
    assert_eq!(s.events().await, 1, "a refused request wrote an event");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_authorization_header_is_401() {
    let s = TestServer::start().await;
    let token = s.admin_token().await;
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
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_token_opens_protected_routes() {
    let s = TestServer::start().await;
    let token = s.admin_token().await;
    let (st, v) = s.get(&token, "/api/groups").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["groups"], json!([]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_token() {
    let s = TestServer::start().await;
    let token = s.admin_token().await;
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
    assert_eq!(s.events().await, 1, "a logout is not a mutation");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_twice_is_401() {
    let s = TestServer::start().await;
    let token = s.admin_token().await;
    let (st, v) = s
        .send(Method::POST, "/api/auth/logout", Some(&token), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_error(
        s.send(Method::POST, "/api/auth/logout", Some(&token), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "logout twice",
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_leaves_other_sessions_alone() {
    let s = TestServer::start().await;
    let token = s.admin_token().await;
    let other = s.admin_token().await;
    assert_ne!(other, token, "two logins gave the same token");
    let (st, v) = s
        .send(Method::POST, "/api/auth/logout", Some(&token), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s.get(&other, "/api/groups").await;
    assert_eq!(st, StatusCode::OK, "the other session survives: {v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_refused_for_reads_and_writes() {
    let s = TestServer::start_with(|cfg| cfg.auth.token_ttl_secs = 1).await;
    let token = s.admin_token().await;
    let (st, v) = s.get(&token, "/api/groups").await;
    assert_eq!(st, StatusCode::OK, "fresh token: {v}");
    // Poll rather than sleep a fixed time: the test waits as long as the TTL
    // takes on this machine, and the deadline keeps a token that never expires
    // from hanging it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let got = s.get(&token, "/api/groups").await;
        if got.0 != StatusCode::OK {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "a token with a 1 s TTL still works after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_error(refused, StatusCode::UNAUTHORIZED, "expired token");
    assert_error(
        s.post(&token, "/api/groups", json!({"name": "late"})).await,
        StatusCode::UNAUTHORIZED,
        "expired token, mutation",
    );
    assert_eq!(s.events().await, 1, "the rejected mutation wrote an event");
    s.stop().await;
}
