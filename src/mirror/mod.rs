//! The Kafka mirror: the event log is the outbox, a relay publishes it from a
//! persisted cursor. This module owns the relay and the status it reports.

pub(crate) mod log_topic;
pub(crate) mod message;
pub(crate) mod relay;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What `/api/health` and `/metrics` show about the relay.
#[derive(Debug, Default)]
pub(crate) struct RelayStatus {
    pub(crate) enabled: AtomicBool,
    pub(crate) connected: AtomicBool,
    /// Sequence of the last event the broker acknowledged (0: none yet).
    pub(crate) last_published: AtomicU64,
}

impl RelayStatus {
    pub(crate) fn snapshot(&self, durable_seq: u64) -> serde_json::Value {
        let enabled = self.enabled.load(Ordering::Relaxed);
        let last = self.last_published.load(Ordering::Relaxed);
        serde_json::json!({
            "enabled": enabled,
            "connected": enabled && self.connected.load(Ordering::Relaxed),
            "lag": if enabled { durable_seq.saturating_sub(last) } else { 0 },
            "lastPublishedEventId": if last == 0 { None } else { Some(last) },
        })
    }
}
