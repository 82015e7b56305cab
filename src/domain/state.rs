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
use super::describe::describe;
use super::event::{Event, StoredEvent};
use super::model::{CommentRec, GroupRec, TaskRec, UserRec};

/// Activity summary of a group or of a task within a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSummary {
    /// The latest name seen in its events (kept after deletion).
    pub name: String,
    pub count: u64,
    pub last_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Sequence of the last applied event (0: empty log).
    pub seq: u64,
    /// Timestamp of the last applied event: new events never go back in time.
    pub last_ts: i64,
    users: OrdMap<String, Arc<UserRec>>,
    groups: HashMap<Id, Arc<GroupRec>>,
    /// Live groups by creating sequence: "oldest first".
    group_order: OrdMap<u64, Id>,
    tasks: HashMap<Id, Arc<TaskRec>>,
    /// Live tasks of each group by creating sequence.
    group_tasks: HashMap<Id, OrdMap<u64, Id>>,
    /// Comments of each live task, oldest first.
    comments: HashMap<Id, Vector<Arc<CommentRec>>>,
    /// Activity sequences per group and per task, ascending; kept after deletion.
    group_log: HashMap<Id, Vector<u64>>,
    task_log: HashMap<Id, Vector<u64>>,
    group_sums: HashMap<Id, LogSummary>,
    /// Per group: the summary of each task that had activity in it.
    task_sums: HashMap<Id, HashMap<Id, LogSummary>>,
    comment_count: u64,
}

/// How many records of each kind the state holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub events: u64,
    pub users: u64,
    pub groups: u64,
    pub tasks: u64,
    pub comments: u64,
}

fn bump(s: Option<&LogSummary>, name: &str, ts: i64) -> LogSummary {
    match s {
        Some(s) => LogSummary {
            name: name.to_string(),
            count: s.count + 1,
            last_ms: s.last_ms.max(ts),
        },
        None => LogSummary {
            name: name.to_string(),
            count: 1,
            last_ms: ts,
        },
    }
}

impl View for State {
    fn user(&self, username: &str) -> Option<UserRec> {
        self.users.get(username).map(|u| (**u).clone())
    }
    fn group(&self, id: &Id) -> Option<GroupRec> {
        self.groups.get(id).map(|g| (**g).clone())
    }
    fn task(&self, id: &Id) -> Option<TaskRec> {
        self.tasks.get(id).map(|t| (**t).clone())
    }
    fn task_ids_of_group(&self, id: &Id) -> Vec<Id> {
        self.group_tasks
            .get(id)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

impl State {
    /// Applies one event. Infallible and mechanical: the event carries every fact.
    pub fn apply(&mut self, seq: u64, se: &StoredEvent) {
        let ts = se.ts_ms;
        match &se.event {
            Event::UserCreated(e) => {
                let rec = UserRec {
                    id: e.user_id.clone(),
                    username: e.username.clone(),
                    role: e.role,
                    password_hash: e.password_hash.clone(),
                    created_ms: ts,
                };
                self.users.insert(e.username.clone(), Arc::new(rec));
            }
            Event::GroupCreated(e) => {
                let rec = GroupRec {
                    id: e.group_id.clone(),
                    name: e.name.clone(),
                    discussion: e.discussion.clone(),
                    created_seq: seq,
                    created_ms: ts,
                    updated_ms: ts,
                };
                if let Some(old) = self.groups.insert(e.group_id.clone(), Arc::new(rec)) {
                    self.group_order.remove(&old.created_seq);
                }
                self.group_order.insert(seq, e.group_id.clone());
            }
            Event::GroupUpdated(e) => {
                if let Some(g) = self.groups.get_mut(&e.group_id) {
                    let g = Arc::make_mut(g);
                    g.name = e.name.clone();
                    g.discussion = e.discussion.clone();
                    g.updated_ms = ts;
                }
            }
            Event::GroupDeleted(e) => {
                for t in &e.task_ids {
                    self.remove_task(t);
                }
                if let Some(tasks) = self.group_tasks.remove(&e.group_id) {
                    for t in tasks.values() {
                        self.remove_task(t);
                    }
                }
                if let Some(g) = self.groups.remove(&e.group_id) {
                    self.group_order.remove(&g.created_seq);
                }
            }
            Event::TaskCreated(e) => {
                let rec = TaskRec {
                    id: e.task_id.clone(),
                    group_id: e.group_id.clone(),
                    name: e.name.clone(),
                    description: e.description.clone(),
                    status: e.status,
                    start_date: e.start_date.clone(),
                    end_date: e.end_date.clone(),
                    created_seq: seq,
                    created_ms: ts,
                    updated_ms: ts,
                };
                self.remove_task(&e.task_id);
                self.tasks.insert(e.task_id.clone(), Arc::new(rec));
                self.group_tasks
                    .entry(e.group_id.clone())
                    .or_default()
                    .insert(seq, e.task_id.clone());
            }
            Event::TaskUpdated(e) => {
                if let Some(t) = self.tasks.get_mut(&e.task_id) {
                    let t = Arc::make_mut(t);
                    t.name = e.name.clone();
                    t.description = e.description.clone();
                    t.status = e.status;
                    t.start_date = e.start_date.clone();
                    t.end_date = e.end_date.clone();
                    t.updated_ms = ts;
                }
            }
            Event::TaskStatusChanged(e) => {
                if let Some(t) = self.tasks.get_mut(&e.task_id) {
                    let t = Arc::make_mut(t);
                    t.status = e.to;
                    t.updated_ms = ts;
                }
            }
            Event::TaskDeleted(e) => self.remove_task(&e.task_id),
            Event::CommentAdded(e) => {
                let rec = CommentRec {
                    id: e.comment_id.clone(),
                    task_id: e.task_id.clone(),
                    text: e.text.clone(),
                    author: se.user.clone(),
                    created_ms: ts,
                };
                self.comments
                    .entry(e.task_id.clone())
                    .or_default()
                    .push_back(Arc::new(rec));
                self.comment_count += 1;
            }
        }
        if let Some(a) = describe(&se.event) {
            self.group_log
                .entry(a.group_id.clone())
                .or_default()
                .push_back(seq);
            let s = bump(self.group_sums.get(&a.group_id), &a.group_name, ts);
            self.group_sums.insert(a.group_id.clone(), s);
            if let (Some(tid), Some(tname)) = (a.task_id, a.task_name.as_deref()) {
                self.task_log.entry(tid.clone()).or_default().push_back(seq);
                let sums = self.task_sums.entry(a.group_id).or_default();
                let s = bump(sums.get(&tid), tname, ts);
                sums.insert(tid, s);
            }
        }
        self.seq = seq;
        self.last_ts = self.last_ts.max(ts);
    }

    fn remove_task(&mut self, id: &Id) {
        if let Some(t) = self.tasks.remove(id) {
            if let Some(m) = self.group_tasks.get_mut(&t.group_id) {
                m.remove(&t.created_seq);
                if m.is_empty() {
                    self.group_tasks.remove(&t.group_id);
                }
            }
        }
        if let Some(cs) = self.comments.remove(id) {
            self.comment_count -= cs.len() as u64;
        }
    }

    pub fn counts(&self) -> Counts {
        Counts {
            events: self.seq,
            users: self.users.len() as u64,
            groups: self.groups.len() as u64,
            tasks: self.tasks.len() as u64,
            comments: self.comment_count,
        }
    }

    pub fn user_rec(&self, username: &str) -> Option<&UserRec> {
        self.users.get(username).map(|u| &**u)
    }

    /// Oldest first.
    pub fn users(&self) -> Vec<&UserRec> {
        let mut us: Vec<&UserRec> = self.users.values().map(|u| &**u).collect();
        us.sort_by_key(|u| u.created_ms);
        us
    }

    pub fn has_users(&self) -> bool {
        !self.users.is_empty()
    }

    pub fn group_rec(&self, id: &Id) -> Option<&GroupRec> {
        self.groups.get(id).map(|g| &**g)
    }

    /// Oldest first.
    pub fn groups(&self) -> impl Iterator<Item = &GroupRec> + '_ {
        self.group_order
            .values()
            .filter_map(|id| self.groups.get(id).map(|g| &**g))
    }

    pub fn task_rec(&self, id: &Id) -> Option<&TaskRec> {
        self.tasks.get(id).map(|t| &**t)
    }

    /// Tasks of a group, oldest first.
    pub fn tasks_of_group(&self, group: &Id) -> Vec<&TaskRec> {
        match self.group_tasks.get(group) {
            Some(m) => m
                .values()
                .filter_map(|id| self.tasks.get(id).map(|t| &**t))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Comments of a task, oldest first.
    pub fn comments(&self, task: &Id) -> Vec<&CommentRec> {
        match self.comments.get(task) {
            Some(v) => v.iter().map(|c| &**c).collect(),
            None => Vec::new(),
        }
    }

    pub fn comment_count(&self, task: &Id) -> usize {
        self.comments.get(task).map_or(0, |v| v.len())
    }

    /// The newest comment of a task: what an `AddComment` just created.
    pub fn last_comment(&self, task: &Id) -> Option<&CommentRec> {
        self.comments.get(task).and_then(|v| v.last()).map(|c| &**c)
    }

    fn page(list: Option<&Vector<u64>>, before: Option<u64>, limit: usize) -> Vec<u64> {
        let Some(list) = list else {
            return Vec::new();
        };
        let end = match before {
            Some(b) => match list.binary_search(&b) {
                Ok(i) | Err(i) => i,
            },
            None => list.len(),
        };
        let start = end.saturating_sub(limit);
        (start..end)
            .rev()
            .filter_map(|i| list.get(i).copied())
            .collect()
    }

    /// Activity of a group, newest first, strictly before `before` when given.
    pub fn group_log(&self, group: &Id, before: Option<u64>, limit: usize) -> Vec<u64> {
        Self::page(self.group_log.get(group), before, limit)
    }

    pub fn task_log(&self, task: &Id, before: Option<u64>, limit: usize) -> Vec<u64> {
        Self::page(self.task_log.get(task), before, limit)
    }

    /// Most recently active first.
    pub fn group_summaries(&self) -> Vec<(Id, &LogSummary)> {
        let mut out: Vec<(Id, &LogSummary)> = self
            .group_sums
            .iter()
            .map(|(k, v)| (k.clone(), v))
            .collect();
        out.sort_by(|a, b| b.1.last_ms.cmp(&a.1.last_ms).then(a.0.cmp(&b.0)));
        out
    }

    pub fn task_summaries(&self, group: &Id) -> Vec<(Id, &LogSummary)> {
        let mut out: Vec<(Id, &LogSummary)> = match self.task_sums.get(group) {
            Some(m) => m.iter().map(|(k, v)| (k.clone(), v)).collect(),
            None => Vec::new(),
        };
        out.sort_by(|a, b| b.1.last_ms.cmp(&a.1.last_ms).then(a.0.cmp(&b.0)));
        out
    }
}
