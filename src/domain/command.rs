//! Commands: what a caller asks for, in the imperative. Input shape is already
//! checked at the edge (types, enums); every rule about values lives in `decide`.

use super::id::Id;

use super::model::{Role, Status};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    CreateUser {
        id: Id,
        username: String,
        password_hash: String,
        role: Role,
        /// Seeding (first-start admin, `--demo`) asks for "create unless present".
        if_absent: bool,
    },
    CreateGroup {
        id: Id,
        name: String,
        discussion: Option<String>,
    },
    UpdateGroup {
        id: Id,
        name: Option<String>,
        discussion: Option<String>,
    },
    DeleteGroup {
        id: Id,
    },
    CreateTask {
        id: Id,
        group_id: Id,
        name: String,
        description: Option<String>,
        status: Option<Status>,
        start_date: Option<String>,
        end_date: Option<String>,
    },
    UpdateTask {
        id: Id,
        name: Option<String>,
        description: Option<String>,
        status: Option<Status>,
        /// Outer `None`: leave as is; `Some(None)`: clear the date.
        start_date: Option<Option<String>>,
        end_date: Option<Option<String>>,
    },
    ChangeStatus {
        id: Id,
        status: Status,
    },
    DeleteTask {
        id: Id,
    },
    AddComment {
        id: Id,
        task_id: Id,
        text: String,
    },
}
