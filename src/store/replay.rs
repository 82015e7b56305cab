//! Replaying the log into the memory image: start (checkpoint + tail), `rebuild`
//! (fresh replay, new checkpoint), `check` (continuity, marks, memory equal to a
//! fresh replay) and the importer that restores and verifies backups.

use super::checkpoint;
use super::gen::{decode_event, encode_event, Gen};
use super::StoreError;
use crate::domain::legal::Legality;
use crate::domain::state::{first_difference, Counts, State};
use crate::domain::StoredEvent;

/// Events per sled batch while importing: amortises sled's per-batch cost while
/// keeping the pending bytes in a few MB.
const CHUNK: usize = 8_192;

/// Replays `gen`'s events after `state.seq`, checking continuity.
fn replay_onto(gen: &Gen, mut state: State) -> Result<State, StoreError> {
    let first = state.seq + 1;
    for (expected, r) in (first..).zip(gen.raw_events(first, u64::MAX)) {
        let (seq, bytes) = r?;
        if seq != expected {
            return Err(StoreError::Corrupt(format!(
                "log gap: event {expected} expected, found {seq}"
            )));
        }
        let se =
            decode_event(&bytes).map_err(|e| StoreError::Corrupt(format!("event {seq}: {e}")))?;
        state.apply(seq, &se);
    }
    Ok(state)
}

/// A replay of the whole log from nothing.
pub fn fresh(gen: &Gen) -> Result<State, StoreError> {
    replay_onto(gen, State::default())
}

/// How the memory image was built at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    /// From the checkpoint at this sequence plus the log after it.
    Checkpoint(u64),
    /// From the whole log (no usable checkpoint).
    Replay,
}

/// The memory image of `gen`: its checkpoint plus the log tail, or a full replay.
pub fn load(gen: &Gen) -> Result<(State, Loaded), StoreError> {
    let last = gen.last_seq()?;
    if let Some(ck) = checkpoint::peek_seq(&gen.dir, gen.id) {
        if ck > last {
            return Err(StoreError::LostTail {
                have: last,
                acked: ck,
            });
        }
    }
    match checkpoint::read(&gen.dir, gen.id) {
        Ok(state) => {
            let at = state.seq;
            Ok((replay_onto(gen, state)?, Loaded::Checkpoint(at)))
        }
        Err(why) => {
            if checkpoint::path(&gen.dir).exists() {
                tracing::warn!(reason = %why, "checkpoint not usable; replaying the whole log");
            }
            Ok((fresh(gen)?, Loaded::Replay))
        }
    }
}

/// Replays the whole log and writes a new checkpoint.
pub(crate) fn rebuild(gen: &Gen) -> Result<Counts, StoreError> {
    let state = fresh(gen)?;
    checkpoint::write(&gen.dir, gen.id, &state)?;
    Ok(state.counts())
}

/// Builds a memory image (and, given a generation, its log) from events given in
/// order; checks continuity as it goes.
pub(crate) struct Importer<'a> {
    gen: Option<&'a Gen>,
    state: State,
    rules: Legality,
    pending: Vec<(u64, Vec<u8>)>,
}

impl<'a> Importer<'a> {
    /// `gen`: the empty generation to write the log into; `None` only verifies.
    pub(crate) fn new(gen: Option<&'a Gen>) -> Importer<'a> {
        Importer {
            gen,
            state: State::default(),
            rules: Legality::default(),
            pending: Vec::with_capacity(if gen.is_some() { CHUNK } else { 0 }),
        }
    }

    pub(crate) fn push(&mut self, seq: u64, se: StoredEvent) -> Result<(), StoreError> {
        let next = self.state.seq + 1;
        if seq != next {
            return Err(StoreError::Corrupt(format!(
                "event {next} expected, got {seq}"
            )));
        }
        self.rules
            .check(&self.state, &se)
            .map_err(|why| StoreError::Corrupt(format!("event {seq} breaks the rules: {why}")))?;
        self.state.apply(seq, &se);
        if let Some(gen) = self.gen {
            self.pending.push((seq, encode_event(&se)));
            if self.pending.len() == CHUNK {
                gen.append(&self.pending)?;
                self.pending.clear();
            }
        }
        Ok(())
    }

    /// The last event pushed (0: none yet).
    pub(crate) fn seq(&self) -> u64 {
        self.state.seq
    }

    /// Makes the written log durable and hands back the memory image.
    pub(crate) fn finish(mut self) -> Result<State, StoreError> {
        if let Some(gen) = self.gen {
            gen.append(&self.pending)?;
            self.pending.clear();
            gen.sync()?;
        }
        Ok(self.state)
    }
}

/// Everything wrong with a generation, empty when it is consistent: continuity,
/// a lost tail (the marks), and the start image (checkpoint + tail) equal to a
/// fresh replay.
pub(crate) fn check(gen: &Gen, mark: Option<u64>) -> Result<CheckReport, StoreError> {
    // The start image (checkpoint + tail) is built on a second thread while this
    // one replays the whole log: the two halves of the comparison in parallel.
    let ck = checkpoint::peek_seq(&gen.dir, gen.id);
    let exists = checkpoint::path(&gen.dir).exists();
    std::thread::scope(|scope| {
        // None: no checkpoint to compare; Err: it cannot be read (and why).
        type FromCheckpoint = Option<Result<Result<State, StoreError>, checkpoint::Unusable>>;
        let from_checkpoint = scope.spawn(|| -> FromCheckpoint {
            if !exists || ck.is_some_and(|c| c > gen.last_seq().unwrap_or(0)) {
                return None;
            }
            Some(checkpoint::read(&gen.dir, gen.id).map(|cs| replay_onto(gen, cs)))
        });
        let (mut problems, state) = scan(gen)?;
        let mut notes = Vec::new();
        let last = state.seq;
        for acked in [mark, ck].into_iter().flatten() {
            if acked > last {
                problems.push(StoreError::LostTail { have: last, acked }.to_string());
            }
        }
        match from_checkpoint.join() {
            Ok(None) => {}
            Ok(Some(Ok(Ok(image)))) if problems.is_empty() => {
                if let Some(d) = first_difference(&image, &state) {
                    problems.push(format!(
                        "checkpoint plus log tail differs from a fresh replay (checkpoint vs replay) at {d}"
                    ))
                }
            }
            Ok(Some(Ok(Ok(_)))) => {}
            Ok(Some(Ok(Err(e)))) => problems.push(format!("replay after the checkpoint: {e}")),
            // Another version's checkpoint is not damage: the next start replays.
            Ok(Some(Err(e @ checkpoint::Unusable::OtherFormat { .. }))) => notes.push(format!(
                "checkpoint {e}: ignored; the next start replays the log and writes a new one"
            )),
            Ok(Some(Err(e))) => {
                problems.push(format!("checkpoint unusable (ignored at start): {e}"))
            }
            Err(_) => problems.push("the checkpoint thread panicked".into()),
        }
        Ok(CheckReport {
            problems,
            notes,
            state,
        })
    })
}

/// What `check` found: `problems` fail it, `notes` do not.
pub(crate) struct CheckReport {
    pub(crate) problems: Vec<String>,
    pub(crate) notes: Vec<String>,
    /// The fresh replay.
    pub(crate) state: State,
}

/// Continuity, decoding and legality of every event, and the fresh replay.
fn scan(gen: &Gen) -> Result<(Vec<String>, State), StoreError> {
    let mut problems = Vec::new();
    let mut state = State::default();
    let mut rules = Legality::default();
    let mut expected = 1u64;
    for r in gen.raw_events(1, u64::MAX) {
        let (seq, bytes) = r?;
        if seq != expected {
            problems.push(format!("log gap: event {expected} expected, found {seq}"));
        }
        expected = seq + 1;
        match decode_event(&bytes) {
            Ok(se) => {
                // The rules a backup of this log must pass to be restored: a log
                // that breaks them would give backups that verification refuses.
                if let Err(why) = rules.check(&state, &se) {
                    problems.push(format!(
                        "event {seq} breaks the rules a backup is verified against: {why}"
                    ));
                }
                state.apply(seq, &se)
            }
            Err(e) => problems.push(format!("event {seq} does not decode: {e}")),
        }
        if problems.len() > 100 {
            problems.push("… (stopping after 100 problems)".into());
            break;
        }
    }
    Ok((problems, state))
}
