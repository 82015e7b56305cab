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
use super::Turn;

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
    sig: (u64, Option<SystemTime>),
    /// Since when the file is unchanged.
    since: Instant,
    /// Why it failed at this very size and mtime, when it ended early.
    stalled: Option<String>,
}

#[derive(Default)]
pub(crate) struct Settling {
    seen: HashMap<String, Seen>,
}

impl Settling {
    /// Candidates that have been stable for `SETTLE`, in name order; a stalled
    /// file comes back only once it changed.
    pub(crate) fn ready(&mut self, dir: &Path, settle: Duration) -> Vec<String> {
        let mut present = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let Ok(md) = e.metadata() else { continue };
                if !md.is_file() || !is_candidate(&name) {
                    continue;
                }
                let sig = (md.len(), md.modified().ok());
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
                present.push(name);
            }
        }
        self.seen.retain(|n, _| present.contains(n));
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
async fn apply_one(app: &Arc<Backups>, dir: &Path, name: &str, settling: &mut Settling) {
    let path = dir.join(name);
    tracing::info!(file = %printable(name), "drop folder: restoring");
    match restore(
        app,
        source_of(&path),
        "drop-folder",
        "drop-folder",
        Turn::Wait,
    )
    .await
    {
        Ok(_) => {
            file_away(dir, name, "applied", None);
            settling.forget(name);
        }
        Err(e) if ends_early(&path) => {
            tracing::info!(file = %name, "drop folder: the file ends early; waiting for the copy to go on");
            settling.stall(name, e.to_string());
        }
        Err(e) => {
            file_away(dir, name, "failed", Some(e.to_string()));
            settling.forget(name);
        }
    }
}

/// One pass: restores what settled, fails what stalled for too long.
async fn pass(app: &Arc<Backups>, dir: &Path, settling: &mut Settling) {
    for name in settling.ready(dir, SETTLE) {
        apply_one(app, dir, &name, settling).await;
    }
    for (name, why) in settling.expired(stall()) {
        let why = format!(
            "{why}\n(the file stayed unchanged for {} s after ending early)",
            stall().as_secs()
        );
        file_away(dir, &name, "failed", Some(why));
    }
    let waiting = settling
        .seen
        .values()
        .filter(|s| s.stalled.is_some())
        .count();
    app.metrics.restore_dir_waiting.set(waiting as i64);
    app.metrics.restore_dir_scans.inc();
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
pub(crate) async fn initial_scan(app: &Arc<Backups>) {
    let dir = app.settings.restore_dir.clone();
    let mut settling = Settling::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        pass(app, &dir, &mut settling).await;
        if !settling.waiting() || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The live watcher: wakes on filesystem events, polls as a fallback.
pub(crate) fn spawn_watcher(
    app: Arc<Backups>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let dir = app.settings.restore_dir.clone();
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
            pass(&app, &dir, &mut settling).await;
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
