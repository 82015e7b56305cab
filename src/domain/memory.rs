//! An in-memory model of the projections: the reference the sled projections are
//! tested against, and the state behind the given/when/then tests of `decide`.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::decide::View;
use super::event::{Event, StoredEvent};
use super::model::{CommentRec, GroupRec, TaskRec, UserRec};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemState {
    pub users: BTreeMap<String, UserRec>,
    pub groups: BTreeMap<Uuid, GroupRec>,
    pub tasks: BTreeMap<Uuid, TaskRec>,
    /// Comments per task, oldest first.
    pub comments: BTreeMap<Uuid, Vec<CommentRec>>,
}

impl View for MemState {
    fn user(&self, username: &str) -> Option<UserRec> {
        self.users.get(username).cloned()
    }
    fn group(&self, id: Uuid) -> Option<GroupRec> {
        self.groups.get(&id).cloned()
    }
    fn task(&self, id: Uuid) -> Option<TaskRec> {
        self.tasks.get(&id).cloned()
    }
    fn task_ids_of_group(&self, id: Uuid) -> Vec<Uuid> {
        let mut ts: Vec<&TaskRec> = self.tasks.values().filter(|t| t.group_id == id).collect();
        ts.sort_by_key(|t| t.created_seq);
        ts.into_iter().map(|t| t.id).collect()
    }
}

impl MemState {
    pub fn apply(&mut self, seq: u64, se: &StoredEvent) {
        let ts = se.ts_ms;
        match &se.event {
            Event::UserCreated(e) => {
                self.users.insert(
                    e.username.clone(),
                    UserRec {
                        id: e.user_id,
                        username: e.username.clone(),
                        role: e.role,
                        password_hash: e.password_hash.clone(),
                        created_ms: ts,
                    },
                );
            }
            Event::GroupCreated(e) => {
                self.groups.insert(
                    e.group_id,
                    GroupRec {
                        id: e.group_id,
                        name: e.name.clone(),
                        discussion: e.discussion.clone(),
                        created_seq: seq,
                        created_ms: ts,
                        updated_ms: ts,
                    },
                );
            }
            Event::GroupUpdated(e) => {
                if let Some(g) = self.groups.get_mut(&e.group_id) {
                    g.name = e.name.clone();
                    g.discussion = e.discussion.clone();
                    g.updated_ms = ts;
                }
            }
            Event::GroupDeleted(e) => {
                self.groups.remove(&e.group_id);
                for t in &e.task_ids {
                    self.tasks.remove(t);
                    self.comments.remove(t);
                }
            }
            Event::TaskCreated(e) => {
                self.tasks.insert(
                    e.task_id,
                    TaskRec {
                        id: e.task_id,
                        group_id: e.group_id,
                        name: e.name.clone(),
                        description: e.description.clone(),
                        status: e.status,
                        start_date: e.start_date.clone(),
                        end_date: e.end_date.clone(),
                        created_seq: seq,
                        created_ms: ts,
                        updated_ms: ts,
                    },
                );
            }
            Event::TaskUpdated(e) => {
                if let Some(t) = self.tasks.get_mut(&e.task_id) {
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
                    t.status = e.to;
                    t.updated_ms = ts;
                }
            }
            Event::TaskDeleted(e) => {
                self.tasks.remove(&e.task_id);
                self.comments.remove(&e.task_id);
            }
            Event::CommentAdded(e) => {
                self.comments
                    .entry(e.task_id)
                    .or_default()
                    .push(CommentRec {
                        id: e.comment_id,
                        task_id: e.task_id,
                        text: e.text.clone(),
                        author: se.user.clone(),
                        created_ms: ts,
                    });
            }
        }
    }
}
