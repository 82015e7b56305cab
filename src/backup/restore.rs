//! Restore: verify a backup completely while writing it as the next generation's
//! log and building its memory image, write a pre-restore backup of the current
//! state, then swap log + image in between two write batches. Any failure leaves
//! the live store as it was.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use super::import::{self, ImportError, Imported};
use super::manager::{audit, durable_prefix, write_backup, PRE_RESTORE};
use super::verify::verify_upto;
use super::{BackupError, Backups, Turn};
use crate::blocking::blocking;
use crate::domain::state::State;
use crate::domain::time::now_ms;
use crate::store::history::{self, At, Cut, HistoryError};
use crate::store::meta::RestoreNotice;
use crate::store::{replay, retire_gen, Aside, Gen, Snapshot, Store, StoreError, SwapError};

#[derive(Debug, Clone, Copy)]
pub(crate) struct Restored {
    pub(crate) events: u64,
    pub(crate) groups: u64,
    pub(crate) tasks: u64,
    pub(crate) comments: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct RestoreReport {
    /// What was restored: a file name, or "the live log".
    pub(crate) backup: String,
    pub(crate) restored: Restored,
    pub(crate) safety_backup: String,
    /// For a point-in-time restore: the instant, RFC 3339.
    pub(crate) at: Option<String>,
    pub(crate) last_event_id: u64,
    pub(crate) imported: Option<Imported>,
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

/// What replaces the live log.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A backup archive; with `upto`, only its prefix up to that instant.
    Archive { path: PathBuf, upto: Option<At> },
    /// The live log's own prefix up to the instant: "undo everything after".
    Live { upto: At },
    /// A predecessor snapshot file (SPEC §8).
    Import { path: PathBuf },
}

impl Source {
    /// The name the audit trail, the logs and the Kafka notice use.
    pub(crate) fn name(&self) -> String {
        match self {
            Source::Archive { path, .. } | Source::Import { path } => path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
            Source::Live { .. } => "the live log".to_string(),
        }
    }
}

/// The verified new log (written into a scratch generation) and its image.
struct Built {
    image: State,
    cut: Option<Cut>,
    imported: Option<Imported>,
}

fn history_error(e: HistoryError) -> BackupError {
    match e {
        HistoryError::BadInstant(m) => BackupError::BadInstant(m),
        HistoryError::Store(e) => e.into(),
    }
}

/// Builds the new log into `scratch` from `source` (blocking). `live` is the
/// durable state now: the prefix source of a live point-in-time restore, and the
/// passwords an import keeps for users it names without one.
fn build(source: &Source, live: &Snapshot, scratch: &Gen) -> Result<Built, BackupError> {
    match source {
        Source::Archive { path, upto } => {
            let (_, image, cut) = verify_upto(path, Some(scratch), *upto)?;
            Ok(Built {
                image,
                cut: upto.map(|_| cut),
                imported: None,
            })
        }
        Source::Live { upto } => {
            let cut = history::resolve(live, *upto, now_ms()).map_err(history_error)?;
            let mut importer = replay::Importer::new(Some(scratch));
            for r in live.gen.events(1, cut.seq) {
                let (seq, se) = r?;
                importer.push(seq, se)?;
            }
            Ok(Built {
                image: importer.finish()?,
                cut: Some(cut),
                imported: None,
            })
        }
        Source::Import { path } => {
            let (image, imported) = import_into(path, &live.state, scratch)?;
            Ok(Built {
                image,
                cut: None,
                imported: Some(imported),
            })
        }
    }
}

/// Checks a predecessor file and writes the log that recreates it into `scratch`.
fn import_into(path: &Path, live: &State, scratch: &Gen) -> Result<(State, Imported), BackupError> {
    let bytes = std::fs::read(path)?;
    let plan = import::plan(&bytes, &|u| {
        live.user_rec(u).map(|r| r.password_hash.clone())
    })?;
    let mut importer = replay::Importer::new(Some(scratch));
    for (seq, se) in (1..).zip(plan.events) {
        importer.push(seq, se).map_err(ImportError::Replay)?;
    }
    Ok((importer.finish()?, plan.imported))
}

/// Restores `source`, live. `origin` is `api`, `drop-folder` or `cli`.
pub(crate) async fn restore(
    backups: &Arc<Backups>,
    source: Source,
    origin: &str,
    user: &str,
    turn: Turn,
) -> Result<RestoreReport, BackupError> {
    let started = Instant::now();
    let _busy = backups.state.turn(turn).await?;
    let name = source.name();
    let result = restore_locked(backups, source, origin, user).await;
    let ok = if result.is_ok() { "ok" } else { "error" };
    backups
        .metrics
        .restores
        .with_label_values(&[origin, ok])
        .inc();
    backups
        .metrics
        .restore_seconds
        .observe(started.elapsed().as_secs_f64());
    match &result {
        Ok(r) => {
            tracing::info!(backup = %r.backup, events = r.restored.events, safety = %r.safety_backup, ms = started.elapsed().as_millis() as u64, origin, "restore complete")
        }
        Err(e) => {
            let why = super::printable(&e.to_string()).replace('\n', " ");
            tracing::warn!(source = %super::printable(&name), error = %why, origin, "restore refused; live data untouched")
        }
    }
    result
}

async fn restore_locked(
    backups: &Arc<Backups>,
    source: Source,
    origin: &str,
    user: &str,
) -> Result<RestoreReport, BackupError> {
    let name = source.name();
    // 1. Verify everything by building the new generation aside.
    let a = backups.clone();
    let scratch = blocking::<_, BackupError>(move || Ok(a.store.prepare_gen()?)).await?;
    let live = backups.store.gen();
    let src = source.clone();
    let (scratch, built) = blocking::<_, BackupError>(move || match build(&src, &live, &scratch) {
        Ok(b) => Ok((scratch, b)),
        Err(e) => {
            Store::discard_gen(scratch);
            Err(e)
        }
    })
    .await?;
    // A file withdrawn while it was being verified (deleted from the drop
    // folder, or a backup deleted meanwhile) is not restored after all.
    if let Source::Archive { path, .. } | Source::Import { path } = &source {
        if !path.exists() {
            Store::discard_gen(scratch);
            return Err(BackupError::Invalid(format!(
                "{name} was removed while it was being verified; nothing was restored"
            )));
        }
    }
    let image = built.image;
    // 2. Pre-restore backup, first without pausing anybody.
    let (gen, upto) = durable_prefix(backups);
    let gen_id = gen.id;
    let dir = backups.settings.backup_dir.clone();
    let first = {
        let dir = dir.clone();
        blocking::<_, BackupError>(move || {
            write_backup(&gen, upto, &dir, PRE_RESTORE, Some(PRE_RESTORE))
        })
        .await
    };
    let first = match first {
        Ok(w) => w,
        Err(e) => {
            Store::discard_gen(scratch);
            return Err(e);
        }
    };
    // 3. Pause the writer; if writes landed meanwhile, redo the safety backup paused.
    let ex = match backups.store.exclusive().await {
        Ok(ex) => ex,
        Err(e) => {
            Store::discard_gen(scratch);
            return Err(e.into());
        }
    };
    let safety = if ex.snapshot.last_seq() == upto && ex.snapshot.id() == gen_id {
        first
    } else {
        let _ = std::fs::remove_file(&first.path);
        let (g, s, d) = (ex.snapshot.gen.clone(), ex.snapshot.last_seq(), dir.clone());
        match blocking::<_, BackupError>(move || {
            write_backup(&g, s, &d, PRE_RESTORE, Some(PRE_RESTORE))
        })
        .await
        {
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
        backups,
        "BACKUP_CREATED",
        Some(&safety_name),
        user,
        json!({"kind": PRE_RESTORE, "events": safety.manifest.events, "size": safety.size}),
    )
    .await;
    // 4. The swap, announced to the Kafka relay first so a crash cannot lose the notice.
    let notice = RestoreNotice {
        gen: scratch.id,
        backup: name.clone(),
        last_event_id: image.seq,
    };
    let a = backups.clone();
    let recorded =
        blocking::<_, BackupError>(move || Ok(a.store.meta.record_restore_notice(&notice)?)).await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, "could not record the restore notice for the mirrors");
    }
    let last_event_id = image.seq;
    let restored = restored(&image);
    match ex.swap(Arc::new(scratch), image).await {
        Ok(Ok(old)) => retire_gen(old),
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err(SwapError::Closed.into()),
    }
    let at = built.cut.map(|c| c.at());
    let mut details = json!({"source": origin, "events": restored.events, "lastEventId": last_event_id, "safetyBackup": safety_name});
    if let Some(at) = &at {
        details["at"] = json!(at);
    }
    if let Some(i) = &built.imported {
        details["imported"] = json!(i);
    }
    audit(backups, "BACKUP_RESTORED", Some(&name), user, details).await;
    // A backup without users would lock everybody out.
    if let Err(e) = crate::seed::seed_users(&backups.store, &backups.seeding).await {
        tracing::error!(error = %e, "could not recreate the admin user after restore");
    }
    Ok(RestoreReport {
        backup: name,
        restored,
        safety_backup: safety_name,
        at,
        last_event_id,
        imported: built.imported,
    })
}

/// Offline restore for the CLI: same checks, then the new generation becomes CURRENT.
pub(crate) fn restore_offline(
    data_dir: &Path,
    backup_dir: &Path,
    source: &Source,
) -> Result<(RestoreReport, Gen), BackupError> {
    // A live generation that cannot be read, or generations no valid CURRENT
    // names, cannot be backed up first: they are set aside once the restore
    // succeeded, never deleted.
    let (live, aside) = match crate::store::open_offline(data_dir) {
        Ok(g) => (Some(g), Vec::new()),
        Err(StoreError::Damaged { gen, why }) => {
            tracing::warn!(gen, why = %why, "the live store is damaged: restoring without a safety backup; it will be kept aside");
            (None, vec![(gen, Aside::Damaged)])
        }
        Err(StoreError::NoCurrent { path, why, gens }) => {
            tracing::warn!(file = %path.display(), problem = %why, "restoring without a safety backup; the generations found are kept aside");
            (
                None,
                gens.into_iter().map(|g| (g, Aside::Unreferenced)).collect(),
            )
        }
        Err(e) => return Err(e.into()),
    };
    let live_id = match (&live, aside.iter().map(|a| a.0).max()) {
        (Some(g), _) => g.id,
        (None, Some(id)) => id,
        (None, None) => crate::store::live_gen_id(data_dir)?,
    };
    let next = crate::store::next_gen(data_dir, live_id)?;
    let built = match source {
        Source::Archive { path, upto } => {
            verify_upto(path, Some(&next), *upto).map(|(_, image, cut)| Built {
                image,
                cut: upto.map(|_| cut),
                imported: None,
            })
        }
        Source::Import { path } => live
            .as_ref()
            .map(|g| replay::load(g).map(|(s, _)| s))
            .unwrap_or_else(|| Ok(State::default()))
            .map_err(BackupError::from)
            .and_then(|state| import_into(path, &state, &next))
            .map(|(image, imported)| Built {
                image,
                cut: None,
                imported: Some(imported),
            }),
        Source::Live { .. } => Err(BackupError::BadInstant(
            "an offline restore needs a backup file".into(),
        )),
    };
    let built = match built {
        Ok(b) => b,
        Err(e) => {
            Store::discard_gen(next);
            return Err(e);
        }
    };
    let upto = match &live {
        Some(g) => g.last_seq()?,
        None => 0,
    };
    // An empty (or unreadable) store has nothing to keep: no safety backup of nothing.
    let safety = match live.as_ref().filter(|_| upto > 0) {
        None => None,
        Some(live) => match write_backup(live, upto, backup_dir, PRE_RESTORE, Some(PRE_RESTORE)) {
            Ok(w) => Some(w),
            Err(e) => {
                Store::discard_gen(next);
                return Err(e);
            }
        },
    };
    // The next start reads this image instead of replaying the restored log.
    crate::store::checkpoint::write(&next.dir, next.id, &built.image)?;
    crate::store::write_current(data_dir, next.id)?;
    let no_safety = if aside.is_empty() {
        "none (the store was empty)"
    } else {
        "none (the store could not be read; it was kept aside in the data dir)"
    };
    match live {
        Some(live) => {
            let old_dir = live.dir.clone();
            drop(live);
            let _ = std::fs::remove_dir_all(old_dir);
        }
        None => {
            for (id, why) in aside {
                match crate::store::set_aside(data_dir, id, why) {
                    Ok(to) => {
                        tracing::warn!(to = %to.display(), "a generation that could not be served was kept aside")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, gen = id, "could not move a generation aside")
                    }
                }
            }
        }
    }
    Ok((
        RestoreReport {
            backup: source.name(),
            restored: restored(&built.image),
            safety_backup: safety
                .and_then(|w| w.path.file_name().map(|n| n.to_string_lossy().to_string()))
                .unwrap_or_else(|| no_safety.into()),
            at: built.cut.map(|c| c.at()),
            last_event_id: built.image.seq,
            imported: built.imported,
        },
        next,
    ))
}
