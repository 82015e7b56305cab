//! The projection checkpoint: the memory image at sequence N, so a start replays
//! only the log after N. Written now and then in the background and at shutdown,
//! atomically (temp file, fsync, rename, fsync of the directory), LZ4-framed
//! (decompresses several times faster than gzip: start time is what it is for),
//! with the SHA-256 of the body in the header. Anything wrong with it — missing, unreadable, corrupt, another
//! format, ahead of a log that has not lost its tail — only means a full replay:
//! the log always wins. Owns `gen-N/checkpoint` and nothing else.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use lz4_flex::frame::{FrameDecoder, FrameEncoder};
use sha2::{Digest, Sha256};

use super::StoreError;
use crate::domain::state::State;

const MAGIC: &[u8; 8] = b"TLCKPT\0\0";
/// Bumped whenever [`State`]'s layout or meaning changes: an older checkpoint is
/// then ignored (one full replay, then a new one is written). 4: the image no
/// longer carries the writer's clock floor across a restore (format 3 images
/// written right after a restore could hold a newer timestamp than their log).
const FORMAT: u32 = 4;
const FILE: &str = "checkpoint";

pub(crate) fn path(gen_dir: &Path) -> PathBuf {
    gen_dir.join(FILE)
}

/// magic, format, generation, sequence, SHA-256 of the body.
const HEAD: usize = 8 + 4 + 8 + 8 + 32;

/// Writes the checkpoint of `state` for the generation in `gen_dir`.
pub(crate) fn write(gen_dir: &Path, gen_id: u64, state: &State) -> Result<(), StoreError> {
    let tmp = gen_dir.join(".checkpoint.tmp");
    {
        // Streamed into the file and hashed on the way: the compressed body
        // (a tenth of the image) is never held in memory, where it would add
        // to the peak of a restore or a busy server. The digest goes into the
        // header last; until the rename the file has no name readers look at.
        let mut f = File::create(&tmp)?;
        let mut head = Vec::with_capacity(HEAD);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&FORMAT.to_le_bytes());
        head.extend_from_slice(&gen_id.to_le_bytes());
        head.extend_from_slice(&state.seq.to_le_bytes());
        head.extend_from_slice(&[0u8; 32]);
        f.write_all(&head)?;
        let hashed = Hashing {
            inner: BufWriter::with_capacity(1 << 20, f),
            hasher: Sha256::new(),
        };
        // bincode writes field by field: buffer in front of the compressor.
        let mut w = BufWriter::with_capacity(1 << 20, FrameEncoder::new(hashed));
        bincode::serialize_into(&mut w, state)
            .map_err(|e| StoreError::Corrupt(format!("checkpoint encode: {e}")))?;
        let hashed = w
            .into_inner()
            .map_err(|e| e.into_error())?
            .finish()
            .map_err(|e| StoreError::Corrupt(format!("checkpoint compress: {e}")))?;
        let sum = hashed.hasher.finalize();
        let mut f = hashed.inner.into_inner().map_err(|e| e.into_error())?;
        f.seek(SeekFrom::Start((HEAD - 32) as u64))?;
        f.write_all(&sum)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path(gen_dir))?;
    File::open(gen_dir)?.sync_all()?;
    Ok(())
}

/// Passes bytes through and hashes what was written.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The header alone: which sequence a checkpoint claims, without decoding it.
pub(crate) fn peek_seq(gen_dir: &Path, gen_id: u64) -> Option<u64> {
    let mut f = File::open(path(gen_dir)).ok()?;
    let mut head = [0u8; HEAD];
    f.read_exact(&mut head).ok()?;
    header(&head, gen_id).ok().map(|(seq, _)| seq)
}

/// Why a checkpoint cannot be used; each only means a full replay at start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unusable {
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    /// Written by another version of taskledger: not damage.
    #[error("written by another version (format {found}, this version reads {FORMAT})")]
    OtherFormat { found: u32 },
    #[error("{0}")]
    Invalid(String),
}

fn header(head: &[u8; HEAD], gen_id: u64) -> Result<(u64, [u8; 32]), Unusable> {
    let invalid = |why: String| Unusable::Invalid(why);
    let word = |r: std::ops::Range<usize>| -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&head[r]);
        u64::from_le_bytes(b)
    };
    if &head[..8] != MAGIC {
        return Err(invalid("not a checkpoint".into()));
    }
    let found = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if found != FORMAT {
        return Err(Unusable::OtherFormat { found });
    }
    let gen = word(12..20);
    if gen != gen_id {
        return Err(invalid(format!("written for generation {gen}")));
    }
    let mut sum = [0u8; 32];
    sum.copy_from_slice(&head[28..HEAD]);
    Ok((word(20..28), sum))
}

/// Loads the checkpoint, or says why it cannot be used. The body is checked
/// against its digest before it is decoded: a damaged length field must never
/// reach the decoder (it could ask for terabytes).
pub(crate) fn read(gen_dir: &Path, gen_id: u64) -> Result<State, Unusable> {
    let invalid = |why: String| Unusable::Invalid(why);
    // Read twice through one descriptor rather than held whole in memory: the
    // file is a tenth of the image, and it would sit on top of the image's
    // peak while it is built. One descriptor: a checkpoint written meanwhile
    // replaces the name, not this file.
    let mut f = File::open(path(gen_dir))?;
    let mut head = [0u8; HEAD];
    f.read_exact(&mut head).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => invalid("shorter than its header".into()),
        _ => Unusable::Io(e),
    })?;
    let (seq, sum) = header(&head, gen_id)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut BufReader::with_capacity(1 << 20, &mut f), &mut hasher)?;
    if hasher.finalize().as_slice() != sum {
        return Err(invalid("checksum mismatch".into()));
    }
    f.seek(SeekFrom::Start(HEAD as u64))?;
    // bincode reads field by field: buffer behind the decompressor.
    let mut gz = BufReader::with_capacity(
        1 << 20,
        FrameDecoder::new(BufReader::with_capacity(1 << 20, f)),
    );
    let state: State =
        bincode::deserialize_from(&mut gz).map_err(|e| invalid(format!("does not decode: {e}")))?;
    let mut rest = Vec::new();
    gz.read_to_end(&mut rest)?;
    if !rest.is_empty() {
        return Err(invalid("trailing bytes after the state".into()));
    }
    if state.seq != seq {
        return Err(invalid(format!(
            "header says {seq}, body says {}",
            state.seq
        )));
    }
    Ok(state)
}
