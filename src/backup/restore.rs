//! Restore: verify a backup completely while writing it as the next generation's
//! log and building its memory image, write a pre-restore backup of the current
//! state, then swap log + image in between two write batches. Any failure leaves
//! the live store as it was.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::json;

use super::archive::{self, Limits, Manifest};
use super::manager::{audit, durable_prefix, write_backup, PRE_RESTORE};
use super::{blocking, BackupError};
use crate::app::AppState;
use crate::domain::canonical::from_canonical;
use crate::domain::state::State;
use crate::store::{replay, retire_gen, Gen, Store, SwapError};

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Restored {
    pub events: u64,
    pub groups: u64,
    pub tasks: u64,
    pub comments: u64,
}

#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub backup: String,
    pub restored: Restored,
    pub safety_backup: String,
}

/// Lines handed from the reading thread to the replaying one at a time.
const LINES_PER_HANDOFF: usize = 1024;

type Lines = Vec<(u64, u64, Vec<u8>)>;

/// Verifies `path` fully and replays it into a memory image, writing its log into
/// `gen` when given (blocking). `gen` holds junk if this fails; the caller throws
/// it away. Two threads: one inflates, untars, hashes and splits lines, the other
/// parses and replays them (and writes the log) — both halves cost about the same.
pub fn verify_into(path: &Path, gen: Option<&Gen>) -> Result<(Manifest, State), BackupError> {
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Lines>(8);
        let replayer = scope.spawn(move || -> Result<State, String> {
            let mut importer = replay::Importer::new(gen);
            for batch in rx {
                for (line, id, bytes) in batch {
                    let (seq, se) = from_canonical(&bytes)
                        .map_err(|e| format!("events.ndjson line {line}: {e}"))?;
                    if seq != id {
                        return Err(format!("events.ndjson line {line}: id mismatch"));
                    }
                    importer
                        .push(seq, se)
                        .map_err(|e| format!("events.ndjson line {line}: {e}"))?;
                }
            }
            importer.finish().map_err(|e| e.to_string())
        });
        let mut pending: Lines = Vec::with_capacity(LINES_PER_HANDOFF);
        let verified = archive::verify_archive(path, &Limits::default(), |line, id, bytes| {
            pending.push((line, id, bytes.to_vec()));
            if pending.len() == LINES_PER_HANDOFF {
                let full = std::mem::replace(&mut pending, Vec::with_capacity(LINES_PER_HANDOFF));
                // A closed channel means the replayer stopped on an error; it is reported below.
                tx.send(full).map_err(|_| "replay stopped".to_string())?;
            }
            Ok(())
        });
        if verified.is_ok() && !pending.is_empty() {
            let _ = tx.send(std::mem::take(&mut pending));
        }
        drop(tx);
        let replayed = replayer
            .join()
            .unwrap_or_else(|_| Err("the replay thread panicked".into()));
        // The replayer's own error is the real cause when both failed.
        let state = replayed.map_err(|e| BackupError::Invalid(format!("invalid backup: {e}")))?;
        let verified = verified?;
        Ok((verified.manifest, state))
    })
}

/// Verifies a file as restore would, replaying into a scratch memory image (blocking).
pub fn verify_file(path: &Path) -> Result<Manifest, BackupError> {
    verify_into(path, None).map(|(m, _)| m)
}

fn restored(state: &State) -> Restored {
    let c = state.counts();
    Restored {
        events: c.events,
        groups: c.groups,
        tasks: c.tasks,
        comments: c.comments,
    }
}

fn swap_error(e: SwapError) -> BackupError {
    BackupError::Fault(format!("swap failed: {e}"))
}

/// Restores the backup at `path`, live. `source` is `api`, `drop-folder` or `cli`.
pub async fn restore(
    app: &AppState,
    path: PathBuf,
    source: &str,
    user: &str,
) -> Result<RestoreReport, BackupError> {
    let started = Instant::now();
    let _busy = app.backups.busy.lock().await;
    let result = restore_locked(app, path.clone(), source, user).await;
    let ok = if result.is_ok() { "ok" } else { "error" };
    app.metrics.restores.with_label_values(&[source, ok]).inc();
    app.metrics
        .restore_seconds
        .observe(started.elapsed().as_secs_f64());
    match &result {
        Ok(r) => {
            tracing::info!(backup = %r.backup, events = r.restored.events, safety = %r.safety_backup, ms = started.elapsed().as_millis() as u64, source, "restore complete")
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, source, "restore refused; live data untouched")
        }
    }
    result
}

async fn restore_locked(
    app: &AppState,
    path: PathBuf,
    source: &str,
    user: &str,
) -> Result<RestoreReport, BackupError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    // 1. Verify everything by building the new generation aside.
    let scratch = app.store.prepare_gen()?;
    let p = path.clone();
    let (scratch, (manifest, image)) = blocking(move || match verify_into(&p, Some(&scratch)) {
        Ok(m) => Ok((scratch, m)),
        Err(e) => {
            Store::discard_gen(scratch);
            Err(e)
        }
    })
    .await?;
    // 2. Pre-restore backup, first without pausing anybody.
    let (gen, upto) = durable_prefix(app);
    let gen_id = gen.id;
    let dir = app.config.backup_dir.clone();
    let first = {
        let dir = dir.clone();
        blocking(move || write_backup(&gen, upto, &dir, PRE_RESTORE, Some(PRE_RESTORE))).await
    };
    let first = match first {
        Ok(w) => w,
        Err(e) => {
            Store::discard_gen(scratch);
            return Err(e);
        }
    };
    // 3. Pause the writer; if writes landed meanwhile, redo the safety backup paused.
    let ex = match app.store.exclusive().await {
        Ok(ex) => ex,
        Err(e) => {
            Store::discard_gen(scratch);
            return Err(swap_error(e));
        }
    };
    let safety = if ex.snapshot.last_seq() == upto && ex.snapshot.id() == gen_id {
        first
    } else {
        let _ = std::fs::remove_file(&first.path);
        let (g, s, d) = (ex.snapshot.gen.clone(), ex.snapshot.last_seq(), dir.clone());
        match blocking(move || write_backup(&g, s, &d, PRE_RESTORE, Some(PRE_RESTORE))).await {
            Ok(w) => w,
            Err(e) => {
                drop(ex);
                Store::discard_gen(scratch);
                return Err(e);
            }
        }
    };
    let safety_name = safety
        .path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    audit(
        app,
        "BACKUP_CREATED",
        Some(&safety_name),
        user,
        json!({"kind": PRE_RESTORE, "events": safety.manifest.events, "size": safety.size}),
    );
    // 4. The swap, announced to the Kafka relay first so a crash cannot lose the notice.
    crate::mirror::note_restore(app, scratch.id, &name, image.seq);
    let restored = restored(&image);
    match ex.swap(Arc::new(scratch), image).await {
        Ok(Ok(old)) => retire_gen(old),
        Ok(Err(e)) => return Err(swap_error(e)),
        Err(_) => return Err(swap_error(SwapError::Closed)),
    }
    audit(
        app,
        "BACKUP_RESTORED",
        Some(&name),
        user,
        json!({"source": source, "events": restored.events, "lastEventId": manifest.last_event_id, "safetyBackup": safety_name}),
    );
    // A backup without users would lock everybody out.
    if let Err(e) = crate::seed_users(&app.store, &app.config).await {
        tracing::error!(error = %e, "could not recreate the admin user after restore");
    }
    Ok(RestoreReport {
        backup: name,
        restored,
        safety_backup: safety_name,
    })
}

/// Offline restore for the CLI: same checks, then the new generation becomes CURRENT.
pub fn restore_offline(
    data_dir: &Path,
    backup_dir: &Path,
    file: &Path,
) -> Result<(RestoreReport, Gen), BackupError> {
    let live = crate::store::open_offline(data_dir)?;
    let next = crate::store::next_gen(data_dir, live.id)?;
    let image = match verify_into(file, Some(&next)) {
        Ok((_, image)) => image,
        Err(e) => {
            Store::discard_gen(next);
            return Err(e);
        }
    };
    let upto = live.last_seq()?;
    let safety = match write_backup(&live, upto, backup_dir, PRE_RESTORE, Some(PRE_RESTORE)) {
        Ok(w) => w,
        Err(e) => {
            Store::discard_gen(next);
            return Err(e);
        }
    };
    // The next start reads this image instead of replaying the restored log.
    crate::store::checkpoint::write(&next.dir, next.id, &image)?;
    crate::store::write_current(data_dir, next.id)?;
    let old_dir = live.dir.clone();
    drop(live);
    let _ = std::fs::remove_dir_all(old_dir);
    Ok((
        RestoreReport {
            backup: file
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
            restored: restored(&image),
            safety_backup: safety
                .path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
        },
        next,
    ))
}
