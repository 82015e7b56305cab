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
