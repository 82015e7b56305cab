//! taskledger: a self-hosted, event-sourced task server.
//!
//! Layout:
//! - [`config`]: the typed configuration (clap + env), checked once.
//! - [`domain`]: pure rules — commands, events, `decide`, the in-memory model.
//! - [`store`]: sled — the event log and projections in one tree, the group-commit
//!   writer, generations for live restore, the meta db, the LOCK file.
//! - [`api`]: the axum router, auth, handlers, error shapes.
//! - [`backup`]: archive format, catalog, manager, restore, drop folder.
//! - [`mirror`]: the Kafka relay publishing the log from a persisted cursor.
//! - `offsite`: copies of the backups in S3-compatible storage.
//! - `seed`: the first admin user.
//! - [`metrics`]: the Prometheus registry; `backoff`: the retry waits.
//!
//! [`run`] serves on a given listener until a shutdown future resolves, so tests
//! bind port 0 and decide when to stop.
//!
//! Everything is `pub(crate)` unless another crate needs it: `run`, `cli` and
//! `config` for the binary; the store's open/execute/close, the domain's
//! commands and images, and `Metrics` for the tools in `examples/` (bulk fill,
//! replay and memory probes) and the few integration tests that build a store
//! without a server. Those tests otherwise speak HTTP only.
#![forbid(unsafe_code)]

pub(crate) mod api;
pub(crate) mod app;
pub(crate) mod backoff;
pub(crate) mod backup;
pub mod cli;
pub mod config;
pub mod domain;
pub mod metrics;
pub(crate) mod mirror;
pub(crate) mod offsite;
pub(crate) mod seed;
mod serve;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use app::App;
use config::{Config, ConfigError};
use metrics::Metrics;
use mirror::RelayStatus;
use store::lock::LockError;
use store::Store;

type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why the server or an offline command could not run. The caller (the binary)
/// only tells the user's problems (exit code 2) from faults (exit 1); the cause
/// is kept, not flattened to text, for its message and source chain.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The store cannot be served as it is (a log that lost acknowledged events,
    /// damaged files, an unknown layout) or an argument names nothing: the user decides.
    #[error(transparent)]
    Refused(Cause),
    #[error(transparent)]
    Fault(Cause),
}

impl RunError {
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Config(_) | RunError::Lock(_) | RunError::Refused(_) => 2,
            RunError::Fault(_) => 1,
        }
    }

    fn fault(e: impl Into<Cause>) -> RunError {
        RunError::Fault(e.into())
    }
}

impl From<store::StoreError> for RunError {
    fn from(e: store::StoreError) -> Self {
        use store::StoreError as S;
        match e {
            S::NoCurrent { .. } | S::LostTail { .. } | S::Damaged { .. } => {
                RunError::Refused(e.into())
            }
            S::Sled(_) | S::Io(_) | S::Corrupt(_) => RunError::Fault(e.into()),
        }
    }
}

/// Every other layer's error is a fault at this level.
macro_rules! faults {
    ($($t:ty),+) => {$(
        impl From<$t> for RunError {
            fn from(e: $t) -> Self {
                RunError::Fault(e.into())
            }
        }
    )+};
}
faults!(
    backup::BackupError,
    seed::SeedError,
    offsite::OffsiteError,
    mirror::relay::RelayError,
    std::io::Error,
    tokio::task::JoinError
);

/// Opens the store. A log that lost acknowledged events is never served: the
/// first backup waiting in the restore dir is applied instead, or the start is refused.
async fn open_store(config: &Config, metrics: Arc<Metrics>) -> Result<Store, RunError> {
    let data_dir = config.store.data_dir.clone();
    let m = metrics.clone();
    let opened = tokio::task::spawn_blocking(move || Store::open(&data_dir, m)).await?;
    let lost = match opened {
        Ok(s) => return Ok(s),
        Err(
            e @ (store::StoreError::LostTail { .. }
            | store::StoreError::Damaged { .. }
            | store::StoreError::NoCurrent { .. }),
        ) => e,
        Err(e) => return Err(e.into()),
    };
    let cfg = config.clone();
    let rescued = tokio::task::spawn_blocking(move || backup::dropfolder::rescue(&cfg)).await?;
    match rescued {
        Some(name) => {
            tracing::warn!(problem = %lost, backup = %name, "the store could not be served as it was; restored from the restore dir before serving");
            let data_dir = config.store.data_dir.clone();
            let store = tokio::task::spawn_blocking(move || Store::open(&data_dir, metrics))
                .await?
                .map_err(RunError::fault)?;
            let details = serde_json::json!({"source": "restore-dir", "reason": lost.to_string()});
            if let Err(e) = store
                .meta
                .audit("BACKUP_RESTORED", Some(&name), "system", details)
            {
                tracing::warn!(error = %e, "could not record the restore in the audit trail");
            }
            Ok(store)
        }
        None => Err(lost.into()),
    }
}

/// How often expired sessions are removed while serving (and once at start).
const SESSION_PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

fn spawn_session_purge(
    app: Arc<App>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(SESSION_PURGE_EVERY) => {}
                _ = stop.changed() => return,
            }
            let a = app.clone();
            let purged = tokio::task::spawn_blocking(move || {
                a.store.meta.purge_sessions(domain::time::now_ms())
            })
            .await;
            match purged {
                Ok(Ok(n)) if n > 0 => tracing::info!(expired = n, "removed expired sessions"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "could not purge expired sessions"),
                Err(e) => tracing::warn!(error = %e, "session purge task failed"),
            }
        }
    })
}

/// `RESTORE_FROM_OFFSITE=latest`: a store with no events at all is restored from
/// the newest off-site backup before anything else opens it; a store with events
/// is never overwritten by it.
async fn bootstrap_from_offsite(
    config: &Config,
    off: &config::OffsiteConfig,
) -> Result<(), RunError> {
    let data_dir = config.store.data_dir.clone();
    let events = tokio::task::spawn_blocking(move || {
        store::open_offline(&data_dir).and_then(|g| g.last_seq())
    })
    .await?;
    // A store that cannot be opened is not known to be empty: never overwritten
    // from the bucket; opening it says what is wrong (or the restore dir rescues it).
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
    let meta = store::Meta::open(&config.store.data_dir.join("meta"))?;
    let client = offsite::Offsite::new(off, &config.backup.backup_dir, meta)?;
    let name = match client.newest().await {
        Ok(Some(n)) => n,
        Ok(None) => {
            tracing::warn!(
                "RESTORE_FROM_OFFSITE=latest: the bucket holds no backup; starting empty"
            );
            return Ok(());
        }
        Err(e) => {
            return Err(RunError::fault(format!(
                "RESTORE_FROM_OFFSITE=latest: cannot list the bucket: {e}"
            )))
        }
    };
    let dir = config
        .backup
        .backup_dir
        .join(format!(".offsite-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(&name);
    let fetched = client.download(&name, &path).await;
    let restored = match fetched {
        Ok(_) => {
            let (d, b) = (
                config.store.data_dir.clone(),
                config.backup.backup_dir.clone(),
            );
            let source = backup::restore::Source::Archive { path, upto: None };
            tokio::task::spawn_blocking(move || backup::restore::restore_offline(&d, &b, &source))
                .await?
                .map(|(r, _)| r)
                .map_err(|e| RunError::fault(format!("RESTORE_FROM_OFFSITE=latest: {name}: {e}")))
        }
        Err(e) => Err(RunError::fault(format!(
            "RESTORE_FROM_OFFSITE=latest: downloading {name}: {e}"
        ))),
    };
    let _ = std::fs::remove_dir_all(&dir);
    let r = restored?;
    tracing::info!(backup = %name, events = r.restored.events, "restored the newest off-site backup before serving (RESTORE_FROM_OFFSITE=latest)");
    client
        .meta_audit("BACKUP_RESTORED", &name, serde_json::json!({"source": "offsite", "events": r.restored.events, "lastEventId": r.last_event_id}));
    Ok(())
}

/// Runs the server until `shutdown` resolves, then drains requests, stops the
/// background work, flushes, and releases the lock.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    config.ensure_dirs()?;
    let lock = store::lock::acquire(&config.store.data_dir)?;
    let metrics = Arc::new(Metrics::new());
    if let Some(off) = config.offsite.as_ref().filter(|o| o.restore_latest) {
        bootstrap_from_offsite(&config, off).await?;
    }
    let store = open_store(&config, metrics.clone()).await?;
    seed::seed_users(&store, &seed::Seeding::from_config(&config)).await?;
    match store.meta.purge_sessions(domain::time::now_ms()) {
        Ok(n) if n > 0 => tracing::info!(expired = n, "removed expired sessions"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not purge expired sessions"),
    }
    backup::manager::clean_temp_files(&config.backup.backup_dir);
    let offsite = match &config.offsite {
        Some(o) => Some(Arc::new(
            offsite::Offsite::new(o, &config.backup.backup_dir, store.meta.clone()).map_err(
                |e| {
                    RunError::Config(ConfigError {
                        setting: "S3_BUCKET_NAME".into(),
                        reason: e.to_string(),
                    })
                },
            )?,
        )),
        None => None,
    };
    if let Some(newest) = backup::catalog::list_files(&config.backup.backup_dir).first() {
        metrics.backup_current_at.set(newest.created_ms / 1000);
    }
    let store = Arc::new(store);
    let backups = Arc::new(backup::Backups::new(
        store.clone(),
        metrics.clone(),
        &config,
    ));
    let app = Arc::new(App {
        offsite: offsite.clone(),
        config,
        store,
        metrics,
        relay: Arc::new(RelayStatus::default()),
        backups,
    });
    if app.config.backup.auto_restore_enabled {
        backup::dropfolder::initial_scan(&app.backups).await;
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    if app.config.backup.auto_backup_enabled {
        workers.push(backup::manager::spawn_scheduler(
            app.backups.clone(),
            stop_rx.clone(),
        ));
    }
    if app.config.backup.auto_restore_enabled {
        workers.push(backup::dropfolder::spawn_watcher(
            app.backups.clone(),
            stop_rx.clone(),
        ));
    }
    if let Some(o) = offsite {
        workers.push(o.spawn(stop_rx.clone()));
    }
    workers.push(spawn_session_purge(app.clone(), stop_rx.clone()));
    if app.config.kafka.enabled {
        let deps = mirror::relay::RelayDeps {
            store: app.store.clone(),
            kafka: app.config.kafka.clone(),
            status: app.relay.clone(),
            metrics: app.metrics.clone(),
        };
        workers.push(mirror::relay::spawn_relay(deps, stop_rx.clone())?);
    }
    let addr = listener.local_addr()?;
    tracing::info!(%addr, events = app.store.durable().borrow().seq, "taskledger is serving");
    serve::serve(listener, api::router(app.clone()), shutdown).await;
    tracing::info!("shutting down: requests drained, stopping background work");
    let _ = stop_tx.send(true);
    for w in workers {
        // A backup or restore in progress finishes; give it a bounded time.
        if tokio::time::timeout(std::time::Duration::from_secs(60), w)
            .await
            .is_err()
        {
            tracing::warn!("a background task did not stop within 60 s");
        }
    }
    let closing = app.clone();
    tokio::task::spawn_blocking(move || closing.store.close()).await?;
    drop(lock);
    Ok(())
}
