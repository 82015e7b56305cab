//! A new replica's first state: the newest backup it can read (its restore
//! dir, its backup dir, or the off-site bucket), restored offline before the
//! store opens. Only for a replica that has no position in the topic and an
//! empty store; otherwise its own log is where it resumes.

use std::path::PathBuf;

use crate::backup::restore::{restore_offline, Source};
use crate::backup::{archive, catalog, BackupError};
use crate::config::Config;

/// Why a replica could not restore the backup it chose (the start stops).
#[derive(Debug, thiserror::Error)]
pub(crate) enum BootstrapError {
    #[error("replica bootstrap from {name}: {cause}")]
    Restore {
        name: String,
        #[source]
        cause: BackupError,
    },
    #[error("replica bootstrap: {0}")]
    Offsite(#[from] crate::offsite::OffsiteError),
    #[error("replica bootstrap: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("replica bootstrap: {0}")]
    Io(#[from] std::io::Error),
    #[error("replica bootstrap: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A backup a replica could start from, and when it was made.
struct Candidate {
    created_ms: i64,
    name: String,
    place: Place,
}

enum Place {
    Local(PathBuf),
    Offsite,
}

/// Whether this data dir has never followed a topic and holds no events.
fn is_fresh(config: &Config) -> Result<bool, BootstrapError> {
    let data_dir = &config.store.data_dir;
    if data_dir.join("meta").exists() {
        let meta = crate::store::Meta::open(&data_dir.join("meta"))?;
        let positioned = meta.relay_get(super::follow::POSITION)?.is_some();
        drop(meta);
        if positioned {
            return Ok(false);
        }
    }
    match crate::store::open_offline(data_dir).and_then(|g| g.last_seq()) {
        Ok(n) => Ok(n == 0),
        // Not servable as it is: opening it says why (or a backup rescues it).
        Err(_) => Ok(false),
    }
}

/// The newest local backup (restore dir, then backup dir), by its manifest's time.
fn local_candidates(config: &Config) -> Vec<Candidate> {
    let mut out = Vec::new();
    for dir in [&config.backup.restore_dir, &config.backup.backup_dir] {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || !name.ends_with(".tar.gz") {
                continue;
            }
            let path = e.path();
            let Ok(m) = archive::read_manifest(&path, &archive::Limits::default()) else {
                continue;
            };
            let created_ms = crate::domain::time::parse_ms(&m.created_at).unwrap_or(0);
            out.push(Candidate {
                created_ms,
                name,
                place: Place::Local(path),
            });
        }
    }
    out
}

/// Restores the newest backup a fresh replica can read; `None` when it has
/// none (it then builds everything from the topic).
pub(crate) async fn from_newest_backup(config: &Config) -> Result<Option<String>, BootstrapError> {
    let cfg = config.clone();
    if !crate::blocking::blocking(move || is_fresh(&cfg)).await? {
        return Ok(None);
    }
    let cfg = config.clone();
    let mut candidates =
        crate::blocking::blocking(move || Ok::<_, BootstrapError>(local_candidates(&cfg))).await?;
    let offsite = match &config.offsite {
        Some(o) => {
            let meta = crate::store::Meta::open(&config.store.data_dir.join("meta"))?;
            let client = crate::offsite::Offsite::new(o, &config.backup.backup_dir, meta)?;
            match client.newest().await {
                Ok(Some(name)) => {
                    candidates.push(Candidate {
                        created_ms: catalog::created_from_name(&name).unwrap_or(0),
                        name,
                        place: Place::Offsite,
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "replica bootstrap: cannot list the bucket; using local backups only")
                }
            }
            Some(client)
        }
        None => None,
    };
    let Some(best) = candidates.into_iter().max_by_key(|c| c.created_ms) else {
        tracing::info!("replica bootstrap: no backup found; the whole log comes from the topic");
        return Ok(None);
    };
    let (path, cleanup) = match (&best.place, &offsite) {
        (Place::Local(p), _) => (p.clone(), None),
        (Place::Offsite, Some(client)) => {
            let dir = config
                .backup
                .backup_dir
                .join(format!(".offsite-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(&best.name);
            if let Err(e) = client.download(&best.name, &path).await {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e.into());
            }
            (path, Some(dir))
        }
        (Place::Offsite, None) => return Ok(None),
    };
    let (d, b) = (
        config.store.data_dir.clone(),
        config.backup.backup_dir.clone(),
    );
    let name = best.name.clone();
    let restored = crate::blocking::blocking(move || {
        let source = Source::Archive { path, upto: None };
        restore_offline(&d, &b, &source)
            .map(|(r, _)| r)
            .map_err(|cause| BootstrapError::Restore { name, cause })
    })
    .await;
    if let Some(dir) = cleanup {
        let _ = std::fs::remove_dir_all(dir);
    }
    let r = restored?;
    tracing::info!(backup = %best.name, events = r.restored.events, "replica bootstrapped from a backup; the topic follows from the event after it");
    Ok(Some(best.name))
}
