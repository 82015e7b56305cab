//! The JSON shapes of groups, tasks and comments (SPEC §2), rendered from the
//! live image or a past one; shared by the live routes and time travel.
//! Touches nothing: records in, views out.

use serde::Serialize;

use crate::domain::time::fmt_ms;
use crate::domain::{CommentRec, GroupRec, Records, TaskRec};

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

/// A task without its comments (a new task has none).
pub(crate) fn task_view_bare(t: &TaskRec) -> TaskView {
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
