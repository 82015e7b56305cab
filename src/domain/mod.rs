//! Pure business rules: commands, events, `decide`, and the in-memory model.
//!
//! Nothing in here knows about axum, sled or Kafka. The store applies the events
//! `decide` returns; the API and the Kafka mirror describe them with [`describe`].

pub(crate) mod canonical;
pub(crate) mod command;
pub(crate) mod decide;
pub(crate) mod describe;
pub(crate) mod event;
pub(crate) mod id;
pub(crate) mod legal;
pub(crate) mod model;
pub(crate) mod password;
pub mod past;
pub(crate) mod project;
pub mod state;
pub(crate) mod time;
pub(crate) mod upcast;

pub use command::Command;
pub(crate) use decide::{decide, DomainError};
pub(crate) use describe::describe;
pub(crate) use event::StoredEvent;
pub use id::Id;
pub(crate) use model::{CommentRec, GroupRec, TaskRec, UserRec};
pub use model::{Role, Status};

/// Read access to records shared by the live image and a past one, so one view
/// renders both.
pub(crate) trait Records {
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
