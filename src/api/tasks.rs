//! Groups, tasks and comments: input shape checks, the command, the JSON view.

use std::sync::Arc;

use crate::domain::Id;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;

use super::auth::Auth;
use super::error::{ApiError, ApiResult};
use super::input::{parse_id, JsonObject, PathId};
use super::logs::QueryMap;
use super::Written;
use crate::app::AppState;
use crate::domain::time::fmt_ms;
use crate::domain::{Command, CommentRec, GroupRec, Records, TaskRec};

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CommentView {
    #[serde(rename = "_id")]
    id: String,
    task_id: String,
    text: String,
    author: String,
    timestamp: String,
    created_at: String,
    updated_at: String,
}

impl From<&CommentRec> for CommentView {
    fn from(c: &CommentRec) -> Self {
        let t = fmt_ms(c.created_ms);
        CommentView {
            id: c.id.to_string(),
            task_id: c.task_id.to_string(),
            text: c.text.clone(),
            author: c.author.clone(),
            timestamp: t.clone(),
            created_at: t.clone(),
            updated_at: t,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TaskView {
    #[serde(rename = "_id")]
    id: String,
    group_id: String,
    name: String,
    description: String,
    status: &'static str,
    start_date: Option<String>,
    end_date: Option<String>,
    comments: Vec<CommentView>,
    comment_count: usize,
    created_at: String,
    updated_at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GroupView {
    #[serde(rename = "_id")]
    id: String,
    name: String,
    discussion: String,
    tasks: Vec<TaskView>,
    task_count: usize,
    created_at: String,
    updated_at: String,
}

/// A task with its comments, from the live image or a past one.
pub(crate) fn task_view(r: &impl Records, t: &TaskRec) -> TaskView {
    let comments: Vec<CommentView> = r
        .comments_of(&t.id)
        .into_iter()
        .map(CommentView::from)
        .collect();
    TaskView {
        comment_count: comments.len(),
        comments,
        ..task_view_bare(t)
    }
}

/// A group with its tasks and their comments, from the live image or a past one.
pub(crate) fn group_view(r: &impl Records, g: &GroupRec) -> GroupView {
    let tasks: Vec<TaskView> = r
        .tasks_of(&g.id)
        .into_iter()
        .map(|t| task_view(r, t))
        .collect();
    GroupView {
        id: g.id.to_string(),
        name: g.name.clone(),
        discussion: g.discussion.clone(),
        task_count: tasks.len(),
        tasks,
        created_at: fmt_ms(g.created_ms),
        updated_at: fmt_ms(g.updated_ms),
    }
}

pub(crate) async fn list_groups(
    State(app): State<AppState>,
    _auth: Auth,
) -> ApiResult<impl IntoResponse> {
    let gen = app.store.gen();
    let groups: Vec<GroupView> = gen
        .state
        .groups()
        .map(|g| group_view(&gen.state, g))
        .collect();
    Ok(super::success("groups", groups))
}

pub(crate) async fn get_group(
    State(app): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
    q: QueryMap,
) -> ApiResult<Response> {
    let id = parse_id(&id, "group")?;
    if let Some(at) = super::history::at_param(q)? {
        return super::history::group_at(&app, &auth, id, at).await;
    }
    let gen = app.store.gen();
    let g = gen
        .state
        .group_rec(&id)
        .ok_or_else(|| ApiError::NotFound("group not found".into()))?;
    Ok(super::success("group", group_view(&gen.state, g)).into_response())
}

pub(crate) async fn create_group(
    State(app): State<AppState>,
    auth: Auth,
    body: JsonObject,
) -> ApiResult<impl IntoResponse> {
    let cmd = Command::CreateGroup {
        id: Id::generate(),
        name: body.req_str("name")?,
        discussion: body.opt_str("discussion")?,
    };
    let out = app.store.execute(&auth.username, cmd).await?;
    let g: Arc<GroupRec> = super::touched(&out)?;
    let view = group_view(&app.store.gen().state, &g);
    Ok((
        StatusCode::CREATED,
        Written(out.seq),
        super::success("group", view),
    ))
}

pub(crate) async fn update_group(
    State(app): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
    body: JsonObject,
) -> ApiResult<impl IntoResponse> {
    let cmd = Command::UpdateGroup {
        id: parse_id(&id, "group")?,
        name: body.opt_str("name")?,
        discussion: body.opt_str("discussion")?,
    };
    let out = app.store.execute(&auth.username, cmd).await?;
    let g: Arc<GroupRec> = super::touched(&out)?;
    let view = group_view(&app.store.gen().state, &g);
    Ok((Written(out.seq), super::success("group", view)))
}

pub(crate) async fn delete_group(
    State(app): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
) -> ApiResult<impl IntoResponse> {
    let cmd = Command::DeleteGroup {
        id: parse_id(&id, "group")?,
    };
    let out = app.store.execute(&auth.username, cmd).await?;
    Ok((Written(out.seq), Json(json!({"success": true}))))
}

pub(crate) async fn create_task(
    State(app): State<AppState>,
    auth: Auth,
    PathId(group_id): PathId,
    body: JsonObject,
) -> ApiResult<impl IntoResponse> {
    let group_id = parse_id(&group_id, "group")?;
    let cmd = Command::CreateTask {
        id: Id::generate(),
        group_id,
        name: body.req_str("name")?,
        description: body.opt_str("description")?,
        status: body.opt_status("status")?,
        start_date: body.nullable_str("startDate")?.flatten(),
        end_date: body.nullable_str("endDate")?.flatten(),
    };
    let out = app.store.execute(&auth.username, cmd).await?;
    let t: Arc<TaskRec> = super::touched(&out)?;
    // A new task has no comments: no need to read them back.
    let view = task_view_bare(&t);
    Ok((
        StatusCode::CREATED,
        Written(out.seq),
        super::success("task", view),
    ))
}

fn task_view_bare(t: &TaskRec) -> TaskView {
    TaskView {
        id: t.id.to_string(),
        group_id: t.group_id.to_string(),
        name: t.name.clone(),
        description: t.description.clone(),
        status: t.status.as_str(),
        start_date: t.start_date.clone(),
        end_date: t.end_date.clone(),
        comments: Vec::new(),
        comment_count: 0,
        created_at: fmt_ms(t.created_ms),
        updated_at: fmt_ms(t.updated_ms),
    }
}

pub(crate) async fn get_task(
    State(app): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
    q: QueryMap,
) -> ApiResult<Response> {
    let id = parse_id(&id, "task")?;
    if let Some(at) = super::history::at_param(q)? {
        return super::history::task_at(&app, &auth, id, at).await;
    }
    let gen = app.store.gen();
    let t = gen
        .state
        .task_rec(&id)
        .ok_or_else(|| ApiError::NotFound("task not found".into()))?;
    Ok(super::success("task", task_view(&gen.state, t)).into_response())
}

pub(crate) async fn update_task(
    State(app): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
    body: JsonObject,
) -> ApiResult<impl IntoResponse> {
    let cmd = Command::UpdateTask {
        id: parse_id(&id, "task")?,
        name: body.opt_str("name")?,
        description: body.opt_str("description")?,
        status: body.opt_status("status")?,
        start_date: body.nullable_str("startDate")?,
        end_date: body.nullable_str("endDate")?,
    };
    let out = app.store.execute(&auth.username, cmd).await?;
    let t: Arc<TaskRec> = super::touched(&out)?;
    let view = task_view(&app.store.gen().state, &t);
    Ok((Written(out.seq), super::success("task", view)))
}

pub(crate) async fn change_status(
    State(app): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
    body: JsonObject,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id(&id, "task")?;
    let status = body
        .opt_status("status")?
        .ok_or_else(|| ApiError::BadRequest("status is required".into()))?;
    let out = app
        .store
        .execute(&auth.username, Command::ChangeStatus { id, status })
        .await?;
    let t: Arc<TaskRec> = super::touched(&out)?;
    let view = task_view(&app.store.gen().state, &t);
    Ok((Written(out.seq), super::success("task", view)))
}

pub(crate) async fn delete_task(
    State(app): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
) -> ApiResult<impl IntoResponse> {
    let cmd = Command::DeleteTask {
        id: parse_id(&id, "task")?,
    };
    let out = app.store.execute(&auth.username, cmd).await?;
    Ok((Written(out.seq), Json(json!({"success": true}))))
}

pub(crate) async fn add_comment(
    State(app): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
    body: JsonObject,
) -> ApiResult<impl IntoResponse> {
    let cmd = Command::AddComment {
        id: Id::generate(),
        task_id: parse_id(&id, "task")?,
        text: body.req_str("text")?,
    };
    let out = app.store.execute(&auth.username, cmd).await?;
    let c: Arc<CommentRec> = super::touched(&out)?;
    Ok((
        StatusCode::CREATED,
        Written(out.seq),
        super::success("comment", CommentView::from(&*c)),
    ))
}

pub(crate) async fn list_comments(
    State(app): State<AppState>,
    _auth: Auth,
    PathId(id): PathId,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id(&id, "task")?;
    let gen = app.store.gen();
    if gen.state.task_rec(&id).is_none() {
        return Err(ApiError::NotFound("task not found".into()));
    }
    let comments: Vec<CommentView> = gen
        .state
        .comments(&id)
        .into_iter()
        .map(CommentView::from)
        .collect();
    Ok(super::success("comments", comments))
}
