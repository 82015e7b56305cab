//! Activity logs, read straight from the event log through the per-group and
//! per-task indexes; history outlives the things it describes.

use std::collections::HashMap;

use crate::domain::Id;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::json;

use super::auth::Auth;
use super::error::{ApiError, ApiResult};
use super::input::PathId;
use crate::app::AppState;
use crate::domain::canonical::WORKSPACE;
use crate::domain::time::fmt_ms;
use crate::domain::{describe, StoredEvent};

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LogEntry {
    id: u64,
    timestamp: String,
    event_type: &'static str,
    entity: &'static str,
    entity_id: String,
    group_id: String,
    group_name: String,
    task_id: Option<String>,
    task_name: Option<String>,
    changes: String,
    user_name: String,
    workspace: &'static str,
}

impl LogEntry {
    pub(crate) fn group_id(&self) -> &str {
        &self.group_id
    }

    pub(crate) fn task_id(&self) -> Option<&str> {
        self.task_id.as_deref()
    }
}

pub(crate) fn entry(seq: u64, se: StoredEvent) -> Option<LogEntry> {
    let a = describe(&se.event)?;
    Some(LogEntry {
        id: seq,
        timestamp: fmt_ms(se.ts_ms),
        event_type: a.event_type,
        entity: a.entity,
        entity_id: a.entity_id.to_string(),
        group_id: a.group_id.to_string(),
        group_name: a.group_name,
        task_id: a.task_id.map(|t| t.to_string()),
        task_name: a.task_name,
        changes: a.changes,
        user_name: se.user,
        workspace: WORKSPACE,
    })
}

pub(crate) struct Paging {
    pub(crate) limit: usize,
    pub(crate) before: Option<u64>,
}

pub(crate) fn paging(q: &HashMap<String, String>) -> ApiResult<Paging> {
    let limit = match q.get("limit") {
        None => 100,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=1000).contains(&n) => n as usize,
            _ => {
                return Err(ApiError::BadRequest(
                    "limit must be an integer from 1 to 1000".into(),
                ))
            }
        },
    };
    let before = match q.get("before") {
        None => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            ApiError::BadRequest("before must be a non-negative integer event id".into())
        })?),
    };
    Ok(Paging { limit, before })
}

pub(crate) type QueryMap =
    Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>;

pub(crate) fn query(q: QueryMap) -> ApiResult<HashMap<String, String>> {
    q.map(|Query(m)| m)
        .map_err(|e| ApiError::BadRequest(format!("bad query string: {e}")))
}

pub(crate) async fn list_log_groups(
    State(app): State<AppState>,
    _auth: Auth,
) -> ApiResult<impl IntoResponse> {
    let groups: Vec<_> = app
        .store
        .gen()
        .group_summaries()
        .into_iter()
        .map(|(id, s)| {
            json!({"group_id": id.to_string(), "group_name": s.name, "log_count": s.count, "last_activity": fmt_ms(s.last_ms)})
        })
        .collect();
    Ok(super::success("groups", groups))
}

/// Which activity index a page is read from.
#[derive(Clone, Copy)]
enum LogOf {
    Group,
    Task,
}

/// A page of a group's or a task's activity, newest first. The index is in
/// memory; the event bodies are read from the log, off the async threads.
async fn log_page(
    app: AppState,
    of: LogOf,
    id: String,
    q: QueryMap,
) -> ApiResult<impl IntoResponse> {
    let p = paging(&query(q)?)?;
    let Some(id) = Id::parse(&id) else {
        return Ok(super::success("logs", Vec::new()));
    };
    let snap = app.store.gen();
    let logs: Vec<LogEntry> = crate::blocking::blocking::<_, ApiError>(move || {
        let seqs = match of {
            LogOf::Group => snap.state.group_log(&id, p.before, p.limit),
            LogOf::Task => snap.state.task_log(&id, p.before, p.limit),
        };
        Ok(snap.bodies(seqs)?)
    })
    .await?
    .into_iter()
    .filter_map(|(seq, se)| entry(seq, se))
    .collect();
    Ok(super::success("logs", logs))
}

pub(crate) async fn list_group_logs(
    State(app): State<AppState>,
    _auth: Auth,
    PathId(id): PathId,
    q: QueryMap,
) -> ApiResult<impl IntoResponse> {
    log_page(app, LogOf::Group, id, q).await
}

pub(crate) async fn list_task_logs(
    State(app): State<AppState>,
    _auth: Auth,
    PathId(id): PathId,
    q: QueryMap,
) -> ApiResult<impl IntoResponse> {
    log_page(app, LogOf::Task, id, q).await
}

pub(crate) async fn list_group_task_logs(
    State(app): State<AppState>,
    _auth: Auth,
    PathId(id): PathId,
) -> ApiResult<impl IntoResponse> {
    let tasks: Vec<_> = match Id::parse(&id).ok_or(()) {
        Ok(gid) => app
            .store
            .gen()
            .task_summaries(&gid)
            .into_iter()
            .map(|(tid, s)| {
                json!({"task_id": tid.to_string(), "task_name": s.name, "log_count": s.count, "last_activity": fmt_ms(s.last_ms)})
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    Ok(super::success("tasks", tasks))
}
