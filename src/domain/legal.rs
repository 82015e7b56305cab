//! The domain's rules for a log that did not come from `decide`: a backup or an
//! import is replayed through these before it may replace the live store, so a
//! crafted file cannot leave an orphan task (readable but undeletable) or two
//! records with one id. Pure: no I/O.

use std::collections::HashSet;

use super::event::{Event, StoredEvent};
use super::id::Id;
use super::state::State;

/// What the image alone does not index: comment ids, and the last timestamp.
#[derive(Default)]
pub(crate) struct Legality {
    comments: HashSet<Id>,
    last_ts: Option<i64>,
}

impl Legality {
    /// Whether `se` may follow the events that built `state`; the reason if not.
    pub(crate) fn check(&mut self, state: &State, se: &StoredEvent) -> Result<(), String> {
        if let Some(last) = self.last_ts {
            if se.ts_ms < last {
                return Err("its timestamp is earlier than the event before it".into());
            }
        }
        match &se.event {
            Event::UserCreated(e) => {
                if state.user_rec(&e.username).is_some() {
                    return Err(format!("user {} already exists", e.username));
                }
            }
            Event::GroupCreated(e) => {
                if state.group_known(&e.group_id) {
                    return Err(format!("group id {} is already used", e.group_id));
                }
            }
            Event::GroupUpdated(e) => live_group(state, &e.group_id)?,
            Event::GroupDeleted(e) => {
                live_group(state, &e.group_id)?;
                for t in &e.task_ids {
                    task_in(state, t, &e.group_id)?;
                }
            }
            Event::TaskCreated(e) => {
                live_group(state, &e.group_id)?;
                if state.task_known(&e.task_id) {
                    return Err(format!("task id {} is already used", e.task_id));
                }
            }
            Event::TaskUpdated(e) => task_in(state, &e.task_id, &e.group_id)?,
            Event::TaskStatusChanged(e) => task_in(state, &e.task_id, &e.group_id)?,
            Event::TaskDeleted(e) => task_in(state, &e.task_id, &e.group_id)?,
            Event::CommentAdded(e) => {
                task_in(state, &e.task_id, &e.group_id)?;
                if !self.comments.insert(e.comment_id.clone()) {
                    return Err(format!("comment id {} is already used", e.comment_id));
                }
            }
        }
        self.last_ts = Some(se.ts_ms);
        Ok(())
    }
}

fn live_group(state: &State, id: &Id) -> Result<(), String> {
    match state.group_rec(id) {
        Some(_) => Ok(()),
        None => Err(format!("group {id} does not exist")),
    }
}

fn task_in(state: &State, task: &Id, group: &Id) -> Result<(), String> {
    match state.task_rec(task) {
        Some(t) if &t.group_id == group => Ok(()),
        Some(_) => Err(format!("task {task} is not in group {group}")),
        None => Err(format!("task {task} does not exist")),
    }
}
