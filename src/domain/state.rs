//! The memory image: every projection of the log (users, groups, tasks, comments,
//! activity indexes and summaries) as persistent maps, and the one `apply` that
//! updates them. Pure: no I/O. The writer, replay, restore, verify, check, the
//! checkpoint and the tests all use this one type.
//!
//! Persistent (structurally shared) maps make a clone O(1): the writer applies to
//! its own copy and publishes a clone once a batch is durable, so readers never
//! lock and never see a write before its fsync.

use std::sync::Arc;

use super::id::Id;
use imbl::{HashMap, OrdMap, Vector};
use serde::{Deserialize, Serialize};

use super::decide::View;
use super::describe::activity_keys;
use super::event::{Event, StoredEvent};
use super::model::{CommentRec, GroupRec, TaskRec, UserRec};

/// Activity summary of a group or of a task within a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LogSummary {
    /// The latest name seen in its events (kept after deletion).
    pub(crate) name: String,
    pub(crate) count: u64,
    pub(crate) last_ms: i64,
}

/// Everything known about one group id: the live record (none once deleted) and
/// what outlives it (activity). One map entry per group, so an event copies one
/// path of the persistent map, not one per index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct GroupNode {
    rec: Option<Arc<GroupRec>>,
    /// Live tasks by creating sequence.
    tasks: OrdMap<u64, Id>,
    /// Activity sequences, ascending; kept after deletion.
    log: Vector<u64>,
    summary: Option<LogSummary>,
    /// Activity summary of each task that had activity in this group.
    task_sums: OrdMap<Id, LogSummary>,
}

/// Everything known about one task id: the live record and its comments (none
/// once deleted) and its activity (kept). Plain vectors: a task has a handful of
/// comments and events, and an `imbl::Vector` allocates a 64-slot chunk for even
/// one element (hundreds of MB across 400k tasks); copying a short vector when a
/// shared node is written is cheaper.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct TaskNode {
    rec: Option<Arc<TaskRec>>,
    comments: Vec<Arc<CommentRec>>,
    log: Vec<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Sequence of the last applied event (0: empty log).
    pub(crate) seq: u64,
    /// Timestamp of the last applied event: new events never go back in time.
    pub(crate) last_ts: i64,
    users: OrdMap<String, Arc<UserRec>>,
    // Which persistent map where (measured with examples/heapprofile on the 1M
    // profile): `imbl::HashMap` allocates every node's 32 slots, so a sparse map
    // of small values costs ~200 bytes an entry against ~50 in an `OrdMap` —
    // hence OrdMap for groups and the per-group summaries (-51 MB). The global
    // task map stays a HashMap: every event looks it up, and as an OrdMap (-30 MB
    // more) replays (check, verify, restore) ran 8-15% slower.
    groups: OrdMap<Id, Arc<GroupNode>>,
    /// Live groups by creating sequence: "oldest first".
    group_order: OrdMap<u64, Id>,
    tasks: HashMap<Id, Arc<TaskNode>>,
    live_tasks: u64,
    comment_count: u64,
}

/// The task map, opaque outside this module.
pub(crate) struct TaskMap(HashMap<Id, Arc<TaskNode>>);

/// The record a command created or changed, read after its events were applied:
/// what the command's caller gets back (shared, not copied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Touched {
    /// Deletions, and commands that changed nothing.
    Nothing,
    User(Arc<UserRec>),
    Group(Arc<GroupRec>),
    Task(Arc<TaskRec>),
    Comment(Arc<CommentRec>),
}

/// A record type a command can hand back: picks it out of a [`Touched`].
pub(crate) trait TouchedRecord: Sized {
    const KIND: &'static str;
    fn pick(t: &Touched) -> Option<Self>;
}

macro_rules! touched_records {
    ($($variant:ident($rec:ty)),+) => {$(
        impl TouchedRecord for Arc<$rec> {
            const KIND: &'static str = stringify!($variant);
            fn pick(t: &Touched) -> Option<Self> {
                match t {
                    Touched::$variant(r) => Some(r.clone()),
                    _ => None,
                }
            }
        }
    )+};
}
touched_records!(
    User(UserRec),
    Group(GroupRec),
    Task(TaskRec),
    Comment(CommentRec)
);

/// How many records of each kind the state holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub events: u64,
    pub(crate) users: u64,
    pub groups: u64,
    pub tasks: u64,
    pub comments: u64,
}

fn bump(s: &mut Option<LogSummary>, name: &str, ts: i64) {
    match s {
        Some(s) => bump_existing(s, name, ts),
        None => {
            *s = Some(LogSummary {
                name: name.to_string(),
                count: 1,
                last_ms: ts,
            })
        }
    }
}

fn bump_existing(s: &mut LogSummary, name: &str, ts: i64) {
    // Most events repeat the name: no new string for them.
    if s.name != name {
        s.name = name.to_string();
    }
    s.count += 1;
    s.last_ms = s.last_ms.max(ts);
}

/// An ascending list of sequences, paged newest first.
trait Seqs {
    fn len(&self) -> usize;
    fn at(&self, i: usize) -> Option<u64>;
    fn search(&self, seq: u64) -> usize;
}

impl Seqs for Vector<u64> {
    fn len(&self) -> usize {
        Vector::len(self)
    }
    fn at(&self, i: usize) -> Option<u64> {
        self.get(i).copied()
    }
    fn search(&self, seq: u64) -> usize {
        match self.binary_search(&seq) {
            Ok(i) | Err(i) => i,
        }
    }
}

impl Seqs for Vec<u64> {
    fn len(&self) -> usize {
        <[u64]>::len(self)
    }
    fn at(&self, i: usize) -> Option<u64> {
        self.get(i).copied()
    }
    fn search(&self, seq: u64) -> usize {
        match self.binary_search(&seq) {
            Ok(i) | Err(i) => i,
        }
    }
}

impl View for State {
    fn user(&self, username: &str) -> Option<UserRec> {
        self.user_rec(username).cloned()
    }
    fn group(&self, id: &Id) -> Option<GroupRec> {
        self.group_rec(id).cloned()
    }
    fn task(&self, id: &Id) -> Option<TaskRec> {
        self.task_rec(id).cloned()
    }
    fn group_known(&self, id: &Id) -> bool {
        State::group_known(self, id)
    }
    fn task_known(&self, id: &Id) -> bool {
        State::task_known(self, id)
    }
    fn task_ids_of_group(&self, id: &Id) -> Vec<Id> {
        self.groups
            .get(id)
            .map(|g| g.tasks.values().cloned().collect())
            .unwrap_or_default()
    }
}

/// Part of the task map, as a checkpoint writes it: several parts decode on
/// several threads at start (the task map is most of the image).
#[derive(Serialize)]
pub(crate) struct TaskPartRef<'a>(Vec<(&'a Id, &'a Arc<TaskNode>)>);

/// A part of the task map as a checkpoint reads it back (same encoding).
#[derive(Deserialize)]
pub(crate) struct TaskPart(Vec<(Id, Arc<TaskNode>)>);

impl State {
    /// This image without its task map (O(1): the maps are persistent), and the
    /// task map's entries in `parts` slices of about equal size.
    pub(crate) fn split_tasks(&self, parts: usize) -> (State, Vec<TaskPartRef<'_>>) {
        let parts = parts.max(1);
        let mut rest = self.clone();
        rest.tasks = HashMap::new();
        let per = self.tasks.len().div_ceil(parts).max(1);
        let mut out: Vec<Vec<_>> = (0..parts).map(|_| Vec::with_capacity(per)).collect();
        for (i, entry) in self.tasks.iter().enumerate() {
            out[(i / per).min(parts - 1)].push(entry);
        }
        (rest, out.into_iter().map(TaskPartRef).collect())
    }

    /// A task map built from one part (on the thread that decoded it).
    pub(crate) fn task_map(part: TaskPart) -> TaskMap {
        TaskMap(part.0.into_iter().collect())
    }

    /// The image back from [`State::split_tasks`]'s pieces.
    pub(crate) fn with_tasks(mut self, mut map: TaskMap, more: Vec<TaskPart>) -> State {
        for part in more {
            map.0.extend(part.0);
        }
        self.tasks = map.0;
        self
    }

    fn group_mut(&mut self, id: &Id) -> &mut GroupNode {
        if !self.groups.contains_key(id) {
            self.groups.insert(id.clone(), Arc::default());
        }
        match self.groups.get_mut(id) {
            Some(g) => Arc::make_mut(g),
            None => unreachable!("inserted just above"),
        }
    }

    fn task_mut(&mut self, id: &Id) -> &mut TaskNode {
        if !self.tasks.contains_key(id) {
            self.tasks.insert(id.clone(), Arc::default());
        }
        match self.tasks.get_mut(id) {
            Some(t) => Arc::make_mut(t),
            None => unreachable!("inserted just above"),
        }
    }

    /// Applies one event. Infallible and mechanical: the event carries every fact.
    pub fn apply(&mut self, seq: u64, se: &StoredEvent) {
        let ts = se.ts_ms;
        match &se.event {
            Event::UserCreated(e) => {
                let rec = UserRec::created(e, ts);
                self.users.insert(e.username.clone(), Arc::new(rec));
            }
            Event::GroupCreated(e) => {
                let rec = GroupRec::created(e, seq, ts);
                let g = self.group_mut(&e.group_id);
                let old = g.rec.replace(Arc::new(rec)).map(|r| r.created_seq);
                if let Some(old) = old {
                    self.group_order.remove(&old);
                }
                self.group_order.insert(seq, e.group_id.clone());
            }
            Event::GroupUpdated(e) => {
                if let Some(rec) = self.group_mut(&e.group_id).rec.as_mut() {
                    Arc::make_mut(rec).update(e, ts);
                }
            }
            Event::GroupDeleted(e) => {
                let g = self.group_mut(&e.group_id);
                let tasks = std::mem::take(&mut g.tasks);
                let old = g.rec.take().map(|r| r.created_seq);
                for t in e.task_ids.iter().chain(tasks.values()) {
                    self.remove_task(t);
                }
                if let Some(old) = old {
                    self.group_order.remove(&old);
                }
            }
            Event::TaskCreated(e) => {
                let rec = TaskRec::created(e, seq, ts);
                self.remove_task(&e.task_id);
                self.task_mut(&e.task_id).rec = Some(Arc::new(rec));
                self.live_tasks += 1;
                self.group_mut(&e.group_id)
                    .tasks
                    .insert(seq, e.task_id.clone());
            }
            Event::TaskUpdated(e) => {
                if let Some(rec) = self.task_mut(&e.task_id).rec.as_mut() {
                    Arc::make_mut(rec).update(e, ts);
                }
            }
            Event::TaskStatusChanged(e) => {
                if let Some(rec) = self.task_mut(&e.task_id).rec.as_mut() {
                    Arc::make_mut(rec).set_status(e.to, ts);
                }
            }
            Event::TaskDeleted(e) => self.remove_task(&e.task_id),
            Event::CommentAdded(e) => {
                let rec = CommentRec::added(e, &se.user, ts);
                self.task_mut(&e.task_id).comments.push(Arc::new(rec));
                self.comment_count += 1;
            }
        }
        if let Some(a) = activity_keys(&se.event) {
            let g = self.group_mut(a.group_id);
            g.log.push_back(seq);
            bump(&mut g.summary, a.group_name, ts);
            if let Some((tid, tname)) = a.task {
                match g.task_sums.get_mut(tid) {
                    Some(s) => bump_existing(s, tname, ts),
                    None => {
                        let mut s = None;
                        bump(&mut s, tname, ts);
                        if let Some(s) = s {
                            g.task_sums.insert(tid.clone(), s);
                        }
                    }
                }
                self.task_mut(tid).log.push(seq);
            }
        }
        self.seq = seq;
        self.last_ts = self.last_ts.max(ts);
    }

    /// Drops a task's record and comments; its activity stays.
    fn remove_task(&mut self, id: &Id) {
        let live = self
            .tasks
            .get(id)
            .is_some_and(|t| t.rec.is_some() || !t.comments.is_empty());
        if !live {
            return;
        }
        let t = self.task_mut(id);
        let rec = t.rec.take();
        let comments = std::mem::take(&mut t.comments).len() as u64;
        self.comment_count -= comments;
        if let Some(rec) = rec {
            self.live_tasks -= 1;
            if let Some(g) = self.groups.get_mut(&rec.group_id) {
                Arc::make_mut(g).tasks.remove(&rec.created_seq);
            }
        }
    }

    pub fn counts(&self) -> Counts {
        Counts {
            events: self.seq,
            users: self.users.len() as u64,
            groups: self.group_order.len() as u64,
            tasks: self.live_tasks,
            comments: self.comment_count,
        }
    }

    /// What `event` (just applied) created or changed.
    pub(crate) fn touched(&self, event: &Event) -> Touched {
        let group = |id: &Id| self.groups.get(id).and_then(|g| g.rec.clone());
        let task = |id: &Id| self.tasks.get(id).and_then(|t| t.rec.clone());
        let found = match event {
            Event::UserCreated(e) => self.users.get(&e.username).cloned().map(Touched::User),
            Event::GroupCreated(e) => group(&e.group_id).map(Touched::Group),
            Event::GroupUpdated(e) => group(&e.group_id).map(Touched::Group),
            Event::TaskCreated(e) => task(&e.task_id).map(Touched::Task),
            Event::TaskUpdated(e) => task(&e.task_id).map(Touched::Task),
            Event::TaskStatusChanged(e) => task(&e.task_id).map(Touched::Task),
            Event::CommentAdded(e) => self
                .tasks
                .get(&e.task_id)
                .and_then(|t| t.comments.last().cloned())
                .map(Touched::Comment),
            Event::GroupDeleted(_) | Event::TaskDeleted(_) => None,
        };
        found.unwrap_or(Touched::Nothing)
    }

    pub(crate) fn user_rec(&self, username: &str) -> Option<&UserRec> {
        self.users.get(username).map(|u| &**u)
    }

    /// Oldest first.
    pub(crate) fn users(&self) -> Vec<&UserRec> {
        let mut us: Vec<&UserRec> = self.users.values().map(|u| &**u).collect();
        us.sort_by_key(|u| u.created_ms);
        us
    }

    pub(crate) fn has_users(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether the id ever named a group (live or deleted).
    pub(crate) fn group_known(&self, id: &Id) -> bool {
        self.groups
            .get(id)
            .is_some_and(|g| g.rec.is_some() || !g.log.is_empty())
    }

    /// Whether the id ever named a task (live or deleted).
    pub(crate) fn task_known(&self, id: &Id) -> bool {
        self.tasks
            .get(id)
            .is_some_and(|t| t.rec.is_some() || !t.log.is_empty())
    }

    pub(crate) fn group_rec(&self, id: &Id) -> Option<&GroupRec> {
        self.groups.get(id).and_then(|g| g.rec.as_deref())
    }

    /// Oldest first.
    pub(crate) fn groups(&self) -> impl Iterator<Item = &GroupRec> + '_ {
        self.group_order
            .values()
            .filter_map(|id| self.group_rec(id))
    }

    pub(crate) fn task_rec(&self, id: &Id) -> Option<&TaskRec> {
        self.tasks.get(id).and_then(|t| t.rec.as_deref())
    }

    /// Tasks of a group, oldest first.
    pub(crate) fn tasks_of_group(&self, group: &Id) -> Vec<&TaskRec> {
        match self.groups.get(group) {
            Some(g) => g
                .tasks
                .values()
                .filter_map(|id| self.task_rec(id))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Comments of a task, oldest first.
    pub(crate) fn comments(&self, task: &Id) -> Vec<&CommentRec> {
        match self.tasks.get(task) {
            Some(t) => t.comments.iter().map(|c| &**c).collect(),
            None => Vec::new(),
        }
    }

    fn page<L: Seqs>(list: Option<&L>, before: Option<u64>, limit: usize) -> Vec<u64> {
        let Some(list) = list else {
            return Vec::new();
        };
        let end = match before {
            Some(b) => list.search(b),
            None => list.len(),
        };
        let start = end.saturating_sub(limit);
        (start..end).rev().filter_map(|i| list.at(i)).collect()
    }

    /// Activity of a group, newest first, strictly before `before` when given.
    pub(crate) fn group_log(&self, group: &Id, before: Option<u64>, limit: usize) -> Vec<u64> {
        Self::page(self.groups.get(group).map(|g| &g.log), before, limit)
    }

    pub(crate) fn task_log(&self, task: &Id, before: Option<u64>, limit: usize) -> Vec<u64> {
        Self::page(self.tasks.get(task).map(|t| &t.log), before, limit)
    }

    /// Most recently active first.
    pub(crate) fn group_summaries(&self) -> Vec<(Id, &LogSummary)> {
        let mut out: Vec<(Id, &LogSummary)> = self
            .groups
            .iter()
            .filter_map(|(k, g)| g.summary.as_ref().map(|s| (k.clone(), s)))
            .collect();
        out.sort_by(|a, b| b.1.last_ms.cmp(&a.1.last_ms).then(a.0.cmp(&b.0)));
        out
    }

    pub(crate) fn task_summaries(&self, group: &Id) -> Vec<(Id, &LogSummary)> {
        let mut out: Vec<(Id, &LogSummary)> = match self.groups.get(group) {
            Some(g) => g.task_sums.iter().map(|(k, v)| (k.clone(), v)).collect(),
            None => Vec::new(),
        };
        out.sort_by(|a, b| b.1.last_ms.cmp(&a.1.last_ms).then(a.0.cmp(&b.0)));
        out
    }
}

/// Where two images first differ, for `check`: which part (entity and id), which
/// field, and both values (the first image's first). `None` when they are equal.
pub(crate) fn first_difference(a: &State, b: &State) -> Option<String> {
    let scalars = [
        ("last applied event", a.seq as i64, b.seq as i64),
        ("timestamp of the newest event", a.last_ts, b.last_ts),
        ("live task count", a.live_tasks as i64, b.live_tasks as i64),
        (
            "comment count",
            a.comment_count as i64,
            b.comment_count as i64,
        ),
    ];
    if let Some((what, x, y)) = scalars.into_iter().find(|(_, x, y)| x != y) {
        return Some(format!("{what}: {x} vs {y}"));
    }
    keyed(
        "user",
        a.users.iter(),
        b.users.len(),
        |k| b.users.get(k),
        fields,
    )
    .or_else(|| {
        keyed(
            "group",
            a.groups.iter(),
            b.groups.len(),
            |k| b.groups.get(k),
            node_diff,
        )
    })
    .or_else(|| {
        keyed(
            "task",
            a.tasks.iter(),
            b.tasks.len(),
            |k| b.tasks.get(k),
            task_diff,
        )
    })
    .or_else(|| {
        let get = |k: &u64| b.group_order.get(k);
        keyed(
            "group created at event",
            a.group_order.iter(),
            b.group_order.len(),
            get,
            fields,
        )
    })
}

/// The first key (in sorted order, so two runs name the same one) whose values
/// differ or that only one side has.
fn keyed<'a, K: Ord + std::fmt::Display + 'a, V: 'a>(
    what: &str,
    a: impl Iterator<Item = (&'a K, &'a V)>,
    b_len: usize,
    b: impl Fn(&K) -> Option<&'a V>,
    diff: impl Fn(&V, &V) -> Option<String>,
) -> Option<String> {
    let mut a: Vec<(&K, &V)> = a.collect();
    a.sort_by(|x, y| x.0.cmp(y.0));
    for (k, va) in &a {
        let d = match b(k) {
            None => Some("only in the first image".to_string()),
            Some(vb) => diff(va, vb),
        };
        if let Some(d) = d {
            return Some(format!("{what} {k}: {d}"));
        }
    }
    (b_len > a.len()).then(|| format!("{what}: {} only in the second image", b_len - a.len()))
}

fn node_diff(a: &Arc<GroupNode>, b: &Arc<GroupNode>) -> Option<String> {
    field("record", &a.rec, &b.rec)
        .or_else(|| field("tasks", &a.tasks, &b.tasks))
        .or_else(|| field("activity", &a.log, &b.log))
        .or_else(|| field("activity summary", &a.summary, &b.summary))
        .or_else(|| field("task activity summaries", &a.task_sums, &b.task_sums))
}

fn task_diff(a: &Arc<TaskNode>, b: &Arc<TaskNode>) -> Option<String> {
    field("record", &a.rec, &b.rec)
        .or_else(|| field("comments", &a.comments, &b.comments))
        .or_else(|| field("activity", &a.log, &b.log))
}

fn field<T: Serialize + PartialEq>(name: &str, a: &T, b: &T) -> Option<String> {
    fields(a, b).map(|d| format!("{name}: {d}"))
}

/// Names the first differing field of two serializable values (by their JSON
/// forms), or shows both whole when they are not objects.
fn fields<T: Serialize + PartialEq>(a: &T, b: &T) -> Option<String> {
    if a == b {
        return None;
    }
    let (Ok(ja), Ok(jb)) = (serde_json::to_value(a), serde_json::to_value(b)) else {
        return Some("values differ".into());
    };
    if let (Some(oa), Some(ob)) = (ja.as_object(), jb.as_object()) {
        let null = serde_json::Value::Null;
        let keys = oa.keys().chain(ob.keys().filter(|k| !oa.contains_key(*k)));
        for k in keys {
            let (va, vb) = (oa.get(k).unwrap_or(&null), ob.get(k).unwrap_or(&null));
            if va != vb {
                return Some(format!("field {k}: {va} vs {vb}"));
            }
        }
    }
    Some(format!("{ja} vs {jb}"))
}
