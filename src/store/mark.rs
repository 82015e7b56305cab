//! Marks kept outside the log, so a log that lost its tail is noticed instead of
//! silently served (SPEC §6): the high-water mark file `MARK` (generation and the
//! last durable sequence, written in the background shortly after each barrier),
//! and the checkpoints, written by a background thread of their own. Owns
//! `storage/MARK` and the two threads; checkpoint files are [`super::checkpoint`]'s.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use super::snapshot::Snapshot;
use super::{checkpoint, StoreError};

const FILE: &str = "MARK";
/// Mixed into the check word so a zeroed or torn file never reads as a mark.
const SALT: u64 = 0x544c_4d41_524b_0001;
/// How often, at most, the mark is rewritten: one small fdatasync per interval.
const EVERY: Duration = Duration::from_millis(100);

fn encode(gen: u64, seq: u64) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[..8].copy_from_slice(&gen.to_le_bytes());
    b[8..16].copy_from_slice(&seq.to_le_bytes());
    b[16..].copy_from_slice(&(gen.rotate_left(17) ^ seq ^ SALT).to_le_bytes());
    b
}

/// The recorded mark `(generation, sequence)`, if there is a valid one.
pub(crate) fn read(data_dir: &Path) -> Option<(u64, u64)> {
    let bytes = std::fs::read(data_dir.join(FILE)).ok()?;
    let b: [u8; 24] = bytes.get(..24)?.try_into().ok()?;
    let gen = u64::from_le_bytes(b[..8].try_into().ok()?);
    let seq = u64::from_le_bytes(b[8..16].try_into().ok()?);
    (encode(gen, seq) == b).then_some((gen, seq))
}

fn open(data_dir: &Path) -> Result<File, StoreError> {
    let path = data_dir.join(FILE);
    let existed = path.exists();
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)?;
    if !existed {
        f.write_all_at(&[0u8; 24], 0)?;
        f.sync_all()?;
        File::open(data_dir)?.sync_all()?;
    }
    Ok(f)
}

fn write(f: &File, gen: u64, seq: u64) -> std::io::Result<()> {
    f.write_all_at(&encode(gen, seq), 0)?;
    f.sync_data()
}

/// Hands durable points and checkpoint requests to the background threads.
pub(crate) struct Marker {
    marks: Mutex<Option<mpsc::Sender<(u64, u64)>>>,
    checkpoints: Mutex<Option<mpsc::Sender<Arc<Snapshot>>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Marker {
    pub(crate) fn start(data_dir: &Path) -> Result<Marker, StoreError> {
        let file = open(data_dir)?;
        let (mtx, mrx) = mpsc::channel::<(u64, u64)>();
        let (ctx, crx) = mpsc::channel::<Arc<Snapshot>>();
        let m = std::thread::Builder::new()
            .name("tl-mark".into())
            .spawn(move || mark_loop(file, mrx))?;
        let c = std::thread::Builder::new()
            .name("tl-checkpoint".into())
            .spawn(move || checkpoint_loop(crx))?;
        Ok(Marker {
            marks: Mutex::new(Some(mtx)),
            checkpoints: Mutex::new(Some(ctx)),
            threads: Mutex::new(vec![m, c]),
        })
    }

    pub(crate) fn durable(&self, snap: &Snapshot) {
        if let Ok(g) = self.marks.lock() {
            if let Some(tx) = g.as_ref() {
                let _ = tx.send((snap.id(), snap.last_seq()));
            }
        }
    }

    pub(crate) fn checkpoint(&self, snap: Arc<Snapshot>) {
        if let Ok(g) = self.checkpoints.lock() {
            if let Some(tx) = g.as_ref() {
                let _ = tx.send(snap);
            }
        }
    }

    /// Lets both threads finish what they were given, then stops them.
    pub(crate) fn stop(&self) {
        if let Ok(mut g) = self.marks.lock() {
            g.take();
        }
        if let Ok(mut g) = self.checkpoints.lock() {
            g.take();
        }
        super::join_all(&self.threads);
    }
}

fn mark_loop(file: File, rx: mpsc::Receiver<(u64, u64)>) {
    let mut written = (0, 0);
    while let Ok(mut latest) = rx.recv() {
        std::thread::sleep(EVERY);
        while let Ok(m) = rx.try_recv() {
            latest = m;
        }
        if latest == written {
            continue;
        }
        match write(&file, latest.0, latest.1) {
            Ok(()) => written = latest,
            // The mark only ever catches lost tails; losing it loses no data.
            Err(e) => tracing::warn!(error = %e, "could not write the high-water mark"),
        }
    }
}

fn checkpoint_loop(rx: mpsc::Receiver<Arc<Snapshot>>) {
    while let Ok(mut snap) = rx.recv() {
        while let Ok(s) = rx.try_recv() {
            snap = s;
        }
        write_checkpoint(&snap);
    }
}

/// Writes the checkpoint of a snapshot, logging the outcome.
pub(crate) fn write_checkpoint(snap: &Snapshot) {
    let started = std::time::Instant::now();
    let dir: PathBuf = snap.gen.dir.clone();
    match checkpoint::write(&dir, snap.id(), &snap.state) {
        Ok(()) => tracing::info!(
            seq = snap.last_seq(),
            ms = started.elapsed().as_millis() as u64,
            "checkpoint written"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "could not write a checkpoint; the next start replays more of the log")
        }
    }
}
