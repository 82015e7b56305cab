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
//! - [`metrics`]: the Prometheus registry.
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

/// Why the server could not run. Config and lock problems are the user's to fix
/// (exit code 2); the rest are faults.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The store cannot be served as it is (a log that lost acknowledged events).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Other(String),
}

impl RunError {
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Config(_) | RunError::Lock(_) | RunError::Refused(_) => 2,
            RunError::Other(_) => 1,
        }
    }
}

fn other(e: impl std::fmt::Display) -> RunError {
    RunError::Other(e.to_string())
}

/// Opens the store. A log that lost acknowledged events is never served: the
/// first backup waiting in the restore dir is applied instead, or the start is refused.
async fn open_store(config: &Config, metrics: Arc<Metrics>) -> Result<Store, RunError> {
    let data_dir = config.data_dir.clone();
    let m = metrics.clone();
    let opened = tokio::task::spawn_blocking(move || Store::open(&data_dir, m))
        .await
        .map_err(other)?;
    let lost = match opened {
        Ok(s) => return Ok(s),
        Err(e @ (store::StoreError::LostTail { .. } | store::StoreError::Damaged { .. })) => {
            e.to_string()
        }
        Err(store::StoreError::Refused(why)) => return Err(RunError::Refused(why)),
        Err(e) => return Err(other(e)),
    };
    let cfg = config.clone();
    let rescued = tokio::task::spawn_blocking(move || backup::dropfolder::rescue(&cfg))
        .await
        .map_err(other)?;
    match rescued {
        Some(name) => {
            tracing::warn!(problem = %lost, backup = %name, "the store could not be served as it was; restored from the restore dir before serving");
            let data_dir = config.data_dir.clone();
            let store = tokio::task::spawn_blocking(move || Store::open(&data_dir, metrics))
                .await
                .map_err(other)?
                .map_err(other)?;
            let details = serde_json::json!({"source": "restore-dir", "reason": lost});
            if let Err(e) = store
                .meta
                .audit("BACKUP_RESTORED", Some(&name), "system", details)
            {
                tracing::warn!(error = %e, "could not record the restore in the audit trail");
            }
            Ok(store)
        }
        None => Err(RunError::Refused(lost)),
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
    let data_dir = config.data_dir.clone();
    let events = tokio::task::spawn_blocking(move || {
        store::open_offline(&data_dir).and_then(|g| g.last_seq())
    })
    .await
    .map_err(other)?;
    match events {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(
                events = n,
                "RESTORE_FROM_OFFSITE=latest skipped: the store is not empty"
            );
            return Ok(());
        }
        Err(store::StoreError::Refused(why)) => return Err(RunError::Refused(why)),
        Err(e) => return Err(other(e)),
    }
    let meta = store::Meta::open(&config.data_dir.join("meta")).map_err(other)?;
    let client = offsite::Offsite::new(off, &config.backup_dir, meta).map_err(other)?;
    let name = match client.newest().await {
        Ok(Some(n)) => n,
        Ok(None) => {
            tracing::warn!(
                "RESTORE_FROM_OFFSITE=latest: the bucket holds no backup; starting empty"
            );
            return Ok(());
        }
        Err(e) => {
            return Err(RunError::Other(format!(
                "RESTORE_FROM_OFFSITE=latest: cannot list the bucket: {e}"
            )))
        }
    };
    let dir = config
        .backup_dir
        .join(format!(".offsite-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).map_err(other)?;
    let path = dir.join(&name);
    let fetched = client.download(&name, &path).await;
    let restored = match fetched {
        Ok(_) => {
            let (d, b) = (config.data_dir.clone(), config.backup_dir.clone());
            let source = backup::restore::Source::Archive { path, upto: None };
            tokio::task::spawn_blocking(move || backup::restore::restore_offline(&d, &b, &source))
                .await
                .map_err(other)?
                .map(|(r, _)| r)
                .map_err(|e| other(format!("RESTORE_FROM_OFFSITE=latest: {name}: {e}")))
        }
        Err(e) => Err(other(format!(
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
    let lock = store::lock::acquire(&config.data_dir)?;
    let metrics = Arc::new(Metrics::new());
    if let Some(off) = config.offsite.as_ref().filter(|o| o.restore_latest) {
        bootstrap_from_offsite(&config, off).await?;
    }
    let store = open_store(&config, metrics.clone()).await?;
    seed::seed_users(&store, &seed::Seeding::from_config(&config))
        .await
        .map_err(other)?;
    match store.meta.purge_sessions(domain::time::now_ms()) {
        Ok(n) if n > 0 => tracing::info!(expired = n, "removed expired sessions"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not purge expired sessions"),
    }
    backup::manager::clean_temp_files(&config.backup_dir);
    let offsite = match &config.offsite {
        Some(o) => Some(Arc::new(
            offsite::Offsite::new(o, &config.backup_dir, store.meta.clone()).map_err(|e| {
                RunError::Config(ConfigError {
                    setting: "S3_BUCKET_NAME".into(),
                    reason: e.to_string(),
                })
            })?,
        )),
        None => None,
    };
    if let Some(newest) = backup::catalog::list_files(&config.backup_dir).first() {
        metrics.backup_current_at.set(newest.created_ms / 1000);
    }
    let store = Arc::new(store);
    let backups = Arc::new(backup::Backups::new(
        store.clone(),
        metrics.clone(),
        backup::BackupSettings::from_config(&config),
    ));
    let app = Arc::new(App {
        offsite: offsite.clone(),
        config,
        store,
        metrics,
        relay: Arc::new(RelayStatus::default()),
        backups,
    });
    if app.config.auto_restore_enabled {
        backup::dropfolder::initial_scan(&app.backups).await;
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    if app.config.auto_backup_enabled {
        workers.push(backup::manager::spawn_scheduler(
            app.backups.clone(),
            stop_rx.clone(),
        ));
    }
    if app.config.auto_restore_enabled {
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
        match mirror::relay::spawn_relay(deps, stop_rx.clone()) {
            Ok(h) => workers.push(h),
            Err(e) => {
                return Err(RunError::Other(format!(
                    "cannot create the Kafka producer: {e}"
                )))
            }
        }
    }
    let addr = listener.local_addr().map_err(other)?;
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
    tokio::task::spawn_blocking(move || closing.store.close())
        .await
        .map_err(other)?;
    drop(lock);
    Ok(())
}
