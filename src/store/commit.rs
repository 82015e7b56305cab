//! `KAFKA_COMMIT=sync` (SPEC §12): answers to writes, and the state readers
//! see, wait after the fsync until the log topic's broker has acknowledged the
//! batch. The flusher hands fsync'd batches here; the log relay reports what
//! the broker acknowledged (or that this node was fenced); the committer thread
//! publishes and answers in order, and answers 503 to what waited too long.
//!
//! Touches only the writer's shared state (publication, metrics); the relay
//! talks to it through [`CommitGate`] alone.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::writer::{finish, publish, Durable, Job, Shared, WriteError};

/// Where sync mode stands; shared by the flusher, the committer and the relay.
#[derive(Default)]
pub(crate) struct CommitGate {
    armed: AtomicBool,
    timeout_ms: AtomicU64,
    inner: Mutex<Inner>,
    cv: Condvar,
}

#[derive(Default)]
struct Inner {
    /// The broker has every event of generation `gen` up to `seq`.
    acked: Durable,
    fenced: bool,
    closed: bool,
    queue: VecDeque<Queued>,
}

struct Queued {
    job: Job,
    /// The fsync succeeded (else the job is answered with the store's refusal).
    ok: bool,
    since: Instant,
    /// Callers were already answered (a timeout); it waits only to be published.
    answered: bool,
}

impl CommitGate {
    /// From now on writes wait for the broker (a primary in sync mode, before
    /// its first write).
    pub(crate) fn arm(&self, timeout: Duration) {
        self.timeout_ms
            .store(timeout.as_millis() as u64, Ordering::SeqCst);
        self.armed.store(true, Ordering::SeqCst);
    }

    pub(crate) fn armed(&self) -> bool {
        self.armed.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The broker acknowledged generation `gen` up to `seq` (the relay).
    pub(crate) fn acked(&self, gen: u64, seq: u64) {
        let mut g = self.lock();
        if g.acked.gen != gen || g.acked.seq < seq {
            g.acked = Durable { gen, seq };
            self.cv.notify_all();
        }
    }

    /// Another node is primary: nothing waiting will ever be acknowledged.
    pub(crate) fn fence(&self) {
        self.lock().fenced = true;
        self.cv.notify_all();
    }

    pub(super) fn enqueue(&self, jobs: Vec<Job>, ok: bool) {
        let since = Instant::now();
        let mut g = self.lock();
        g.queue.extend(jobs.into_iter().map(|job| Queued {
            job,
            ok,
            since,
            answered: false,
        }));
        self.cv.notify_all();
    }

    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.cv.notify_all();
    }
}

/// What the committer does next with the front of its queue.
enum Step {
    /// Publish (if it is the live generation's) and answer this job.
    Done(Queued, bool),
    Wait,
}

pub(super) fn committer(shared: Arc<Shared>) {
    let gate = shared.gate.clone();
    let mut g = gate.lock();
    loop {
        let timeout = Duration::from_millis(gate.timeout_ms.load(Ordering::Relaxed));
        match front(&shared, &mut g) {
            Step::Done(q, publishable) => {
                drop(g);
                if let (Job::Batch { snapshot, .. }, true) = (&q.job, publishable) {
                    publish(&shared, snapshot);
                }
                if !q.answered {
                    finish(&shared, q.job, publishable);
                }
                g = gate.lock();
                continue;
            }
            Step::Wait => {}
        }
        if g.closed {
            // Shutting down: what the broker never confirmed is not acknowledged.
            for q in g.queue.drain(..) {
                if !q.answered {
                    refuse(q.job, || WriteError::Closed);
                }
            }
            return;
        }
        // Past their deadline: answered 503 now, published later if the broker
        // does take them (a later batch's state includes them).
        let now = Instant::now();
        let mut next = now + Duration::from_secs(1);
        for q in g.queue.iter_mut().filter(|q| !q.answered) {
            if let Job::Batch { replies, .. } = &mut q.job {
                let deadline = q.since + timeout;
                if deadline <= now {
                    for (tx, _) in replies.drain(..) {
                        let _ = tx.send(Err(WriteError::NotCommitted(timeout.as_millis() as u64)));
                    }
                    q.answered = true;
                } else {
                    next = next.min(deadline);
                }
            }
        }
        // A barrier (a restore waiting for the writer to go idle) passes once
        // everything before it has been answered.
        let mut all_answered = true;
        for q in g.queue.iter_mut() {
            if let Job::Barrier(done) = &q.job {
                if all_answered && !q.answered {
                    let _ = done.send(());
                    q.answered = true;
                }
            }
            all_answered &= q.answered;
        }
        let wait = next.saturating_duration_since(Instant::now());
        g = gate
            .cv
            .wait_timeout(g, wait.max(Duration::from_millis(1)))
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0);
    }
}

/// Takes the front job off the queue when it is settled: acknowledged by the
/// broker, refused, or left behind by a swap.
fn front(shared: &Shared, g: &mut Inner) -> Step {
    let Some(q) = g.queue.front() else {
        return Step::Wait;
    };
    let settled = match &q.job {
        Job::Barrier(_) => Some(false),
        Job::Batch { snapshot, .. } => {
            let live = shared.live.load().id();
            if !q.ok || g.fenced {
                Some(false)
            } else if snapshot.id() != live {
                // A swap happened since: the old generation is never published.
                Some(false)
            } else if g.acked.gen == snapshot.id() && g.acked.seq >= snapshot.last_seq() {
                Some(true)
            } else {
                None
            }
        }
    };
    match (settled, g.queue.pop_front()) {
        (Some(publishable), Some(q)) => Step::Done(q, publishable),
        (None, Some(q)) => {
            g.queue.push_front(q);
            Step::Wait
        }
        (_, None) => Step::Wait,
    }
}

fn refuse(job: Job, why: impl Fn() -> WriteError) {
    match job {
        Job::Barrier(done) => {
            let _ = done.send(());
        }
        Job::Batch { replies, .. } => {
            for (tx, _) in replies {
                let _ = tx.send(Err(why()));
            }
        }
    }
}
