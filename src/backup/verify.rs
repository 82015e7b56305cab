//! Verification of a backup file: the whole archive read (gzip trailer,
//! checksums, continuity) on one thread while the other replays it through the
//! domain's rules into a memory image — and, for a restore, into the next
//! generation's log. A leaf of the backup component: restores, uploads and
//! `backup verify` use it; it touches only the file and the generation it is given.

use std::path::Path;

use super::archive::{self, Limits, Manifest};
use super::BackupError;
use crate::domain::canonical::from_canonical;
use crate::domain::state::State;
use crate::store::history::{At, Cut};
use crate::store::{replay, Gen, StoreError};

/// Lines handed from the reading thread to the replaying one at a time.
const LINES_PER_HANDOFF: usize = 1024;

type Lines = Vec<(u64, u64, Vec<u8>)>;

/// Why the replaying half of a verification refuses a backup. Every variant
/// becomes `BackupError::Invalid`, `invalid backup: ` and this text (422).
#[derive(Debug, thiserror::Error)]
enum ReplayError {
    /// Line `line` of `events.ndjson` is not an event of this log: unreadable
    /// (the canonical reader's words), another id, or earlier than the one before.
    #[error("events.ndjson line {line}: {why}")]
    Line { line: u64, why: String },
    /// The event breaks the log's rules, or its chunk of the new log cannot be written.
    #[error("events.ndjson line {line}: {source}")]
    Refused {
        line: u64,
        #[source]
        source: StoreError,
    },
    /// The new log's last chunk or its sync failed.
    #[error("{0}")]
    Finish(#[source] StoreError),
    #[error("the replay thread panicked")]
    Panicked,
}

/// Verifies `path` fully and replays it into a memory image, writing its log into
/// `gen` when given (blocking). `gen` holds junk if this fails; the caller throws
/// it away. Two threads: one inflates, untars, hashes and splits lines, the other
/// parses and replays them (and writes the log) — both halves cost about the same.
pub(crate) fn verify_into(
    path: &Path,
    gen: Option<&Gen>,
) -> Result<(Manifest, State), BackupError> {
    verify_upto(path, gen, None).map(|(m, s, _)| (m, s))
}

/// [`verify_into`] keeping only the prefix up to `upto` (the whole file is still
/// verified); also answers where that prefix ends.
pub(crate) fn verify_upto(
    path: &Path,
    gen: Option<&Gen>,
    upto: Option<At>,
) -> Result<(Manifest, State, Cut), BackupError> {
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Lines>(8);
        let replayer = scope.spawn(move || -> Result<(State, Cut), ReplayError> {
            let mut importer = replay::Importer::new(gen);
            let mut cut = Cut { seq: 0, at_ms: 0 };
            let mut last_ts = None;
            for batch in rx {
                for (line, id, bytes) in batch {
                    let (seq, se) =
                        from_canonical(&bytes).map_err(|why| ReplayError::Line { line, why })?;
                    if seq != id {
                        return Err(ReplayError::Line {
                            line,
                            why: "id mismatch".into(),
                        });
                    }
                    if last_ts.is_some_and(|t| se.ts_ms < t) {
                        return Err(ReplayError::Line {
                            line,
                            why: "its timestamp is earlier than the event before it".into(),
                        });
                    }
                    last_ts = Some(se.ts_ms);
                    let keep = match upto {
                        None => true,
                        Some(At::Seq(n)) => seq <= n,
                        Some(At::Time(t)) => se.ts_ms <= t,
                    };
                    if keep {
                        cut = Cut {
                            seq,
                            at_ms: se.ts_ms,
                        };
                        importer
                            .push(seq, se)
                            .map_err(|source| ReplayError::Refused { line, source })?;
                    }
                }
            }
            if let Some(At::Time(t)) = upto {
                cut.at_ms = t;
            }
            importer
                .finish()
                .map(|s| (s, cut))
                .map_err(ReplayError::Finish)
        });
        let mut pending: Lines = Vec::with_capacity(LINES_PER_HANDOFF);
        let verified = archive::verify_archive(path, &Limits::default(), |line, id, bytes| {
            pending.push((line, id, bytes.to_vec()));
            if pending.len() == LINES_PER_HANDOFF {
                let full = std::mem::replace(&mut pending, Vec::with_capacity(LINES_PER_HANDOFF));
                // A closed channel means the replayer stopped on an error; it is reported below.
                tx.send(full).map_err(|_| "replay stopped")?;
            }
            Ok(())
        });
        if verified.is_ok() && !pending.is_empty() {
            let _ = tx.send(std::mem::take(&mut pending));
        }
        drop(tx);
        let replayed = replayer
            .join()
            .unwrap_or_else(|_| Err(ReplayError::Panicked));
        // The replayer's own error is the real cause when both failed.
        let (state, cut) =
            replayed.map_err(|e| BackupError::Invalid(format!("invalid backup: {e}")))?;
        let verified = verified?;
        if let Some(At::Seq(n)) = upto {
            if n > verified.last_event_id {
                return Err(BackupError::BadInstant(format!(
                    "at is past the end of the backup: its last event is {}",
                    verified.last_event_id
                )));
            }
        }
        Ok((verified, state, cut))
    })
}

/// Verifies a file as restore would, replaying into a scratch memory image (blocking).
pub(crate) fn verify_file(path: &Path) -> Result<Manifest, BackupError> {
    verify_into(path, None).map(|(m, _)| m)
}
