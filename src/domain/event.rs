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
pub(crate) const EVENT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub(crate) version: u32,
    pub(crate) event_id: Uuid,
    pub(crate) ts_ms: i64,
    /// Username of whoever caused it (`system` for the server itself).
    pub(crate) user: String,
    pub(crate) event: Event,
}

/// The one list of event kinds: the enum, its canonical type names and the
/// parsing of canonical data all come from it, so a new kind is added here (at
/// the end: bincode numbers variants by position) and the compiler then points
/// at every `match` that must learn it.
macro_rules! event_kinds {
    ($($kind:ident),+ $(,)?) => {
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub(crate) enum Event {
            $($kind($kind)),+
        }

        impl Event {
            /// The canonical type name (`"TaskCreated"`), as in backups.
            pub(crate) fn type_name(&self) -> &'static str {
                match self {
                    $(Event::$kind(_) => stringify!($kind)),+
                }
            }

            /// An event from its canonical type name and `data` JSON.
            pub(crate) fn from_canonical_parts(kind: &str, data: &str) -> Result<Event, String> {
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
    pub(crate) fn group_id(&self) -> Option<Id> {
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UserCreated {
    pub(crate) user_id: Id,
    pub(crate) username: String,
    pub(crate) role: Role,
    /// Argon2id PHC string; a backup must carry it or a restore would lock everyone out.
    pub(crate) password_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct GroupCreated {
    pub(crate) group_id: Id,
    pub(crate) name: String,
    pub(crate) discussion: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct GroupUpdated {
    pub(crate) group_id: Id,
    /// Full new values, so the projection copies instead of merging.
    pub(crate) name: String,
    pub(crate) discussion: String,
    /// Names of the fields whose value changed, for the human-readable sentence.
    pub(crate) changed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct GroupDeleted {
    pub(crate) group_id: Id,
    pub(crate) name: String,
    /// Tasks removed with the group (their comments go with them).
    pub(crate) task_ids: Vec<Id>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TaskCreated {
    pub(crate) task_id: Id,
    pub(crate) group_id: Id,
    pub(crate) group_name: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) status: Status,
    pub(crate) start_date: Option<String>,
    pub(crate) end_date: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TaskUpdated {
    pub(crate) task_id: Id,
    pub(crate) group_id: Id,
    pub(crate) group_name: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) status: Status,
    pub(crate) start_date: Option<String>,
    pub(crate) end_date: Option<String>,
    pub(crate) changed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TaskStatusChanged {
    pub(crate) task_id: Id,
    pub(crate) group_id: Id,
    pub(crate) group_name: String,
    pub(crate) task_name: String,
    pub(crate) from: Status,
    pub(crate) to: Status,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TaskDeleted {
    pub(crate) task_id: Id,
    pub(crate) group_id: Id,
    pub(crate) group_name: String,
    pub(crate) name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CommentAdded {
    pub(crate) comment_id: Id,
    pub(crate) task_id: Id,
    pub(crate) group_id: Id,
    pub(crate) group_name: String,
    pub(crate) task_name: String,
    pub(crate) text: String,
}
