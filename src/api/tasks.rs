//! Groups, tasks and comments: input shape checks, the command, and the answer
//! rendered by `views`.

use std::sync::Arc;

use crate::domain::Id;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::auth::Auth;
use super::error::{ApiError, ApiResult};
use super::input::{parse_id, JsonObject, PathId};
use super::logs::QueryMap;
use super::views::{group_view, task_view, task_view_bare, CommentView, GroupView};
use super::Written;
use crate::app::AppState;
use crate::domain::{Command, CommentRec, GroupRec, TaskRec};

pub(crate) async fn list_groups(State(app): State<AppState>, _auth: Auth) -> ApiResult<Response> {
    let gen = app.store.gen();
    let groups: Vec<GroupView> = gen
        .state
        .groups()
        .map(|g| group_view(&gen.state, g))
        .collect();
    Ok(super::success("groups", groups).into_response())
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
) -> ApiResult<Response> {
    let cmd = Command::CreateGroup {
        id: Id::generate(),
        name: body.req_str("name")?,
        discussion: body.opt_str("discussion")?,
    };
    let out = app.store.execute(&auth.username, cmd).await?;
    let g: Arc<GroupRec> = super::touched(&out)?;
    let gen = app.store.gen();
    let view = group_view(&gen.state, &g);
    Ok((
        StatusCode::CREATED,
        Written(out.seq),
        super::success("group", view),
    )
        .into_response())
}

pub(crate) async fn update_group(
    State(app): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
    body: JsonObject,
) -> ApiResult<Response> {
    let cmd = Command::UpdateGroup {
        id: parse_id(&id, "group")?,
        name: body.opt_str("name")?,
        discussion: body.opt_str("discussion")?,
    };
    let out = app.store.execute(&auth.username, cmd).await?;
    let g: Arc<GroupRec> = super::touched(&out)?;
    let gen = app.store.gen();
    let view = group_view(&gen.state, &g);
    Ok((Written(out.seq), super::success("group", view)).into_response())
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
) -> ApiResult<Response> {
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
    )
        .into_response())
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
) -> ApiResult<Response> {
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
    let gen = app.store.gen();
    let view = task_view(&gen.state, &t);
    Ok((Written(out.seq), super::success("task", view)).into_response())
}

pub(crate) async fn change_status(
    State(app): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
    body: JsonObject,
) -> ApiResult<Response> {
    let id = parse_id(&id, "task")?;
    let status = body
        .opt_status("status")?
        .ok_or_else(|| ApiError::BadRequest("status is required".into()))?;
    let out = app
        .store
        .execute(&auth.username, Command::ChangeStatus { id, status })
        .await?;
    let t: Arc<TaskRec> = super::touched(&out)?;
    let gen = app.store.gen();
    let view = task_view(&gen.state, &t);
    Ok((Written(out.seq), super::success("task", view)).into_response())
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
) -> ApiResult<Response> {
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
    )
        .into_response())
}

pub(crate) async fn list_comments(
    State(app): State<AppState>,
    _auth: Auth,
    PathId(id): PathId,
) -> ApiResult<Response> {
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
    Ok(super::success("comments", comments).into_response())
}
