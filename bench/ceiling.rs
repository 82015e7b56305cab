//! The ceiling server for `bench/ceiling.sh`: what an HTTP server can do on this
//! machine for the benchmark's routes when it does nothing else — groups and
//! tasks in hash maps behind one lock, serde_json responses of taskledger's
//! shapes, a static token, no log, no fsync, no history. Not a product: it is
//! the "how close are we" line for GET and create throughput.
//!
//! `cargo run --release --example ceiling -- --addr 127.0.0.1:PORT`, or through
//! `bench/ceiling.sh`, which runs bench/run.sh's scenarios against it and taskledger.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOKEN: &str = "ceiling-static-token";

struct TaskRow {
    id: String,
    group_id: String,
    name: String,
    description: String,
    status: &'static str,
    created: String,
}

struct GroupRow {
    id: String,
    name: String,
    created: String,
    tasks: Vec<String>,
}

#[derive(Default)]
struct Db {
    next: u64,
    events: u64,
    groups: HashMap<String, GroupRow>,
    tasks: HashMap<String, TaskRow>,
}

type Shared = Arc<RwLock<Db>>;

#[derive(Deserialize)]
struct NewGroup {
    name: String,
}

#[derive(Deserialize)]
struct NewTask {
    name: String,
    #[serde(default)]
    description: String,
}

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn authorized(h: &HeaderMap) -> bool {
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        == Some(TOKEN)
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"success": false, "error": "invalid or expired token"})),
    )
        .into_response()
}

fn task_json(t: &TaskRow) -> Value {
    json!({
        "_id": t.id, "groupId": t.group_id, "name": t.name, "description": t.description,
        "status": t.status, "startDate": null, "endDate": null, "comments": [],
        "commentCount": 0, "createdAt": t.created, "updatedAt": t.created,
    })
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"success": false, "error": format!("{what} not found")})),
    )
        .into_response()
}

async fn login() -> Json<Value> {
    Json(json!({"success": true, "token": TOKEN,
        "data": {"_id": "admin", "username": "admin", "role": "admin"}}))
}

async fn health(State(db): State<Shared>) -> Json<Value> {
    let events = db.read().map(|d| d.events).unwrap_or(0);
    Json(json!({"status": "ok", "events": events}))
}

async fn create_group(State(db): State<Shared>, h: HeaderMap, Json(b): Json<NewGroup>) -> Response {
    if !authorized(&h) {
        return unauthorized();
    }
    let mut d = db.write().unwrap_or_else(|e| e.into_inner());
    d.next += 1;
    d.events += 1;
    let g = GroupRow {
        id: format!("{:024x}", d.next),
        name: b.name,
        created: now(),
        tasks: Vec::new(),
    };
    let body = json!({"group": {"_id": g.id, "name": g.name, "discussion": "", "tasks": [],
        "taskCount": 0, "createdAt": g.created, "updatedAt": g.created}});
    d.groups.insert(g.id.clone(), g);
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn create_task(
    State(db): State<Shared>,
    Path(gid): Path<String>,
    h: HeaderMap,
    Json(b): Json<NewTask>,
) -> Response {
    if !authorized(&h) {
        return unauthorized();
    }
    let mut d = db.write().unwrap_or_else(|e| e.into_inner());
    if !d.groups.contains_key(&gid) {
        return not_found("group");
    }
    d.next += 1;
    d.events += 1;
    let t = TaskRow {
        id: format!("{:024x}", d.next),
        group_id: gid.clone(),
        name: b.name,
        description: b.description,
        status: "pending",
        created: now(),
    };
    let body = json!({ "task": task_json(&t) });
    if let Some(g) = d.groups.get_mut(&gid) {
        g.tasks.push(t.id.clone());
    }
    d.tasks.insert(t.id.clone(), t);
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn get_task(State(db): State<Shared>, Path(id): Path<String>, h: HeaderMap) -> Response {
    if !authorized(&h) {
        return unauthorized();
    }
    let d = db.read().unwrap_or_else(|e| e.into_inner());
    match d.tasks.get(&id) {
        Some(t) => Json(json!({ "task": task_json(t) })).into_response(),
        None => not_found("task"),
    }
}

async fn get_group(State(db): State<Shared>, Path(id): Path<String>, h: HeaderMap) -> Response {
    if !authorized(&h) {
        return unauthorized();
    }
    let d = db.read().unwrap_or_else(|e| e.into_inner());
    let Some(g) = d.groups.get(&id) else {
        return not_found("group");
    };
    let tasks: Vec<Value> = g
        .tasks
        .iter()
        .filter_map(|t| d.tasks.get(t))
        .map(task_json)
        .collect();
    Json(
        json!({"group": {"_id": g.id, "name": g.name, "discussion": "", "taskCount": tasks.len(),
        "tasks": tasks, "createdAt": g.created, "updatedAt": g.created}}),
    )
    .into_response()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut addr = "127.0.0.1:8088".to_string();
    // Takes taskledger's `serve` arguments so that bench/run.sh drives it
    // unchanged (BIN=target/release/examples/ceiling); only --addr matters.
    while let Some(a) = args.next() {
        match a.as_str() {
            "serve" => {}
            "--addr" => addr = args.next().expect("--addr ADDR"),
            "--data-dir" | "--backup-dir" | "--restore-dir" => {
                args.next();
            }
            other => {
                eprintln!(
                    "ceiling: unknown argument {other}; usage: ceiling [serve] --addr HOST:PORT"
                );
                std::process::exit(2);
            }
        }
    }
    let db: Shared = Arc::default();
    let app = Router::new()
        .route("/api/health", get(health))
        .route("/api/auth/login", post(login))
        .route("/api/groups", post(create_group))
        .route("/api/groups/{id}", get(get_group))
        .route("/api/groups/{id}/tasks", post(create_task))
        .route("/api/tasks/{id}", get(get_task))
        .with_state(db);
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
            axum::serve(listener, app).await.expect("serve");
        });
}
