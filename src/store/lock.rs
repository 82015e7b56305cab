//! The data dir's LOCK file: who owns the storage (PID and host), so a second
//! server refuses to start and a crashed one's lock is recognised as stale.

use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("storage is in use by pid {0}")]
    InUse(u32),
    #[error("cannot write lock file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Held while the process owns the data dir; removing it on drop releases it.
#[derive(Debug)]
pub struct LockGuard {
    path: PathBuf,
    pid: u32,
}

pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn alive(pid: u32) -> bool {
    // Linux-only check without unsafe code; a zombie counts as gone.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

pub fn acquire(data_dir: &Path) -> Result<LockGuard, LockError> {
    let path = data_dir.join("LOCK");
    let me = std::process::id();
    let host = hostname();
    if let Ok(text) = fs::read_to_string(&path) {
        let mut parts = text.split_whitespace();
        let pid = parts.next().and_then(|p| p.parse::<u32>().ok());
        let owner_host = parts.next().unwrap_or("");
        match pid {
            Some(pid) if pid != me && owner_host == host && alive(pid) => {
                return Err(LockError::InUse(pid));
            }
            Some(pid) if owner_host != host && !owner_host.is_empty() => {
                tracing::warn!(
                    pid,
                    owner_host,
                    "removing lock left by another host (storage was copied or moved)"
                );
            }
            Some(pid) => tracing::warn!(pid, "removing stale lock: its process is gone"),
            None => tracing::warn!("removing unreadable lock file"),
        }
        let _ = fs::remove_file(&path);
    }
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let tmp = data_dir.join(".LOCK.tmp");
    fs::write(&tmp, format!("{me} {host}\n")).map_err(io)?;
    fs::rename(&tmp, &path).map_err(io)?;
    Ok(LockGuard { path, pid: me })
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Only remove it if it is still ours.
        if let Ok(text) = fs::read_to_string(&self.path) {
            if text.split_whitespace().next() == Some(&self.pid.to_string()) {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_lock_is_replaced_and_live_lock_refuses() {
        let dir = tempfile::tempdir().unwrap();
        // A pid that cannot exist (above pid_max).
        fs::write(dir.path().join("LOCK"), format!("4194999 {}\n", hostname())).unwrap();
        let g = acquire(dir.path()).unwrap();
        let text = fs::read_to_string(dir.path().join("LOCK")).unwrap();
        assert!(text.starts_with(&std::process::id().to_string()));
        drop(g);
        assert!(!dir.path().join("LOCK").exists());

        // pid 1 is alive on every Linux box.
        fs::write(dir.path().join("LOCK"), format!("1 {}\n", hostname())).unwrap();
        let err = acquire(dir.path()).unwrap_err();
        assert_eq!(err.to_string(), "storage is in use by pid 1");
        assert!(dir.path().join("LOCK").exists());
    }
}
