//! A replica (SPEC §12): a read-only node that rebuilds the primary's state
//! from the log topic. It bootstraps from the newest backup it can read, finds
//! where that backup ends in the topic, then applies every later event through
//! the store's own write path (append, fsync, publish: no second apply). A
//! generation marker makes it build the new generation aside and swap it in
//! whole; session changes go to its meta db so the primary's tokens work here.
//!
//! Owns the consumer and the replica's position (in meta); touches the store
//! (its replicate and swap inputs, snapshots, meta), its Kafka settings, the
//! backup component's offline restore (bootstrap only) and the metrics.

pub(crate) mod bootstrap;
pub(crate) mod follow;
pub(crate) mod promote;

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

pub(crate) use follow::spawn;

use crate::domain::time::now_ms;

/// Where a replica is (SPEC §12 health `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No position in the topic yet (finding it, or building the first generation).
    Bootstrapping,
    /// Applying, behind the primary.
    CatchingUp,
    /// Applied all the primary has said, recently.
    Live,
}

impl Phase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Bootstrapping => "bootstrapping",
            Phase::CatchingUp => "catching-up",
            Phase::Live => "live",
        }
    }
}

/// What this node is now (SPEC §12); it changes only by a promotion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Primary,
    Replica,
    /// Catching up and taking over; writes are still refused.
    Promoting,
}

/// The node's role, shared by the API gate, health and the promotion.
#[derive(Debug)]
pub(crate) struct NodeRole(AtomicU8);

impl NodeRole {
    pub(crate) fn new(r: Role) -> NodeRole {
        NodeRole(AtomicU8::new(r as u8))
    }

    pub(crate) fn get(&self) -> Role {
        match self.0.load(Ordering::SeqCst) {
            0 => Role::Primary,
            1 => Role::Replica,
            _ => Role::Promoting,
        }
    }

    pub(crate) fn set(&self, r: Role) {
        self.0.store(r as u8, Ordering::SeqCst);
    }

    /// Moves from `from` to `to`; false when the role was not `from`.
    pub(crate) fn swap(&self, from: Role, to: Role) -> bool {
        self.0
            .compare_exchange(from as u8, to as u8, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Whether writes are the primary's business, not this node's.
    pub(crate) fn takes_writes(&self) -> bool {
        self.get() == Role::Primary
    }
}

/// Where the follower stood when it stopped for a promotion.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caught {
    pub(crate) applied: u64,
    pub(crate) generation: u64,
    pub(crate) term: u64,
}

/// A promotion asks the follower to apply the topic up to `until` and stop.
pub(crate) struct PromoteReq {
    pub(crate) until: i64,
    pub(crate) reply: tokio::sync::oneshot::Sender<Result<Caught, String>>,
}

impl std::fmt::Debug for PromoteReq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PromoteReq(until {})", self.until)
    }
}

/// A replica is live when it has applied what the primary last reported and
/// that report is this recent.
const LIVE_WITHIN_MS: i64 = 3_000;

/// What health and metrics show, updated by the follower thread.
#[derive(Debug, Default)]
pub(crate) struct ReplicaStatus {
    positioned: AtomicU8,
    applied: AtomicU64,
    /// The primary's durable sequence, as last heard (event, heartbeat, marker).
    primary: AtomicU64,
    /// The primary's clock when the state this replica serves was current.
    fresh_ms: AtomicI64,
    generation: AtomicU64,
    promote: Mutex<Option<PromoteReq>>,
}

impl ReplicaStatus {
    pub(crate) fn request_promotion(&self, req: PromoteReq) {
        if let Ok(mut p) = self.promote.lock() {
            *p = Some(req);
        }
    }

    /// The offset a pending promotion waits for.
    fn promotion_until(&self) -> Option<i64> {
        self.promote.lock().ok()?.as_ref().map(|r| r.until)
    }

    fn take_promotion(&self) -> Option<PromoteReq> {
        self.promote.lock().ok()?.take()
    }

    pub(crate) fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    pub(crate) fn lag_events(&self) -> u64 {
        self.primary
            .load(Ordering::Relaxed)
            .saturating_sub(self.applied())
    }

    pub(crate) fn lag_seconds(&self) -> f64 {
        let fresh = self.fresh_ms.load(Ordering::Relaxed);
        if fresh == 0 {
            return 0.0;
        }
        (now_ms() - fresh).max(0) as f64 / 1000.0
    }

    pub(crate) fn phase(&self) -> Phase {
        if self.positioned.load(Ordering::Relaxed) == 0 {
            return Phase::Bootstrapping;
        }
        let fresh = self.fresh_ms.load(Ordering::Relaxed);
        if self.lag_events() == 0 && now_ms() - fresh <= LIVE_WITHIN_MS {
            Phase::Live
        } else {
            Phase::CatchingUp
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    fn set_positioned(&self, generation: u64, applied: u64) {
        self.generation.store(generation, Ordering::Relaxed);
        self.applied.store(applied, Ordering::Relaxed);
        self.positioned.store(1, Ordering::Relaxed);
    }

    fn set_applied(&self, applied: u64, primary_ts_ms: i64) {
        self.applied.store(applied, Ordering::Relaxed);
        self.primary.fetch_max(applied, Ordering::Relaxed);
        self.fresh_ms.fetch_max(primary_ts_ms, Ordering::Relaxed);
    }

    /// The primary said it is durable up to `seq` at `ts_ms`.
    fn heard(&self, seq: u64, ts_ms: i64) {
        self.primary.store(seq, Ordering::Relaxed);
        if self.applied() >= seq {
            self.fresh_ms.fetch_max(ts_ms, Ordering::Relaxed);
        }
    }

    /// A new generation: the primary's count starts over.
    fn new_generation(&self, generation: u64, last: u64) {
        self.generation.store(generation, Ordering::Relaxed);
        self.primary.store(last, Ordering::Relaxed);
    }

    pub(crate) fn health(&self) -> serde_json::Value {
        serde_json::json!({
            "appliedSeq": self.applied(),
            "lagEvents": self.lag_events(),
            "lagSeconds": (self.lag_seconds() * 1000.0).round() / 1000.0,
            "state": self.phase().as_str(),
            "generation": self.generation(),
        })
    }

    pub(crate) fn export(&self, m: &crate::metrics::Metrics) {
        m.replica_applied_seq.set(self.applied() as i64);
        m.replica_lag_events.set(self.lag_events() as i64);
        m.replica_lag_seconds.set(self.lag_seconds());
    }
}
