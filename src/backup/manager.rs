//! Creating, listing, deleting and rotating backups, and the automatic schedule.
//! A backup is the log prefix up to the durable sequence at its start, read from
//! sled while writers go on (the log is append-only, so the prefix never changes).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;

use super::archive::{self, ArchiveError, ArchiveMeta, Limits, WrittenArchive};
use super::catalog;
use super::Backups;
use super::{clean_label, BackupError, BackupInfo, BackupState};
use crate::blocking::blocking;
use crate::domain::canonical::to_canonical;
use crate::domain::time::fmt_ms;
use crate::store::{Gen, Meta};

pub(crate) const AUTO: &str = "auto";
pub(crate) const MANUAL: &str = "manual";
pub(crate) const PRE_RESTORE: &str = "pre-restore";
pub(crate) const UPLOADED: &str = "uploaded";

/// A backup file name for now, `backup_YYYY-MM-DD_HHMMSS[_<label>].tar.gz`,
/// not yet taken in `dir` (blocking: names carry the second, so a second backup
/// within it waits for the next one). `label` is already cleaned.
fn unused_name(dir: &Path, label: Option<&str>) -> (chrono::DateTime<Utc>, std::path::PathBuf) {
    let suffix = label.map(|l| format!("_{l}")).unwrap_or_default();
    loop {
        let now = Utc::now();
        let path = dir.join(format!(
            "backup_{}{suffix}.tar.gz",
            now.format("%Y-%m-%d_%H%M%S")
        ));
        if !path.exists() {
            return (now, path);
        }
        std::thread::sleep(Duration::from_millis(
            1000 - u64::from(now.timestamp_subsec_millis()).min(999),
        ));
    }
}

/// Takes in an uploaded file (already on disk at `tmp`, fsync'd): verifies it
/// completely, names it (`wanted`, or now plus its label, else `uploaded`),
/// records its kind, moves it in and fsyncs the directory. `tmp` is gone
/// afterwards whatever happens.
pub(crate) async fn adopt_upload(
    backups: &Arc<Backups>,
    tmp: std::path::PathBuf,
    wanted: Option<String>,
    user: &str,
) -> Result<BackupInfo, BackupError> {
    let a = backups.clone();
    let t = tmp.clone();
    let adopted = blocking::<_, BackupError>(move || {
        let manifest = super::verify::verify_file(&t)?;
        let dir = &a.settings.backup_dir;
        let name = match wanted {
            Some(n) if dir.join(&n).exists() => {
                return Err(BackupError::Exists(format!("backup {n} already exists")))
            }
            Some(n) => n,
            None => {
                let label = manifest.label.as_deref().and_then(clean_label);
                let (_, path) = unused_name(dir, Some(label.as_deref().unwrap_or(UPLOADED)));
                path.file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default()
            }
        };
        a.store.meta.set_backup_kind(&name, Some(UPLOADED))?;
        if let Err(e) = std::fs::rename(&t, dir.join(&name)) {
            let _ = a.store.meta.set_backup_kind(&name, None);
            return Err(e.into());
        }
        std::fs::File::open(dir)?.sync_all()?;
        view(&a.state, &a.store.meta, dir, &name)
    })
    .await;
    let _ = tokio::fs::remove_file(&tmp).await;
    let v = adopted?;
    audit(
        backups,
        "BACKUP_CREATED",
        Some(&v.name),
        user,
        json!({"kind": UPLOADED, "events": v.events, "size": v.size}),
    )
    .await;
    Ok(v)
}

/// Writes a backup of `gen`'s log up to `upto` into `dir` (blocking).
pub(crate) fn write_backup(
    gen: &Gen,
    upto: u64,
    dir: &Path,
    kind: &str,
    label: Option<&str>,
) -> Result<WrittenArchive, BackupError> {
    let label = label.and_then(clean_label);
    let (now, path) = unused_name(dir, label.as_deref());
    let meta = ArchiveMeta {
        created_at: fmt_ms(now.timestamp_millis()),
        created_unix_secs: u64::try_from(now.timestamp()).unwrap_or(0),
        kind: kind.to_string(),
        label,
        app_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let events = gen.events(1, upto).map(|r| {
        r.map(|(seq, se)| (seq, to_canonical(seq, &se)))
            .map_err(|e| ArchiveError::Io(io::Error::other(e)))
    });
    Ok(archive::write_archive(&path, &meta, events)?)
}

fn mtime_key(md: &std::fs::Metadata) -> i128 {
    md.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

impl BackupState {
    fn digest(&self, path: &Path, name: &str) -> Result<(u64, String), BackupError> {
        let md = std::fs::metadata(path)?;
        let key = (md.len(), mtime_key(&md));
        if let Ok(cache) = self.digests.lock() {
            if let Some((size, mtime, sha)) = cache.get(name) {
                if (*size, *mtime) == key {
                    return Ok((*size, sha.clone()));
                }
            }
        }
        let (size, sha) = archive::file_digest(path)?;
        if let Ok(mut cache) = self.digests.lock() {
            cache.insert(name.to_string(), (size, key.1, sha.clone()));
        }
        Ok((size, sha))
    }

    pub(crate) fn forget(&self, name: &str) {
        if let Ok(mut cache) = self.digests.lock() {
            cache.remove(name);
        }
    }
}

/// One backup file as it is on disk (blocking: reads the manifest, hashes once).
pub(crate) fn view(
    state: &BackupState,
    meta: &Meta,
    dir: &Path,
    name: &str,
) -> Result<BackupInfo, BackupError> {
    let path = dir.join(name);
    if !path.is_file() {
        return Err(BackupError::NotFound(format!("backup {name} not found")));
    }
    let manifest = archive::read_manifest(&path, &Limits::default())?;
    let (size, sha256) = state.digest(&path, name)?;
    let kind = meta.backup_kind(name)?.unwrap_or(manifest.kind);
    Ok(BackupInfo {
        name: name.to_string(),
        size,
        created: manifest.created_at,
        kind,
        label: manifest.label,
        events: manifest.events,
        last_event_id: manifest.last_event_id,
        sha256,
    })
}

/// Every readable backup, newest first; unreadable files are logged and skipped.
pub(crate) fn list(state: &BackupState, meta: &Meta, dir: &Path) -> Vec<BackupInfo> {
    catalog::list_files(dir)
        .into_iter()
        .filter_map(|f| match view(state, meta, dir, &f.name) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(file = %f.name, error = %e, "skipping unreadable file in the backup dir");
                None
            }
        })
        .collect()
}

/// The live generation with its durable end, consistent with each other.
pub(crate) fn durable_prefix(backups: &Arc<Backups>) -> (Arc<Gen>, u64) {
    let snap = backups.store.gen();
    (snap.gen.clone(), snap.last_seq())
}

/// Creates a backup; the caller must hold `backups.state.busy`.
pub(crate) async fn create_locked(
    backups: &Arc<Backups>,
    kind: &str,
    label: Option<String>,
    user: &str,
) -> Result<BackupInfo, BackupError> {
    let started = Instant::now();
    let (gen, upto) = durable_prefix(backups);
    let dir = backups.settings.backup_dir.clone();
    let k = kind.to_string();
    let result =
        blocking::<_, BackupError>(move || write_backup(&gen, upto, &dir, &k, label.as_deref()))
            .await;
    let ok = if result.is_ok() { "ok" } else { "error" };
    backups.metrics.backups.with_label_values(&[kind, ok]).inc();
    if ok == "ok" {
        backups.metrics.backup_current_at.set(now_secs());
    }
    backups
        .metrics
        .backup_seconds
        .with_label_values(&[kind])
        .observe(started.elapsed().as_secs_f64());
    let written = result?;
    let name = written
        .path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let view = BackupInfo {
        name: name.clone(),
        size: written.size,
        created: written.manifest.created_at.clone(),
        kind: kind.to_string(),
        label: written.manifest.label.clone(),
        events: written.manifest.events,
        last_event_id: written.manifest.last_event_id,
        sha256: written.sha256.clone(),
    };
    tracing::info!(backup = %name, events = view.events, size = view.size, ms = started.elapsed().as_millis() as u64, "backup written");
    audit(
        backups,
        "BACKUP_CREATED",
        Some(&name),
        user,
        json!({"kind": kind, "events": view.events, "size": view.size, "sha256": view.sha256}),
    )
    .await;
    Ok(view)
}

/// Records an audit entry (a durable meta write: off the async threads).
pub(crate) async fn audit(
    backups: &Arc<Backups>,
    action: &str,
    backup: Option<&str>,
    user: &str,
    details: serde_json::Value,
) {
    let (a, action, backup, user) = (
        backups.clone(),
        action.to_string(),
        backup.map(str::to_string),
        user.to_string(),
    );
    let written = tokio::task::spawn_blocking(move || {
        a.store
            .meta
            .audit(&action, backup.as_deref(), &user, details)
    })
    .await;
    match written {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "could not record audit entry"),
        Err(e) => tracing::error!(error = %e, "audit task failed"),
    }
}

pub(crate) fn now_secs() -> i64 {
    crate::domain::time::now_ms() / 1000
}

pub(crate) async fn create(
    backups: &Arc<Backups>,
    kind: &str,
    label: Option<String>,
    user: &str,
    turn: super::Turn,
) -> Result<BackupInfo, BackupError> {
    let _busy = backups.state.turn(turn).await?;
    let v = create_locked(backups, kind, label, user).await?;
    if kind == AUTO {
        rotate(backups).await;
    }
    Ok(v)
}

/// Keeps the newest `MAX_BACKUPS` automatic backups; never touches other kinds.
pub(crate) async fn rotate(backups: &Arc<Backups>) {
    let a = backups.clone();
    let views = blocking::<_, BackupError>(move || {
        Ok(list(&a.state, &a.store.meta, &a.settings.backup_dir))
    })
    .await
    .unwrap_or_default();
    for old in views
        .iter()
        .filter(|v| v.kind == AUTO)
        .skip(backups.settings.max_backups)
    {
        let path = backups.settings.backup_dir.join(&old.name);
        let removed = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
        match removed.unwrap_or_else(|e| Err(std::io::Error::other(e))) {
            Ok(()) => {
                backups.state.forget(&old.name);
                tracing::info!(backup = %old.name, "rotated away old automatic backup");
                if backups.offsite {
                    // The off-site copier removes its copy (and retries until it can).
                    if let Err(e) = backups.store.meta.queue_offsite_removal(&old.name) {
                        tracing::warn!(backup = %old.name, error = %e, "cannot queue the removal of the off-site copy");
                    }
                }
                audit(
                    backups,
                    "BACKUP_DELETED",
                    Some(&old.name),
                    "system",
                    json!({"reason": "rotation"}),
                )
                .await;
            }
            Err(e) => tracing::warn!(backup = %old.name, error = %e, "could not rotate backup"),
        }
    }
}

pub(crate) async fn delete(
    backups: &Arc<Backups>,
    name: &str,
    user: &str,
) -> Result<(), BackupError> {
    super::check_name(name)?;
    let _busy = backups.state.busy.lock().await;
    let path = backups.settings.backup_dir.join(name);
    let missing = format!("backup {name} not found");
    blocking(move || {
        if !path.is_file() {
            return Err(BackupError::NotFound(missing));
        }
        Ok(std::fs::remove_file(&path)?)
    })
    .await?;
    backups.state.forget(name);
    let _ = backups.store.meta.set_backup_kind(name, None);
    audit(
        backups,
        "BACKUP_DELETED",
        Some(name),
        user,
        json!({"reason": "request"}),
    )
    .await;
    Ok(())
}

/// Removes temporary files a crash or kill left in the backup dir.
pub(crate) fn clean_temp_files(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') && (name.ends_with(".tmp") || name.ends_with(".part")) {
            tracing::info!(file = %name, "removing leftover temporary backup file");
            let _ = std::fs::remove_file(e.path());
        }
    }
}
