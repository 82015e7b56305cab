//! A generation: one sled database holding the log and its projections. The live
//! store is one generation; a restore builds the next one aside and swaps it in.
//! Every read path of the API lives here and never touches the writer.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::keys::{self, *};
use super::projection::LogSummary;
use super::StoreError;
use crate::domain::{CommentRec, GroupRec, StoredEvent, TaskRec, UserRec};

/// sled's page cache; the default (1 GiB) would blow the memory budget.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

pub struct Gen {
    pub id: u64,
    pub dir: PathBuf,
    pub db: sled::Db,
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    bincode::deserialize(bytes).map_err(|e| StoreError::Corrupt(format!("undecodable record: {e}")))
}

/// Opens a sled db, waiting out the moments after a close in this same process
/// during which sled's background threads still hold the file lock.
pub fn open_db(dir: &Path, cache: u64) -> Result<sled::Db, StoreError> {
    let mut tries = 0;
    loop {
        let r = sled::Config::new()
            .path(dir)
            .cache_capacity(cache)
            .mode(sled::Mode::HighThroughput)
            .open();
        match r {
            Err(sled::Error::Io(e))
                if tries < 100 && e.to_string().contains("could not acquire lock") =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

impl Gen {
    pub fn open(id: u64, dir: &Path) -> Result<Gen, StoreError> {
        Self::open_with_cache(id, dir, CACHE_BYTES)
    }

    /// Offline bulk work (rebuild, check) runs alone and is faster with a larger cache.
    pub fn open_with_cache(id: u64, dir: &Path, cache: u64) -> Result<Gen, StoreError> {
        let db = open_db(dir, cache)?;
        Ok(Gen {
            id,
            dir: dir.to_path_buf(),
            db,
        })
    }

    pub fn tree(&self) -> &sled::Tree {
        &self.db
    }

    /// The sequence of the last event in the log (0 when empty).
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        let last = self
            .db
            .range(keys::event(0)..=keys::event(u64::MAX))
            .next_back();
        match last {
            None => Ok(0),
            Some(r) => {
                let (k, _) = r?;
                keys::seq_of_event_key(&k)
                    .ok_or_else(|| StoreError::Corrupt("bad event key".into()))
            }
        }
    }

    pub fn event(&self, seq: u64) -> Result<Option<StoredEvent>, StoreError> {
        match self.db.get(keys::event(seq))? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Events `from..=to` in order, decoded lazily.
    pub fn events(
        &self,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = Result<(u64, StoredEvent), StoreError>> + '_ {
        self.db.range(keys::event(from)..=keys::event(to)).map(|r| {
            let (k, v) = r?;
            let seq = keys::seq_of_event_key(&k)
                .ok_or_else(|| StoreError::Corrupt("bad event key".into()))?;
            Ok((seq, decode(&v)?))
        })
    }

    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.db.get(key)? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    fn scan<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<T>, StoreError> {
        self.db
            .scan_prefix(prefix)
            .map(|r| {
                let (_, v) = r?;
                decode(&v)
            })
            .collect()
    }

    pub fn user(&self, username: &str) -> Result<Option<UserRec>, StoreError> {
        self.get(&keys::user(username))
    }

    pub fn users(&self) -> Result<Vec<UserRec>, StoreError> {
        let mut us: Vec<UserRec> = self.scan(&[USER])?;
        us.sort_by_key(|u| u.created_ms);
        Ok(us)
    }

    pub fn has_users(&self) -> Result<bool, StoreError> {
        Ok(self.db.scan_prefix([USER]).next().transpose()?.is_some())
    }

    pub fn group(&self, id: Uuid) -> Result<Option<GroupRec>, StoreError> {
        self.get(&keys::id(GROUP, id))
    }

    /// Oldest first.
    pub fn groups(&self) -> Result<Vec<GroupRec>, StoreError> {
        let mut gs: Vec<GroupRec> = self.scan(&[GROUP])?;
        gs.sort_by_key(|g| g.created_seq);
        Ok(gs)
    }

    pub fn task(&self, id: Uuid) -> Result<Option<TaskRec>, StoreError> {
        self.get(&keys::id(TASK, id))
    }

    /// Tasks of a group, oldest first.
    pub fn tasks_of_group(&self, group: Uuid) -> Result<Vec<TaskRec>, StoreError> {
        let mut out = Vec::new();
        for r in self.db.scan_prefix(keys::id(GROUP_TASK, group)) {
            let (_, v) = r?;
            let tid =
                Uuid::from_slice(&v).map_err(|_| StoreError::Corrupt("bad task index".into()))?;
            // A missing task behind an index entry would be a projection bug; skip, `check` reports it.
            if let Some(t) = self.task(tid)? {
                out.push(t);
            }
        }
        Ok(out)
    }

    pub fn count_tasks_of_group(&self, group: Uuid) -> usize {
        self.db.scan_prefix(keys::id(GROUP_TASK, group)).count()
    }

    /// Comments of a task, oldest first.
    pub fn comments(&self, task: Uuid) -> Result<Vec<CommentRec>, StoreError> {
        self.scan(&keys::id(COMMENT, task))
    }

    pub fn comment_at(&self, task: Uuid, seq: u64) -> Result<Option<CommentRec>, StoreError> {
        self.get(&keys::id_seq(COMMENT, task, seq))
    }

    /// Newest first, strictly before `before` when given.
    fn logs(
        &self,
        prefix: u8,
        id: Uuid,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, StoredEvent)>, StoreError> {
        let lo = keys::id_seq(prefix, id, 0);
        let hi = keys::id_seq(prefix, id, before.unwrap_or(u64::MAX));
        let mut out = Vec::with_capacity(limit.min(1024));
        for r in self.db.range(lo..hi).rev().take(limit) {
            let (k, _) = r?;
            let seq = keys::trailing_seq(&k)
                .ok_or_else(|| StoreError::Corrupt("bad log index".into()))?;
            match self.event(seq)? {
                Some(e) => out.push((seq, e)),
                None => {
                    return Err(StoreError::Corrupt(format!(
                        "log index points at missing event {seq}"
                    )))
                }
            }
        }
        Ok(out)
    }

    pub fn group_logs(
        &self,
        g: Uuid,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, StoredEvent)>, StoreError> {
        self.logs(LOG_GROUP, g, before, limit)
    }

    pub fn task_logs(
        &self,
        t: Uuid,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, StoredEvent)>, StoreError> {
        self.logs(LOG_TASK, t, before, limit)
    }

    pub fn group_summaries(&self) -> Result<Vec<(Uuid, LogSummary)>, StoreError> {
        self.summaries(&[SUM_GROUP])
    }

    pub fn task_summaries(&self, g: Uuid) -> Result<Vec<(Uuid, LogSummary)>, StoreError> {
        self.summaries(&keys::id(SUM_TASK, g))
    }

    fn summaries(&self, prefix: &[u8]) -> Result<Vec<(Uuid, LogSummary)>, StoreError> {
        let mut out = Vec::new();
        for r in self.db.scan_prefix(prefix) {
            let (k, v) = r?;
            let id = keys::trailing_id(&k)
                .ok_or_else(|| StoreError::Corrupt("bad summary key".into()))?;
            out.push((id, decode::<LogSummary>(&v)?));
        }
        // Most recently active first: what a user scanning activity wants.
        out.sort_by_key(|(_, s)| std::cmp::Reverse(s.last_ms));
        Ok(out)
    }
}
