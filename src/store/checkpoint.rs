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
use crate::domain::state::{State, TaskPart};
use std::os::unix::fs::FileExt;

const MAGIC: &[u8; 8] = b"TLCKPT\0\0";
/// Bumped whenever [`State`]'s layout or meaning changes: an older checkpoint is
/// then ignored (one full replay, then a new one is written). 4: the image no
/// longer carries the writer's clock floor across a restore (format 3 images
/// written right after a restore could hold a newer timestamp than their log).
/// 5: the same image in parts — the image without its task map, then the task
/// map in [`TASK_PARTS`] slices, each its own LZ4 frame, with a footer of where
/// each ends — so a start decodes them on several threads. Format 4 is still
/// read (one frame, one thread).
const FORMAT: u32 = 5;
const SINGLE_FRAME: u32 = 4;
/// Slices of the task map: with the rest of the image, three decodes that two
/// cores share evenly enough.
const TASK_PARTS: usize = 2;
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
            written: 0,
        };
        let (rest, parts) = state.split_tasks(TASK_PARTS);
        let mut hashed = frame(hashed, &rest)?;
        let mut ends = vec![hashed.written];
        for part in &parts {
            hashed = frame(hashed, part)?;
            ends.push(hashed.written);
        }
        for end in &ends {
            hashed.write_all(&end.to_le_bytes())?;
        }
        hashed.write_all(&(ends.len() as u64).to_le_bytes())?;
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

/// One LZ4 frame holding `value`, written through `out`.
fn frame<W: Write>(out: W, value: &impl serde::Serialize) -> Result<W, StoreError> {
    // bincode writes field by field: buffer in front of the compressor.
    let mut w = BufWriter::with_capacity(1 << 20, FrameEncoder::new(out));
    bincode::serialize_into(&mut w, value)
        .map_err(|e| StoreError::Corrupt(format!("checkpoint encode: {e}")))?;
    w.into_inner()
        .map_err(|e| e.into_error())?
        .finish()
        .map_err(|e| StoreError::Corrupt(format!("checkpoint compress: {e}")))
}

/// Passes bytes through, hashes and counts what was written.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
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
    header(&head, gen_id).ok().map(|(seq, _, _)| seq)
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

fn header(head: &[u8; HEAD], gen_id: u64) -> Result<(u64, [u8; 32], u32), Unusable> {
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
    if found != FORMAT && found != SINGLE_FRAME {
        return Err(Unusable::OtherFormat { found });
    }
    let gen = word(12..20);
    if gen != gen_id {
        return Err(invalid(format!("written for generation {gen}")));
    }
    let mut sum = [0u8; 32];
    sum.copy_from_slice(&head[28..HEAD]);
    Ok((word(20..28), sum, found))
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
    let (seq, sum, format) = header(&head, gen_id)?;
    let mut hasher = Sha256::new();
    let body_len = std::io::copy(&mut BufReader::with_capacity(1 << 20, &mut f), &mut hasher)?;
    if hasher.finalize().as_slice() != sum {
        return Err(invalid("checksum mismatch".into()));
    }
    let at = |from: u64, to: u64| Span {
        file: &f,
        pos: HEAD as u64 + from,
        end: HEAD as u64 + to,
    };
    let state = if format == SINGLE_FRAME {
        decode::<State>(at(0, body_len))?
    } else {
        let ends = footer(&f, body_len)?;
        let spans: Vec<Span> = ends
            .iter()
            .scan(0, |from, &to| Some(at(std::mem::replace(from, to), to)))
            .collect();
        let Some((rest, parts)) = spans.split_first() else {
            return Err(invalid("no parts".into()));
        };
        let Some((first, more)) = parts.split_first() else {
            return Err(invalid("no task parts".into()));
        };
        // The first task part decodes (and becomes the map) on a thread of
        // its own; the rest of the image and the other parts on this one.
        let decode_first = || decode::<TaskPart>(first.clone()).map(State::task_map);
        std::thread::scope(|scope| {
            // No thread to be had: the same work on this one.
            let first = std::thread::Builder::new()
                .name("checkpoint-part".into())
                .spawn_scoped(scope, decode_first)
                .map_err(|_| decode_first());
            let rest = decode::<State>(rest.clone());
            let more: Result<Vec<TaskPart>, Unusable> =
                more.iter().map(|p| decode::<TaskPart>(p.clone())).collect();
            let first = match first {
                Ok(handle) => handle
                    .join()
                    .map_err(|_| invalid("a part's decoder panicked".into()))?,
                Err(decoded_here) => decoded_here,
            };
            Ok::<_, Unusable>(rest?.with_tasks(first?, more?))
        })?
    };
    if state.seq != seq {
        return Err(invalid(format!(
            "header says {seq}, body says {}",
            state.seq
        )));
    }
    Ok(state)
}

/// Where each part of a format-5 body ends (relative to the body), from its
/// footer: the part ends, then their count, as little-endian u64s.
fn footer(f: &File, body_len: u64) -> Result<Vec<u64>, Unusable> {
    let invalid = |why: &str| Unusable::Invalid(why.to_string());
    let word = |at: u64| -> Result<u64, Unusable> {
        let mut b = [0u8; 8];
        f.read_exact_at(&mut b, HEAD as u64 + at)?;
        Ok(u64::from_le_bytes(b))
    };
    let n = word(
        body_len
            .checked_sub(8)
            .ok_or_else(|| invalid("no footer"))?,
    )?;
    if n != 1 + TASK_PARTS as u64 {
        return Err(invalid("footer names another number of parts"));
    }
    let table = body_len
        .checked_sub(8 * (n + 1))
        .ok_or_else(|| invalid("shorter than its footer"))?;
    let ends = (0..n)
        .map(|i| word(table + 8 * i))
        .collect::<Result<Vec<u64>, _>>()?;
    let increasing = ends.windows(2).all(|w| w[0] <= w[1]);
    if !increasing || ends.last() != Some(&table) {
        return Err(invalid("footer does not describe the body"));
    }
    Ok(ends)
}

/// A byte range of the checkpoint file, read without moving a shared cursor:
/// the parts are read by several threads at once.
#[derive(Clone)]
struct Span<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Span<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// One LZ4 frame's value; nothing may follow it in its span.
fn decode<T: serde::de::DeserializeOwned>(span: Span<'_>) -> Result<T, Unusable> {
    let invalid = |why: String| Unusable::Invalid(why);
    // bincode reads field by field: buffer behind the decompressor.
    let mut gz = BufReader::with_capacity(
        1 << 20,
        FrameDecoder::new(BufReader::with_capacity(1 << 20, span)),
    );
    let value: T =
        bincode::deserialize_from(&mut gz).map_err(|e| invalid(format!("does not decode: {e}")))?;
    let mut rest = Vec::new();
    gz.read_to_end(&mut rest)?;
    if !rest.is_empty() {
        return Err(invalid("trailing bytes after the state".into()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{Event, GroupCreated, StoredEvent, TaskCreated, EVENT_VERSION};
    use crate::domain::{Id, Status};

    /// A group with `tasks` tasks.
    fn image(tasks: u64) -> State {
        let ev = |event| StoredEvent {
            version: EVENT_VERSION,
            event_id: uuid::Uuid::from_u128(7),
            ts_ms: 1_700_000_000_000,
            user: "alice".into(),
            event,
        };
        let g = Id::generate();
        let mut s = State::default();
        s.apply(
            1,
            &ev(Event::GroupCreated(GroupCreated {
                group_id: g.clone(),
                name: "g".into(),
                discussion: String::new(),
            })),
        );
        for i in 0..tasks {
            s.apply(
                i + 2,
                &ev(Event::TaskCreated(TaskCreated {
                    task_id: Id::generate(),
                    group_id: g.clone(),
                    group_name: "g".into(),
                    name: format!("task {i}"),
                    description: "words ".repeat(i as usize % 7),
                    status: Status::New,
                    start_date: None,
                    end_date: None,
                })),
            );
        }
        s
    }

    /// The body's digest made right again after an edit, so only the part
    /// under test is wrong.
    fn rehash(path: &Path) {
        let mut bytes = fs::read(path).unwrap();
        let sum = Sha256::digest(&bytes[HEAD..]);
        bytes[HEAD - 32..HEAD].copy_from_slice(&sum);
        fs::write(path, bytes).unwrap();
    }

    #[test]
    fn the_parts_read_back_as_the_image() {
        let dir = tempfile::tempdir().unwrap();
        for tasks in [0, 1, 2, 3, 500] {
            let s = image(tasks);
            write(dir.path(), 1, &s).unwrap();
            assert_eq!(read(dir.path(), 1).unwrap(), s, "{tasks} tasks");
        }
    }

    /// Checkpoints written before the parts (format 4: one frame) still load.
    #[test]
    fn a_single_frame_checkpoint_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let s = image(40);
        let body = frame(Vec::new(), &s).unwrap();
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&SINGLE_FRAME.to_le_bytes());
        file.extend_from_slice(&1u64.to_le_bytes());
        file.extend_from_slice(&s.seq.to_le_bytes());
        file.extend_from_slice(&Sha256::digest(&body));
        file.extend_from_slice(&body);
        fs::write(path(dir.path()), file).unwrap();
        assert_eq!(read(dir.path(), 1).unwrap(), s);
    }

    /// A footer that does not describe the body is refused (a full replay
    /// follows), whatever it claims: no panic, no huge allocation.
    #[test]
    fn a_footer_that_lies_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = image(30);
        let file = path(dir.path());
        type Edit = fn(&mut Vec<u8>);
        let edits: [(&str, Edit); 4] = [
            ("count", |b| {
                let n = b.len();
                b[n - 8..].copy_from_slice(&u64::MAX.to_le_bytes());
            }),
            ("order", |b| {
                let n = b.len();
                b[n - 32..n - 24].copy_from_slice(&u64::MAX.to_le_bytes());
            }),
            ("last end", |b| {
                let n = b.len();
                b[n - 16..n - 8].copy_from_slice(&1u64.to_le_bytes());
            }),
            ("truncated", |b| {
                b.truncate(HEAD + 5);
            }),
        ];
        for (what, edit) in edits {
            write(dir.path(), 1, &s).unwrap();
            let mut bytes = fs::read(&file).unwrap();
            edit(&mut bytes);
            fs::write(&file, bytes).unwrap();
            rehash(&file);
            match read(dir.path(), 1) {
                Err(Unusable::Invalid(_)) => {}
                other => panic!("{what}: {:?}", other.map(|s| s.seq)),
            }
        }
    }
}
