//! A generation's event log: one sled database, one key per event (`E` + the
//! big-endian sequence), nothing else. Projections live in memory
//! ([`crate::domain::state::State`]); a restore builds the next generation aside and
//! swaps it in. This module owns the durability barrier: sled's `flush` followed by
//! an fdatasync of sled's data file.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::StoreError;
use crate::domain::StoredEvent;

/// sled's page cache. The log is read sequentially at start and by sequence for
/// activity pages; a small cache is enough and keeps RSS down.
const CACHE_BYTES: u64 = 32 * 1024 * 1024;

const EVENT: u8 = b'E';

pub(crate) fn event_key(seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = EVENT;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn seq_of_key(k: &[u8]) -> Option<u64> {
    if k.len() == 9 && k[0] == EVENT {
        let mut b = [0u8; 8];
        b.copy_from_slice(&k[1..]);
        Some(u64::from_be_bytes(b))
    } else {
        None
    }
}

pub struct Gen {
    pub(crate) id: u64,
    pub(crate) dir: PathBuf,
    pub db: sled::Db,
    /// sled's data file, opened once: the target of the fdatasync barrier.
    data_file: File,
}

pub(crate) fn decode_event(bytes: &[u8]) -> Result<StoredEvent, StoreError> {
    crate::domain::upcast::stored(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn encode_event(se: &StoredEvent) -> Vec<u8> {
    bincode::serialize(se).expect("plain records always serialize with bincode")
}

/// Opens a sled db, waiting out the moments after a close in this same process
/// during which sled's background threads still hold the file lock.
pub(crate) fn open_db(dir: &Path, cache: u64) -> Result<sled::Db, StoreError> {
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
    pub(crate) fn open(id: u64, dir: &Path) -> Result<Gen, StoreError> {
        let db = open_db(dir, CACHE_BYTES)?;
        drop_legacy_keys(&db)?;
        let data_file = File::open(dir.join("db"))?;
        Ok(Gen {
            id,
            dir: dir.to_path_buf(),
            db,
            data_file,
        })
    }

    /// The durability barrier: sled writes its buffers (its `flush` only calls
    /// `sync_file_range` on Linux), then the data file is fdatasync'd so the
    /// device cache and the file size are on stable storage too.
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.data_file.sync_data()?;
        Ok(())
    }

    /// The sequence of the last event in the log (0 when empty). May be ahead of
    /// what is durable while a batch is being synced: readers use the snapshot.
    pub(crate) fn last_seq(&self) -> Result<u64, StoreError> {
        match self.db.last()? {
            None => Ok(0),
            Some((k, _)) => {
                seq_of_key(&k).ok_or_else(|| StoreError::Corrupt("bad event key".into()))
            }
        }
    }

    pub(crate) fn event(&self, seq: u64) -> Result<Option<StoredEvent>, StoreError> {
        match self.db.get(event_key(seq))? {
            Some(v) => Ok(Some(decode_event(&v)?)),
            None => Ok(None),
        }
    }

    /// Events `from..=to` in order, decoded lazily.
    pub fn events(
        &self,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = Result<(u64, StoredEvent), StoreError>> + '_ {
        self.raw_events(from, to).map(|r| {
            let (seq, v) = r?;
            Ok((seq, decode_event(&v)?))
        })
    }

    /// Events `from..=to` as stored bytes.
    pub fn raw_events(
        &self,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = Result<(u64, sled::IVec), StoreError>> + '_ {
        self.db.range(event_key(from)..=event_key(to)).map(|r| {
            let (k, v) = r?;
            let seq = seq_of_key(&k).ok_or_else(|| StoreError::Corrupt("bad event key".into()))?;
            Ok((seq, v))
        })
    }

    /// Adds encoded events to sled's memory (not yet durable: see [`Gen::sync`]).
    pub(crate) fn append(&self, events: &[(u64, Vec<u8>)]) -> Result<(), StoreError> {
        let mut b = sled::Batch::default();
        for (seq, bytes) in events {
            b.insert(&event_key(*seq), bytes.as_slice());
        }
        self.db.apply_batch(b)?;
        Ok(())
    }
}

/// Earlier versions kept projections in the same tree under other one-byte
/// prefixes; they are derived data, so they simply go.
fn drop_legacy_keys(db: &sled::Db) -> Result<(), StoreError> {
    let mut legacy = Vec::new();
    for r in db.range(..event_key(0).to_vec()) {
        legacy.push(r?.0);
    }
    for r in db.range(event_key(u64::MAX).to_vec()..) {
        let (k, _) = r?;
        if k.as_ref() != event_key(u64::MAX) {
            legacy.push(k);
        }
    }
    if legacy.is_empty() {
        return Ok(());
    }
    tracing::info!(
        keys = legacy.len(),
        "dropping projections stored by an earlier version (they live in memory now)"
    );
    for chunk in legacy.chunks(10_000) {
        let mut b = sled::Batch::default();
        for k in chunk {
            b.remove(k.clone());
        }
        db.apply_batch(b)?;
    }
    db.flush()?;
    Ok(())
}
