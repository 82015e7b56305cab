//! Commands: what a caller asks for, in the imperative. Input shape is already
//! checked at the edge (types, enums); every rule about values lives in `decide`.

use uuid::Uuid;

use super::model::{Role, Status};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    CreateUser {
        id: Uuid,
        username: String,
        password_hash: String,
        role: Role,
        /// Seeding (first-start admin, `--demo`) asks for "create unless present".
        if_absent: bool,
    },
    CreateGroup {
        id: Uuid,
        name: String,
        discussion: Option<String>,
    },
    UpdateGroup {
        id: Uuid,
        name: Option<String>,
        discussion: Option<String>,
    },
    DeleteGroup {
        id: Uuid,
    },
    CreateTask {
        id: Uuid,
        group_id: Uuid,
        name: String,
        description: Option<String>,
        status: Option<Status>,
        start_date: Option<String>,
        end_date: Option<String>,
    },
    UpdateTask {
        id: Uuid,
        name: Option<String>,
        description: Option<String>,
        status: Option<Status>,
        /// Outer `None`: leave as is; `Some(None)`: clear the date.
        start_date: Option<Option<String>>,
        end_date: Option<Option<String>>,
    },
    ChangeStatus {
        id: Uuid,
        status: Status,
    },
    DeleteTask {
        id: Uuid,
    },
    AddComment {
        id: Uuid,
        task_id: Uuid,
        text: String,
    },
}
