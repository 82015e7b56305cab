//! Pure business rules: commands, events, `decide`, and the in-memory model.
//!
//! Nothing in here knows about axum, sled or Kafka. The store applies the events
//! `decide` returns; the API and the Kafka mirror describe them with [`describe`].

pub mod canonical;
pub mod command;
pub mod decide;
pub mod describe;
pub mod event;
pub mod id;
pub mod model;
pub mod state;
pub mod time;

pub use command::Command;
pub use decide::{decide, DomainError, View};
pub use describe::{describe, Activity};
pub use event::{Event, StoredEvent};
pub use id::Id;
pub use model::{CommentRec, GroupRec, Role, Status, TaskRec, UserRec};
