//! Import of the predecessor's snapshot files (SPEC §8): checks the whole file,
//! then turns it into the events that recreate it — ids, names, texts, statuses,
//! dates and timestamps kept exactly, plain-text passwords hashed. Pure apart from
//! the password hashing; the restore path writes and swaps the result.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::event::*;
use crate::domain::password::hash_password;
use crate::domain::time::{now_ms, parse_ms};
use crate::domain::{Id, Role, Status};
use crate::store::StoreError;

/// Why a predecessor file cannot be imported; nothing was changed. Every variant
/// becomes `BackupError::Invalid`, `invalid import: ` and this text (422).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImportError {
    /// The file ends inside its JSON.
    #[error("the file ends early (truncated JSON): {0}")]
    Truncated(#[source] serde_json::Error),
    #[error("not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// A part of the file has the wrong shape, or a record a wrong link. `at` is
    /// the part: a JSON path (`data.tasks[3].status`, `metadata.counts.tasks`,
    /// `data`, `the file`) or a record (`task 65f…`); `why` says what is wrong with
    /// it, so that the text reads `{at} {why}`.
    #[error("{at} {why}")]
    Invalid { at: String, why: String },
    /// Two records share an id; `what` is the kind of the later one.
    #[error("duplicate id {id} ({what})")]
    DuplicateId { id: Id, what: &'static str },
    #[error("duplicate username {0}")]
    DuplicateUsername(String),
    /// Hashing a password from the file, or the random one of a user without.
    #[error("hashing a password: {0}")]
    Hash(#[from] argon2::password_hash::Error),
    /// The planned events break the log's rules when they are replayed into the
    /// new generation. Not `#[from]`: a `StoreError` from writing that generation is
    /// a fault (500), not something wrong with the file.
    #[error("{0}")]
    Replay(#[source] StoreError),
}

impl From<serde_json::Error> for ImportError {
    fn from(e: serde_json::Error) -> Self {
        if e.is_eof() {
            ImportError::Truncated(e)
        } else {
            ImportError::NotJson(e)
        }
    }
}

fn invalid(at: impl Into<String>, why: impl Into<String>) -> ImportError {
    ImportError::Invalid {
        at: at.into(),
        why: why.into(),
    }
}

/// Record counts of an imported file (the answer's `imported`).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub(crate) struct Imported {
    pub(crate) groups: u64,
    pub(crate) tasks: u64,
    pub(crate) comments: u64,
    pub(crate) users: u64,
}

/// The events that recreate a snapshot, in log order, and what they hold.
pub(crate) struct Plan {
    pub(crate) events: Vec<StoredEvent>,
    pub(crate) imported: Imported,
}

type Obj = Map<String, Value>;

/// A field; `null` counts as absent.
fn field<'a>(o: &'a Obj, name: &str) -> Option<&'a Value> {
    o.get(name).filter(|v| !v.is_null())
}

fn text(o: &Obj, at: &str, name: &str) -> Result<Option<String>, ImportError> {
    match field(o, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("{at}.{name}"), "must be a string")),
    }
}

fn req_text(o: &Obj, at: &str, name: &str) -> Result<String, ImportError> {
    text(o, at, name)?.ok_or_else(|| invalid(format!("{at}.{name}"), "is missing"))
}

fn id_of(o: &Obj, at: &str, name: &str) -> Result<Id, ImportError> {
    let raw = req_text(o, at, name)?;
    Id::parse(&raw).ok_or_else(|| {
        invalid(
            format!("{at}.{name}"),
            format!("is not a usable id: {raw:?}"),
        )
    })
}

fn time(o: &Obj, at: &str, name: &str) -> Result<Option<i64>, ImportError> {
    match text(o, at, name)? {
        None => Ok(None),
        Some(s) => parse_ms(&s).map(Some).ok_or_else(|| {
            invalid(
                format!("{at}.{name}"),
                format!("is not an RFC 3339 time: {s:?}"),
            )
        }),
    }
}

fn id_list(o: &Obj, at: &str, name: &str) -> Result<Vec<Id>, ImportError> {
    match field(o, name) {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Id::parse(s)
                    .ok_or_else(|| invalid(format!("{at}.{name}[{i}]"), "is not a usable id")),
                _ => Err(invalid(format!("{at}.{name}[{i}]"), "must be a string id")),
            })
            .collect(),
        Some(_) => Err(invalid(format!("{at}.{name}"), "must be an array of ids")),
    }
}

fn objects<'a>(data: &'a Obj, name: &str) -> Result<Vec<&'a Obj>, ImportError> {
    match data.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_object()
                    .ok_or_else(|| invalid(format!("data.{name}[{i}]"), "must be an object"))
            })
            .collect(),
        Some(_) => Err(invalid(format!("data.{name}"), "must be an array")),
    }
}

struct Group {
    id: Id,
    name: String,
    discussion: String,
    tasks: Vec<Id>,
    created: i64,
    updated: i64,
}

struct Task {
    id: Id,
    group: Id,
    name: String,
    description: String,
    status: Status,
    start: Option<String>,
    end: Option<String>,
    comments: Vec<Id>,
    created: i64,
    updated: i64,
}

struct Comment {
    id: Id,
    task: Id,
    text: String,
    author: String,
    created: i64,
}

struct User {
    id: Id,
    username: String,
    role: Role,
    password: Option<String>,
    created: i64,
}

/// Everything in the file, checked for shape and references.
struct Parsed {
    groups: Vec<Group>,
    tasks: Vec<Task>,
    comments: Vec<Comment>,
    users: Vec<User>,
    by: String,
}

fn check_counts(root: &Obj, p: &Parsed) -> Result<(), ImportError> {
    let Some(meta) = root.get("metadata").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let meta = meta
        .as_object()
        .ok_or_else(|| invalid("metadata", "must be an object"))?;
    let Some(counts) = meta.get("counts").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let counts = counts
        .as_object()
        .ok_or_else(|| invalid("metadata.counts", "must be an object"))?;
    let have = [
        ("groups", p.groups.len()),
        ("tasks", p.tasks.len()),
        ("comments", p.comments.len()),
        ("users", p.users.len()),
    ];
    for (name, n) in have {
        match counts.get(name) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_u64() {
                Some(c) if c as usize == n => {}
                Some(c) => {
                    return Err(invalid(
                        format!("metadata.counts.{name}"),
                        format!("is {c} but the file holds {n}"),
                    ))
                }
                None => {
                    return Err(invalid(
                        format!("metadata.counts.{name}"),
                        "must be a whole number",
                    ))
                }
            },
        }
    }
    Ok(())
}

fn parse(bytes: &[u8]) -> Result<Parsed, ImportError> {
    let root: Value = serde_json::from_slice(bytes)?;
    let root = root
        .as_object()
        .ok_or_else(|| invalid("the file", "must hold a JSON object"))?;
    let data = root.get("data").and_then(Value::as_object).ok_or_else(|| {
        invalid(
            "data",
            "must be an object with groups, tasks, comments and users",
        )
    })?;
    let fallback = time(root, "snapshot", "createdAt")?.unwrap_or_else(now_ms);
    let by = text(root, "snapshot", "createdBy")?.unwrap_or_else(|| "import".into());
    let mut p = Parsed {
        groups: Vec::new(),
        tasks: Vec::new(),
        comments: Vec::new(),
        users: Vec::new(),
        by,
    };
    for (i, o) in objects(data, "groups")?.into_iter().enumerate() {
        let at = format!("data.groups[{i}]");
        let created = time(o, &at, "createdAt")?.unwrap_or(fallback);
        p.groups.push(Group {
            id: id_of(o, &at, "_id")?,
            name: req_text(o, &at, "name")?,
            discussion: text(o, &at, "discussion")?.unwrap_or_default(),
            tasks: id_list(o, &at, "tasks")?,
            created,
            updated: time(o, &at, "updatedAt")?.unwrap_or(created).max(created),
        });
    }
    for (i, o) in objects(data, "tasks")?.into_iter().enumerate() {
        let at = format!("data.tasks[{i}]");
        let created = time(o, &at, "createdAt")?.unwrap_or(fallback);
        let status = match text(o, &at, "status")? {
            None => Status::New,
            Some(s) => Status::parse(&s).ok_or_else(|| {
                invalid(
                    format!("{at}.status"),
                    format!(
                        "must be one of New, Backlog, In Progress, Completed, Approved, not {s:?}"
                    ),
                )
            })?,
        };
        p.tasks.push(Task {
            id: id_of(o, &at, "_id")?,
            group: id_of(o, &at, "groupId")?,
            name: req_text(o, &at, "name")?,
            description: text(o, &at, "description")?.unwrap_or_default(),
            status,
            start: text(o, &at, "startDate")?,
            end: text(o, &at, "endDate")?,
            comments: id_list(o, &at, "comments")?,
            created,
            updated: time(o, &at, "updatedAt")?.unwrap_or(created).max(created),
        });
    }
    for (i, o) in objects(data, "comments")?.into_iter().enumerate() {
        let at = format!("data.comments[{i}]");
        let created = match time(o, &at, "createdAt")? {
            Some(t) => t,
            None => time(o, &at, "timestamp")?.unwrap_or(fallback),
        };
        p.comments.push(Comment {
            id: id_of(o, &at, "_id")?,
            task: id_of(o, &at, "taskId")?,
            text: req_text(o, &at, "text")?,
            author: text(o, &at, "author")?.unwrap_or_else(|| p.by.clone()),
            created,
        });
    }
    for (i, o) in objects(data, "users")?.into_iter().enumerate() {
        let at = format!("data.users[{i}]");
        let username = req_text(o, &at, "username")?;
        if username.is_empty() || username.chars().any(char::is_control) {
            return Err(invalid(
                format!("{at}.username"),
                "is not a usable user name",
            ));
        }
        let role = match text(o, &at, "role")?.as_deref().and_then(Role::parse) {
            Some(r) => r,
            None if username == "admin" => Role::Admin,
            None => Role::Member,
        };
        p.users.push(User {
            id: id_of(o, &at, "_id")?,
            role,
            password: text(o, &at, "password")?.filter(|s| !s.is_empty()),
            created: time(o, &at, "createdAt")?.unwrap_or(fallback),
            username,
        });
    }
    check_counts(root, &p)?;
    check_references(&p)?;
    Ok(p)
}

fn check_references(p: &Parsed) -> Result<(), ImportError> {
    let mut ids: HashSet<Id> = HashSet::new();
    let mut unique = |id: &Id, what: &'static str| -> Result<(), ImportError> {
        if ids.insert(id.clone()) {
            Ok(())
        } else {
            Err(ImportError::DuplicateId {
                id: id.clone(),
                what,
            })
        }
    };
    for g in &p.groups {
        unique(&g.id, "group")?;
    }
    for t in &p.tasks {
        unique(&t.id, "task")?;
    }
    for c in &p.comments {
        unique(&c.id, "comment")?;
    }
    let mut names = HashSet::new();
    for u in &p.users {
        unique(&u.id, "user")?;
        if !names.insert(u.username.as_str()) {
            return Err(ImportError::DuplicateUsername(u.username.clone()));
        }
    }
    let groups: HashMap<&Id, &Group> = p.groups.iter().map(|g| (&g.id, g)).collect();
    let tasks: HashMap<&Id, &Task> = p.tasks.iter().map(|t| (&t.id, t)).collect();
    let comments: HashMap<&Id, &Comment> = p.comments.iter().map(|c| (&c.id, c)).collect();
    for t in &p.tasks {
        let g = groups.get(&t.group).ok_or_else(|| {
            invalid(
                format!("task {}", t.id),
                format!("belongs to group {}, which is not in the file", t.group),
            )
        })?;
        if t.created < g.created {
            return Err(invalid(
                format!("task {}", t.id),
                format!("was created before its group {}", g.id),
            ));
        }
    }
    for c in &p.comments {
        let t = tasks.get(&c.task).ok_or_else(|| {
            invalid(
                format!("comment {}", c.id),
                format!("belongs to task {}, which is not in the file", c.task),
            )
        })?;
        if c.created < t.created {
            return Err(invalid(
                format!("comment {}", c.id),
                format!("was created before its task {}", t.id),
            ));
        }
    }
    // The id arrays are the predecessor's other record of the same links.
    for g in &p.groups {
        for t in &g.tasks {
            match tasks.get(t) {
                Some(task) if task.group == g.id => {}
                Some(_) => {
                    return Err(invalid(
                        format!("group {}", g.id),
                        format!("lists task {t}, which belongs to another group"),
                    ))
                }
                None => {
                    return Err(invalid(
                        format!("group {}", g.id),
                        format!("lists task {t}, which is not in the file"),
                    ))
                }
            }
        }
    }
    for t in &p.tasks {
        for c in &t.comments {
            match comments.get(c) {
                Some(com) if com.task == t.id => {}
                Some(_) => {
                    return Err(invalid(
                        format!("task {}", t.id),
                        format!("lists comment {c}, which belongs to another task"),
                    ))
                }
                None => {
                    return Err(invalid(
                        format!("task {}", t.id),
                        format!("lists comment {c}, which is not in the file"),
                    ))
                }
            }
        }
    }
    Ok(())
}

/// Order of events with the same timestamp: whatever they depend on first.
fn rank(e: &Event) -> u8 {
    match e {
        Event::UserCreated(_) => 0,
        Event::GroupCreated(_) => 1,
        Event::TaskCreated(_) => 2,
        Event::CommentAdded(_) => 3,
        _ => 4,
    }
}

/// Checks `bytes` and plans the import. `live_hash` gives this server's password
/// hash for a user name: a user without a password in the file who also exists
/// here keeps that password (so the admin importing is not locked out).
pub(crate) fn plan(
    bytes: &[u8],
    live_hash: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, ImportError> {
    let p = parse(bytes)?;
    let mut out: Vec<(i64, u8, usize, String, Event)> = Vec::new();
    let mut push = |ts: i64, user: &str, e: Event| {
        let n = out.len();
        out.push((ts, rank(&e), n, user.to_string(), e));
    };
    for u in &p.users {
        let password_hash = match (&u.password, live_hash(&u.username)) {
            (Some(pw), _) => hash_password(pw)?,
            (None, Some(h)) => h,
            (None, None) => {
                let random: String = {
                    use rand::distributions::{Alphanumeric, DistString};
                    Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
                };
                hash_password(&random)?
            }
        };
        let e = Event::UserCreated(UserCreated {
            user_id: u.id.clone(),
            username: u.username.clone(),
            role: u.role,
            password_hash,
        });
        push(u.created, &p.by, e);
    }
    let group_names: HashMap<&Id, &str> =
        p.groups.iter().map(|g| (&g.id, g.name.as_str())).collect();
    for g in &p.groups {
        push(
            g.created,
            &p.by,
            Event::GroupCreated(GroupCreated {
                group_id: g.id.clone(),
                name: g.name.clone(),
                discussion: g.discussion.clone(),
            }),
        );
        if g.updated > g.created {
            push(
                g.updated,
                &p.by,
                Event::GroupUpdated(GroupUpdated {
                    group_id: g.id.clone(),
                    name: g.name.clone(),
                    discussion: g.discussion.clone(),
                    changed: Vec::new(),
                }),
            );
        }
    }
    let mut task_names: HashMap<&Id, (&str, &Id)> = HashMap::new();
    for t in &p.tasks {
        let group_name = group_names.get(&t.group).copied().unwrap_or_default();
        task_names.insert(&t.id, (t.name.as_str(), &t.group));
        push(
            t.created,
            &p.by,
            Event::TaskCreated(TaskCreated {
                task_id: t.id.clone(),
                group_id: t.group.clone(),
                group_name: group_name.to_string(),
                name: t.name.clone(),
                description: t.description.clone(),
                status: Status::New,
                start_date: t.start.clone(),
                end_date: t.end.clone(),
            }),
        );
        if t.status != Status::New {
            push(
                t.updated,
                &p.by,
                Event::TaskStatusChanged(TaskStatusChanged {
                    task_id: t.id.clone(),
                    group_id: t.group.clone(),
                    group_name: group_name.to_string(),
                    task_name: t.name.clone(),
                    from: Status::New,
                    to: t.status,
                }),
            );
        } else if t.updated > t.created {
            push(
                t.updated,
                &p.by,
                Event::TaskUpdated(TaskUpdated {
                    task_id: t.id.clone(),
                    group_id: t.group.clone(),
                    group_name: group_name.to_string(),
                    name: t.name.clone(),
                    description: t.description.clone(),
                    status: t.status,
                    start_date: t.start.clone(),
                    end_date: t.end.clone(),
                    changed: Vec::new(),
                }),
            );
        }
    }
    for c in &p.comments {
        let (task_name, group) = task_names.get(&c.task).copied().unwrap_or(("", &c.task));
        let group_name = group_names.get(group).copied().unwrap_or_default();
        push(
            c.created,
            &c.author,
            Event::CommentAdded(CommentAdded {
                comment_id: c.id.clone(),
                task_id: c.task.clone(),
                group_id: group.clone(),
                group_name: group_name.to_string(),
                task_name: task_name.to_string(),
                text: c.text.clone(),
            }),
        );
    }
    out.sort_by_key(|e| (e.0, e.1, e.2));
    let events = out
        .into_iter()
        .map(|(ts, _, _, user, event)| StoredEvent {
            version: EVENT_VERSION,
            event_id: uuid::Uuid::now_v7(),
            ts_ms: ts,
            user,
            event,
        })
        .collect();
    Ok(Plan {
        events,
        imported: Imported {
            groups: p.groups.len() as u64,
            tasks: p.tasks.len() as u64,
            comments: p.comments.len() as u64,
            users: p.users.len() as u64,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refusal(bytes: &[u8]) -> ImportError {
        match parse(bytes) {
            Err(e) => e,
            Ok(_) => panic!("accepted {}", String::from_utf8_lossy(bytes)),
        }
    }

    fn refusal_of(v: Value) -> ImportError {
        refusal(&serde_json::to_vec(&v).unwrap())
    }

    #[test]
    fn shape_refusals_name_the_part() {
        let e = refusal_of(json!({"data": {"groups": [{"_id": "g1", "name": 42}]}}));
        assert!(
            matches!(&e, ImportError::Invalid { at, .. } if at == "data.groups[0].name"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "data.groups[0].name must be a string");

        let e =
            refusal_of(json!({"data": {"tasks": [{"_id": "t1", "groupId": "g9", "name": "T"}]}}));
        assert!(
            matches!(&e, ImportError::Invalid { at, .. } if at == "task t1"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "task t1 belongs to group g9, which is not in the file"
        );

        let e = refusal_of(json!({"data": {"groups": [
            {"_id": "a", "name": "A"}, {"_id": "a", "name": "B"}
        ]}}));
        assert!(matches!(e, ImportError::DuplicateId { what: "group", .. }));
        assert_eq!(e.to_string(), "duplicate id a (group)");

        let e = refusal_of(json!({"metadata": {"counts": {"groups": 2}}, "data": {}}));
        assert_eq!(
            e.to_string(),
            "metadata.counts.groups is 2 but the file holds 0"
        );
        assert_eq!(
            refusal(b"[1]").to_string(),
            "the file must hold a JSON object"
        );
    }

    #[test]
    fn json_refusals_keep_the_parser_error() {
        use std::error::Error as _;
        let e = refusal(br#"{"data": {"groups": ["#);
        assert!(matches!(e, ImportError::Truncated(_)), "{e:?}");
        assert!(e
            .to_string()
            .starts_with("the file ends early (truncated JSON): "));
        assert!(e.source().is_some());
        let e = refusal(b"{]");
        assert!(matches!(e, ImportError::NotJson(_)), "{e:?}");
        assert!(e.to_string().starts_with("not valid JSON: "));
        assert!(e.source().is_some());
    }
}
