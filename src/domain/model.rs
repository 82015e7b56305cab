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
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
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

    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "New",
            Status::Backlog => "Backlog",
            Status::InProgress => "In Progress",
            Status::Completed => "Completed",
            Status::Approved => "Approved",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRec {
    pub id: Id,
    pub username: String,
    pub role: Role,
    pub password_hash: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRec {
    pub id: Id,
    pub name: String,
    pub discussion: String,
    /// Sequence of the creating event: lists are ordered by it ("oldest first").
    pub created_seq: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRec {
    pub id: Id,
    pub group_id: Id,
    pub name: String,
    pub description: String,
    pub status: Status,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub created_seq: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentRec {
    pub id: Id,
    pub task_id: Id,
    pub text: String,
    pub author: String,
    pub created_ms: i64,
}
