//! Off-site copies of backups in S3-compatible storage (SPEC §9): a copier task
//! that uploads every local backup not yet confirmed off-site (streamed in parts,
//! then read back and compared by size and SHA-256), removes the off-site copies
//! of rotated backups, and lists and downloads what the bucket holds.
//!
//! It owns the bucket; it reads the backup dir and the meta db (confirmations and
//! the removal queue live there, so pending work survives restarts) and touches
//! nothing else. It never blocks a backup or a write: they never wait for it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig, WriteMultipart};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::backup::catalog;
use crate::config::OffsiteConfig;
use crate::domain::time::{fmt_ms, now_ms};
use crate::store::meta::Confirmed;
use crate::store::Meta;

/// Part size of multipart uploads: memory stays at a couple of parts whatever
/// the backup's size (S3's minimum part is 5 MiB).
const PART: usize = 8 * 1024 * 1024;
/// How often an idle copier looks for new local backups.
const IDLE_POLL: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// An off-site operation that failed. In a request (listing, restoring from
/// the bucket):
#[derive(Debug, thiserror::Error)]
pub(crate) enum OffsiteError {
    /// 503: the bucket refused or could not be reached (its messages name the
    /// bucket and key, never the credentials).
    #[error("off-site storage: {0}")]
    Store(#[source] object_store::Error),
    /// 404: no such object.
    #[error("{0} is not in the bucket")]
    NotFound(String),
    /// 500 (the copier retries it): the read-back copy differs.
    #[error("off-site copy of {name} differs after upload: {detail}")]
    Mismatch { name: String, detail: String },
    /// 500.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl From<object_store::Error> for OffsiteError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => OffsiteError::NotFound(path),
            e => OffsiteError::Store(e),
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Status {
    last_copied_ms: Option<i64>,
    last_error: Option<String>,
    failing: bool,
}

/// A backup as the bucket holds it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RemoteBackup {
    pub(crate) name: String,
    pub(crate) size: u64,
    /// From the name (`backup_YYYY-MM-DD_HHMMSS…`).
    pub(crate) created_ms: Option<i64>,
    /// SHA-256 as read back when this server copied it; `None` for other objects.
    pub(crate) sha256: Option<String>,
    /// When this server confirmed its copy.
    pub(crate) copied_ms: Option<i64>,
}

pub(crate) struct Offsite {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    backup_dir: PathBuf,
    meta: Meta,
    status: Mutex<Status>,
}

impl Offsite {
    pub(crate) fn new(
        cfg: &OffsiteConfig,
        backup_dir: &Path,
        meta: Meta,
    ) -> Result<Offsite, OffsiteError> {
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            // The copier has its own capped backoff; the client only retries briefly.
            .with_retry(RetryConfig {
                max_retries: 2,
                retry_timeout: Duration::from_secs(20),
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(120))
                    .with_allow_http(true),
            );
        if let Some(e) = &cfg.endpoint {
            // Self-hosted servers (MinIO, Garage, moto) want path-style URLs.
            b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
        }
        if let Some(k) = &cfg.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &cfg.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        let store = b.build()?;
        Ok(Offsite {
            store: Arc::new(store),
            prefix: cfg.prefix.clone(),
            backup_dir: backup_dir.to_path_buf(),
            meta,
            status: Mutex::new(Status::default()),
        })
    }

    /// Records an audit entry through the meta db this copier was given.
    pub(crate) fn meta_audit(&self, action: &str, backup: &str, details: serde_json::Value) {
        if let Err(e) = self.meta.audit(action, Some(backup), "system", details) {
            tracing::warn!(error = %e, "could not record the audit entry");
        }
    }

    fn key(&self, name: &str) -> Key {
        Key::from(format!("{}{name}", self.prefix))
    }

    fn status(&self) -> Status {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut Status)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    /// `/api/health`'s `backup.offsite` (blocking: counts what is pending now,
    /// not at the copier's last pass, which may be a backoff ago).
    pub(crate) fn health(&self) -> serde_json::Value {
        let s = self.status();
        serde_json::json!({
            "enabled": true,
            "pending": self.pending().len(),
            "lastCopiedAt": s.last_copied_ms.map(fmt_ms),
            "lastError": s.last_error,
        })
    }

    /// (pending copies, copies failing) for the metrics (blocking, as `health`).
    pub(crate) fn gauges(&self) -> (u64, bool) {
        (self.pending().len() as u64, self.status().failing)
    }

    /// `copied` when a copy of exactly this size was read back, else `pending`.
    pub(crate) fn state_of(&self, name: &str, size: u64) -> &'static str {
        match self.meta.offsite_confirmed(name) {
            Ok(Some(c)) if c.size == size => "copied",
            _ => "pending",
        }
    }

    /// Local backups not confirmed off-site, oldest first.
    fn pending(&self) -> Vec<String> {
        let mut files = catalog::list_files(&self.backup_dir);
        files.reverse();
        files
            .into_iter()
            .filter(|f| self.state_of(&f.name, f.size) == "pending")
            .map(|f| f.name)
            .collect()
    }

    /// Uploads one local backup and reads it back; the confirmation on success.
    async fn copy_one(&self, name: &str) -> Result<Confirmed, OffsiteError> {
        let path = self.backup_dir.join(name);
        let mut file = tokio::fs::File::open(&path).await?;
        let key = self.key(name);
        let upload = self.store.put_multipart(&key).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut local = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 1024 * 1024];
        let sent: Result<(), OffsiteError> = async {
            loop {
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                writer.wait_for_capacity(2).await?;
                local.update(&buf[..n]);
                size += n as u64;
                writer.write(&buf[..n]);
            }
        }
        .await;
        if let Err(e) = sent {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.finish().await?;
        let local = hex::encode(local.finalize());
        let (remote_size, remote) = self.digest(&key).await?;
        if remote_size != size || remote != local {
            return Err(OffsiteError::Mismatch {
                name: name.to_string(),
                detail: format!(
                    "{remote_size} bytes with SHA-256 {remote}, local {size} bytes with {local}"
                ),
            });
        }
        Ok(Confirmed {
            size,
            sha256: local,
            at_ms: now_ms(),
        })
    }

    /// Size and SHA-256 of an object, read through.
    async fn digest(&self, key: &Key) -> Result<(u64, String), OffsiteError> {
        let mut stream = self.store.get(key).await?.into_stream();
        let mut h = Sha256::new();
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            n += chunk.len() as u64;
            h.update(&chunk);
        }
        Ok((n, hex::encode(h.finalize())))
    }

    /// Downloads `name` from the bucket into `to` (fsync'd).
    pub(crate) async fn download(&self, name: &str, to: &Path) -> Result<u64, OffsiteError> {
        use tokio::io::AsyncWriteExt;
        let mut stream = self.store.get(&self.key(name)).await?.into_stream();
        let mut f = tokio::fs::File::create(to).await?;
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            n += chunk.len() as u64;
            f.write_all(&chunk).await?;
        }
        f.sync_all().await?;
        Ok(n)
    }

    /// The backups in the bucket, newest first.
    pub(crate) async fn list(&self) -> Result<Vec<RemoteBackup>, OffsiteError> {
        let prefix = Key::from(self.prefix.trim_end_matches('/'));
        let mut stream = self.store.list(Some(&prefix));
        let mut out = Vec::new();
        while let Some(meta) = stream.next().await {
            let meta = meta?;
            let full = meta.location.to_string();
            let Some(name) = full.strip_prefix(&self.prefix) else {
                continue;
            };
            if name.contains('/') || !catalog::is_backup_name(name) {
                continue;
            }
            let (sha256, copied_ms) = match self.meta.offsite_confirmed(name) {
                Ok(Some(c)) if c.size == meta.size => (Some(c.sha256), Some(c.at_ms)),
                _ => (None, None),
            };
            out.push(RemoteBackup {
                name: name.to_string(),
                size: meta.size,
                created_ms: catalog::created_from_name(name),
                sha256,
                copied_ms,
            });
        }
        out.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(b.name.cmp(&a.name)));
        Ok(out)
    }

    /// The newest backup in the bucket that is not a pre-restore safety copy
    /// (those hold the state a restore replaced), else the newest of any kind.
    pub(crate) async fn newest(&self) -> Result<Option<String>, OffsiteError> {
        let all = self.list().await?;
        let real = all
            .iter()
            .find(|b| !b.name.ends_with("_pre-restore.tar.gz"));
        Ok(real.or(all.first()).map(|b| b.name.clone()))
    }

    /// Removes the off-site copies of rotated backups, as queued in meta.
    async fn remove_rotated(&self) {
        let queued = match self.meta.offsite_removals() {
            Ok(q) => q,
            Err(e) => {
                tracing::warn!(error = %e, "off-site: cannot read the removal queue");
                return;
            }
        };
        for name in queued {
            match self
                .store
                .delete(&self.key(&name))
                .await
                .map_err(OffsiteError::from)
            {
                Ok(()) | Err(OffsiteError::NotFound(_)) => {
                    if let Err(e) = self.meta.offsite_removed(&name) {
                        tracing::warn!(error = %e, "off-site: cannot record a removal");
                    }
                    tracing::info!(backup = %name, "off-site: removed the copy of a rotated backup");
                }
                Err(e) => {
                    tracing::warn!(backup = %name, error = %e, "off-site: cannot remove the copy of a rotated backup; will retry");
                    self.update(|s| s.last_error = Some(format!("removing {name}: {e}")));
                }
            }
        }
    }

    /// One pass over the pending copies, oldest first; stops at the first failure.
    async fn pass(&self) -> bool {
        self.remove_rotated().await;
        for name in self.pending() {
            if !self.backup_dir.join(&name).is_file() {
                continue; // rotated or deleted meanwhile
            }
            match self.copy_one(&name).await {
                Ok(c) => {
                    if let Err(e) = self.meta.set_offsite_confirmed(&name, &c) {
                        tracing::error!(error = %e, "off-site: cannot record a confirmed copy");
                        return false;
                    }
                    let was_failing = self.status().failing;
                    self.update(|s| {
                        s.last_copied_ms = Some(c.at_ms);
                        s.failing = false;
                        s.last_error = None;
                    });
                    if was_failing {
                        tracing::info!("off-site copies work again");
                    }
                    tracing::info!(backup = %name, bytes = c.size, "off-site: copied and read back");
                }
                Err(e) => {
                    if matches!(e, OffsiteError::Io(ref io) if io.kind() == std::io::ErrorKind::NotFound)
                    {
                        continue;
                    }
                    let was_failing = self.status().failing;
                    let msg = e.to_string();
                    if !was_failing {
                        tracing::warn!(backup = %name, error = %msg, "off-site copies are failing; retrying with backoff (backups and writes go on)");
                    }
                    self.update(|s| {
                        s.failing = true;
                        s.last_error = Some(msg);
                    });
                    return false;
                }
            }
        }
        true
    }

    /// The copier: runs until `stop` flips.
    pub(crate) fn spawn(
        self: Arc<Self>,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut backoff = Backoff::new(Duration::from_secs(1), MAX_BACKOFF);
            loop {
                let ok = tokio::select! {
                    ok = self.pass() => ok,
                    _ = stop.changed() => return,
                };
                let nap = if ok {
                    backoff.succeeded();
                    IDLE_POLL
                } else {
                    backoff.failed()
                };
                tokio::select! {
                    _ = tokio::time::sleep(nap) => {}
                    _ = stop.changed() => return,
                }
            }
        })
    }
}

/// Why `RESTORE_FROM_OFFSITE=latest` could not restore before serving (a fault:
/// the start stops, exit 1).
#[derive(Debug, thiserror::Error)]
pub(crate) enum BootstrapError {
    #[error("RESTORE_FROM_OFFSITE=latest: cannot list the bucket: {0}")]
    List(#[source] OffsiteError),
    #[error("RESTORE_FROM_OFFSITE=latest: downloading {name}: {cause}")]
    Download {
        name: String,
        #[source]
        cause: OffsiteError,
    },
    #[error("RESTORE_FROM_OFFSITE=latest: {name}: {cause}")]
    Restore {
        name: String,
        #[source]
        cause: crate::backup::BackupError,
    },
    #[error("RESTORE_FROM_OFFSITE=latest: {0}")]
    Offsite(#[from] OffsiteError),
    #[error("RESTORE_FROM_OFFSITE=latest: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("RESTORE_FROM_OFFSITE=latest: {0}")]
    Io(#[from] std::io::Error),
    #[error("RESTORE_FROM_OFFSITE=latest: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// `RESTORE_FROM_OFFSITE=latest`: a store with no events at all is restored from
/// the newest off-site backup before anything else opens it; a store with events
/// (or one that cannot be opened: it is not known to be empty) is never
/// overwritten by it.
pub(crate) async fn restore_latest(
    config: &crate::config::Config,
    off: &OffsiteConfig,
) -> Result<(), BootstrapError> {
    use crate::blocking::blocking;
    let data_dir = config.store.data_dir.clone();
    let events = blocking(move || {
        Ok::<_, BootstrapError>(crate::store::open_offline(&data_dir).and_then(|g| g.last_seq()))
    })
    .await?;
    let Ok(events) = events else {
        return Ok(());
    };
    if events > 0 {
        tracing::info!(
            events,
            "RESTORE_FROM_OFFSITE=latest skipped: the store is not empty"
        );
        return Ok(());
    }
    let meta = Meta::open(&config.store.data_dir.join("meta"))?;
    let client = Offsite::new(off, &config.backup.backup_dir, meta)?;
    let Some(name) = client.newest().await.map_err(BootstrapError::List)? else {
        tracing::warn!("RESTORE_FROM_OFFSITE=latest: the bucket holds no backup; starting empty");
        return Ok(());
    };
    let dir = config
        .backup
        .backup_dir
        .join(format!(".offsite-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(&name);
    let restored = match client.download(&name, &path).await {
        Ok(_) => {
            let (d, b) = (
                config.store.data_dir.clone(),
                config.backup.backup_dir.clone(),
            );
            let source = crate::backup::restore::Source::Archive { path, upto: None };
            let n = name.clone();
            blocking(move || {
                crate::backup::restore::restore_offline(&d, &b, &source)
                    .map(|(r, _)| r)
                    .map_err(|cause| BootstrapError::Restore { name: n, cause })
            })
            .await
        }
        Err(cause) => Err(BootstrapError::Download {
            name: name.clone(),
            cause,
        }),
    };
    let _ = std::fs::remove_dir_all(&dir);
    let r = restored?;
    tracing::info!(backup = %name, events = r.restored.events, "restored the newest off-site backup before serving (RESTORE_FROM_OFFSITE=latest)");
    client.meta_audit(
        "BACKUP_RESTORED",
        &name,
        serde_json::json!({"source": "offsite", "events": r.restored.events, "lastEventId": r.last_event_id}),
    );
    Ok(())
}
