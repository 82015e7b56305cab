//! The shared application state every handler and background component sees.

use std::sync::Arc;

use crate::backup::Backups;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::mirror::RelayStatus;
use crate::store::Store;

pub(crate) struct App {
    pub(crate) config: Config,
    pub(crate) store: Arc<Store>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) relay: Arc<RelayStatus>,
    /// Live updates: the open event streams and their shared feed.
    pub(crate) streams: Arc<crate::api::stream::Streams>,
    /// The backup component's handle (scheduler, drop folder, restores).
    pub(crate) backups: Arc<Backups>,
    /// The off-site copier, when a bucket is configured.
    pub(crate) offsite: Option<Arc<crate::offsite::Offsite>>,
    /// The log topic's relay status, when `KAFKA_LOG_TOPIC` is set (a replica's
    /// starts publishing if it is promoted).
    pub(crate) log_topic: Option<Arc<crate::mirror::log_topic::LogStatus>>,
    /// Set on a replica: where it is in the primary's log.
    pub(crate) replica: Option<Arc<crate::replica::ReplicaStatus>>,
    /// Primary, replica, or being promoted (fenced is the store's own state).
    pub(crate) role: crate::replica::NodeRole,
    /// Background work started after start-up (a promotion's relays); awaited
    /// at shutdown like the rest.
    pub(crate) workers: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Flips to true when the server shuts down.
    pub(crate) stop: tokio::sync::watch::Receiver<bool>,
}

pub(crate) type AppState = Arc<App>;
