//! What readers see: a durable point of one generation — its log and the memory
//! image at exactly that point. Published by the flusher only after the fsync, so
//! nothing here was ever not on disk. Hold the Arc for a whole request: it is one
//! consistent state, even across a restore.

use std::sync::Arc;

use crate::domain::id::Id;

use super::gen::Gen;
use super::StoreError;
use crate::domain::state::{LogSummary, State};
use crate::domain::{StoredEvent, UserRec};

pub struct Snapshot {
    pub(crate) gen: Arc<Gen>,
    pub(crate) state: State,
}

impl Snapshot {
    /// The generation id.
    pub(crate) fn id(&self) -> u64 {
        self.gen.id
    }

    /// The last durable (and visible) event.
    pub fn last_seq(&self) -> u64 {
        self.state.seq
    }

    pub(crate) fn user(&self, username: &str) -> Option<UserRec> {
        self.state.user_rec(username).cloned()
    }

    pub(crate) fn users(&self) -> Vec<UserRec> {
        self.state.users().into_iter().cloned().collect()
    }

    pub(crate) fn has_users(&self) -> bool {
        self.state.has_users()
    }

    /// The stored events at these sequences (an activity page), read from the log.
    pub(crate) fn bodies(&self, seqs: Vec<u64>) -> Result<Vec<(u64, StoredEvent)>, StoreError> {
        seqs.into_iter()
            .map(|seq| match self.gen.event(seq)? {
                Some(e) => Ok((seq, e)),
                None => Err(StoreError::Corrupt(format!(
                    "activity index points at missing event {seq}"
                ))),
            })
            .collect()
    }

    pub(crate) fn group_summaries(&self) -> Vec<(Id, LogSummary)> {
        self.state
            .group_summaries()
            .into_iter()
            .map(|(id, s)| (id, s.clone()))
            .collect()
    }

    pub(crate) fn task_summaries(&self, g: &Id) -> Vec<(Id, LogSummary)> {
        self.state
            .task_summaries(g)
            .into_iter()
            .map(|(id, s)| (id, s.clone()))
            .collect()
    }
}
