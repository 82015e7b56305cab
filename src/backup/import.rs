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

fn text(o: &Obj, at: &str, name: &str) -> Result<Option<String>, String> {
    match field(o, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{at}.{name} must be a string")),
    }
}

fn req_text(o: &Obj, at: &str, name: &str) -> Result<String, String> {
    text(o, at, name)?.ok_or_else(|| format!("{at}.{name} is missing"))
}

fn id_of(o: &Obj, at: &str, name: &str) -> Result<Id, String> {
    let raw = req_text(o, at, name)?;
    Id::parse(&raw).ok_or_else(|| format!("{at}.{name} is not a usable id: {raw:?}"))
}

fn time(o: &Obj, at: &str, name: &str) -> Result<Option<i64>, String> {
    match text(o, at, name)? {
        None => Ok(None),
        Some(s) => parse_ms(&s)
            .map(Some)
            .ok_or_else(|| format!("{at}.{name} is not an RFC 3339 time: {s:?}")),
    }
}

fn id_list(o: &Obj, at: &str, name: &str) -> Result<Vec<Id>, String> {
    match field(o, name) {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => {
                    Id::parse(s).ok_or_else(|| format!("{at}.{name}[{i}] is not a usable id"))
                }
                _ => Err(format!("{at}.{name}[{i}] must be a string id")),
            })
            .collect(),
        Some(_) => Err(format!("{at}.{name} must be an array of ids")),
    }
}

fn objects<'a>(data: &'a Obj, name: &str) -> Result<Vec<&'a Obj>, String> {
    match data.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_object()
                    .ok_or_else(|| format!("data.{name}[{i}] must be an object"))
            })
            .collect(),
        Some(_) => Err(format!("data.{name} must be an array")),
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

fn check_counts(root: &Obj, p: &Parsed) -> Result<(), String> {
    let Some(meta) = root.get("metadata").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let meta = meta.as_object().ok_or("metadata must be an object")?;
    let Some(counts) = meta.get("counts").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let counts = counts
        .as_object()
        .ok_or("metadata.counts must be an object")?;
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
                    return Err(format!(
                        "metadata.counts.{name} is {c} but the file holds {n}"
                    ))
                }
                None => return Err(format!("metadata.counts.{name} must be a whole number")),
            },
        }
    }
    Ok(())
}

fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    let root: Value = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_eof() {
            format!("the file ends early (truncated JSON): {e}")
        } else {
            format!("not valid JSON: {e}")
        }
    })?;
    let root = root.as_object().ok_or("the file must hold a JSON object")?;
    let data = root
        .get("data")
        .and_then(Value::as_object)
        .ok_or("data must be an object with groups, tasks, comments and users")?;
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
                format!("{at}.status must be one of New, Backlog, In Progress, Completed, Approved, not {s:?}")
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
            return Err(format!("{at}.username is not a usable user name"));
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

fn check_references(p: &Parsed) -> Result<(), String> {
    let mut ids: HashSet<Id> = HashSet::new();
    let mut unique = |id: &Id, what: &str| -> Result<(), String> {
        if ids.insert(id.clone()) {
            Ok(())
        } else {
            Err(format!("duplicate id {id} ({what})"))
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
            return Err(format!("duplicate username {}", u.username));
        }
    }
    let groups: HashMap<&Id, &Group> = p.groups.iter().map(|g| (&g.id, g)).collect();
    let tasks: HashMap<&Id, &Task> = p.tasks.iter().map(|t| (&t.id, t)).collect();
    let comments: HashMap<&Id, &Comment> = p.comments.iter().map(|c| (&c.id, c)).collect();
    for t in &p.tasks {
        let g = groups.get(&t.group).ok_or_else(|| {
            format!(
                "task {} belongs to group {}, which is not in the file",
                t.id, t.group
            )
        })?;
        if t.created < g.created {
            return Err(format!(
                "task {} was created before its group {}",
                t.id, g.id
            ));
        }
    }
    for c in &p.comments {
        let t = tasks.get(&c.task).ok_or_else(|| {
            format!(
                "comment {} belongs to task {}, which is not in the file",
                c.id, c.task
            )
        })?;
        if c.created < t.created {
            return Err(format!(
                "comment {} was created before its task {}",
                c.id, t.id
            ));
        }
    }
    // The id arrays are the predecessor's other record of the same links.
    for g in &p.groups {
        for t in &g.tasks {
            match tasks.get(t) {
                Some(task) if task.group == g.id => {}
                Some(_) => {
                    return Err(format!(
                        "group {} lists task {t}, which belongs to another group",
                        g.id
                    ))
                }
                None => {
                    return Err(format!(
                        "group {} lists task {t}, which is not in the file",
                        g.id
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
                    return Err(format!(
                        "task {} lists comment {c}, which belongs to another task",
                        t.id
                    ))
                }
                None => {
                    return Err(format!(
                        "task {} lists comment {c}, which is not in the file",
                        t.id
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
) -> Result<Plan, String> {
    let p = parse(bytes)?;
    let mut out: Vec<(i64, u8, usize, String, Event)> = Vec::new();
    let mut push = |ts: i64, user: &str, e: Event| {
        let n = out.len();
        out.push((ts, rank(&e), n, user.to_string(), e));
    };
    for u in &p.users {
        let password_hash = match (&u.password, live_hash(&u.username)) {
            (Some(pw), _) => hash_password(pw).map_err(|e| format!("hashing a password: {e}"))?,
            (None, Some(h)) => h,
            (None, None) => {
                let random: String = {
                    use rand::distributions::{Alphanumeric, DistString};
                    Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
                };
                hash_password(&random).map_err(|e| format!("hashing a password: {e}"))?
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
