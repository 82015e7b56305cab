//! Records the projections hold: users, groups, tasks, comments, and the enums they use.

use super::id::Id;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    New,
    Backlog,
    #[serde(rename = "In Progress")]
    InProgress,
    Completed,
    Approved,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::New,
        Status::Backlog,
        Status::InProgress,
        Status::Completed,
        Status::Approved,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::New => "New",
            Status::Backlog => "Backlog",
            Status::InProgress => "In Progress",
            Status::Completed => "Completed",
            Status::Approved => "Approved",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UserRec {
    pub(crate) id: Id,
    pub(crate) username: String,
    pub(crate) role: Role,
    pub(crate) password_hash: String,
    pub(crate) created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GroupRec {
    pub(crate) id: Id,
    pub(crate) name: String,
    pub(crate) discussion: String,
    /// Sequence of the creating event: lists are ordered by it ("oldest first").
    pub(crate) created_seq: u64,
    pub(crate) created_ms: i64,
    pub(crate) updated_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TaskRec {
    pub(crate) id: Id,
    pub(crate) group_id: Id,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) status: Status,
    pub(crate) start_date: Option<String>,
    pub(crate) end_date: Option<String>,
    pub(crate) created_seq: u64,
    pub(crate) created_ms: i64,
    pub(crate) updated_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CommentRec {
    pub(crate) id: Id,
    pub(crate) task_id: Id,
    pub(crate) text: String,
    pub(crate) author: String,
    pub(crate) created_ms: i64,
}

// How events make and change records: shared by the live image and the past
// one (`state.rs`, `past.rs`), so the two cannot drift apart.

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
