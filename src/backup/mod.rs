//! Backups: the archive format, the catalog of the backup dir, the manager
//! (create, list, delete, rotation), the schedule, restore (verify, scratch, swap) and
//! the drop folder. One backup or restore runs at a time.

pub(crate) mod archive;
pub(crate) mod catalog;

pub(crate) mod dropfolder;
pub(crate) mod import;
pub(crate) mod manager;
pub(crate) mod restore;
pub(crate) mod scheduler;
pub(crate) mod verify;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::BackupConfig;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use archive::ArchiveError;
use import::ImportError;

/// Why a backup, restore, upload, import or deletion did not happen; in every
/// case nothing live was changed. At the API edge:
#[derive(Debug, thiserror::Error)]
pub(crate) enum BackupError {
    /// 400: a backup name with path parts or the wrong suffix.
    #[error("{0}")]
    BadName(String),
    /// 404: no such backup.
    #[error("{0}")]
    NotFound(String),
    /// 422: the file fails verification (archive, import or replay rules).
    #[error("{0}")]
    Invalid(String),
    /// 409: another backup or restore is running (SPEC §3).
    #[error("a backup or restore is already running")]
    Busy,
    /// 409: the name asked for is taken.
    #[error("{0}")]
    Exists(String),
    /// 400: an instant (`at`) that names no point of the log in question.
    #[error("{0}")]
    BadInstant(String),
    /// 507: a full disk; it works again once space is freed.
    #[error("insufficient storage")]
    NoSpace,
    /// 500.
    #[error("backup i/o: {0}")]
    Io(#[source] std::io::Error),
    /// 500 (at start: the store's own refusals stay refusals, exit 2).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// 500.
    #[error("swap failed: {0}")]
    Swap(#[from] crate::store::SwapError),
    /// 500.
    #[error("backup task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<ArchiveError> for BackupError {
    fn from(e: ArchiveError) -> Self {
        match e {
            ArchiveError::Io(e) => e.into(),
            // Every other variant is a failed check, its text already `invalid backup: …`.
            invalid => BackupError::Invalid(invalid.to_string()),
        }
    }
}

impl From<ImportError> for BackupError {
    fn from(e: ImportError) -> Self {
        BackupError::Invalid(format!("invalid import: {e}"))
    }
}

impl From<std::io::Error> for BackupError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::StorageFull => BackupError::NoSpace,
            _ => BackupError::Io(e),
        }
    }
}

/// One backup file as the backup component knows it; the API renders it.
#[derive(Debug, Clone)]
pub(crate) struct BackupInfo {
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) created: String,
    pub(crate) kind: String,
    pub(crate) label: Option<String>,
    pub(crate) events: u64,
    pub(crate) last_event_id: u64,
    pub(crate) sha256: String,
}

/// What the backup component may touch, and nothing else: the store (its
/// command path, snapshots and meta), its settings, the metrics. The scheduler,
/// the drop-folder watcher and the restore path all take this handle.
pub(crate) struct Backups {
    pub(crate) store: Arc<Store>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) settings: BackupConfig,
    /// Off-site copies are on: rotation queues removals, views say `pending`.
    pub(crate) offsite: bool,
    /// Who to re-create when a restored log has no users.
    pub(crate) seeding: crate::seed::Seeding,
    pub(crate) state: BackupState,
}

impl Backups {
    pub(crate) fn new(
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        config: &crate::config::Config,
    ) -> Backups {
        Backups {
            store,
            metrics,
            settings: config.backup.clone(),
            offsite: config.offsite.is_some(),
            seeding: crate::seed::Seeding::from_config(config),
            state: BackupState::default(),
        }
    }
}

/// Shared state of the backup subsystem.
#[derive(Default)]
pub(crate) struct BackupState {
    /// One backup or restore at a time.
    pub(crate) busy: tokio::sync::Mutex<()>,
    /// sha256 of archives by (name, size, mtime): hashing a large file per listing is wasteful.
    digests: Mutex<HashMap<String, (u64, i128, String)>>,
    /// Scheduled runs finished (made a backup, skipped one, or gave up): lets a
    /// caller wait for the scheduler's turn to end instead of guessing with sleeps.
    pub(crate) scheduled_runs: tokio::sync::watch::Sender<u64>,
}

/// Whether a backup or restore waits for the one running (scheduled and
/// drop-folder work) or is refused at once (requests, SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    Wait,
    RefuseIfBusy,
}

impl BackupState {
    /// Takes the one backup-or-restore turn.
    pub(crate) async fn turn(
        &self,
        how: Turn,
    ) -> Result<tokio::sync::MutexGuard<'_, ()>, BackupError> {
        match how {
            Turn::Wait => Ok(self.busy.lock().await),
            Turn::RefuseIfBusy => self.busy.try_lock().map_err(|_| BackupError::Busy),
        }
    }
}

/// Text from a bad file (names, reasons quoting its bytes) with control
/// characters escaped, so a note or log line cannot carry terminal escapes.
pub(crate) fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() && c != '\n' {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// A name the API accepts: no path parts, the right suffix.
pub(crate) fn check_name(name: &str) -> Result<(), BackupError> {
    if name.len() > 255 {
        return Err(BackupError::BadName(
            "backupName is longer than 255 bytes".into(),
        ));
    }
    if name.is_empty()
        || name.chars().any(char::is_control)
        || name.contains('/')
        || name.contains('\\')
        || name.contains("..")
        || name.contains('\0')
        || !name.ends_with(".tar.gz")
    {
        return Err(BackupError::BadName(
            "backupName must be a plain file name ending in .tar.gz".into(),
        ));
    }
    Ok(())
}

/// Label reduced to `[a-z0-9_-]`, at most 64 characters; `None` when nothing is left.
pub(crate) fn clean_label(label: &str) -> Option<String> {
    let s: String = label
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').chars().take(64).collect::<String>();
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels() {
        assert!(check_name("backup_2025-01-01_000000.tar.gz").is_ok());
        for bad in [
            "../x.tar.gz",
            "a/b.tar.gz",
            "a\\b.tar.gz",
            "x.zip",
            "",
            "..tar.gz",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            clean_label("Before Upgrade!").as_deref(),
            Some("before-upgrade")
        );
        assert_eq!(clean_label("***"), None);
        assert_eq!(clean_label(&"a".repeat(100)).unwrap().len(), 64);
    }
}
