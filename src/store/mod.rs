//! Storage: the sled event log (one generation at a time) with its memory image,
//! the group-commit writer and its durability barrier, the marks and checkpoints
//! that guard against a lost tail, the meta database, and the LOCK file.
//!
//! Layout of the data dir:
//! ```text
//! storage/LOCK          pid and host of the owner
//! storage/CURRENT       id of the live generation
//! storage/MARK          generation and last durable sequence (high-water mark)
//! storage/gen-<id>/     sled: the log, one key per event
//! storage/gen-<id>/checkpoint   the memory image at some sequence (gzip'd bincode)
//! storage/meta/         sled: sessions, backup audit, Kafka cursor (survive restores)
//! ```

pub(crate) mod checkpoint;
pub(crate) mod commit;
pub(crate) mod gen;
pub mod history;
pub(crate) mod lock;
pub(crate) mod mark;
pub(crate) mod meta;
#[cfg(test)]
mod model_check;
pub mod replay;
pub(crate) mod snapshot;
pub(crate) mod writer;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot, watch};

pub(crate) use gen::Gen;
pub(crate) use meta::Meta;
pub(crate) use snapshot::Snapshot;
pub(crate) use writer::{Durable, Exclusive, Health, Outcome, SwapError, WriteError};

use crate::domain::Command;
use crate::metrics::Metrics;

/// A storage failure or a store that must not be served as it is. In a request
/// every variant is a 500 (the API never sees the refusals: they stop a start);
/// at start `NoCurrent`, `LostTail` and `Damaged` are refusals (exit 2, unless a
/// backup in the restore dir replaces the store) and the rest faults (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt store: {0}")]
    Corrupt(String),
    #[error(
        "log ends at event {have} but event {acked} was acknowledged; restore the newest backup"
    )]
    LostTail { have: u64, acked: u64 },
    /// CURRENT (which generation is live) is missing while generations exist,
    /// unreadable, or names none of them: the store does not guess which one to
    /// serve. A backup (the restore dir, `taskledger restore`) replaces them all,
    /// keeping them aside; or the user writes the id into CURRENT.
    #[error("{}: {why}; generations found: {}; put a backup into the restore dir or run `taskledger restore FILE` (they are kept aside), or write the id of the one to serve into it", path.display(), listed(gens))]
    NoCurrent {
        path: PathBuf,
        why: String,
        gens: Vec<u64>,
    },
    /// A generation's files cannot be read (sled refuses or panics on them).
    #[error("the store in gen-{gen} is damaged: {why}; restore the newest backup")]
    Damaged { gen: u64, why: String },
}

/// Runs `f` on generation `gen`'s files; a panic inside sled (it panics on some
/// damaged files) or a corruption error becomes [`StoreError::Damaged`].
pub(crate) fn guarded<T>(
    gen: u64,
    f: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Err(StoreError::Sled(sled::Error::Corruption { .. }))) => Err(StoreError::Damaged {
            gen,
            why: "sled reports corruption".into(),
        }),
        Ok(Err(StoreError::Sled(sled::Error::ReportableBug(b)))) => Err(StoreError::Damaged {
            gen,
            why: format!("sled cannot read it ({b})"),
        }),
        Ok(Err(StoreError::Sled(sled::Error::Unsupported(u)))) => Err(StoreError::Damaged {
            gen,
            why: format!("sled cannot read it ({u})"),
        }),
        Ok(Err(StoreError::Corrupt(why))) => Err(StoreError::Damaged { gen, why }),
        Ok(r) => r,
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "sled panicked reading it".into());
            Err(StoreError::Damaged {
                gen,
                why: format!("sled cannot read it ({why})"),
            })
        }
    }
}

/// Bound on queued commands: beyond it callers wait, which is the backpressure.
const QUEUE: usize = 8192;

pub struct Store {
    data_dir: PathBuf,
    shared: Arc<writer::Shared>,
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
    durable: watch::Receiver<Durable>,
    pub(crate) meta: Meta,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

use writer::{ExclusiveReq, Msg, ReplicateReq, WriteReq};

fn gen_dir(data_dir: &Path, id: u64) -> PathBuf {
    data_dir.join(format!("gen-{id}"))
}

/// The generation ids present in the data dir, ascending.
fn generations(data_dir: &Path) -> Result<Vec<u64>, StoreError> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(data_dir)? {
        let name = entry?.file_name().to_string_lossy().to_string();
        if let Some(id) = name
            .strip_prefix("gen-")
            .and_then(|n| n.parse::<u64>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn listed(ids: &[u64]) -> String {
    ids.iter()
        .map(|i| format!("gen-{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads CURRENT (creating generation 1 on a fresh dir) and removes leftovers:
/// generations that were being built or were retired when the process stopped.
/// Only a CURRENT that names an existing generation proves the others are not
/// live; without one, nothing is deleted and the start is refused.
fn current_gen(data_dir: &Path) -> Result<u64, StoreError> {
    let cur = data_dir.join("CURRENT");
    let gens = generations(data_dir)?;
    let refuse = |why: String| StoreError::NoCurrent {
        path: cur.clone(),
        why,
        gens: gens.clone(),
    };
    let id = match fs::read(&cur) {
        Ok(bytes) => match std::str::from_utf8(&bytes).ok().map(str::trim) {
            Some(text) => text
                .parse::<u64>()
                .map_err(|_| refuse(format!("holds {text:?}, not a generation id")))?,
            None => {
                return Err(refuse(format!(
                    "holds {} bytes that are not text",
                    bytes.len()
                )))
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && gens.is_empty() => {
            write_current(data_dir, 1)?;
            1
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse("is missing".into()))
        }
        Err(e) => return Err(refuse(format!("cannot be read ({e})"))),
    };
    // A fresh dir may have CURRENT before its first generation exists.
    if !gens.is_empty() && !gens.contains(&id) {
        return Err(refuse(format!("names gen-{id}, which does not exist")));
    }
    for other in gens.into_iter().filter(|g| *g != id) {
        tracing::info!(dir = %format!("gen-{other}"), "removing leftover generation");
        let _ = fs::remove_dir_all(gen_dir(data_dir, other));
    }
    Ok(id)
}

pub(crate) fn write_current(data_dir: &Path, id: u64) -> Result<(), StoreError> {
    let tmp = data_dir.join(".CURRENT.tmp");
    {
        use std::io::Write;
        let mut f = fs::File::create(&tmp)?;
        f.write_all(format!("{id}\n").as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, data_dir.join("CURRENT"))?;
    fs::File::open(data_dir)?.sync_all()?;
    Ok(())
}

/// Opens the live generation alone, for offline commands (rebuild, check, restore).
pub fn open_offline(data_dir: &Path) -> Result<Gen, StoreError> {
    let id = current_gen(data_dir)?;
    guarded(id, || Gen::open(id, &gen_dir(data_dir, id)))
}

/// The live generation id (CURRENT), without opening it.
pub(crate) fn live_gen_id(data_dir: &Path) -> Result<u64, StoreError> {
    current_gen(data_dir)
}

/// Why a generation is set aside once a restore has replaced it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Aside {
    /// Its files could not be read.
    Damaged,
    /// No valid CURRENT said whether it was the live one.
    Unreferenced,
}

/// Moves a generation aside (kept for inspection, never deleted) once a restore
/// has replaced it; answers where it went.
pub(crate) fn set_aside(data_dir: &Path, id: u64, why: Aside) -> Result<PathBuf, StoreError> {
    let from = gen_dir(data_dir, id);
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
    let kind = match why {
        Aside::Damaged => "damaged",
        Aside::Unreferenced => "unreferenced",
    };
    let to = data_dir.join(format!("{kind}-gen-{id}-{stamp}"));
    fs::rename(&from, &to)?;
    Ok(to)
}

/// The high-water mark recorded for generation `gen`, if any.
pub(crate) fn recorded_mark(data_dir: &Path, gen: u64) -> Option<u64> {
    mark::read(data_dir).and_then(|(g, s)| (g == gen).then_some(s))
}

/// A fresh generation directory next to `live_id`.
pub(crate) fn next_gen(data_dir: &Path, live_id: u64) -> Result<Gen, StoreError> {
    let mut id = live_id + 1;
    while gen_dir(data_dir, id).exists() {
        id += 1;
    }
    Gen::open(id, &gen_dir(data_dir, id))
}

impl Store {
    pub fn open(data_dir: &Path, metrics: Arc<Metrics>) -> Result<Store, StoreError> {
        let started = std::time::Instant::now();
        let id = current_gen(data_dir)?;
        let (gen, (state, loaded)) = guarded(id, || {
            let gen = Gen::open(id, &gen_dir(data_dir, id))?;
            let loaded = replay::load(&gen)?;
            Ok((gen, loaded))
        })?;
        if let Some(acked) = recorded_mark(data_dir, id) {
            if acked > state.seq {
                return Err(StoreError::LostTail {
                    have: state.seq,
                    acked,
                });
            }
        }
        tracing::info!(events = state.seq, from = ?loaded, ms = started.elapsed().as_millis() as u64, "memory image built");
        let meta = Meta::open(&data_dir.join("meta"))?;
        let snap = Arc::new(Snapshot {
            gen: Arc::new(gen),
            state,
        });
        let (tx, rx) = mpsc::channel(QUEUE);
        let (dtx, drx) = watch::channel(Durable::default());
        let (stx, _) = watch::channel(Durable::default());
        let shared = Arc::new(writer::Shared {
            data_dir: data_dir.to_path_buf(),
            live: Arc::new(ArcSwap::new(snap.clone())),
            durable: dtx,
            health: Arc::new(Health::default()),
            metrics,
            marks: mark::Marker::start(data_dir)?,
            gate: Arc::new(commit::CommitGate::default()),
            synced: stx,
            checkpointed: Mutex::new((0, 0)),
        });
        shared.marks.durable(&snap);
        if loaded == replay::Loaded::Replay && snap.last_seq() > 0 {
            shared.marks.checkpoint(snap.clone());
        }
        let threads = writer::spawn(shared.clone(), rx)?;
        Ok(Store {
            data_dir: data_dir.to_path_buf(),
            shared,
            tx: Mutex::new(Some(tx)),
            durable: drx,
            meta,
            threads: Mutex::new(threads),
        })
    }

    /// The published (durable) state; hold the Arc for the whole request so it
    /// sees one state.
    pub fn gen(&self) -> Arc<Snapshot> {
        self.shared.live.load_full()
    }

    pub(crate) fn durable(&self) -> watch::Receiver<Durable> {
        self.durable.clone()
    }

    /// Fsync'd on this node, in sync mode maybe not yet acknowledged by the
    /// broker nor visible: what the log relay publishes.
    pub(crate) fn synced(&self) -> watch::Receiver<Durable> {
        self.shared.synced.subscribe()
    }

    /// False once a write barrier failed (until restart) or once fenced.
    pub(crate) fn writable(&self) -> bool {
        self.shared.health.writable() && !self.shared.health.fenced()
    }

    pub(crate) fn fenced(&self) -> bool {
        self.shared.health.fenced()
    }

    /// Another node is primary: refuse every write from now on (SPEC §12).
    pub(crate) fn fence(&self) {
        self.shared.health.fence();
        self.shared.gate.fence();
    }

    /// Sync mode's gate, for the log relay to report the broker's progress.
    pub(crate) fn commit_gate(&self) -> Arc<commit::CommitGate> {
        self.shared.gate.clone()
    }

    fn sender(&self) -> Option<mpsc::Sender<Msg>> {
        self.tx.lock().ok().and_then(|g| g.clone())
    }

    /// Runs a command through the group-commit writer; returns once it is on disk.
    pub async fn execute(&self, user: &str, cmd: Command) -> Result<Outcome, WriteError> {
        let tx = self.sender().ok_or(WriteError::Closed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Msg::Write(WriteReq {
            cmd,
            user: user.to_string(),
            reply,
        }))
        .await
        .map_err(|_| WriteError::Closed)?;
        rx.await.map_err(|_| WriteError::Closed)?
    }

    /// Appends events the primary made (a replica's one write path), durably;
    /// answers once they are on disk and visible.
    pub(crate) async fn replicate(
        &self,
        events: Vec<(u64, crate::domain::StoredEvent)>,
    ) -> Result<Outcome, WriteError> {
        let tx = self.sender().ok_or(WriteError::Closed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Msg::Replicate(ReplicateReq { events, reply }))
            .await
            .map_err(|_| WriteError::Closed)?;
        rx.await.map_err(|_| WriteError::Closed)?
    }

    /// A fresh, empty generation directory for a restore to build into.
    pub(crate) fn prepare_gen(&self) -> Result<Gen, StoreError> {
        next_gen(&self.data_dir, self.gen().id())
    }

    /// Throws away a generation that was built but not swapped in.
    pub(crate) fn discard_gen(gen: Gen) {
        let dir = gen.dir.clone();
        drop(gen);
        let _ = fs::remove_dir_all(dir);
    }

    /// Swaps a durable generation and its image in between two write batches
    /// (a replica's new generation); the old one goes once no reader holds it.
    pub(crate) async fn swap_in(
        &self,
        gen: Gen,
        state: crate::domain::state::State,
    ) -> Result<(), SwapError> {
        let ex = self.exclusive().await?;
        match ex.swap(Arc::new(gen), state).await {
            Ok(Ok(old)) => {
                retire_gen(old);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SwapError::Closed),
        }
    }

    /// Pauses the writer between batches; see [`Exclusive`].
    pub(crate) async fn exclusive(&self) -> Result<Exclusive, SwapError> {
        let tx = self.sender().ok_or(SwapError::Closed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Msg::Exclusive(ExclusiveReq { reply }))
            .await
            .map_err(|_| SwapError::Closed)?;
        rx.await.map_err(|_| SwapError::Closed)
    }

    /// Stops the writer after it has answered everything queued, then leaves a
    /// checkpoint so the next start replays little.
    pub fn close(&self) {
        if let Ok(mut g) = self.tx.lock() {
            g.take();
        }
        join_all(&self.threads);
        let snap = self.gen();
        self.shared.marks.durable(&snap);
        let current = checkpoint::peek_seq(&snap.gen.dir, snap.id());
        if self.shared.health.writable() && current != Some(snap.last_seq()) {
            self.shared.marks.checkpoint(snap);
        }
        self.shared.marks.stop();
        if let Err(e) = self.meta.flush() {
            tracing::error!(error = %e, "final meta flush failed");
        }
    }
}

/// Joins every thread in `threads` (taking them out, so a second call is a no-op).
pub(crate) fn join_all(threads: &Mutex<Vec<std::thread::JoinHandle<()>>>) {
    let threads = threads
        .lock()
        .map(|mut t| std::mem::take(&mut *t))
        .unwrap_or_default();
    for t in threads {
        let _ = t.join();
    }
}

/// Deletes a swapped-out generation once the last in-flight reader lets go of it.
pub(crate) fn retire_gen(old: Arc<Gen>) {
    let spawned = std::thread::Builder::new()
        .name("tl-retire".into())
        .spawn(move || {
            let mut old = old;
            for _ in 0..600 {
                match Arc::try_unwrap(old) {
                    Ok(gen) => {
                        let dir = gen.dir.clone();
                        drop(gen);
                        let _ = fs::remove_dir_all(&dir);
                        return;
                    }
                    Err(still_shared) => {
                        old = still_shared;
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                }
            }
            tracing::warn!(
                "old generation still in use after a minute; it is removed at next start"
            );
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the retire thread; old generation is removed at next start");
    }
}
