//! The drop folder: a `*.tar.gz` backup or a `*.json` predecessor snapshot placed
//! in the restore dir is restored once it is complete (its size and mtime stayed
//! the same for a settle period), at start before serving and live while running.
//! A notify watch wakes the scan early; a slow poll backs it up in case an event
//! is missed. Success moves the file to `applied/`, failure to `failed/` with
//! `<name>.error.txt` — except a file that only ends early (a copy that stalled):
//! it is retried whenever it changes and failed after [`STALL`] unchanged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use notify::{RecursiveMode, Watcher};
use tokio::sync::{watch, Notify};

use super::restore::{restore, Source};
use super::Backups;
use super::{printable, BackupError, Turn};
use crate::blocking::blocking;
use crate::store::{Store, StoreError};

/// How long a file must stay unchanged before it counts as completely copied.
pub(crate) const SETTLE: Duration = Duration::from_millis(1500);
const POLL: Duration = Duration::from_millis(1000);
/// How long a file that ends early may stay unchanged before it counts as failed
/// (SPEC §3: 60 s). `TASKLEDGER_DROP_STALL_MS` shortens it for tests.
fn stall() -> Duration {
    std::env::var("TASKLEDGER_DROP_STALL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(60))
}
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Only events that can make a candidate appear or finish wake a scan. Opening
/// and reading the directory (what the scan itself does) raises access events;
/// waking on those made the scan feed itself and spin a core on an idle server.
fn wakes_scan(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    use notify::EventKind;
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Any | EventKind::Other => true,
    }
}

/// Whether a name in the drop folder is a restore candidate at all.
pub(crate) fn is_candidate(name: &str) -> bool {
    !name.starts_with('.') && (name.ends_with(".tar.gz") || name.ends_with(".json"))
}

/// What restores a dropped file: a backup or a predecessor snapshot.
fn source_of(path: &Path) -> Source {
    if path.extension().is_some_and(|e| e == "json") {
        Source::Import {
            path: path.to_path_buf(),
        }
    } else {
        Source::Archive {
            path: path.to_path_buf(),
            upto: None,
        }
    }
}

/// Whether a file that failed did so only because it ends early (a truncated
/// gzip stream or JSON document): a copy still under way, not a bad file.
fn ends_early(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut reader = std::io::BufReader::new(file);
    if path.extension().is_some_and(|e| e == "json") {
        return serde_json::from_reader::<_, serde::de::IgnoredAny>(reader)
            .is_err_and(|e| e.is_eof());
    }
    // Something that is not gzip at all is a bad file, however short.
    let head = std::io::BufRead::fill_buf(&mut reader).unwrap_or_default();
    if head.len() >= 2 && head[..2] != [0x1f, 0x8b] {
        return false;
    }
    let mut gz = flate2::read::GzDecoder::new(reader);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match std::io::Read::read(&mut gz, &mut buf) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) => return e.kind() == std::io::ErrorKind::UnexpectedEof,
        }
    }
}

struct Seen {
    sig: Sig,
    /// Since when the file is unchanged.
    since: Instant,
    /// Why it failed at this very size and mtime, when it ended early.
    stalled: Option<String>,
}

/// What tells a file changed: its size and modification time.
pub(crate) type Sig = (u64, Option<SystemTime>);

/// The candidate files in the folder and their signatures (blocking).
fn candidates(dir: &Path) -> Vec<(String, Sig)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let md = e.metadata().ok()?;
            (md.is_file() && is_candidate(&name)).then(|| (name, (md.len(), md.modified().ok())))
        })
        .collect()
}

#[derive(Default)]
pub(crate) struct Settling {
    seen: HashMap<String, Seen>,
}

impl Settling {
    /// Candidates that have been stable for `SETTLE`, in name order; a stalled
    /// file comes back only once it changed. `present` is what [`candidates`]
    /// found in the folder just now.
    pub(crate) fn ready(&mut self, present: Vec<(String, Sig)>, settle: Duration) -> Vec<String> {
        let mut names = Vec::with_capacity(present.len());
        for (name, sig) in present {
            let entry = self.seen.entry(name.clone()).or_insert(Seen {
                sig,
                since: Instant::now(),
                stalled: None,
            });
            if entry.sig != sig {
                *entry = Seen {
                    sig,
                    since: Instant::now(),
                    stalled: None,
                };
            }
            names.push(name);
        }
        self.seen.retain(|n, _| names.contains(n));
        let mut ready: Vec<String> = self
            .seen
            .iter()
            .filter(|(_, s)| s.stalled.is_none() && s.since.elapsed() >= settle)
            .map(|(n, _)| n.clone())
            .collect();
        ready.sort();
        ready
    }

    /// Stalled files unchanged for `stall`, with why they failed.
    fn expired(&mut self, stall: Duration) -> Vec<(String, String)> {
        let out: Vec<(String, String)> = self
            .seen
            .iter()
            .filter(|(_, s)| s.since.elapsed() >= stall)
            .filter_map(|(n, s)| s.stalled.clone().map(|why| (n.clone(), why)))
            .collect();
        for (n, _) in &out {
            self.seen.remove(n);
        }
        out
    }

    /// Whether anything is still settling (not stalled).
    fn waiting(&self) -> bool {
        self.seen.values().any(|s| s.stalled.is_none())
    }

    pub(crate) fn forget(&mut self, name: &str) {
        self.seen.remove(name);
    }

    fn stall(&mut self, name: &str, why: String) {
        if let Some(s) = self.seen.get_mut(name) {
            s.stalled = Some(why);
        }
    }
}

fn unique(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    if !p.exists() {
        return p;
    }
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3f");
    dir.join(format!("{stamp}-{name}"))
}

/// Restores one settled file and files it under `applied/` or `failed/`; a file
/// that only ends early stays (marked stalled) for another try when it changes.
async fn apply_one(backups: &Arc<Backups>, dir: &Path, name: &str, settling: &mut Settling) {
    let path = dir.join(name);
    tracing::info!(file = %printable(name), "drop folder: restoring");
    match restore(
        backups,
        source_of(&path),
        "drop-folder",
        "drop-folder",
        Turn::Wait,
    )
    .await
    {
        Ok(_) => {
            filed_away(dir, name, "applied", None).await;
            settling.forget(name);
        }
        Err(e) if ended_early(&path).await => {
            tracing::info!(file = %name, "drop folder: the file ends early; waiting for the copy to go on");
            settling.stall(name, e.to_string());
        }
        Err(e) => {
            filed_away(dir, name, "failed", Some(e.to_string())).await;
            settling.forget(name);
        }
    }
}

/// One pass: restores what settled, fails what stalled for too long.
async fn pass(backups: &Arc<Backups>, dir: &Path, settling: &mut Settling) {
    let d = dir.to_path_buf();
    let present = tokio::task::spawn_blocking(move || candidates(&d))
        .await
        .unwrap_or_default();
    for name in settling.ready(present, SETTLE) {
        apply_one(backups, dir, &name, settling).await;
    }
    for (name, why) in settling.expired(stall()) {
        let why = format!(
            "{why}\n(the file stayed unchanged for {} s after ending early)",
            stall().as_secs()
        );
        filed_away(dir, &name, "failed", Some(why)).await;
    }
    let waiting = settling
        .seen
        .values()
        .filter(|s| s.stalled.is_some())
        .count();
    backups.metrics.restore_dir_waiting.set(waiting as i64);
    backups.metrics.restore_dir_scans.inc();
}

/// [`file_away`] from the async watcher, on a blocking thread.
async fn filed_away(dir: &Path, name: &str, sub: &'static str, err: Option<String>) {
    let (d, n) = (dir.to_path_buf(), name.to_string());
    let _ = tokio::task::spawn_blocking(move || file_away(&d, &n, sub, err)).await;
}

/// [`ends_early`] from the async watcher, on a blocking thread.
async fn ended_early(path: &Path) -> bool {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || ends_early(&p))
        .await
        .unwrap_or(false)
}

/// Moves a handled file to `applied/` or `failed/` (with its error note).
fn file_away(dir: &Path, name: &str, sub: &str, err: Option<String>) {
    let path = dir.join(name);
    let target_dir = dir.join(sub);
    if let Err(e) = std::fs::create_dir_all(&target_dir) {
        tracing::error!(error = %e, "drop folder: cannot create {sub}/");
        return;
    }
    let target = unique(&target_dir, name);
    if let Err(e) = std::fs::rename(&path, &target) {
        tracing::error!(file = %name, error = %e, "drop folder: cannot move the file out of the way");
        return;
    }
    if let Some(err) = err {
        let note = target_dir.join(format!(
            "{}.error.txt",
            target
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default()
        ));
        let text = format!(
            "restore of {} failed; live data was not changed.\n{}\n",
            printable(name),
            printable(&err)
        );
        if let Err(e) = std::fs::write(&note, text) {
            tracing::error!(error = %e, "drop folder: cannot write the error note");
        }
    }
}

/// A store that lost its tail may not be served: restores, offline, the first
/// backup in the restore dir that passes verification (the others stay for the
/// live watcher). Returns its name, or `None` when there is none.
pub(crate) fn rescue(config: &crate::config::Config) -> Option<String> {
    let dir = &config.backup.restore_dir;
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.metadata().is_ok_and(|m| m.is_file()))
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| is_candidate(n))
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let outcome = super::restore::restore_offline(
            &config.store.data_dir,
            &config.backup.backup_dir,
            &source_of(&path),
        )
        .map(|(r, _gen)| r);
        let (sub, err) = match &outcome {
            Ok(_) => ("applied", None),
            Err(e) => ("failed", Some(e.to_string())),
        };
        file_away(dir, &name, sub, err);
        if outcome.is_ok() {
            return Some(name);
        }
    }
    None
}

/// At start, before serving: restores every candidate already there. Files still
/// growing are waited for (up to a minute, then left to the live watcher).
pub(crate) async fn initial_scan(backups: &Arc<Backups>) {
    let dir = backups.settings.restore_dir.clone();
    let mut settling = Settling::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        pass(backups, &dir, &mut settling).await;
        if !settling.waiting() || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The live watcher: wakes on filesystem events, polls as a fallback.
pub(crate) fn spawn_watcher(
    backups: Arc<Backups>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let dir = backups.settings.restore_dir.clone();
        let wake = Arc::new(Notify::new());
        let w = wake.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if res.map(|ev| wakes_scan(&ev.kind)).unwrap_or(true) {
                w.notify_one();
            }
        });
        let _watcher = match watcher {
            Ok(mut watcher) => match watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => Some(watcher),
                Err(e) => {
                    tracing::warn!(error = %e, "drop folder: cannot watch; polling only");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "drop folder: no filesystem watcher; polling only");
                None
            }
        };
        let mut settling = Settling::default();
        loop {
            pass(&backups, &dir, &mut settling).await;
            // While something is settling, look again soon; otherwise wait for an event.
            let nap = if settling.seen.is_empty() {
                POLL
            } else {
                Duration::from_millis(250)
            };
            tokio::select! {
                _ = wake.notified() => {
                    // A copy raises a burst of events; one scan after the burst serves them all.
                    tokio::time::sleep(DEBOUNCE).await;
                }
                _ = tokio::time::sleep(nap) => {}
                _ = stop.changed() => return,
            }
        }
    })
}

/// Opens the store for serving. A store that cannot be served as it is (a log
/// that lost acknowledged events, damaged files, no usable CURRENT) never is:
/// the first backup waiting in the restore dir that passes verification is
/// applied instead (and recorded in the audit trail), or the store's own
/// refusal is the answer.
pub(crate) async fn open_or_rescue(
    config: &crate::config::Config,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<Store, BackupError> {
    let data_dir = config.store.data_dir.clone();
    let m = metrics.clone();
    let opened = blocking(move || Ok::<_, BackupError>(Store::open(&data_dir, m))).await?;
    let refused = match opened {
        Ok(s) => return Ok(s),
        Err(
            e @ (StoreError::LostTail { .. }
            | StoreError::Damaged { .. }
            | StoreError::NoCurrent { .. }),
        ) => e,
        Err(e) => return Err(e.into()),
    };
    let cfg = config.clone();
    let Some(name) = blocking(move || Ok::<_, BackupError>(rescue(&cfg))).await? else {
        return Err(refused.into());
    };
    tracing::warn!(problem = %refused, backup = %name, "the store could not be served as it was; restored from the restore dir before serving");
    let data_dir = config.store.data_dir.clone();
    let store = blocking(move || Ok::<_, BackupError>(Store::open(&data_dir, metrics)?)).await?;
    let details = serde_json::json!({"source": "restore-dir", "reason": refused.to_string()});
    if let Err(e) = store
        .meta
        .audit("BACKUP_RESTORED", Some(&name), "system", details)
    {
        tracing::warn!(error = %e, "could not record the restore in the audit trail");
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_never_carry_control_characters() {
        assert_eq!(
            printable("bad\u{1b}[31mname\u{0}"),
            "bad\\u{1b}[31mname\\u{0}"
        );
        assert_eq!(printable("two\nlines"), "two\nlines");
        assert!(!printable("\u{7}\u{1b}").chars().any(|c| c.is_control()));
    }
}
