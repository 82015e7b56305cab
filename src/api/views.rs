//! The JSON shapes of groups, tasks and comments (SPEC §2), rendered from the
//! live image or a past one; shared by the live routes and time travel.
//! Touches nothing: records in, views out.

use serde::Serialize;

use crate::domain::time::Ts;
use crate::domain::{CommentRec, GroupRec, Id, Records, TaskRec};

// Views borrow from the records they show and write ids and timestamps
// straight into the answer: a GET renders every field of every record once,
// and copying each into an owned `String` first was a fifth of the read path's
// allocations (issue 24's profile against the in-memory ceiling).

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CommentView<'a> {
    #[serde(rename = "_id")]
    #[schema(value_type = String)]
    id: &'a Id,
    #[schema(value_type = String)]
    task_id: &'a Id,
    text: &'a str,
    author: &'a str,
    #[schema(value_type = String)]
    timestamp: Ts,
    #[schema(value_type = String)]
    created_at: Ts,
    #[schema(value_type = String)]
    updated_at: Ts,
}

impl<'a> From<&'a CommentRec> for CommentView<'a> {
    fn from(c: &'a CommentRec) -> Self {
        let t = Ts(c.created_ms);
        CommentView {
            id: &c.id,
            task_id: &c.task_id,
            text: &c.text,
            author: &c.author,
            timestamp: t,
            created_at: t,
            updated_at: t,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TaskView<'a> {
    #[serde(rename = "_id")]
    #[schema(value_type = String)]
    id: &'a Id,
    #[schema(value_type = String)]
    group_id: &'a Id,
    name: &'a str,
    description: &'a str,
    status: &'static str,
    start_date: Option<&'a str>,
    end_date: Option<&'a str>,
    comments: Vec<CommentView<'a>>,
    comment_count: usize,
    #[schema(value_type = String)]
    created_at: Ts,
    #[schema(value_type = String)]
    updated_at: Ts,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GroupView<'a> {
    #[serde(rename = "_id")]
    #[schema(value_type = String)]
    id: &'a Id,
    name: &'a str,
    discussion: &'a str,
    tasks: Vec<TaskView<'a>>,
    task_count: usize,
    #[schema(value_type = String)]
    created_at: Ts,
    #[schema(value_type = String)]
    updated_at: Ts,
}

/// A task with its comments, from the live image or a past one.
pub(crate) fn task_view<'a>(r: &'a impl Records, t: &'a TaskRec) -> TaskView<'a> {
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
pub(crate) fn group_view<'a>(r: &'a impl Records, g: &'a GroupRec) -> GroupView<'a> {
    let tasks: Vec<TaskView> = r
        .tasks_of(&g.id)
        .into_iter()
        .map(|t| task_view(r, t))
        .collect();
    GroupView {
        id: &g.id,
        name: &g.name,
        discussion: &g.discussion,
        task_count: tasks.len(),
        tasks,
        created_at: Ts(g.created_ms),
        updated_at: Ts(g.updated_ms),
    }
}

/// A task without its comments (a new task has none).
pub(crate) fn task_view_bare(t: &TaskRec) -> TaskView<'_> {
    TaskView {
        id: &t.id,
        group_id: &t.group_id,
        name: &t.name,
        description: &t.description,
        status: t.status.as_str(),
        start_date: t.start_date.as_deref(),
        end_date: t.end_date.as_deref(),
        comments: Vec::new(),
        comment_count: 0,
        created_at: Ts(t.created_ms),
        updated_at: Ts(t.updated_ms),
    }
}
