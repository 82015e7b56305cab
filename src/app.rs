//! The shared application state every handler and background component sees.

use std::sync::Arc;
use std::time::Instant;

use crate::backup::Backups;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::mirror::RelayStatus;
use crate::store::Store;

pub struct App {
    pub config: Config,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub relay: Arc<RelayStatus>,
    /// The backup component's handle (scheduler, drop folder, restores).
    pub backups: Arc<Backups>,
    /// The off-site copier, when a bucket is configured.
    pub offsite: Option<Arc<crate::offsite::Offsite>>,
    pub started: Instant,
}

pub type AppState = Arc<App>;
