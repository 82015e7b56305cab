//! The single write path: group commit in two stages.
//!
//! The *writer* thread takes every queued command, decides and applies them in one
//! overlay, and hands the resulting atomic sled batch to the *flusher* thread, which
//! fsyncs and only then answers the callers. While one batch is being fsync'd the next
//! one is already being built, so the disk sees one flush per batch, not per request.
//! Rejected commands are answered at once: they change nothing and need no flush.

use std::sync::{mpsc as std_mpsc, Arc};
use std::time::Instant;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::gen::Gen;
use super::keys;
use super::overlay::Overlay;
use super::projection::{append, project};
use crate::domain::event::{Event, EVENT_VERSION};
use crate::domain::time::now_ms;
use crate::domain::{decide, Command, DomainError, StoredEvent};
use crate::metrics::Metrics;

/// Upper bound on commands per batch: keeps one batch's latency bounded.
const MAX_BATCH: usize = 512;

/// The newest durable point of the live generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Durable {
    pub gen: u64,
    pub seq: u64,
}

#[derive(Debug)]
pub struct Outcome {
    /// Sequence of the last event this command appended (or the log end when it appended none).
    pub last_seq: u64,
    /// The record the command created or changed, bincode-encoded, read after apply.
    pub record: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("the store is shutting down")]
    Closed,
}

#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("the log moved on to {0} while the swap was prepared")]
    Moved(u64),
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("the store is shutting down")]
    Closed,
}

pub struct WriteReq {
    pub cmd: Command,
    pub user: String,
    pub reply: oneshot::Sender<Result<Outcome, WriteError>>,
}

pub struct SwapReq {
    pub gen: Arc<Gen>,
    /// Swap only if the live log still ends here (what the pre-restore backup covers).
    pub expect_last: Option<u64>,
    /// Answers with the retired generation.
    pub reply: oneshot::Sender<Result<Arc<Gen>, SwapError>>,
}

/// Asks the writer to pause between batches and hand over the log end; writes
/// queue (they are not refused) until the returned [`Exclusive`] is used or dropped.
pub struct ExclusiveReq {
    pub reply: oneshot::Sender<Exclusive>,
}

/// The writer is paused while this lives: the log of `gen` ends exactly at `seq`.
pub struct Exclusive {
    pub gen: Arc<Gen>,
    pub seq: u64,
    end: Option<std_mpsc::Sender<ExclusiveEnd>>,
}

enum ExclusiveEnd {
    Release,
    Swap(SwapReq),
}

impl Exclusive {
    /// Swaps `gen` in and resumes the writer on it.
    pub fn swap(mut self, gen: Arc<Gen>) -> oneshot::Receiver<Result<Arc<Gen>, SwapError>> {
        let (reply, rx) = oneshot::channel();
        if let Some(end) = self.end.take() {
            let _ = end.send(ExclusiveEnd::Swap(SwapReq {
                gen,
                expect_last: None,
                reply,
            }));
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

pub enum Msg {
    Write(WriteReq),
    Swap(SwapReq),
    Exclusive(ExclusiveReq),
}

type Reply = (oneshot::Sender<Result<Outcome, WriteError>>, Outcome);

enum Job {
    Batch {
        gen: Arc<Gen>,
        last_seq: u64,
        events: u64,
        commands: usize,
        started: Instant,
        replies: Vec<Reply>,
    },
    Barrier(std_mpsc::Sender<()>),
}

pub struct Writer {
    data_dir: std::path::PathBuf,
    live: Arc<ArcSwap<Gen>>,
    gen: Arc<Gen>,
    seq: u64,
    last_ts: i64,
    durable: watch::Sender<Durable>,
    jobs: std_mpsc::SyncSender<Job>,
}

/// Starts both threads; they end when every sender of `rx` is gone.
pub fn spawn(
    data_dir: std::path::PathBuf,
    live: Arc<ArcSwap<Gen>>,
    rx: mpsc::Receiver<Msg>,
    durable: watch::Sender<Durable>,
    metrics: Arc<Metrics>,
) -> Result<Vec<std::thread::JoinHandle<()>>, super::StoreError> {
    let gen = live.load_full();
    let seq = gen.last_seq()?;
    let last_ts = match gen.event(seq)? {
        Some(e) => e.ts_ms,
        None => 0,
    };
    durable.send_replace(Durable { gen: gen.id, seq });
    let (jobs_tx, jobs_rx) = std_mpsc::sync_channel::<Job>(64);
    let durable_f = durable.clone();
    let flusher = std::thread::Builder::new()
        .name("tl-flusher".into())
        .spawn(move || flusher(jobs_rx, durable_f, metrics))?;
    let mut w = Writer {
        data_dir,
        live,
        gen,
        seq,
        last_ts,
        durable,
        jobs: jobs_tx,
    };
    let writer = std::thread::Builder::new()
        .name("tl-writer".into())
        .spawn(move || w.run(rx))?;
    Ok(vec![writer, flusher])
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
                Some(Msg::Swap(s)) => self.swap(s),
                Some(Msg::Exclusive(x)) => self.exclusive(x),
                _ => {}
            }
        }
        // Let the flusher answer everything still queued before we go.
        let (tx, done) = std_mpsc::channel();
        if self.jobs.send(Job::Barrier(tx)).is_ok() {
            let _ = done.recv();
        }
    }

    fn commit(&mut self, batch: Vec<WriteReq>) {
        let started = Instant::now();
        let gen = self.gen.clone();
        let mut ov = Overlay::new(gen.tree());
        let first_seq = self.seq;
        // Timestamps never run backwards in the log, even if the wall clock does.
        let ts = now_ms().max(self.last_ts);
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        let mut commands = 0;
        for req in batch {
            let events = match decide(&ov, req.cmd) {
                Ok(ev) => ev,
                Err(e) => {
                    let _ = req.reply.send(Err(e.into()));
                    continue;
                }
            };
            commands += 1;
            let mut primary = None;
            for event in events {
                self.seq += 1;
                primary = primary_key(&event, self.seq);
                let se = StoredEvent {
                    version: EVENT_VERSION,
                    event_id: Uuid::now_v7(),
                    ts_ms: ts,
                    user: req.user.clone(),
                    event,
                };
                append(&mut ov, self.seq, &se);
                project(&mut ov, self.seq, &se);
            }
            let record = primary.and_then(|k| ov.get(&k));
            replies.push((
                req.reply,
                Outcome {
                    last_seq: self.seq,
                    record,
                },
            ));
        }
        if let Some(e) = ov.take_error() {
            self.fail(replies, first_seq, format!("read during commit: {e}"));
            return;
        }
        if ov.is_empty() {
            // Only idempotent no-ops: nothing to write, nothing to flush.
            for (tx, out) in replies {
                let _ = tx.send(Ok(out));
            }
            return;
        }
        if let Err(e) = gen.tree().apply_batch(ov.into_batch()) {
            self.fail(replies, first_seq, format!("apply batch: {e}"));
            return;
        }
        self.last_ts = ts;
        let job = Job::Batch {
            gen,
            last_seq: self.seq,
            events: self.seq - first_seq,
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

    fn fail(&mut self, replies: Vec<Reply>, first_seq: u64, why: String) {
        tracing::error!(error = %why, "group commit failed; batch dropped");
        self.seq = first_seq;
        for (tx, _) in replies {
            let _ = tx.send(Err(WriteError::Storage(why.clone())));
        }
    }

    /// Waits until every applied batch is flushed and answered.
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
            gen: self.gen.clone(),
            seq: self.seq,
            end: Some(end_tx),
        };
        if req.reply.send(handle).is_err() {
            return;
        }
        // Paused: commands queue in the channel until the holder is done.
        if let Ok(ExclusiveEnd::Swap(s)) = end_rx.recv() {
            self.swap(s);
        }
    }

    fn swap(&mut self, req: SwapReq) {
        // Everything queued for the old generation is answered before it goes.
        if !self.drain() {
            let _ = req.reply.send(Err(SwapError::Closed));
            return;
        }
        if let Some(expect) = req.expect_last {
            if expect != self.seq {
                let _ = req.reply.send(Err(SwapError::Moved(self.seq)));
                return;
            }
        }
        let (seq, last_ts) = match req.gen.last_seq().and_then(|s| Ok((s, req.gen.event(s)?))) {
            Ok((s, e)) => (s, e.map(|e| e.ts_ms).unwrap_or(0)),
            Err(e) => {
                let _ = req.reply.send(Err(SwapError::Storage(e.to_string())));
                return;
            }
        };
        // CURRENT names the new generation before anything can be acknowledged from it,
        // so a crash right after the swap restarts on the new state.
        if let Err(e) = super::write_current(&self.data_dir, req.gen.id) {
            let _ = req
                .reply
                .send(Err(SwapError::Storage(format!("CURRENT: {e}"))));
            return;
        }
        let old = std::mem::replace(&mut self.gen, req.gen.clone());
        self.live.store(req.gen.clone());
        self.seq = seq;
        self.last_ts = self.last_ts.max(last_ts);
        self.durable.send_replace(Durable {
            gen: req.gen.id,
            seq,
        });
        let _ = req.reply.send(Ok(old));
    }
}

/// Where the record a command touched lives, so its caller gets it back as committed.
fn primary_key(event: &Event, seq: u64) -> Option<Vec<u8>> {
    Some(match event {
        Event::UserCreated(e) => keys::user(&e.username),
        Event::GroupCreated(e) => keys::id(keys::GROUP, e.group_id),
        Event::GroupUpdated(e) => keys::id(keys::GROUP, e.group_id),
        Event::TaskCreated(e) => keys::id(keys::TASK, e.task_id),
        Event::TaskUpdated(e) => keys::id(keys::TASK, e.task_id),
        Event::TaskStatusChanged(e) => keys::id(keys::TASK, e.task_id),
        Event::CommentAdded(e) => keys::id_seq(keys::COMMENT, e.task_id, seq),
        Event::GroupDeleted(_) | Event::TaskDeleted(_) => return None,
    })
}

fn flusher(rx: std_mpsc::Receiver<Job>, durable: watch::Sender<Durable>, metrics: Arc<Metrics>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while let Ok(j) = rx.try_recv() {
            jobs.push(j);
        }
        // One fsync per generation touched (almost always exactly one).
        let mut flushed: Vec<(u64, Result<(), String>)> = Vec::new();
        for j in &jobs {
            if let Job::Batch { gen, .. } = j {
                if !flushed.iter().any(|(id, _)| *id == gen.id) {
                    let r = gen.db.flush().map(|_| ()).map_err(|e| e.to_string());
                    flushed.push((gen.id, r));
                }
            }
        }
        for j in jobs {
            match j {
                Job::Barrier(done) => {
                    let _ = done.send(());
                }
                Job::Batch {
                    gen,
                    last_seq,
                    events,
                    commands,
                    started,
                    replies,
                } => {
                    let result = flushed
                        .iter()
                        .find(|(id, _)| *id == gen.id)
                        .map(|(_, r)| r.clone())
                        .unwrap_or(Ok(()));
                    match result {
                        Ok(()) => {
                            durable.send_if_modified(|d| {
                                if d.gen == gen.id && d.seq < last_seq {
                                    d.seq = last_seq;
                                    true
                                } else {
                                    false
                                }
                            });
                            metrics.events_appended.inc_by(events);
                            metrics
                                .append_seconds
                                .observe(started.elapsed().as_secs_f64());
                            metrics.batch_size.observe(commands as f64);
                            for (tx, out) in replies {
                                let _ = tx.send(Ok(out));
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "fsync failed; writes in this batch are not acknowledged");
                            for (tx, _) in replies {
                                let _ = tx.send(Err(WriteError::Storage(format!("fsync: {e}"))));
                            }
                        }
                    }
                }
            }
        }
    }
}
