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
pub mod legal;
pub mod model;
pub mod password;
pub mod past;
pub mod state;
pub mod time;

pub use command::Command;
pub use decide::{decide, DomainError, View};
pub use describe::{describe, Activity};
pub use event::{Event, StoredEvent};
pub use id::Id;
pub use model::{CommentRec, GroupRec, Role, Status, TaskRec, UserRec};

/// Read access to records shared by the live image and a past one, so one view
/// renders both.
pub trait Records {
    /// Live tasks of a group, oldest first.
    fn tasks_of(&self, group: &Id) -> Vec<&TaskRec>;
    /// Comments of a task, oldest first.
    fn comments_of(&self, task: &Id) -> Vec<&CommentRec>;
    /// Live groups, oldest first.
    fn all_groups(&self) -> Vec<&GroupRec>;
    /// Users, oldest first.
    fn all_users(&self) -> Vec<&UserRec>;
}

impl Records for state::State {
    fn tasks_of(&self, group: &Id) -> Vec<&TaskRec> {
        self.tasks_of_group(group)
    }
    fn comments_of(&self, task: &Id) -> Vec<&CommentRec> {
        self.comments(task)
    }
    fn all_groups(&self) -> Vec<&GroupRec> {
        self.groups().collect()
    }
    fn all_users(&self) -> Vec<&UserRec> {
        self.users()
    }
}

impl Records for past::Past {
    fn tasks_of(&self, group: &Id) -> Vec<&TaskRec> {
        self.tasks_of_group(group)
    }
    fn comments_of(&self, task: &Id) -> Vec<&CommentRec> {
        self.comments(task)
    }
    fn all_groups(&self) -> Vec<&GroupRec> {
        self.groups().collect()
    }
    fn all_users(&self) -> Vec<&UserRec> {
        self.users()
    }
}
