//! The drop folder: a `*.tar.gz` placed in the restore dir is restored once it is
//! complete (its size and mtime stayed the same for a settle period), at start
//! before serving and live while running. A notify watch wakes the scan early; a
//! slow poll backs it up in case an event is missed. Success moves the file to
//! `applied/`, failure to `failed/` with `<name>.error.txt`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use notify::{RecursiveMode, Watcher};
use tokio::sync::{watch, Notify};

use super::restore::restore;
use crate::app::AppState;

/// How long a file must stay unchanged before it counts as completely copied.
pub const SETTLE: Duration = Duration::from_millis(1500);
const POLL: Duration = Duration::from_millis(1000);
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
pub fn is_candidate(name: &str) -> bool {
    !name.starts_with('.')
        && name.ends_with(".tar.gz")
        && !name.ends_with(".part")
        && !name.ends_with(".tmp")
}

#[derive(Default)]
pub struct Settling {
    /// name -> (size, mtime, since when unchanged)
    seen: HashMap<String, (u64, Option<SystemTime>, Instant)>,
}

impl Settling {
    /// Candidates that have been stable for `SETTLE`, in name order.
    pub fn ready(&mut self, dir: &Path, settle: Duration) -> Vec<String> {
        let mut present = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let Ok(md) = e.metadata() else { continue };
                if !md.is_file() || !is_candidate(&name) {
                    continue;
                }
                let now = Instant::now();
                let sig = (md.len(), md.modified().ok());
                let entry = self.seen.entry(name.clone()).or_insert((sig.0, sig.1, now));
                if (entry.0, entry.1) != sig {
                    *entry = (sig.0, sig.1, now);
                }
                present.push(name);
            }
        }
        self.seen.retain(|n, _| present.contains(n));
        let mut ready: Vec<String> = self
            .seen
            .iter()
            .filter(|(_, (_, _, since))| since.elapsed() >= settle)
            .map(|(n, _)| n.clone())
            .collect();
        ready.sort();
        ready
    }

    pub fn forget(&mut self, name: &str) {
        self.seen.remove(name);
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

/// Restores one settled file and files it under `applied/` or `failed/`.
pub async fn apply_one(app: &AppState, dir: &Path, name: &str) {
    let path = dir.join(name);
    tracing::info!(file = %name, "drop folder: restoring");
    let outcome = restore(app, path.clone(), "drop-folder", "drop-folder").await;
    let (sub, err) = match &outcome {
        Ok(_) => ("applied", None),
        Err(e) => ("failed", Some(e.to_string())),
    };
    file_away(dir, name, sub, err);
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
        let text = format!("restore of {name} failed; live data was not changed.\n{err}\n");
        if let Err(e) = std::fs::write(&note, text) {
            tracing::error!(error = %e, "drop folder: cannot write the error note");
        }
    }
}

/// A store that lost its tail may not be served: restores, offline, the first
/// backup in the restore dir that passes verification (the others stay for the
/// live watcher). Returns its name, or `None` when there is none.
pub fn rescue(config: &crate::config::Config) -> Option<String> {
    let dir = &config.restore_dir;
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
        let outcome = super::restore::restore_offline(&config.data_dir, &config.backup_dir, &path)
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
pub async fn initial_scan(app: &AppState) {
    let dir = app.config.restore_dir.clone();
    let mut settling = Settling::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = settling.ready(&dir, SETTLE);
        for name in &ready {
            apply_one(app, &dir, name).await;
            settling.forget(name);
        }
        if settling.seen.is_empty() || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The live watcher: wakes on filesystem events, polls as a fallback.
pub fn spawn_watcher(
    app: AppState,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let dir = app.config.restore_dir.clone();
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
            let ready = settling.ready(&dir, SETTLE);
            for name in &ready {
                apply_one(&app, &dir, name).await;
                settling.forget(name);
            }
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
