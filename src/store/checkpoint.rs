//! The projection checkpoint: the memory image at sequence N, so a start replays
//! only the log after N. Written now and then in the background and at shutdown,
//! atomically (temp file, fsync, rename, fsync of the directory), gzip'd (its CRC
//! is the checksum). Anything wrong with it — missing, unreadable, corrupt, another
//! format, ahead of a log that has not lost its tail — only means a full replay:
//! the log always wins. Owns `gen-N/checkpoint` and nothing else.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use super::StoreError;
use crate::domain::state::State;

const MAGIC: &[u8; 8] = b"TLCKPT\0\0";
/// Bumped whenever [`State`]'s layout changes: an older checkpoint is then ignored.
const FORMAT: u32 = 1;
const FILE: &str = "checkpoint";

pub(crate) fn path(gen_dir: &Path) -> PathBuf {
    gen_dir.join(FILE)
}

/// Writes the checkpoint of `state` for the generation in `gen_dir`.
pub(crate) fn write(gen_dir: &Path, gen_id: u64, state: &State) -> Result<(), StoreError> {
    let tmp = gen_dir.join(".checkpoint.tmp");
    {
        let f = File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        w.write_all(MAGIC)?;
        w.write_all(&FORMAT.to_le_bytes())?;
        w.write_all(&gen_id.to_le_bytes())?;
        w.write_all(&state.seq.to_le_bytes())?;
        let mut gz = GzEncoder::new(w, Compression::fast());
        bincode::serialize_into(&mut gz, state)
            .map_err(|e| StoreError::Corrupt(format!("checkpoint encode: {e}")))?;
        let w = gz.finish()?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path(gen_dir))?;
    File::open(gen_dir)?.sync_all()?;
    Ok(())
}

/// The header alone: which sequence a checkpoint claims, without decoding it.
pub(crate) fn peek_seq(gen_dir: &Path, gen_id: u64) -> Option<u64> {
    let mut f = File::open(path(gen_dir)).ok()?;
    let mut head = [0u8; 28];
    f.read_exact(&mut head).ok()?;
    header(&head, gen_id).ok()
}

fn header(head: &[u8; 28], gen_id: u64) -> Result<u64, String> {
    if &head[..8] != MAGIC {
        return Err("not a checkpoint".into());
    }
    let format = u32::from_le_bytes(head[8..12].try_into().unwrap_or_default());
    if format != FORMAT {
        return Err(format!("format {format}, this version reads {FORMAT}"));
    }
    let gen = u64::from_le_bytes(head[12..20].try_into().unwrap_or_default());
    if gen != gen_id {
        return Err(format!("written for generation {gen}"));
    }
    Ok(u64::from_le_bytes(
        head[20..28].try_into().unwrap_or_default(),
    ))
}

/// Loads the checkpoint, or says why it cannot be used.
pub(crate) fn read(gen_dir: &Path, gen_id: u64) -> Result<State, String> {
    let f = File::open(path(gen_dir)).map_err(|e| e.to_string())?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut head = [0u8; 28];
    r.read_exact(&mut head).map_err(|e| e.to_string())?;
    let seq = header(&head, gen_id)?;
    let mut gz = GzDecoder::new(r);
    let state: State = bincode::deserialize_from(&mut gz).map_err(|e| e.to_string())?;
    // Reading to the end makes the decoder check the CRC and length trailer.
    let mut rest = Vec::new();
    gz.read_to_end(&mut rest).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err("trailing bytes after the state".into());
    }
    if state.seq != seq {
        return Err(format!("header says {seq}, body says {}", state.seq));
    }
    Ok(state)
}
