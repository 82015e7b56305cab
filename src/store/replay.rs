//! Replaying the log: `rebuild` (drop and recompute every projection), `check`
//! (continuity, and projections equal to a fresh replay), and the importer that
//! builds a scratch generation from a backup.

use serde::Serialize;

use super::gen::Gen;
use super::keys::{self, PROJECTIONS};
use super::overlay::Overlay;
use super::projection::{append, project};
use super::StoreError;
use crate::domain::StoredEvent;

/// Events per atomic batch while replaying: large enough to amortise sled's
/// per-batch cost, small enough to keep the overlay in a few tens of MB.
const CHUNK: usize = 20_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub events: u64,
    pub users: u64,
    pub groups: u64,
    pub tasks: u64,
    pub comments: u64,
}

/// Replays a chunk onto `tree`. Replays only ever target a tree nobody reads
/// (a scratch generation, or an offline rebuild that is simply rerun if cut
/// short), so plain inserts serve: sled's large atomic batches are much slower
/// and hold far more memory than its cache limit.
fn apply_chunk(
    tree: &sled::Tree,
    chunk: &[(u64, StoredEvent)],
    with_append: bool,
) -> Result<(), StoreError> {
    let mut ov = Overlay::new(tree);
    for (seq, se) in chunk {
        if with_append {
            append(&mut ov, *seq, se);
        }
        project(&mut ov, *seq, se);
    }
    if let Some(e) = ov.take_error() {
        return Err(e.into());
    }
    for (k, v) in ov.into_writes() {
        match v {
            Some(v) => tree.insert(k, v)?,
            None => tree.remove(k)?,
        };
    }
    // sled keeps unflushed pages in memory regardless of its cache size.
    tree.flush()?;
    Ok(())
}

pub fn counts(gen: &Gen) -> Result<Counts, StoreError> {
    let n = |p: u8| gen.tree().scan_prefix([p]).count() as u64;
    Ok(Counts {
        events: gen.last_seq()?,
        users: n(keys::USER),
        groups: n(keys::GROUP),
        tasks: n(keys::TASK),
        comments: n(keys::COMMENT),
    })
}

/// Drops every projection and recomputes it from the log.
pub fn rebuild(gen: &Gen) -> Result<Counts, StoreError> {
    let tree = gen.tree();
    for p in PROJECTIONS {
        let keys: Vec<sled::IVec> = tree.scan_prefix([p]).keys().collect::<Result<_, _>>()?;
        for k in keys {
            tree.remove(k)?;
        }
    }
    let mut chunk = Vec::with_capacity(CHUNK);
    for r in gen.events(1, u64::MAX) {
        chunk.push(r?);
        if chunk.len() == CHUNK {
            apply_chunk(tree, &chunk, false)?;
            chunk.clear();
        }
    }
    apply_chunk(tree, &chunk, false)?;
    gen.db.flush()?;
    counts(gen)
}

/// Builds a generation from events given in order; checks continuity as it goes.
pub struct Importer<'a> {
    tree: &'a sled::Tree,
    next: u64,
    chunk: Vec<(u64, StoredEvent)>,
}

impl<'a> Importer<'a> {
    pub fn new(tree: &'a sled::Tree) -> Importer<'a> {
        Importer {
            tree,
            next: 1,
            chunk: Vec::with_capacity(CHUNK),
        }
    }

    pub fn push(&mut self, seq: u64, se: StoredEvent) -> Result<(), StoreError> {
        if seq != self.next {
            return Err(StoreError::Corrupt(format!(
                "event {} expected, got {seq}",
                self.next
            )));
        }
        self.next += 1;
        self.chunk.push((seq, se));
        if self.chunk.len() == CHUNK {
            apply_chunk(self.tree, &self.chunk, true)?;
            self.chunk.clear();
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<u64, StoreError> {
        apply_chunk(self.tree, &self.chunk, true)?;
        self.chunk.clear();
        Ok(self.next - 1)
    }
}

/// Everything wrong with a generation, empty when it is consistent.
pub fn check(gen: &Gen) -> Result<Vec<String>, StoreError> {
    let mut problems = Vec::new();
    let scratch_db = sled::Config::new()
        .temporary(true)
        .cache_capacity(super::OFFLINE_CACHE_BYTES)
        .open()?;
    let mut expected = 1u64;
    let mut chunk = Vec::with_capacity(CHUNK);
    for r in gen.tree().range(keys::event(0)..=keys::event(u64::MAX)) {
        let (k, v) = r?;
        let Some(seq) = keys::seq_of_event_key(&k) else {
            problems.push(format!("malformed event key {k:?}"));
            continue;
        };
        if seq != expected {
            problems.push(format!("log gap: event {expected} expected, found {seq}"));
            expected = seq;
        }
        expected += 1;
        match bincode::deserialize::<StoredEvent>(&v) {
            Ok(se) => chunk.push((seq, se)),
            Err(e) => problems.push(format!("event {seq} does not decode: {e}")),
        }
        if chunk.len() == CHUNK {
            apply_chunk(&scratch_db, &chunk, false)?;
            chunk.clear();
        }
    }
    apply_chunk(&scratch_db, &chunk, false)?;

    // Both sides are walked in key order side by side: memory stays flat however
    // large the projections are.
    for p in PROJECTIONS {
        let name = p as char;
        let mut live = gen.tree().scan_prefix([p]).peekable();
        let mut fresh = scratch_db.scan_prefix([p]).peekable();
        loop {
            let order = match (live.peek(), fresh.peek()) {
                (None, None) => break,
                (Some(Err(_)), _) | (_, Some(Err(_))) => {
                    let e = live
                        .next()
                        .and_then(Result::err)
                        .or_else(|| fresh.next().and_then(Result::err));
                    return Err(e
                        .map(StoreError::from)
                        .unwrap_or_else(|| StoreError::Corrupt("scan failed".into())));
                }
                (Some(Ok((lk, _))), Some(Ok((fk, _)))) => lk.cmp(fk),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    if let Some(Ok((k, _))) = live.next() {
                        problems.push(format!(
                            "projection {name}: key {} is not in a fresh replay",
                            hex::encode(k)
                        ));
                    }
                }
                std::cmp::Ordering::Greater => {
                    if let Some(Ok((k, _))) = fresh.next() {
                        problems.push(format!(
                            "projection {name}: key {} is missing",
                            hex::encode(k)
                        ));
                    }
                }
                std::cmp::Ordering::Equal => {
                    if let (Some(Ok((k, lv))), Some(Ok((_, fv)))) = (live.next(), fresh.next()) {
                        if lv != fv {
                            problems.push(format!(
                                "projection {name}: key {} differs from a fresh replay",
                                hex::encode(k)
                            ));
                        }
                    }
                }
            }
            if problems.len() > 100 {
                break;
            }
        }
        if problems.len() > 100 {
            problems.push("… (stopping after 100 problems)".into());
            break;
        }
    }
    Ok(problems)
}
