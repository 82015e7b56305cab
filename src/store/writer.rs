//! The single write path: group commit in two stages.
//!
//! The *writer* thread takes every queued command, decides each against its own
//! memory image (which already holds the batches still being synced, so later
//! commands see earlier ones), appends the batch's events to sled, and hands the
//! batch with a snapshot of the image to the *flusher* thread. The flusher runs the
//! durability barrier (sled flush + fdatasync), and only then publishes the
//! snapshot to readers and answers the callers. While one batch is synced the next
//! is already being built, so the disk sees one barrier per batch, not per request.
//!
//! A failed barrier is fatal for writing (SPEC §6): nothing of that batch or any
//! later one is published, and the store refuses writes until restarted. A disk
//! that is nearly full refuses writes (507) before anything is appended.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::Instant;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::commit::CommitGate;
use super::gen::{encode_event, Gen};
use super::snapshot::Snapshot;
use super::{mark, StoreError};
use crate::domain::event::EVENT_VERSION;
use crate::domain::state::{State, Touched};
use crate::domain::time::now_ms;
use crate::domain::{decide, Command, DomainError, StoredEvent};
use crate::metrics::Metrics;

/// Upper bound on commands per batch: keeps one batch's latency bounded.
const MAX_BATCH: usize = 1024;

/// Free space a write must leave on the data dir's filesystem: sled needs room
/// for its segment writes and compaction, and running it into ENOSPC mid-flush
/// would turn a full disk into a fatal write failure.
pub(crate) const SPACE_RESERVE: u64 = 32 * 1024 * 1024;

/// Take a checkpoint after this many events since the last one.
const CHECKPOINT_EVERY: u64 = 200_000;

pub(crate) const READ_ONLY: &str = "storage is read-only after a write failure; restart the server";
pub(crate) const FENCED: &str = "fenced: another node is primary";

/// The newest durable point of the live generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Durable {
    pub(crate) gen: u64,
    pub(crate) seq: u64,
}

/// What a command did, once it is durable.
#[derive(Debug)]
pub struct Outcome {
    /// The record the command created or changed, read after apply.
    pub(crate) touched: Touched,
    /// Sequence of the last event of this command, or of the log when it wrote
    /// none: a reader that has applied this far sees the command's effect.
    pub(crate) seq: u64,
}

/// Why a command was not acknowledged; nothing of it is visible anywhere.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// 400, 404 or 409: `decide` refused it (see [`DomainError`]).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// 503: an earlier write failure made the store read-only until restarted.
    #[error("{}", READ_ONLY)]
    ReadOnly,
    /// 507: the disk is (nearly) full; writes work again once space is freed.
    #[error("insufficient storage")]
    NoSpace,
    /// 503: the server is shutting down.
    #[error("the store is shutting down")]
    Closed,
    /// 503: another node was promoted; this one acknowledges no more writes.
    #[error("{}", FENCED)]
    Fenced,
    /// 503 (`KAFKA_COMMIT=sync`): the log topic's broker did not take the write
    /// in time; it is not acknowledged.
    #[error("not acknowledged: the log topic's broker did not confirm the write within {0} ms")]
    NotCommitted(u64),
    /// 500 (never from a request: replicas only): replicated events must
    /// continue the log exactly.
    #[error("replicated event {got} does not follow event {applied}")]
    OutOfOrder { applied: u64, got: u64 },
}

/// Why a restore could not swap its generation in (a 500; the old one stays live).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SwapError {
    /// CURRENT could not be pointed at the new generation; the old one stays live.
    #[error("storage failure writing CURRENT: {0}")]
    Current(super::StoreError),
    #[error("the store is shutting down")]
    Closed,
}

/// Whether writes are still accepted; false for good after a failed barrier.
#[derive(Debug)]
pub(crate) struct Health {
    writable: AtomicBool,
    fenced: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            writable: AtomicBool::new(true),
            fenced: AtomicBool::new(false),
        }
    }
}

impl Health {
    pub(crate) fn writable(&self) -> bool {
        self.writable.load(Ordering::SeqCst)
    }

    pub(crate) fn fenced(&self) -> bool {
        self.fenced.load(Ordering::SeqCst)
    }

    pub(crate) fn fence(&self) {
        self.fenced.store(true, Ordering::SeqCst);
    }

    fn poison(&self) {
        self.writable.store(false, Ordering::SeqCst);
    }
}

pub(crate) struct WriteReq {
    pub(crate) cmd: Command,
    pub(crate) user: String,
    pub(crate) reply: oneshot::Sender<Result<Outcome, WriteError>>,
}

/// Asks the writer to pause between batches and hand over the log end; writes
/// queue (they are not refused) until the returned [`Exclusive`] is used or dropped.
pub(crate) struct ExclusiveReq {
    pub(crate) reply: oneshot::Sender<Exclusive>,
}

struct SwapReq {
    gen: Arc<Gen>,
    state: State,
    reply: oneshot::Sender<Result<Arc<Gen>, SwapError>>,
}

/// The writer is paused while this lives: the published snapshot is the whole log.
pub(crate) struct Exclusive {
    pub(crate) snapshot: Arc<Snapshot>,
    end: Option<std_mpsc::Sender<ExclusiveEnd>>,
}

enum ExclusiveEnd {
    Release,
    Swap(Box<SwapReq>),
}

impl Exclusive {
    /// Swaps `gen` (durable, with its memory image `state`) in and resumes the
    /// writer on it. Answers with the retired generation.
    pub(crate) fn swap(
        mut self,
        gen: Arc<Gen>,
        state: State,
    ) -> oneshot::Receiver<Result<Arc<Gen>, SwapError>> {
        let (reply, rx) = oneshot::channel();
        if let Some(end) = self.end.take() {
            let _ = end.send(ExclusiveEnd::Swap(Box::new(SwapReq { gen, state, reply })));
        }
        rx
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        if let Some(end) = self.end.take() {
            let _ = end.send(ExclusiveEnd::Release);
        }
    }
}

/// Events made elsewhere (by the primary, SPEC §12) to append as they are: the
/// same append, barrier and publication as commands, without `decide`.
pub(crate) struct ReplicateReq {
    pub(crate) events: Vec<(u64, StoredEvent)>,
    pub(crate) reply: oneshot::Sender<Result<Outcome, WriteError>>,
}

pub(crate) enum Msg {
    Write(WriteReq),
    Replicate(ReplicateReq),
    Exclusive(ExclusiveReq),
}

pub(super) type Reply = (oneshot::Sender<Result<Outcome, WriteError>>, Outcome);

pub(super) enum Job {
    Batch {
        snapshot: Arc<Snapshot>,
        events: u64,
        commands: usize,
        started: Instant,
        replies: Vec<Reply>,
    },
    Barrier(std_mpsc::Sender<()>),
}

/// What the writer and flusher share with the store.
pub(crate) struct Shared {
    pub(crate) data_dir: PathBuf,
    pub(crate) live: Arc<ArcSwap<Snapshot>>,
    pub(crate) durable: watch::Sender<Durable>,
    pub(crate) health: Arc<Health>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) marks: mark::Marker,
    /// `KAFKA_COMMIT=sync`: answers wait for the log topic's broker.
    pub(crate) gate: Arc<CommitGate>,
    /// Fsync'd, maybe not yet published (sync mode): what the log relay may send.
    pub(crate) synced: watch::Sender<Durable>,
    /// (generation, sequence) of the last checkpoint scheduled.
    pub(crate) checkpointed: std::sync::Mutex<(u64, u64)>,
}

struct Writer {
    shared: Arc<Shared>,
    gen: Arc<Gen>,
    state: State,
    /// Newest timestamp this process has written to any generation: new events
    /// are stamped no earlier, even after a restore of an older backup and a wall
    /// clock that went back. Kept here, not in the image: it is not derived from
    /// the live log, so a checkpoint holding it would differ from a replay.
    clock_floor: i64,
    jobs: std_mpsc::SyncSender<Job>,
}

/// Starts both threads on the published snapshot; they end when every sender of
/// `rx` is gone.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Msg>,
) -> Result<Vec<std::thread::JoinHandle<()>>, StoreError> {
    let snap = shared.live.load_full();
    let at = Durable {
        gen: snap.id(),
        seq: snap.last_seq(),
    };
    shared.durable.send_replace(at);
    shared.synced.send_replace(at);
    if let Ok(mut c) = shared.checkpointed.lock() {
        *c = (at.gen, at.seq);
    }
    let (jobs_tx, jobs_rx) = std_mpsc::sync_channel::<Job>(64);
    let w_shared = shared.clone();
    let sh = shared.clone();
    let flusher = std::thread::Builder::new()
        .name("tl-flusher".into())
        .spawn(move || flusher(jobs_rx, sh))?;
    let mut w = Writer {
        shared,
        gen: snap.gen.clone(),
        clock_floor: snap.state.last_ts,
        state: snap.state.clone(),
        jobs: jobs_tx,
    };
    let writer = std::thread::Builder::new()
        .name("tl-writer".into())
        .spawn(move || w.run(rx))?;
    let sh = w_shared;
    let committer = std::thread::Builder::new()
        .name("tl-committer".into())
        .spawn(move || super::commit::committer(sh))?;
    Ok(vec![writer, flusher, committer])
}

/// Bytes free for us on the filesystem of `dir`; `None` when it cannot be told.
pub(crate) fn free_space(dir: &std::path::Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    Some((s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64))
}

impl Writer {
    fn run(&mut self, mut rx: mpsc::Receiver<Msg>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = Vec::new();
            let mut control = None;
            match first {
                Msg::Write(w) => batch.push(w),
                other => control = Some(other),
            }
            while control.is_none() && batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(Msg::Write(w)) => batch.push(w),
                    Ok(other) => control = Some(other),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.commit(batch);
            }
            match control {
                Some(Msg::Exclusive(x)) => self.exclusive(x),
                Some(Msg::Replicate(r)) => self.replicate(r),
                Some(Msg::Write(_)) | None => {}
            }
        }
        // Let the flusher answer everything still queued before we go.
        self.drain();
    }

    fn commit(&mut self, batch: Vec<WriteReq>) {
        let started = Instant::now();
        if !self.shared.health.writable() || self.shared.health.fenced() {
            let why = || {
                if self.shared.health.fenced() {
                    WriteError::Fenced
                } else {
                    WriteError::ReadOnly
                }
            };
            for req in batch {
                let _ = req.reply.send(Err(why()));
            }
            return;
        }
        let full = free_space(&self.shared.data_dir).is_some_and(|f| f < SPACE_RESERVE);
        let before = self.state.clone();
        // Timestamps never run backwards in the log, even if the wall clock does.
        let ts = now_ms().max(self.state.last_ts).max(self.clock_floor);
        self.clock_floor = ts;
        let mut pending: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        let mut commands = 0;
        for req in batch {
            let events = match decide(&self.state, req.cmd) {
                Ok(ev) => ev,
                Err(e) => {
                    let _ = req.reply.send(Err(e.into()));
                    continue;
                }
            };
            if full && !events.is_empty() {
                let _ = req.reply.send(Err(WriteError::NoSpace));
                continue;
            }
            commands += 1;
            let mut touched = Touched::Nothing;
            for event in events {
                let seq = self.state.seq + 1;
                let se = StoredEvent {
                    version: EVENT_VERSION,
                    event_id: Uuid::now_v7(),
                    ts_ms: ts,
                    user: req.user.clone(),
                    event,
                };
                self.state.apply(seq, &se);
                touched = self.state.touched(&se.event);
                pending.push((seq, encode_event(&se)));
            }
            let seq = self.state.seq;
            replies.push((req.reply, Outcome { touched, seq }));
        }
        if replies.is_empty() {
            return;
        }
        if !pending.is_empty() {
            if let Err(e) = self.gen.append(&pending) {
                // sled refuses writes only on a storage fault: treat it as one.
                tracing::error!(error = %e, "appending to the log failed; the store is now read-only");
                self.shared.health.poison();
                self.state = before;
                for (tx, _) in replies {
                    let _ = tx.send(Err(WriteError::ReadOnly));
                }
                return;
            }
        }
        // Even a batch of no-ops goes through the flusher: its answers may rest on
        // earlier batches that are not durable yet.
        let job = Job::Batch {
            snapshot: Arc::new(Snapshot {
                gen: self.gen.clone(),
                state: self.state.clone(),
            }),
            events: pending.len() as u64,
            commands,
            started,
            replies,
        };
        if let Err(std_mpsc::SendError(Job::Batch { replies, .. })) = self.jobs.send(job) {
            // The flusher only dies with the process; answer rather than hang callers.
            for (tx, _) in replies {
                let _ = tx.send(Err(WriteError::Closed));
            }
        }
    }

    /// Appends events made by the primary; duplicates (a resend after the
    /// primary's relay restarted) are skipped, a gap is refused whole.
    fn replicate(&mut self, req: ReplicateReq) {
        let started = Instant::now();
        if !self.shared.health.writable() {
            let _ = req.reply.send(Err(WriteError::ReadOnly));
            return;
        }
        if free_space(&self.shared.data_dir).is_some_and(|f| f < SPACE_RESERVE) {
            let _ = req.reply.send(Err(WriteError::NoSpace));
            return;
        }
        let before = self.state.clone();
        let mut pending: Vec<(u64, Vec<u8>)> = Vec::with_capacity(req.events.len());
        for (seq, se) in &req.events {
            if *seq <= self.state.seq {
                continue;
            }
            if *seq != self.state.seq + 1 {
                let applied = self.state.seq;
                self.state = before;
                let _ = req
                    .reply
                    .send(Err(WriteError::OutOfOrder { applied, got: *seq }));
                return;
            }
            self.state.apply(*seq, se);
            pending.push((*seq, encode_event(se)));
        }
        self.clock_floor = self.clock_floor.max(self.state.last_ts);
        if !pending.is_empty() {
            if let Err(e) = self.gen.append(&pending) {
                tracing::error!(error = %e, "appending replicated events failed; the store is now read-only");
                self.shared.health.poison();
                self.state = before;
                let _ = req.reply.send(Err(WriteError::ReadOnly));
                return;
            }
        }
        let outcome = Outcome {
            touched: Touched::Nothing,
            seq: self.state.seq,
        };
        let job = Job::Batch {
            snapshot: Arc::new(Snapshot {
                gen: self.gen.clone(),
                state: self.state.clone(),
            }),
            events: pending.len() as u64,
            commands: 1,
            started,
            replies: vec![(req.reply, outcome)],
        };
        if let Err(std_mpsc::SendError(Job::Batch { replies, .. })) = self.jobs.send(job) {
            for (tx, _) in replies {
                let _ = tx.send(Err(WriteError::Closed));
            }
        }
    }

    /// Waits until every batch handed to the flusher is synced and answered.
    fn drain(&self) -> bool {
        let (tx, done) = std_mpsc::channel();
        self.jobs.send(Job::Barrier(tx)).is_ok() && done.recv().is_ok()
    }

    fn exclusive(&mut self, req: ExclusiveReq) {
        if !self.drain() {
            return;
        }
        let (end_tx, end_rx) = std_mpsc::channel();
        let handle = Exclusive {
            snapshot: self.shared.live.load_full(),
            end: Some(end_tx),
        };
        if req.reply.send(handle).is_err() {
            return;
        }
        // Paused: commands queue in the channel until the holder is done.
        if let Ok(ExclusiveEnd::Swap(s)) = end_rx.recv() {
            self.swap(*s);
        }
    }

    fn swap(&mut self, req: SwapReq) {
        // CURRENT names the new generation before anything can be acknowledged from it,
        // so a crash right after the swap restarts on the new state.
        if let Err(e) = super::write_current(&self.shared.data_dir, req.gen.id) {
            let _ = req.reply.send(Err(SwapError::Current(e)));
            return;
        }
        let state = req.state;
        self.clock_floor = self.clock_floor.max(self.state.last_ts);
        let old = std::mem::replace(&mut self.gen, req.gen.clone());
        self.state = state.clone();
        let snap = Arc::new(Snapshot {
            gen: req.gen.clone(),
            state,
        });
        self.shared.live.store(snap.clone());
        let at = Durable {
            gen: snap.id(),
            seq: snap.last_seq(),
        };
        self.shared.durable.send_replace(at);
        self.shared.synced.send_replace(at);
        self.shared.marks.durable(&snap);
        self.shared.marks.checkpoint(snap);
        let _ = req.reply.send(Ok(old));
    }
}

fn flusher(rx: std_mpsc::Receiver<Job>, shared: Arc<Shared>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while let Ok(j) = rx.try_recv() {
            jobs.push(j);
        }
        // One barrier for everything drained; all of it is one generation, since a
        // swap waits for the flusher to go idle first.
        let mut synced: Option<Result<(), String>> = None;
        let mut newest: Option<Arc<Snapshot>> = None;
        for j in &jobs {
            if let Job::Batch {
                snapshot, events, ..
            } = j
            {
                if *events > 0 && synced.is_none() {
                    synced = Some(if shared.health.writable() {
                        snapshot.gen.sync().map_err(|e| e.to_string())
                    } else {
                        Err(READ_ONLY.to_string())
                    });
                }
                newest = Some(snapshot.clone());
            }
        }
        let ok = match &synced {
            Some(Err(e)) => {
                if shared.health.writable() {
                    tracing::error!(error = %e, "fsync of the log failed; the store is read-only until restarted");
                    shared.health.poison();
                }
                false
            }
            _ => shared.health.writable(),
        };
        if ok {
            if let Some(snap) = &newest {
                shared.synced.send_if_modified(|d| advance(d, snap));
            }
        }
        if shared.gate.armed() {
            // Sync mode: the committer answers once the broker has the batch.
            shared.gate.enqueue(jobs, ok);
            continue;
        }
        if ok {
            if let Some(snap) = &newest {
                publish(&shared, snap);
            }
        }
        for j in jobs {
            finish(&shared, j, ok);
        }
    }
    shared.gate.close();
}

fn advance(d: &mut Durable, snap: &Snapshot) -> bool {
    if d.gen == snap.id() && d.seq < snap.last_seq() {
        d.seq = snap.last_seq();
        true
    } else {
        false
    }
}

/// Makes `snap` the state readers see, and schedules checkpoints.
pub(super) fn publish(shared: &Shared, snap: &Arc<Snapshot>) {
    shared.live.store(snap.clone());
    shared.durable.send_if_modified(|d| advance(d, snap));
    shared.marks.durable(snap);
    let Ok(mut last) = shared.checkpointed.lock() else {
        return;
    };
    if last.0 != snap.id() {
        *last = (snap.id(), snap.last_seq());
    }
    if snap.last_seq() >= last.1 + CHECKPOINT_EVERY {
        last.1 = snap.last_seq();
        shared.marks.checkpoint(snap.clone());
    }
}

/// Answers a job's callers: their outcomes when `ok`, else the store's refusal.
pub(super) fn finish(shared: &Shared, job: Job, ok: bool) {
    match job {
        Job::Barrier(done) => {
            let _ = done.send(());
        }
        Job::Batch {
            events,
            commands,
            started,
            replies,
            ..
        } => {
            if ok {
                shared.metrics.events_appended.inc_by(events);
                shared
                    .metrics
                    .append_seconds
                    .observe(started.elapsed().as_secs_f64());
                shared.metrics.batch_size.observe(commands as f64);
                for (tx, out) in replies {
                    let _ = tx.send(Ok(out));
                }
            } else {
                let why = || {
                    if shared.health.fenced() {
                        WriteError::Fenced
                    } else {
                        WriteError::ReadOnly
                    }
                };
                for (tx, _) in replies {
                    let _ = tx.send(Err(why()));
                }
            }
        }
    }
}
