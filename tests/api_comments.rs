//! SPEC §2 Comments: the comment shape and author, text limits, the list oldest
//! first and nested in its task, unknown tasks; a rejected comment writes no
//! event (§5).

mod common;

use common::shapes::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A server, an admin token and task `T` in group `G`; `cp` is the task's
/// comments path.
struct OnTask {
    s: TestServer,
    t: String,
    tid: String,
    cp: String,
}

async fn on_task() -> OnTask {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let g = s.create_group(&t, "G").await;
    let task = s
        .create_task(&t, str_of(&g, "_id"), json!({"name": "T"}))
        .await;
    let tid = str_of(&task, "_id").to_string();
    let cp = format!("/api/tasks/{tid}/comments");
    OnTask { s, t, tid, cp }
}

const LONG_TEXT_LEN: usize = 10_000;
const UNICODE_TEXT: &str = "ünïcødé ✓";

/// Four comments, the longest and a non-ASCII one among them; answers the
/// texts in the order they were posted.
async fn four_comments(c: &OnTask) -> Vec<String> {
    let texts = [
        "first".to_string(),
        "second".to_string(),
        "x".repeat(LONG_TEXT_LEN),
        UNICODE_TEXT.to_string(),
    ];
    for text in &texts {
        let (st, v) = c.s.post(&c.t, &c.cp, json!({"text": text})).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    texts.to_vec()
}

/// Posts each body as a comment and asserts a 400 that wrote nothing.
async fn assert_comment_refused(c: &OnTask, bodies: Vec<Value>) {
    let start = c.s.events().await;
    for body in bodies {
        let what = format!("comment {}", short(&body));
        assert_error(
            c.s.post(&c.t, &c.cp, body).await,
            StatusCode::BAD_REQUEST,
            &what,
        );
    }
    assert_eq!(c.s.events().await, start, "bad comments wrote events");
    let (_, v) = c.s.get(&c.t, &c.cp).await;
    assert_eq!(v["comments"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_comment_has_the_comment_shape_and_the_author() {
    let c = on_task().await;
    let start = c.s.events().await;
    let (st, v) = c.s.post(&c.t, &c.cp, json!({"text": "first"})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["success"], true);
    let comment = &v["comment"];
    assert_comment(comment, "new comment");
    assert_eq!(comment["text"], "first");
    assert_eq!(comment["author"], "admin");
    assert_eq!(comment["taskId"], json!(c.tid));
    assert_eq!(comment["timestamp"], comment["createdAt"]);
    assert_eq!(c.s.events().await, start + 1, "one event per comment");
    c.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comment_text_of_10000_characters_or_unicode_is_kept() {
    let c = on_task().await;
    let long = "x".repeat(LONG_TEXT_LEN);
    for text in ["second", long.as_str(), UNICODE_TEXT] {
        let (st, v) = c.s.post(&c.t, &c.cp, json!({"text": text})).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        assert_eq!(v["comment"]["text"], text);
    }
    c.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_or_missing_comment_text_is_400() {
    let c = on_task().await;
    let bad = vec![json!({"text": ""}), json!({}), json!({"text": null})];
    assert_comment_refused(&c, bad).await;
    c.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comment_text_over_10000_characters_is_400() {
    let c = on_task().await;
    assert_comment_refused(&c, vec![json!({"text": "x".repeat(10_001)})]).await;
    c.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistyped_comment_body_is_400() {
    let c = on_task().await;
    let bad = vec![json!({"text": 5}), json!({"text": ["a"]}), json!("text")];
    assert_comment_refused(&c, bad).await;
    c.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comment_on_unknown_or_garbage_task_id_is_404() {
    let c = on_task().await;
    let start = c.s.events().await;
    for id in [unknown_id(9), "nope".to_string()] {
        let p = format!("/api/tasks/{id}/comments");
        assert_error(
            c.s.post(&c.t, &p, json!({"text": "x"})).await,
            StatusCode::NOT_FOUND,
            &format!("POST {p}"),
        );
    }
    assert_eq!(c.s.events().await, start, "bad comments wrote events");
    c.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_of_unknown_or_garbage_task_id_are_404() {
    let c = on_task().await;
    for id in [unknown_id(9), "nope".to_string()] {
        let p = format!("/api/tasks/{id}/comments");
        assert_error(
            c.s.get(&c.t, &p).await,
            StatusCode::NOT_FOUND,
            &format!("GET {p}"),
        );
    }
    c.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_are_listed_oldest_first() {
    let c = on_task().await;
    let texts = four_comments(&c).await;
    let (st, v) = c.s.get(&c.t, &c.cp).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let list = arr(&v, "comments");
    for comment in list {
        assert_comment(comment, "listed comment");
        assert_eq!(comment["author"], "admin");
    }
    let got: Vec<&str> = list.iter().map(|c| str_of(c, "text")).collect();
    assert_eq!(got, texts, "oldest first");
    let stamps: Vec<&str> = list.iter().map(|c| str_of(c, "createdAt")).collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    c.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_nests_its_comments_as_listed() {
    let c = on_task().await;
    four_comments(&c).await;
    let (_, list) = c.s.get(&c.t, &c.cp).await;
    let (_, v) = c.s.get(&c.t, &format!("/api/tasks/{}", c.tid)).await;
    assert_eq!(v["task"]["commentCount"], 4);
    assert_eq!(v["task"]["comments"], list["comments"]);
    c.s.stop().await;
}
