//! A past state for time travel: the records (users, groups, tasks, comments) a
//! prefix or a stream of the log produces, without activity indexes. Pure: no I/O.
//!
//! Why not [`super::state::State`]: its persistent maps make a clone O(1), which the
//! writer needs and time travel does not; building one costs ~3 µs per event, this
//! one a fraction of that, which is what lets a whole-state answer at a million
//! events stay within seconds. `tests` prove both give the same records.

use std::collections::{BTreeMap, HashMap};

use super::event::{Event, StoredEvent};
use super::id::Id;
use super::model::{CommentRec, GroupRec, TaskRec, UserRec};

#[derive(Debug, Clone, Default)]
pub struct Past {
    /// The last event applied (0: none).
    pub seq: u64,
    users: HashMap<String, UserRec>,
    groups: HashMap<Id, GroupRec>,
    group_order: BTreeMap<u64, Id>,
    tasks: HashMap<Id, TaskRec>,
    group_tasks: HashMap<Id, BTreeMap<u64, Id>>,
    comments: HashMap<Id, Vec<CommentRec>>,
}

impl Past {
    /// Applies one event exactly as the live image does (same records, same
    /// order: both build them with the constructors in `model.rs`).
    pub fn apply(&mut self, seq: u64, se: &StoredEvent) {
        let ts = se.ts_ms;
        match &se.event {
            Event::UserCreated(e) => {
                // Past images never carry password hashes.
                let rec = UserRec {
                    password_hash: String::new(),
                    ..UserRec::created(e, ts)
                };
                self.users.insert(e.username.clone(), rec);
            }
            Event::GroupCreated(e) => {
                let rec = GroupRec::created(e, seq, ts);
                if let Some(old) = self.groups.insert(e.group_id.clone(), rec) {
                    self.group_order.remove(&old.created_seq);
                }
                self.group_order.insert(seq, e.group_id.clone());
            }
            Event::GroupUpdated(e) => {
                if let Some(g) = self.groups.get_mut(&e.group_id) {
                    g.update(e, ts);
                }
            }
            Event::GroupDeleted(e) => {
                let tasks = self.group_tasks.remove(&e.group_id).unwrap_or_default();
                for t in e.task_ids.iter().chain(tasks.values()) {
                    self.remove_task(t);
                }
                if let Some(old) = self.groups.remove(&e.group_id) {
                    self.group_order.remove(&old.created_seq);
                }
            }
            Event::TaskCreated(e) => {
                self.remove_task(&e.task_id);
                self.tasks
                    .insert(e.task_id.clone(), TaskRec::created(e, seq, ts));
                self.group_tasks
                    .entry(e.group_id.clone())
                    .or_default()
                    .insert(seq, e.task_id.clone());
            }
            Event::TaskUpdated(e) => {
                if let Some(t) = self.tasks.get_mut(&e.task_id) {
                    t.update(e, ts);
                }
            }
            Event::TaskStatusChanged(e) => {
                if let Some(t) = self.tasks.get_mut(&e.task_id) {
                    t.set_status(e.to, ts);
                }
            }
            Event::TaskDeleted(e) => self.remove_task(&e.task_id),
            Event::CommentAdded(e) => {
                self.comments
                    .entry(e.task_id.clone())
                    .or_default()
                    .push(CommentRec::added(e, &se.user, ts));
            }
        }
        self.seq = seq;
    }

    fn remove_task(&mut self, id: &Id) {
        self.comments.remove(id);
        if let Some(rec) = self.tasks.remove(id) {
            if let Some(list) = self.group_tasks.get_mut(&rec.group_id) {
                list.remove(&rec.created_seq);
            }
        }
    }

    /// Oldest first (ties by name, as the live image lists them).
    pub(crate) fn users(&self) -> Vec<&UserRec> {
        let mut us: Vec<&UserRec> = self.users.values().collect();
        us.sort_by(|a, b| {
            a.created_ms
                .cmp(&b.created_ms)
                .then(a.username.cmp(&b.username))
        });
        us
    }

    pub(crate) fn group_rec(&self, id: &Id) -> Option<&GroupRec> {
        self.groups.get(id)
    }

    /// Oldest first.
    pub(crate) fn groups(&self) -> impl Iterator<Item = &GroupRec> + '_ {
        self.group_order
            .values()
            .filter_map(|id| self.groups.get(id))
    }

    pub(crate) fn task_rec(&self, id: &Id) -> Option<&TaskRec> {
        self.tasks.get(id)
    }

    /// Tasks of a group, oldest first.
    pub(crate) fn tasks_of_group(&self, group: &Id) -> Vec<&TaskRec> {
        self.group_tasks
            .get(group)
            .map(|l| l.values().filter_map(|id| self.tasks.get(id)).collect())
            .unwrap_or_default()
    }

    /// Comments of a task, oldest first.
    pub(crate) fn comments(&self, task: &Id) -> Vec<&CommentRec> {
        self.comments
            .get(task)
            .map(|c| c.iter().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::decide::{decide, View};
    use crate::domain::state::State;
    use crate::domain::{Command, Status};
    use proptest::prelude::*;

    fn id(n: u8) -> Id {
        Id::parse(&format!("id-{n}")).expect("valid id")
    }

    fn command(kind: u8, a: u8, b: u8) -> Command {
        match kind % 7 {
            0 => Command::CreateGroup {
                id: id(a),
                name: format!("group {a}"),
                discussion: None,
            },
            1 => Command::UpdateGroup {
                id: id(a),
                name: Some(format!("renamed {b}")),
                discussion: Some(format!("d{b}")),
            },
            2 => Command::DeleteGroup { id: id(a) },
            3 => Command::CreateTask {
                id: id(b),
                group_id: id(a),
                name: format!("task {b}"),
                description: None,
                status: None,
                start_date: None,
                end_date: None,
            },
            4 => Command::ChangeStatus {
                id: id(b),
                status: Status::ALL[a as usize % 5],
            },
            5 => Command::DeleteTask { id: id(b) },
            _ => Command::AddComment {
                id: id(a.wrapping_add(b)),
                task_id: id(b),
                text: format!("comment {a}"),
            },
        }
    }

    fn same_records(s: &State, p: &Past) -> Result<(), TestCaseError> {
        let live: Vec<_> = s.groups().cloned().collect();
        let past: Vec<_> = p.groups().cloned().collect();
        prop_assert_eq!(&live, &past);
        for g in &live {
            let lt: Vec<_> = s.tasks_of_group(&g.id).into_iter().cloned().collect();
            let pt: Vec<_> = p.tasks_of_group(&g.id).into_iter().cloned().collect();
            prop_assert_eq!(&lt, &pt);
            for t in &lt {
                let lc: Vec<_> = s.comments(&t.id).into_iter().cloned().collect();
                let pc: Vec<_> = p.comments(&t.id).into_iter().cloned().collect();
                prop_assert_eq!(lc, pc);
            }
        }
        Ok(())
    }

    proptest! {
        /// Any legal history gives the same records in both images, at every prefix.
        #[test]
        fn past_equals_the_live_image(cmds in prop::collection::vec((0u8..7, 0u8..4, 0u8..8), 1..60)) {
            let mut state = State::default();
            let mut past = Past::default();
            let mut seq = 0;
            for (i, (k, a, b)) in cmds.into_iter().enumerate() {
                let Ok(events) = decide(&state as &dyn View, command(k, a, b)) else { continue };
                for event in events {
                    seq += 1;
                    let se = StoredEvent {
                        version: 1,
                        event_id: uuid::Uuid::nil(),
                        ts_ms: 1_000 + i as i64,
                        user: "u".into(),
                        event,
                    };
                    state.apply(seq, &se);
                    past.apply(seq, &se);
                }
                same_records(&state, &past)?;
            }
        }
    }
}
