//! How events make and change records: the one place both the live image and
//! the past one (`state.rs`, `past.rs`) take it from, so the two cannot drift
//! apart. Pure: events and records in, records out.

use super::model::{CommentRec, GroupRec, Status, TaskRec, UserRec};

use super::event::{
    CommentAdded, GroupCreated, GroupUpdated, TaskCreated, TaskUpdated, UserCreated,
};

impl UserRec {
    pub(crate) fn created(e: &UserCreated, ts: i64) -> UserRec {
        UserRec {
            id: e.user_id.clone(),
            username: e.username.clone(),
            role: e.role,
            password_hash: e.password_hash.clone(),
            created_ms: ts,
        }
    }
}

impl GroupRec {
    pub(crate) fn created(e: &GroupCreated, seq: u64, ts: i64) -> GroupRec {
        GroupRec {
            id: e.group_id.clone(),
            name: e.name.clone(),
            discussion: e.discussion.clone(),
            created_seq: seq,
            created_ms: ts,
            updated_ms: ts,
        }
    }

    pub(crate) fn update(&mut self, e: &GroupUpdated, ts: i64) {
        self.name.clone_from(&e.name);
        self.discussion.clone_from(&e.discussion);
        self.updated_ms = ts;
    }
}

impl TaskRec {
    pub(crate) fn created(e: &TaskCreated, seq: u64, ts: i64) -> TaskRec {
        TaskRec {
            id: e.task_id.clone(),
            group_id: e.group_id.clone(),
            name: e.name.clone(),
            description: e.description.clone(),
            status: e.status,
            start_date: e.start_date.clone(),
            end_date: e.end_date.clone(),
            created_seq: seq,
            created_ms: ts,
            updated_ms: ts,
        }
    }

    pub(crate) fn update(&mut self, e: &TaskUpdated, ts: i64) {
        self.name.clone_from(&e.name);
        self.description.clone_from(&e.description);
        self.status = e.status;
        self.start_date.clone_from(&e.start_date);
        self.end_date.clone_from(&e.end_date);
        self.updated_ms = ts;
    }

    pub(crate) fn set_status(&mut self, to: Status, ts: i64) {
        self.status = to;
        self.updated_ms = ts;
    }
}

impl CommentRec {
    pub(crate) fn added(e: &CommentAdded, author: &str, ts: i64) -> CommentRec {
        CommentRec {
            id: e.comment_id.clone(),
            task_id: e.task_id.clone(),
            text: e.text.clone(),
            author: author.to_string(),
            created_ms: ts,
        }
    }
}
