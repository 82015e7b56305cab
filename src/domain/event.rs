//! Events: past-tense facts, each carrying everything its projections and its
//! activity-log line need, so that applying one only copies fields.
//!
//! The stored form is bincode of [`StoredEvent`]; the canonical JSON form (backups)
//! lives in `canonical.rs`. New event kinds are added at the end of [`Event`] so that
//! old logs keep decoding.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::id::Id;

use super::model::{Role, Status};

/// Schema version of the stored envelope; bumped when a payload changes shape.
pub const EVENT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub version: u32,
    pub event_id: Uuid,
    pub ts_ms: i64,
    /// Username of whoever caused it (`system` for the server itself).
    pub user: String,
    pub event: Event,
}

/// The one list of event kinds: the enum, its canonical type names and the
/// parsing of canonical data all come from it, so a new kind is added here (at
/// the end: bincode numbers variants by position) and the compiler then points
/// at every `match` that must learn it.
macro_rules! event_kinds {
    ($($kind:ident),+ $(,)?) => {
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub enum Event {
            $($kind($kind)),+
        }

        impl Event {
            /// The canonical type name (`"TaskCreated"`), as in backups.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(Event::$kind(_) => stringify!($kind)),+
                }
            }

            /// An event from its canonical type name and `data` JSON.
            pub fn from_canonical_parts(kind: &str, data: &str) -> Result<Event, String> {
                match kind {
                    $(stringify!($kind) => serde_json::from_str(data)
                        .map(Event::$kind)
                        .map_err(|e| format!("bad event data: {e}")),)+
                    other => Err(format!("unknown event type {other:?}")),
                }
            }
        }
    };
}

event_kinds!(
    UserCreated,
    GroupCreated,
    GroupUpdated,
    GroupDeleted,
    TaskCreated,
    TaskUpdated,
    TaskStatusChanged,
    TaskDeleted,
    CommentAdded,
);

impl Event {
    /// The group an event belongs to (the Kafka key, the activity-log index).
    pub fn group_id(&self) -> Option<Id> {
        match self {
            Event::UserCreated(_) => None,
            Event::GroupCreated(e) => Some(e.group_id.clone()),
            Event::GroupUpdated(e) => Some(e.group_id.clone()),
            Event::GroupDeleted(e) => Some(e.group_id.clone()),
            Event::TaskCreated(e) => Some(e.group_id.clone()),
            Event::TaskUpdated(e) => Some(e.group_id.clone()),
            Event::TaskStatusChanged(e) => Some(e.group_id.clone()),
            Event::TaskDeleted(e) => Some(e.group_id.clone()),
            Event::CommentAdded(e) => Some(e.group_id.clone()),
        }
    }

    /// The task an event concerns, if any.
    pub fn task_id(&self) -> Option<Id> {
        match self {
            Event::TaskCreated(e) => Some(e.task_id.clone()),
            Event::TaskUpdated(e) => Some(e.task_id.clone()),
            Event::TaskStatusChanged(e) => Some(e.task_id.clone()),
            Event::TaskDeleted(e) => Some(e.task_id.clone()),
            Event::CommentAdded(e) => Some(e.task_id.clone()),
            Event::UserCreated(_)
            | Event::GroupCreated(_)
            | Event::GroupUpdated(_)
            | Event::GroupDeleted(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserCreated {
    pub user_id: Id,
    pub username: String,
    pub role: Role,
    /// Argon2id PHC string; a backup must carry it or a restore would lock everyone out.
    pub password_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupCreated {
    pub group_id: Id,
    pub name: String,
    pub discussion: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupUpdated {
    pub group_id: Id,
    /// Full new values, so the projection copies instead of merging.
    pub name: String,
    pub discussion: String,
    /// Names of the fields whose value changed, for the human-readable sentence.
    pub changed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupDeleted {
    pub group_id: Id,
    pub name: String,
    /// Tasks removed with the group (their comments go with them).
    pub task_ids: Vec<Id>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskCreated {
    pub task_id: Id,
    pub group_id: Id,
    pub group_name: String,
    pub name: String,
    pub description: String,
    pub status: Status,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskUpdated {
    pub task_id: Id,
    pub group_id: Id,
    pub group_name: String,
    pub name: String,
    pub description: String,
    pub status: Status,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub changed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskStatusChanged {
    pub task_id: Id,
    pub group_id: Id,
    pub group_name: String,
    pub task_name: String,
    pub from: Status,
    pub to: Status,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskDeleted {
    pub task_id: Id,
    pub group_id: Id,
    pub group_name: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommentAdded {
    pub comment_id: Id,
    pub task_id: Id,
    pub group_id: Id,
    pub group_name: String,
    pub task_name: String,
    pub text: String,
}
