//! The data dir's LOCK: an OS file lock (`flock`) held for the process's whole
//! life decides who owns the storage; the file also names the owner's pid and host
//! for the message. Liveness is the lock itself, never a pid lookup: a pid reused
//! after a reboot (pid 1, a shell) does not block a start, and two starts racing
//! cannot both win.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("storage is in use by pid {0}")]
    InUse(String),
    #[error("cannot use lock file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Held while the process owns the data dir; dropping it removes the file and
/// releases the lock.
#[derive(Debug)]
pub(crate) struct LockGuard {
    path: PathBuf,
    lock: Option<Flock<File>>,
}

pub(crate) fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn contents(f: &mut File) -> String {
    let mut s = String::new();
    let _ = f.seek(SeekFrom::Start(0));
    let _ = f.read_to_string(&mut s);
    s
}

/// Whether `f` is still the file at `path` (a releasing owner unlinks it; a lock
/// taken on the unlinked file would be worthless).
fn same_file(f: &File, path: &Path) -> bool {
    match (f.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

pub(crate) fn acquire(data_dir: &Path) -> Result<LockGuard, LockError> {
    let path = data_dir.join("LOCK");
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    for _ in 0..100 {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                // The owner writes its pid right after locking; give it a moment.
                let mut owner = contents(&mut file);
                for _ in 0..20 {
                    if !owner.trim().is_empty() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    owner = contents(&mut file);
                }
                let pid = owner
                    .split_whitespace()
                    .next()
                    .unwrap_or("unknown")
                    .to_string();
                return Err(LockError::InUse(pid));
            }
            Err((_, e)) => return Err(io(std::io::Error::from(e))),
        };
        if !same_file(&lock, &path) {
            continue; // its owner removed it meanwhile: lock the new one
        }
        let previous = contents(&mut lock);
        let mut parts = previous.split_whitespace();
        if let Some(pid) = parts.next() {
            let host = parts.next().unwrap_or("?");
            tracing::warn!(
                pid,
                host,
                "removing stale lock: its owner is gone (it no longer holds the lock)"
            );
        }
        let me = format!("{} {}\n", std::process::id(), hostname());
        lock.set_len(0).map_err(io)?;
        lock.seek(SeekFrom::Start(0)).map_err(io)?;
        lock.write_all(me.as_bytes()).map_err(io)?;
        lock.sync_all().map_err(io)?;
        return Ok(LockGuard {
            path,
            lock: Some(lock),
        });
    }
    Err(io(std::io::Error::other(
        "the lock file keeps being replaced",
    )))
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Still holding the lock: the file is ours to remove. Removing it before
        // unlocking makes a waiting opener notice (it checks the path) and retry.
        if let Some(lock) = self.lock.take() {
            if same_file(&lock, &self.path) {
                let _ = fs::remove_file(&self.path);
            }
            drop(lock);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_nobody_holds_is_taken_whatever_pid_it_names() {
        let dir = tempfile::tempdir().unwrap();
        // pid 1 is alive on every Linux box, but it does not hold this lock.
        fs::write(dir.path().join("LOCK"), format!("1 {}\n", hostname())).unwrap();
        let g = acquire(dir.path()).unwrap();
        let text = fs::read_to_string(dir.path().join("LOCK")).unwrap();
        assert!(text.starts_with(&std::process::id().to_string()), "{text}");
        // A second acquire (another open file description) is refused while held.
        let err = acquire(dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("storage is in use by pid {}", std::process::id())
        );
        drop(g);
        assert!(!dir.path().join("LOCK").exists());
        let again = acquire(dir.path()).unwrap();
        drop(again);
    }

    #[test]
    fn racing_acquirers_never_both_win() {
        for _ in 0..40 {
            let dir = tempfile::tempdir().unwrap();
            let barrier = std::sync::Barrier::new(4);
            let won: Vec<bool> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            match acquire(dir.path()) {
                                // Keep it until every racer has tried.
                                Ok(g) => {
                                    std::thread::sleep(std::time::Duration::from_millis(200));
                                    drop(g);
                                    true
                                }
                                Err(_) => false,
                            }
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
        }
    }
}
