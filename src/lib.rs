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
pub(crate) mod blocking;
pub mod cli;
pub mod config;
pub mod domain;
pub mod metrics;
pub(crate) mod mirror;
pub(crate) mod offsite;
pub(crate) mod replica;
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
impl From<backup::BackupError> for RunError {
    fn from(e: backup::BackupError) -> Self {
        match e {
            backup::BackupError::Store(e) => e.into(),
            e => RunError::Fault(e.into()),
        }
    }
}

faults!(
    offsite::BootstrapError,
    replica::bootstrap::BootstrapError,
    seed::SeedError,
    offsite::OffsiteError,
    mirror::relay::RelayError,
    std::io::Error,
    tokio::task::JoinError
);

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
    // Streams end when shutdown begins, not after the drain: a stream never
    // finishes by itself and would hold the drain for its whole deadline.
    let (streams_stop, streams_stop_rx) = tokio::sync::watch::channel(false);
    let streams = Arc::new(api::stream::Streams::new(metrics.clone(), streams_stop_rx));
    let shutdown = async move {
        shutdown.await;
        let _ = streams_stop.send(true);
    };
    let replica = config.role == config::Role::Replica;
    if replica {
        replica::bootstrap::from_newest_backup(&config).await?;
    } else if let Some(off) = config.offsite.as_ref().filter(|o| o.restore_latest) {
        offsite::restore_latest(&config, off).await?;
    }
    let store = backup::dropfolder::open_or_rescue(&config, metrics.clone()).await?;
    // `taskledger promote` ran here: follow until caught up, then take over.
    let pending = store.meta.relay_get(replica::promote::PENDING)? == Some(1);
    let replica = replica || pending;
    // A replica's users come from the primary's log, never from itself.
    if !replica {
        seed::seed_users(&store, &seed::Seeding::from_config(&config)).await?;
    }
    store.meta.purge_expired();
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
    let log_topic = config
        .kafka
        .log_topic
        .as_ref()
        .map(|_| Arc::new(mirror::log_topic::LogStatus::default()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let app = Arc::new(App {
        offsite: offsite.clone(),
        config,
        store,
        metrics,
        relay: Arc::new(RelayStatus::default()),
        streams: streams.clone(),
        backups,
        log_topic,
        replica: replica.then(|| Arc::new(replica::ReplicaStatus::default())),
        role: replica::NodeRole::new(if replica {
            replica::Role::Replica
        } else {
            replica::Role::Primary
        }),
        workers: std::sync::Mutex::new(Vec::new()),
        stop: stop_rx.clone(),
    });
    // A replica's state is the primary's: files dropped into its restore dir
    // served only to bootstrap it.
    let drop_folder = app.config.backup.auto_restore_enabled && !replica;
    if drop_folder {
        backup::dropfolder::initial_scan(&app.backups).await;
    }
    let mut workers = Vec::new();
    workers.push(api::stream::spawn_tailer(app.store.clone(), streams));
    if app.config.backup.auto_backup_enabled {
        workers.push(backup::scheduler::spawn_scheduler(
            app.backups.clone(),
            stop_rx.clone(),
        ));
    }
    if drop_folder {
        workers.push(backup::dropfolder::spawn_watcher(
            app.backups.clone(),
            stop_rx.clone(),
        ));
    }
    if let Some(o) = offsite {
        workers.push(o.spawn(stop_rx.clone()));
    }
    workers.push(app.store.meta.clone().spawn_purge(stop_rx.clone()));
    if !replica {
        let topic = app.config.kafka.log_topic.clone().unwrap_or_default();
        replica::promote::start_primary_work(&app, &topic, None)?;
    }
    if let (Some(status), Some(topic)) = (&app.replica, &app.config.kafka.log_topic) {
        let deps = replica::follow::FollowDeps {
            store: app.store.clone(),
            kafka: app.config.kafka.clone(),
            topic: topic.clone(),
            status: status.clone(),
            metrics: app.metrics.clone(),
        };
        workers.push(replica::spawn(deps, stop_rx.clone()));
    }
    if pending {
        workers.push(replica::promote::spawn_pending(app.clone()));
    }
    let addr = listener.local_addr()?;
    tracing::info!(%addr, events = app.store.durable().borrow().seq, "taskledger is serving");
    serve::serve(listener, api::router(app.clone()), shutdown).await;
    tracing::info!("shutting down: requests drained, stopping background work");
    let _ = stop_tx.send(true);
    if let Ok(mut late) = app.workers.lock() {
        workers.append(&mut late);
    }
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
