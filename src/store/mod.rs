//! Storage: the sled event log with its projections (one generation at a time),
//! the group-commit writer, the meta database, and the LOCK file.
//!
//! Layout of the data dir:
//! ```text
//! storage/LOCK          pid and host of the owner
//! storage/CURRENT       id of the live generation
//! storage/gen-<id>/     sled: the log and every projection (one tree)
//! storage/meta/         sled: sessions, backup audit, Kafka cursor (survive restores)
//! ```

pub mod gen;
pub mod keys;
pub mod lock;
pub mod meta;
pub mod overlay;
pub mod projection;
pub mod replay;
pub mod writer;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot, watch};

pub use gen::Gen;
pub use meta::Meta;
pub use writer::{Durable, Outcome, SwapError, WriteError};

use crate::domain::Command;
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt store: {0}")]
    Corrupt(String),
}

/// Bound on queued commands: beyond it callers wait, which is the backpressure.
const QUEUE: usize = 8192;

pub struct Store {
    data_dir: PathBuf,
    live: Arc<ArcSwap<Gen>>,
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
    durable: watch::Receiver<Durable>,
    pub meta: Meta,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

pub use writer::Exclusive;
use writer::{ExclusiveReq, Msg, SwapReq, WriteReq};

fn gen_dir(data_dir: &Path, id: u64) -> PathBuf {
    data_dir.join(format!("gen-{id}"))
}

/// Reads CURRENT (creating generation 1 on a fresh dir) and removes leftovers:
/// generations that were being built or were retired when the process stopped.
fn current_gen(data_dir: &Path) -> Result<u64, StoreError> {
    let cur = data_dir.join("CURRENT");
    let id = match fs::read_to_string(&cur) {
        Ok(s) => s.trim().parse::<u64>().map_err(|_| {
            StoreError::Corrupt(format!("CURRENT holds {s:?}, not a generation id"))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_current(data_dir, 1)?;
            1
        }
        Err(e) => return Err(e.into()),
    };
    for entry in fs::read_dir(data_dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(n) = name.strip_prefix("gen-") {
            if n.parse::<u64>().ok() != Some(id) {
                tracing::info!(dir = %name, "removing leftover generation");
                let _ = fs::remove_dir_all(entry.path());
            }
        }
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

/// Opens the live generation alone, for offline commands (rebuild, check).
pub fn open_offline(data_dir: &Path) -> Result<Gen, StoreError> {
    let id = current_gen(data_dir)?;
    Gen::open_with_cache(id, &gen_dir(data_dir, id), OFFLINE_CACHE_BYTES)
}

/// sled's cache for offline commands, which have the machine to themselves.
pub const OFFLINE_CACHE_BYTES: u64 = 512 * 1024 * 1024;

/// A fresh generation directory next to `live_id`, for the offline restore.
pub fn next_gen_offline(data_dir: &Path, live_id: u64) -> Result<Gen, StoreError> {
    let mut id = live_id + 1;
    while gen_dir(data_dir, id).exists() {
        id += 1;
    }
    Gen::open(id, &gen_dir(data_dir, id))
}

impl Store {
    pub fn open(data_dir: &Path, metrics: Arc<Metrics>) -> Result<Store, StoreError> {
        let id = current_gen(data_dir)?;
        let gen = Gen::open(id, &gen_dir(data_dir, id))?;
        let meta = Meta::open(&data_dir.join("meta"))?;
        let live = Arc::new(ArcSwap::from_pointee(gen));
        let (tx, rx) = mpsc::channel(QUEUE);
        let (dtx, drx) = watch::channel(Durable::default());
        let threads = writer::spawn(data_dir.to_path_buf(), live.clone(), rx, dtx, metrics)?;
        Ok(Store {
            data_dir: data_dir.to_path_buf(),
            live,
            tx: Mutex::new(Some(tx)),
            durable: drx,
            meta,
            threads: Mutex::new(threads),
        })
    }

    /// The live generation; hold the Arc for the whole request so it sees one state.
    pub fn gen(&self) -> Arc<Gen> {
        self.live.load_full()
    }

    pub fn durable(&self) -> watch::Receiver<Durable> {
        self.durable.clone()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
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

    /// A fresh, empty generation directory for a restore to build into.
    pub fn prepare_gen(&self) -> Result<Gen, StoreError> {
        let mut id = self.gen().id + 1;
        while gen_dir(&self.data_dir, id).exists() {
            id += 1;
        }
        Gen::open(id, &gen_dir(&self.data_dir, id))
    }

    /// Throws away a generation that was built but not swapped in.
    pub fn discard_gen(gen: Gen) {
        let dir = gen.dir.clone();
        drop(gen);
        let _ = fs::remove_dir_all(dir);
    }

    /// Makes `gen` live, atomically for readers and between two write batches.
    /// Fails with `Moved` when the log grew past `expect_last` in the meantime.
    pub async fn swap(
        &self,
        gen: Gen,
        expect_last: Option<u64>,
    ) -> Result<(), (SwapError, Option<Gen>)> {
        if let Err(e) = gen.db.flush() {
            return Err((SwapError::Storage(e.to_string()), Some(gen)));
        }
        let gen = Arc::new(gen);
        let tx = self.sender().ok_or((SwapError::Closed, None))?;
        let (reply, rx) = oneshot::channel();
        let req = SwapReq {
            gen: gen.clone(),
            expect_last,
            reply,
        };
        if tx.send(Msg::Swap(req)).await.is_err() {
            return Err((SwapError::Closed, Arc::into_inner(gen)));
        }
        match rx.await {
            Ok(Ok(old)) => {
                retire_gen(old);
                Ok(())
            }
            Ok(Err(e)) => Err((e, Arc::into_inner(gen))),
            Err(_) => Err((SwapError::Closed, Arc::into_inner(gen))),
        }
    }

    /// Pauses the writer between batches; see [`Exclusive`].
    pub async fn exclusive(&self) -> Result<Exclusive, SwapError> {
        let tx = self.sender().ok_or(SwapError::Closed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Msg::Exclusive(ExclusiveReq { reply }))
            .await
            .map_err(|_| SwapError::Closed)?;
        rx.await.map_err(|_| SwapError::Closed)
    }

    /// Stops the writer after it has answered everything queued, then flushes.
    pub fn close(&self) {
        if let Ok(mut g) = self.tx.lock() {
            g.take();
        }
        let threads = self
            .threads
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for t in threads {
            let _ = t.join();
        }
        if let Err(e) = self.gen().db.flush() {
            tracing::error!(error = %e, "final flush failed");
        }
        if let Err(e) = self.meta.flush() {
            tracing::error!(error = %e, "final meta flush failed");
        }
    }
}

/// Deletes a swapped-out generation once the last in-flight reader lets go of it.
pub fn retire_gen(old: Arc<Gen>) {
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
