//! What readers see: a durable point of one generation — its log and the memory
//! image at exactly that point. Published by the flusher only after the fsync, so
//! nothing here was ever not on disk. Hold the Arc for a whole request: it is one
//! consistent state, even across a restore.

use std::sync::Arc;

use crate::domain::id::Id;

use super::gen::Gen;
use super::StoreError;
use crate::domain::state::{LogSummary, State};
use crate::domain::{CommentRec, GroupRec, StoredEvent, TaskRec, UserRec};

pub struct Snapshot {
    pub gen: Arc<Gen>,
    pub state: State,
}

impl Snapshot {
    /// The generation id.
    pub fn id(&self) -> u64 {
        self.gen.id
    }

    /// The last durable (and visible) event.
    pub fn last_seq(&self) -> u64 {
        self.state.seq
    }

    pub fn user(&self, username: &str) -> Option<UserRec> {
        self.state.user_rec(username).cloned()
    }

    pub fn users(&self) -> Vec<UserRec> {
        self.state.users().into_iter().cloned().collect()
    }

    pub fn has_users(&self) -> bool {
        self.state.has_users()
    }

    pub fn group(&self, id: &Id) -> Option<GroupRec> {
        self.state.group_rec(id).cloned()
    }

    pub fn groups(&self) -> Vec<GroupRec> {
        self.state.groups().cloned().collect()
    }

    pub fn task(&self, id: &Id) -> Option<TaskRec> {
        self.state.task_rec(id).cloned()
    }

    pub fn tasks_of_group(&self, group: &Id) -> Vec<TaskRec> {
        self.state
            .tasks_of_group(group)
            .into_iter()
            .cloned()
            .collect()
    }

    pub fn comments(&self, task: &Id) -> Vec<CommentRec> {
        self.state.comments(task).into_iter().cloned().collect()
    }

    fn bodies(&self, seqs: Vec<u64>) -> Result<Vec<(u64, StoredEvent)>, StoreError> {
        seqs.into_iter()
            .map(|seq| match self.gen.event(seq)? {
                Some(e) => Ok((seq, e)),
                None => Err(StoreError::Corrupt(format!(
                    "activity index points at missing event {seq}"
                ))),
            })
            .collect()
    }

    /// Newest first, strictly before `before` when given.
    pub fn group_logs(
        &self,
        g: Id,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, StoredEvent)>, StoreError> {
        self.bodies(self.state.group_log(&g, before, limit))
    }

    pub fn task_logs(
        &self,
        t: Id,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, StoredEvent)>, StoreError> {
        self.bodies(self.state.task_log(&t, before, limit))
    }

    pub fn group_summaries(&self) -> Vec<(Id, LogSummary)> {
        self.state
            .group_summaries()
            .into_iter()
            .map(|(id, s)| (id, s.clone()))
            .collect()
    }

    pub fn task_summaries(&self, g: &Id) -> Vec<(Id, LogSummary)> {
        self.state
            .task_summaries(g)
            .into_iter()
            .map(|(id, s)| (id, s.clone()))
            .collect()
    }
}
