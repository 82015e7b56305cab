//! `decide(view, command) -> events | error`: every business rule of taskledger.

use super::id::Id;

use super::command::Command;
use super::event::*;
use super::model::{GroupRec, TaskRec, UserRec};
use super::time::valid_date;

pub(crate) const NAME_MAX: usize = 200;
pub(crate) const TEXT_MAX: usize = 10_000;
pub(crate) const USERNAME_MAX: usize = 64;
pub(crate) const PASSWORD_MIN: usize = 8;
pub(crate) const PASSWORD_MAX: usize = 256;

/// Why `decide` refused a command; nothing was written. At the API edge:
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// 400: the command's input breaks a rule (a blank name, a bad date).
    #[error("{0}")]
    Invalid(String),
    /// 404: it names a group, task or user that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// 409: it conflicts with the state (a taken username, a reused id).
    #[error("{0}")]
    Conflict(String),
}

/// What `decide` may look at: the current projections.
pub(crate) trait View {
    fn user(&self, username: &str) -> Option<UserRec>;
    fn group(&self, id: &Id) -> Option<GroupRec>;
    fn task(&self, id: &Id) -> Option<TaskRec>;
    /// Whether the id ever named a group (live or deleted): ids are never reused,
    /// or a deleted group's history would mix with the new one's.
    fn group_known(&self, id: &Id) -> bool;
    /// The same for tasks.
    fn task_known(&self, id: &Id) -> bool;
    /// Tasks of a group in creation order.
    fn task_ids_of_group(&self, id: &Id) -> Vec<Id>;
}

fn invalid<T>(msg: impl Into<String>) -> Result<T, DomainError> {
    Err(DomainError::Invalid(msg.into()))
}

fn clean_name(field: &str, raw: &str) -> Result<String, DomainError> {
    let name = raw.trim();
    let n = name.chars().count();
    if n == 0 {
        return invalid(format!("{field} must not be empty"));
    }
    if n > NAME_MAX {
        return invalid(format!("{field} must be at most {NAME_MAX} characters"));
    }
    if name.chars().any(char::is_control) {
        return invalid(format!("{field} must not contain control characters"));
    }
    Ok(name.to_string())
}

fn check_text(field: &str, text: &str, min: usize) -> Result<(), DomainError> {
    let n = text.chars().count();
    if n < min {
        return invalid(format!("{field} must not be empty"));
    }
    if n > TEXT_MAX {
        return invalid(format!("{field} must be at most {TEXT_MAX} characters"));
    }
    // Line breaks and tabs belong in free text; other control characters do not.
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return invalid(format!("{field} must not contain control characters"));
    }
    Ok(())
}

fn check_date(field: &str, date: &Option<String>) -> Result<(), DomainError> {
    match date {
        Some(d) if !valid_date(d) => invalid(format!("{field} must be a date in YYYY-MM-DD form")),
        _ => Ok(()),
    }
}

fn check_range(start: &Option<String>, end: &Option<String>) -> Result<(), DomainError> {
    check_date("startDate", start)?;
    check_date("endDate", end)?;
    if let (Some(s), Some(e)) = (start, end) {
        // ISO dates compare correctly as strings.
        if e < s {
            return invalid("endDate must not be before startDate");
        }
    }
    Ok(())
}

/// Username rule, shared by user creation and login (a login with an
/// impossible username simply fails to match).
pub(crate) fn check_username(username: &str) -> Result<(), DomainError> {
    let n = username.chars().count();
    if n == 0 || n > USERNAME_MAX {
        return invalid(format!("username must be 1-{USERNAME_MAX} characters"));
    }
    if username
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return invalid("username must not contain whitespace or control characters");
    }
    Ok(())
}

/// Checked before hashing, since `decide` only ever sees the hash.
pub(crate) fn check_password(password: &str) -> Result<(), DomainError> {
    let n = password.chars().count();
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&n) {
        return invalid(format!(
            "password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters"
        ));
    }
    Ok(())
}

fn group_of(view: &dyn View, id: &Id) -> Result<GroupRec, DomainError> {
    view.group(id)
        .ok_or_else(|| DomainError::NotFound("group not found".into()))
}

fn task_of(view: &dyn View, id: &Id) -> Result<TaskRec, DomainError> {
    view.task(id)
        .ok_or_else(|| DomainError::NotFound("task not found".into()))
}

pub(crate) fn decide(view: &dyn View, cmd: Command) -> Result<Vec<Event>, DomainError> {
    match cmd {
        Command::CreateUser {
            id,
            username,
            password_hash,
            role,
            if_absent,
        } => {
            check_username(&username)?;
            if view.user(&username).is_some() {
                if if_absent {
                    return Ok(vec![]);
                }
                return Err(DomainError::Conflict("username is already taken".into()));
            }
            Ok(vec![Event::UserCreated(UserCreated {
                user_id: id,
                username,
                role,
                password_hash,
            })])
        }
        Command::CreateGroup {
            id,
            name,
            discussion,
        } => {
            let name = clean_name("name", &name)?;
            let discussion = discussion.unwrap_or_default();
            check_text("discussion", &discussion, 0)?;
            if view.group_known(&id) {
                return Err(DomainError::Conflict("group id already exists".into()));
            }
            Ok(vec![Event::GroupCreated(GroupCreated {
                group_id: id,
                name,
                discussion,
            })])
        }
        Command::UpdateGroup {
            id,
            name,
            discussion,
        } => {
            let name = name.map(|n| clean_name("name", &n)).transpose()?;
            if let Some(d) = &discussion {
                check_text("discussion", d, 0)?;
            }
            let g = group_of(view, &id)?;
            let mut changed = Vec::new();
            if name.as_ref().is_some_and(|n| *n != g.name) {
                changed.push("name".to_string());
            }
            if discussion.as_ref().is_some_and(|d| *d != g.discussion) {
                changed.push("discussion".to_string());
            }
            Ok(vec![Event::GroupUpdated(GroupUpdated {
                group_id: id,
                name: name.unwrap_or(g.name),
                discussion: discussion.unwrap_or(g.discussion),
                changed,
            })])
        }
        Command::DeleteGroup { id } => {
            let g = group_of(view, &id)?;
            Ok(vec![Event::GroupDeleted(GroupDeleted {
                task_ids: view.task_ids_of_group(&id),
                group_id: id,
                name: g.name,
            })])
        }
        Command::CreateTask {
            id,
            group_id,
            name,
            description,
            status,
            start_date,
            end_date,
        } => {
            let name = clean_name("name", &name)?;
            let description = description.unwrap_or_default();
            check_text("description", &description, 0)?;
            check_range(&start_date, &end_date)?;
            let g = group_of(view, &group_id)?;
            if view.task_known(&id) {
                return Err(DomainError::Conflict("task id already exists".into()));
            }
            Ok(vec![Event::TaskCreated(TaskCreated {
                task_id: id,
                group_id,
                group_name: g.name,
                name,
                description,
                status: status.unwrap_or(super::model::Status::New),
                start_date,
                end_date,
            })])
        }
        Command::UpdateTask {
            id,
            name,
            description,
            status,
            start_date,
            end_date,
        } => {
            let name = name.map(|n| clean_name("name", &n)).transpose()?;
            if let Some(d) = &description {
                check_text("description", d, 0)?;
            }
            let t = task_of(view, &id)?;
            let new_start = start_date.clone().unwrap_or_else(|| t.start_date.clone());
            let new_end = end_date.clone().unwrap_or_else(|| t.end_date.clone());
            check_range(&new_start, &new_end)?;
            let g = group_of(view, &t.group_id)?;
            let mut changed = Vec::new();
            let mut note = |field: &str, differs: bool| {
                if differs {
                    changed.push(field.to_string());
                }
            };
            note("name", name.as_ref().is_some_and(|n| *n != t.name));
            note(
                "description",
                description.as_ref().is_some_and(|d| *d != t.description),
            );
            note("status", status.is_some_and(|s| s != t.status));
            note("startDate", new_start != t.start_date);
            note("endDate", new_end != t.end_date);
            Ok(vec![Event::TaskUpdated(TaskUpdated {
                task_id: id,
                group_id: t.group_id,
                group_name: g.name,
                name: name.unwrap_or(t.name),
                description: description.unwrap_or(t.description),
                status: status.unwrap_or(t.status),
                start_date: new_start,
                end_date: new_end,
                changed,
            })])
        }
        Command::ChangeStatus { id, status } => {
            let t = task_of(view, &id)?;
            let g = group_of(view, &t.group_id)?;
            Ok(vec![Event::TaskStatusChanged(TaskStatusChanged {
                task_id: id,
                group_id: t.group_id,
                group_name: g.name,
                task_name: t.name,
                from: t.status,
                to: status,
            })])
        }
        Command::DeleteTask { id } => {
            let t = task_of(view, &id)?;
            let g = group_of(view, &t.group_id)?;
            Ok(vec![Event::TaskDeleted(TaskDeleted {
                task_id: id,
                group_id: t.group_id,
                group_name: g.name,
                name: t.name,
            })])
        }
        Command::AddComment { id, task_id, text } => {
            check_text("text", &text, 1)?;
            if text.trim().is_empty() {
                return invalid("text must not be blank");
            }
            let t = task_of(view, &task_id)?;
            let g = group_of(view, &t.group_id)?;
            Ok(vec![Event::CommentAdded(CommentAdded {
                comment_id: id,
                task_id,
                group_id: t.group_id,
                group_name: g.name,
                task_name: t.name,
                text,
            })])
        }
    }
}

#[cfg(test)]
mod tests {
    //! Given these events, when this command, then these events or this error.
    use super::*;
    use crate::domain::model::{Role, Status};
    use crate::domain::state::State as MemState;

    use uuid::Uuid;

    fn id(n: u128) -> Id {
        Id::from(Uuid::from_u128(n))
    }

    fn given(events: Vec<Event>) -> MemState {
        let mut s = MemState::default();
        for (i, e) in events.into_iter().enumerate() {
            s.apply(
                i as u64 + 1,
                &StoredEvent {
                    version: 1,
                    event_id: Uuid::new_v4(),
                    ts_ms: 1000 + i as i64,
                    user: "tester".into(),
                    event: e,
                },
            );
        }
        s
    }

    fn group(n: u128, name: &str) -> Event {
        Event::GroupCreated(GroupCreated {
            group_id: id(n),
            name: name.into(),
            discussion: String::new(),
        })
    }

    fn task(n: u128, g: u128, name: &str) -> Event {
        Event::TaskCreated(TaskCreated {
            task_id: id(n),
            group_id: id(g),
            group_name: "G".into(),
            name: name.into(),
            description: String::new(),
            status: Status::New,
            start_date: None,
            end_date: None,
        })
    }

    fn create_task(n: u128, g: u128, name: &str) -> Command {
        Command::CreateTask {
            id: id(n),
            group_id: id(g),
            name: name.into(),
            description: None,
            status: None,
            start_date: None,
            end_date: None,
        }
    }

    fn update_task(n: u128) -> Command {
        Command::UpdateTask {
            id: id(n),
            name: None,
            description: None,
            status: None,
            start_date: None,
            end_date: None,
        }
    }

    fn invalid_msg(r: Result<Vec<Event>, DomainError>) -> String {
        match r {
            Err(DomainError::Invalid(m)) => m,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    /// Ids of deleted groups and tasks are never given out again: their history
    /// stays theirs, and a backup of the log passes the restore rules.
    #[test]
    fn a_deleted_group_or_task_id_is_not_reused() {
        let s = given(vec![
            group(1, "G"),
            task(2, 1, "T"),
            Event::TaskDeleted(TaskDeleted {
                task_id: id(2),
                group_id: id(1),
                group_name: "G".into(),
                name: "T".into(),
            }),
        ]);
        assert!(matches!(
            decide(&s, create_task(2, 1, "again")),
            Err(DomainError::Conflict(_))
        ));
        let s = given(vec![
            group(1, "G"),
            Event::GroupDeleted(GroupDeleted {
                group_id: id(1),
                name: "G".into(),
                task_ids: vec![],
            }),
        ]);
        let again = Command::CreateGroup {
            id: id(1),
            name: "again".into(),
            discussion: None,
        };
        assert!(matches!(decide(&s, again), Err(DomainError::Conflict(_))));
    }

    #[test]
    fn create_user_then_taken_is_conflict_unless_if_absent() {
        let cmd = |if_absent| Command::CreateUser {
            id: id(9),
            username: "ann".into(),
            password_hash: "h".into(),
            role: Role::Member,
            if_absent,
        };
        let s = given(vec![]);
        assert!(
            matches!(&decide(&s, cmd(false)).unwrap()[..], [Event::UserCreated(u)] if u.username == "ann")
        );
        let s = given(vec![Event::UserCreated(UserCreated {
            user_id: id(1),
            username: "ann".into(),
            role: Role::Member,
            password_hash: "h".into(),
        })]);
        assert!(matches!(
            decide(&s, cmd(false)),
            Err(DomainError::Conflict(_))
        ));
        assert_eq!(decide(&s, cmd(true)), Ok(vec![]));
    }

    #[test]
    fn usernames_and_passwords_are_checked() {
        assert!(check_username("a b").is_err());
        assert!(check_username("").is_err());
        assert!(check_username(&"x".repeat(65)).is_err());
        assert!(check_username(&"x".repeat(64)).is_ok());
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_password(&"p".repeat(257)).is_err());
    }

    #[test]
    fn create_group_trims_name_and_defaults_discussion() {
        let s = given(vec![]);
        let evs = decide(
            &s,
            Command::CreateGroup {
                id: id(1),
                name: "  Alpha ".into(),
                discussion: None,
            },
        )
        .unwrap();
        assert_eq!(
            evs,
            vec![Event::GroupCreated(GroupCreated {
                group_id: id(1),
                name: "Alpha".into(),
                discussion: String::new()
            })]
        );
    }

    #[test]
    fn group_name_rules() {
        let s = given(vec![]);
        let mk = |name: String, discussion: Option<String>| Command::CreateGroup {
            id: id(1),
            name,
            discussion,
        };
        assert!(invalid_msg(decide(&s, mk("   ".into(), None))).contains("empty"));
        assert!(invalid_msg(decide(&s, mk("x".repeat(201), None))).contains("200"));
        assert!(decide(&s, mk("é".repeat(200), None)).is_ok());
        assert!(
            invalid_msg(decide(&s, mk("a".into(), Some("d".repeat(10_001))))).contains("10000")
        );
    }

    #[test]
    fn update_group_lists_changed_fields_and_keeps_the_rest() {
        let s = given(vec![group(1, "Alpha")]);
        let evs = decide(
            &s,
            Command::UpdateGroup {
                id: id(1),
                name: Some("Beta".into()),
                discussion: None,
            },
        )
        .unwrap();
        assert_eq!(
            evs,
            vec![Event::GroupUpdated(GroupUpdated {
                group_id: id(1),
                name: "Beta".into(),
                discussion: String::new(),
                changed: vec!["name".into()],
            })]
        );
        let missing = Command::UpdateGroup {
            id: id(2),
            name: None,
            discussion: None,
        };
        assert!(matches!(decide(&s, missing), Err(DomainError::NotFound(_))));
    }

    #[test]
    fn delete_group_names_its_tasks() {
        let s = given(vec![
            group(1, "A"),
            task(10, 1, "t1"),
            group(2, "B"),
            task(11, 2, "x"),
            task(12, 1, "t2"),
        ]);
        let evs = decide(&s, Command::DeleteGroup { id: id(1) }).unwrap();
        assert_eq!(
            evs,
            vec![Event::GroupDeleted(GroupDeleted {
                group_id: id(1),
                name: "A".into(),
                task_ids: vec![id(10), id(12)],
            })]
        );
        let s = given(vec![
            group(1, "A"),
            Event::GroupDeleted(GroupDeleted {
                group_id: id(1),
                name: "A".into(),
                task_ids: vec![],
            }),
        ]);
        assert!(matches!(
            decide(&s, Command::DeleteGroup { id: id(1) }),
            Err(DomainError::NotFound(_))
        ));
    }

    #[test]
    fn create_task_carries_the_group_name() {
        let s = given(vec![group(1, "Project Alpha")]);
        let evs = decide(&s, create_task(5, 1, "Feature X")).unwrap();
        match &evs[..] {
            [Event::TaskCreated(t)] => {
                assert_eq!(t.group_name, "Project Alpha");
                assert_eq!(t.status, Status::New);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_task_rejections() {
        let s = given(vec![group(1, "G")]);
        assert!(matches!(
            decide(&s, create_task(5, 2, "x")),
            Err(DomainError::NotFound(_))
        ));
        assert!(invalid_msg(decide(&s, create_task(5, 1, ""))).contains("empty"));
        let bad_date = Command::CreateTask {
            id: id(5),
            group_id: id(1),
            name: "x".into(),
            description: None,
            status: None,
            start_date: Some("2025-13-01".into()),
            end_date: None,
        };
        assert!(invalid_msg(decide(&s, bad_date)).contains("startDate"));
        let reversed = Command::CreateTask {
            id: id(5),
            group_id: id(1),
            name: "x".into(),
            description: None,
            status: None,
            start_date: Some("2025-02-01".into()),
            end_date: Some("2025-01-01".into()),
        };
        assert!(invalid_msg(decide(&s, reversed)).contains("before"));
        let s = given(vec![group(1, "G"), task(5, 1, "x")]);
        assert!(matches!(
            decide(&s, create_task(5, 1, "y")),
            Err(DomainError::Conflict(_))
        ));
    }

    #[test]
    fn update_task_clears_and_sets_dates() {
        let s = given(vec![
            group(1, "G"),
            Event::TaskCreated(TaskCreated {
                task_id: id(5),
                group_id: id(1),
                group_name: "G".into(),
                name: "x".into(),
                description: "d".into(),
                status: Status::New,
                start_date: Some("2025-01-01".into()),
                end_date: None,
            }),
        ]);
        let mut cmd = update_task(5);
        if let Command::UpdateTask {
            start_date,
            end_date,
            status,
            ..
        } = &mut cmd
        {
            *start_date = Some(None);
            *end_date = Some(Some("2025-03-03".into()));
            *status = Some(Status::Completed);
        }
        match &decide(&s, cmd).unwrap()[..] {
            [Event::TaskUpdated(t)] => {
                assert_eq!(t.start_date, None);
                assert_eq!(t.end_date.as_deref(), Some("2025-03-03"));
                assert_eq!(t.status, Status::Completed);
                assert_eq!(t.description, "d");
                assert_eq!(t.changed, vec!["status", "startDate", "endDate"]);
            }
            other => panic!("{other:?}"),
        }
        // The range is checked against the stored start when only the end moves.
        let mut cmd = update_task(5);
        if let Command::UpdateTask { end_date, .. } = &mut cmd {
            *end_date = Some(Some("2024-12-31".into()));
        }
        assert!(invalid_msg(decide(&s, cmd)).contains("before"));
        assert!(matches!(
            decide(&s, update_task(6)),
            Err(DomainError::NotFound(_))
        ));
    }

    #[test]
    fn status_change_records_from_and_to() {
        let s = given(vec![group(1, "G"), task(5, 1, "x")]);
        let evs = decide(
            &s,
            Command::ChangeStatus {
                id: id(5),
                status: Status::Approved,
            },
        )
        .unwrap();
        assert!(
            matches!(&evs[..], [Event::TaskStatusChanged(e)] if e.from == Status::New && e.to == Status::Approved && e.task_name == "x")
        );
        assert!(matches!(
            decide(
                &s,
                Command::ChangeStatus {
                    id: id(6),
                    status: Status::New
                }
            ),
            Err(DomainError::NotFound(_))
        ));
    }

    #[test]
    fn delete_task_and_then_it_is_gone() {
        let s = given(vec![group(1, "G"), task(5, 1, "x")]);
        let evs = decide(&s, Command::DeleteTask { id: id(5) }).unwrap();
        assert!(
            matches!(&evs[..], [Event::TaskDeleted(e)] if e.name == "x" && e.group_id == id(1))
        );
        let mut s2 = s.clone();
        s2.apply(
            3,
            &StoredEvent {
                version: 1,
                event_id: Uuid::nil(),
                ts_ms: 0,
                user: "u".into(),
                event: evs[0].clone(),
            },
        );
        assert!(matches!(
            decide(&s2, Command::DeleteTask { id: id(5) }),
            Err(DomainError::NotFound(_))
        ));
    }

    #[test]
    fn comments_need_text_and_a_task() {
        let s = given(vec![group(1, "G"), task(5, 1, "x")]);
        let add = |task: u128, text: &str| Command::AddComment {
            id: id(77),
            task_id: id(task),
            text: text.into(),
        };
        assert!(
            matches!(&decide(&s, add(5, "hi")).unwrap()[..], [Event::CommentAdded(c)] if c.task_name == "x" && c.text == "hi")
        );
        assert!(invalid_msg(decide(&s, add(5, ""))).contains("empty"));
        assert!(invalid_msg(decide(&s, add(5, "   "))).contains("blank"));
        assert!(invalid_msg(decide(&s, add(5, &"c".repeat(10_001)))).contains("10000"));
        assert!(matches!(
            decide(&s, add(6, "hi")),
            Err(DomainError::NotFound(_))
        ));
    }
}
