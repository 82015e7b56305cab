//! Reading archives: full streaming verification ([`verify_archive`]), the cheap
//! manifest-only read for listings ([`read_manifest`]) and a file's digest. Owns the
//! read stack (file → gzip → cap → tar) and every check on what comes out of it;
//! it only reads the file it is given and writes nothing.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use flate2::bufread::GzDecoder;

use super::{
    check_kind, event_line_id, invalid, parse_created_at, ArchiveError, FileEntry, Hashing, Limits,
    Manifest, Refusal, EVENTS_NAME, FORMAT, IO_BUF, MANIFEST_NAME, VERSION,
};

/// Events are small JSON objects (request bodies are capped well below this);
/// the cap keeps a newline-free member from being buffered whole as one "line".
const MAX_EVENT_LINE_BYTES: usize = 64 << 20;
const BLOCK: u64 = 512;
/// Zeros tolerated after the last member: our writer emits the 1 KiB
/// end-of-archive marker, other tar tools pad to a 10 KiB record.
const END_SLACK: u64 = 16 << 10;

/// Shared between the layers of the read stack. gzip and tar turn every failure
/// into an `io::Error`; this is how we later tell a failing disk (`Io`) from a
/// damaged or hostile archive (`Corrupt`, or `Invalid` past the cap).
#[derive(Default)]
struct Probe {
    file_error: RefCell<Option<io::Error>>,
    unpacked: Cell<u64>,
    cap: Cell<u64>,
    over_cap: Cell<bool>,
}

impl Probe {
    fn classify(&self, e: io::Error) -> ArchiveError {
        if let Some(original) = self.file_error.borrow_mut().take() {
            return ArchiveError::Io(original);
        }
        if self.over_cap.get() {
            return ArchiveError::Invalid {
                at: "archive".into(),
                why: format!(
                    "archive unpacks to more than {} bytes, more than its manifest and limits allow",
                    self.cap.get()
                ),
            };
        }
        ArchiveError::Corrupt(e)
    }
}

/// The archive file itself; remembers genuine read errors for [`Probe::classify`].
struct Source {
    file: File,
    probe: Rc<Probe>,
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.file.read(buf) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                let copy = io::Error::new(e.kind(), e.to_string());
                *self.probe.file_error.borrow_mut() = Some(e);
                Err(copy)
            }
            other => other,
        }
    }
}

/// Counts decompressed bytes and refuses to go past the probe's cap, so a
/// decompression bomb is stopped after at most one extra byte, whatever any
/// header claims.
struct Capped<R> {
    inner: R,
    probe: Rc<Probe>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let used = self.probe.unpacked.get();
        let room = self.probe.cap.get().saturating_sub(used);
        // One byte past the cap is enough to learn the stream does not end there.
        let want = usize::try_from(room.saturating_add(1)).map_or(buf.len(), |r| r.min(buf.len()));
        let n = self.inner.read(&mut buf[..want])?;
        let used = used + n as u64;
        self.probe.unpacked.set(used);
        if used > self.probe.cap.get() {
            self.probe.over_cap.set(true);
            return Err(io::Error::other("decompressed data exceeds its cap"));
        }
        Ok(n)
    }
}

type Stack = tar::Archive<Capped<GzDecoder<BufReader<Source>>>>;

fn open_stack(path: &Path, probe: &Rc<Probe>) -> Result<Stack, ArchiveError> {
    let file = File::open(path)?;
    let source = Source {
        file,
        probe: Rc::clone(probe),
    };
    let gz = GzDecoder::new(BufReader::with_capacity(IO_BUF, source));
    Ok(tar::Archive::new(Capped {
        inner: gz,
        probe: Rc::clone(probe),
    }))
}

fn round_up(n: u64) -> u64 {
    n.saturating_add(BLOCK - 1) & !(BLOCK - 1)
}

// ---------------------------------------------------------------------------
// Checks of member names and of the manifest.

/// A member name must be a single plain file name: no directory part, nothing
/// that could climb out of wherever a tool might unpack it.
fn check_plain_name(name: &[u8]) -> Result<&str, ArchiveError> {
    let shown = String::from_utf8_lossy(name);
    let Ok(text) = std::str::from_utf8(name) else {
        return invalid(&*shown, format!("member name {shown:?} is not UTF-8"));
    };
    if text.is_empty() || text == "." || text == ".." || text.contains(['/', '\\']) {
        return invalid(
            text,
            format!("member name {shown:?} is not a plain file name"),
        );
    }
    Ok(text)
}

fn member_name<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String, ArchiveError> {
    let raw = entry.path_bytes();
    let kind = entry.header().entry_type();
    if kind != tar::EntryType::Regular {
        let shown = String::from_utf8_lossy(&raw);
        return invalid(
            &*shown,
            format!("member {shown:?} is not a regular file ({kind:?})"),
        );
    }
    check_plain_name(&raw).map(str::to_string)
}

/// Everything a manifest must say about itself before any member is trusted.
fn validate_manifest(
    m: &Manifest,
    manifest_bytes: u64,
    limits: &Limits,
) -> Result<(), ArchiveError> {
    if m.format != FORMAT {
        return invalid(
            MANIFEST_NAME,
            format!("not a taskledger backup (format {:?})", m.format),
        );
    }
    if m.version != VERSION {
        return invalid(
            MANIFEST_NAME,
            format!("unsupported backup version {}", m.version),
        );
    }
    parse_created_at(&m.created_at)?;
    check_kind(&m.kind, MANIFEST_NAME)?;
    match (m.events, m.first_event_id) {
        (0, None) if m.last_event_id == 0 => {}
        (0, _) => {
            return invalid(
                MANIFEST_NAME,
                "manifest: an empty backup must have firstEventId null and lastEventId 0",
            )
        }
        (_, None) => {
            return invalid(
                MANIFEST_NAME,
                "manifest: events present but firstEventId is null",
            )
        }
        // Sequence numbers start at 1.
        (_, Some(0)) => return invalid(MANIFEST_NAME, "manifest: firstEventId must be at least 1"),
        (n, Some(first)) => {
            if first.checked_add(n - 1) != Some(m.last_event_id) {
                return invalid(
                    MANIFEST_NAME,
                    format!(
                        "manifest: {n} events from id {first} cannot end at id {}",
                        m.last_event_id
                    ),
                );
            }
        }
    }
    // Version 1 has exactly one data member; anything else is not ours.
    if m.files.len() != 1 || !m.files.contains_key(EVENTS_NAME) {
        let names: Vec<&str> = m.files.keys().map(String::as_str).collect();
        return invalid(
            MANIFEST_NAME,
            format!("manifest must list exactly {EVENTS_NAME}, it lists {names:?}"),
        );
    }
    let mut declared = manifest_bytes;
    for (name, entry) in &m.files {
        let hex_ok = entry.sha256.len() == 64
            && entry
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex_ok {
            return invalid(
                MANIFEST_NAME,
                format!("manifest: sha256 of {name} is not 64 lowercase hex digits"),
            );
        }
        declared = declared.saturating_add(entry.bytes);
    }
    if declared > limits.max_unpacked_bytes {
        return invalid(
            "archive",
            format!(
                "archive declares {declared} unpacked bytes, the limit is {}",
                limits.max_unpacked_bytes
            ),
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Reading.

/// Reads and checks the first member, leaving `probe` ready for the rest.
fn read_manifest_member<R: Read>(
    entries: &mut tar::Entries<'_, R>,
    limits: &Limits,
    probe: &Probe,
) -> Result<Manifest, ArchiveError> {
    let mut entry = match entries.next() {
        None => {
            return invalid(
                "archive",
                "archive is empty; manifest.json must be its first member",
            )
        }
        Some(entry) => entry.map_err(|e| probe.classify(e))?,
    };
    let name = member_name(&entry)?;
    if name != MANIFEST_NAME {
        return invalid(
            name.as_str(),
            format!("first member is {name:?}, expected {MANIFEST_NAME}"),
        );
    }
    let size = entry.size();
    if size > limits.max_manifest_bytes {
        return invalid(
            MANIFEST_NAME,
            format!(
                "{MANIFEST_NAME} is {size} bytes, the limit is {}",
                limits.max_manifest_bytes
            ),
        );
    }
    let mut data = Vec::new();
    entry
        .read_to_end(&mut data)
        .map_err(|e| probe.classify(e))?;
    if data.len() as u64 != size {
        return invalid(MANIFEST_NAME, format!("{MANIFEST_NAME} is truncated"));
    }
    let manifest: Manifest = serde_json::from_slice(&data).map_err(ArchiveError::Manifest)?;
    validate_manifest(&manifest, size, limits)?;
    Ok(manifest)
}

/// Reads only the manifest (first member) cheaply, for listing: checked as [`verify_archive`]
/// checks it, but nothing after it is read. Invalid if the first member is not `manifest.json`.
pub(crate) fn read_manifest(path: &Path, limits: &Limits) -> Result<Manifest, ArchiveError> {
    let probe = Rc::new(Probe::default());
    probe
        .cap
        .set(BLOCK.saturating_add(limits.max_manifest_bytes));
    let mut archive = open_stack(path, &probe)?;
    let mut entries = archive.entries().map_err(|e| probe.classify(e))?.raw(true);
    read_manifest_member(&mut entries, limits, &probe)
}

/// sha256 + size of a file (for listing backups).
pub(crate) fn file_digest(path: &Path) -> io::Result<(u64, String)> {
    let mut reader = Hashing::new(File::open(path)?);
    io::copy(&mut reader, &mut io::sink())?;
    let (_, size, sha256) = reader.finish();
    Ok((size, sha256))
}

/// Streams and fully verifies an archive, calling `on_event(line_no, id, line_bytes)` for every
/// event line in order (line numbers from 1, bytes without the '\n'); `on_event` returning
/// `Err(why)` aborts with [`ArchiveError::Refused`], `why` its cause. All `on_event` work is provisional until this returns
/// `Ok`: the checksum of `events.ndjson` can only be confirmed after its last line.
///
/// Checked: the whole gzip stream up to its trailer CRC, and nothing after it; only zeros between
/// the tar end-of-archive marker and the gzip end; `manifest.json` first, within
/// `max_manifest_bytes`, right format and version, consistent counts; every later member a
/// regular file with a plain name, listed, not repeated, of the listed size and SHA-256; every
/// listed file present; decompressed bytes counted as they flow against the declared sizes and
/// `max_unpacked_bytes`; event lines JSON objects with consecutive ids matching the manifest,
/// each ending in '\n', none empty. Nothing is written to disk.
pub(crate) fn verify_archive<F>(
    path: &Path,
    limits: &Limits,
    mut on_event: F,
) -> Result<Manifest, ArchiveError>
where
    F: FnMut(u64, u64, &[u8]) -> Result<(), Refusal>,
{
    let probe = Rc::new(Probe::default());
    probe
        .cap
        .set(BLOCK.saturating_add(limits.max_manifest_bytes));
    let mut archive = open_stack(path, &probe)?;
    let manifest = {
        let mut entries = archive.entries().map_err(|e| probe.classify(e))?.raw(true);
        let manifest = read_manifest_member(&mut entries, limits, &probe)?;
        // From here on the manifest tells how much tar stream may follow.
        let rest = manifest.files.values().fold(END_SLACK, |acc, f| {
            acc.saturating_add(BLOCK).saturating_add(round_up(f.bytes))
        });
        probe
            .cap
            .set(round_up(probe.unpacked.get()).saturating_add(rest));
        check_members(&mut entries, &manifest, &probe, &mut on_event)?;
        manifest
    };

    // The tar reader stopped at the end-of-archive marker; damage after it is
    // only caught by reading on to the gzip trailer.
    let mut rest = archive.into_inner();
    let mut buf = vec![0u8; IO_BUF];
    loop {
        let n = rest.read(&mut buf).map_err(|e| probe.classify(e))?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return invalid("tar stream", "data after the end of the tar archive");
        }
    }
    let mut compressed = rest.inner.into_inner();
    if !compressed
        .fill_buf()
        .map_err(|e| probe.classify(e))?
        .is_empty()
    {
        return invalid("gzip stream", "data after the end of the gzip stream");
    }
    Ok(manifest)
}

/// Every member after the manifest; only `events.ndjson` can be listed in version 1.
fn check_members<R: Read, F>(
    entries: &mut tar::Entries<'_, R>,
    manifest: &Manifest,
    probe: &Probe,
    on_event: &mut F,
) -> Result<(), ArchiveError>
where
    F: FnMut(u64, u64, &[u8]) -> Result<(), Refusal>,
{
    let mut seen_events = false;
    for entry in entries {
        let mut entry = entry.map_err(|e| probe.classify(e))?;
        let name = member_name(&entry)?;
        if name == MANIFEST_NAME {
            return invalid(
                MANIFEST_NAME,
                format!("{MANIFEST_NAME} appears more than once"),
            );
        }
        let Some(listed) = manifest.files.get(&name) else {
            return invalid(
                name.as_str(),
                format!("member {name:?} is not listed in the manifest"),
            );
        };
        if seen_events {
            return invalid(name.as_str(), format!("duplicate member {name:?}"));
        }
        seen_events = true;
        // Checked before reading a byte, so a lying header costs nothing.
        if entry.size() != listed.bytes {
            return invalid(
                name.as_str(),
                format!(
                    "{name} is {} bytes in the tar header, the manifest says {}",
                    entry.size(),
                    listed.bytes
                ),
            );
        }
        check_events(&mut entry, manifest, listed, probe, on_event)?;
    }
    if !seen_events {
        return invalid(EVENTS_NAME, format!("{EVENTS_NAME} is missing"));
    }
    Ok(())
}

fn check_events<R: Read, F>(
    member: R,
    manifest: &Manifest,
    listed: &FileEntry,
    probe: &Probe,
    on_event: &mut F,
) -> Result<(), ArchiveError>
where
    F: FnMut(u64, u64, &[u8]) -> Result<(), Refusal>,
{
    let mut reader = BufReader::with_capacity(IO_BUF, Hashing::new(member));
    let first = manifest.first_event_id.unwrap_or(0);
    let mut line = Vec::new();
    let mut line_no = 0u64;
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_EVENT_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| probe.classify(e))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let at = || format!("{EVENTS_NAME} line {line_no}");
        let Some(body) = line.strip_suffix(b"\n") else {
            if line.len() > MAX_EVENT_LINE_BYTES {
                return invalid(
                    at(),
                    format!("line {line_no}: longer than {MAX_EVENT_LINE_BYTES} bytes"),
                );
            }
            if reader.get_ref().bytes < listed.bytes {
                return invalid(EVENTS_NAME, format!("{EVENTS_NAME} is truncated"));
            }
            return invalid(
                EVENTS_NAME,
                format!("{EVENTS_NAME} does not end with a newline"),
            );
        };
        let id = event_line_id(body).map_err(|source| ArchiveError::Line {
            line: line_no,
            source,
        })?;
        if line_no > manifest.events {
            return invalid(
                at(),
                format!(
                    "line {line_no}: more events than the manifest's {}",
                    manifest.events
                ),
            );
        }
        // Cannot overflow: the manifest was checked to end at first + events - 1.
        let expected = first + (line_no - 1);
        if id != expected {
            return invalid(
                at(),
                format!("line {line_no}: event id {expected} expected, got {id}"),
            );
        }
        on_event(line_no, id, body).map_err(|source| ArchiveError::Refused {
            line: line_no,
            source,
        })?;
    }
    let (_, bytes, sha256) = reader.into_inner().finish();
    if bytes != listed.bytes {
        return invalid(
            EVENTS_NAME,
            format!(
                "{EVENTS_NAME} is truncated ({bytes} of {} bytes)",
                listed.bytes
            ),
        );
    }
    if line_no != manifest.events {
        return invalid(
            EVENTS_NAME,
            format!(
                "{EVENTS_NAME} has {line_no} events, the manifest says {}",
                manifest.events
            ),
        );
    }
    // Count and consecutive ids from firstEventId already pin the last id to lastEventId.
    if sha256 != listed.sha256 {
        return invalid(EVENTS_NAME, format!("{EVENTS_NAME} checksum mismatch"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::archive::fixtures::*;
    use crate::backup::archive::LineError;
    use tempfile::TempDir;

    #[test]
    fn hand_built_archives_verify() {
        // The crafted archives below differ from this one only in their defect.
        let dir = TempDir::new().unwrap();
        let path = put_members(&dir, &good_members(1..=5));
        let (result, seen) = verify_collect(&path, &Limits::default());
        assert_eq!(result.unwrap().events, 5);
        assert_eq!(seen.len(), 5);

        // Zero padding after the end marker is what other tar tools write.
        let mut padded = tar_bytes(&good_members(1..=5));
        padded.extend(vec![0u8; 8 << 10]);
        let path = put(&dir, "padded.tar.gz", &gzip(&padded));
        verify(&path).unwrap();
    }

    #[test]
    fn corrupted_bytes_are_invalid() {
        let good = written_bytes(1000);
        let dir = TempDir::new().unwrap();
        let len = good.len();
        let mut tried = 0;
        for pos in (len / 4..3 * len / 4).step_by((len / 64).max(1)) {
            let mut bad = good.clone();
            bad[pos] ^= 0xFF;
            let path = put(&dir, "bad.tar.gz", &bad);
            invalid_msg(verify(&path));
            tried += 1;
        }
        assert!(tried >= 30);
    }

    #[test]
    fn truncated_files_are_invalid() {
        let good = written_bytes(200);
        let dir = TempDir::new().unwrap();
        let len = good.len();
        let cuts = (0..len).step_by(7).chain(len.saturating_sub(64)..len);
        for cut in cuts {
            let path = put(&dir, "cut.tar.gz", &good[..cut]);
            let msg = invalid_msg(verify(&path));
            assert!(!msg.is_empty(), "cut at {cut}");
        }
    }

    #[test]
    fn tampered_event_without_checksum_update() {
        let dir = TempDir::new().unwrap();
        let data = ndjson(1..=5);
        let manifest = manifest_for(&data, 5, Some(1), 5);
        let tampered = String::from_utf8(data)
            .unwrap()
            .replace(r#"{"id":3,"type":"X"}"#, r#"{"id":3,"type":"Y"}"#);
        let path = put_members(
            &dir,
            &[
                manifest_member(&manifest),
                raw(EVENTS_NAME, tampered.as_bytes()),
            ],
        );
        let (result, seen) = verify_collect(&path, &Limits::default());
        assert_eq!(invalid_msg(result), "events.ndjson checksum mismatch");
        // The lines were handed out before the checksum could be known.
        assert_eq!(seen.len(), 5);
    }

    #[test]
    fn event_line_defects() {
        let dir = TempDir::new().unwrap();
        // The manifest vouches for `data` and declares `ids`, so only the line defect is left.
        let check = |data: &[u8], ids: std::ops::RangeInclusive<u64>, needle: &str| {
            let count = ids.clone().count() as u64;
            let members = members_with_events(data, count, Some(*ids.start()), *ids.end());
            let path = put_members(&dir, &members);
            assert_invalid(verify(&path), needle);
        };
        let one = |l: &str| format!("{l}\n").into_bytes();

        check(
            &ndjson([1, 2, 4, 5]),
            1..=4,
            "line 3: event id 3 expected, got 4",
        );
        check(
            &ndjson([1, 2, 2]),
            1..=3,
            "line 3: event id 3 expected, got 2",
        );
        check(&ndjson([2, 3]), 1..=2, "line 1: event id 1 expected, got 2");
        check(&ndjson([1, 2]), 1..=3, "has 2 events, the manifest says 3");
        check(&ndjson([1, 2, 3]), 1..=2, "line 3: more events than");
        let not_empty = members_with_events(&ndjson([1]), 0, None, 0);
        let path = put_members(&dir, &not_empty);
        assert_invalid(verify(&path), "line 1: more events than the manifest's 0");
        let unterminated = ndjson([1, 2]);
        let unterminated = &unterminated[..unterminated.len() - 1];
        check(unterminated, 1..=2, "does not end with a newline");
        let blank = format!("{}\n\n{}\n", r#"{"id":1}"#, r#"{"id":2}"#);
        check(blank.as_bytes(), 1..=2, "line 2: empty line");
        check(&one("[1]"), 1..=1, "line 1: not a JSON object");
        check(&one(r#" {"id":1}"#), 1..=1, "line 1: not a JSON object");
        check(&one(r#"{"id":"1"}"#), 1..=1, "line 1: bad event JSON");
        check(&one(r#"{"id":-1}"#), 1..=1, "line 1: bad event JSON");
        check(&one(r#"{"type":"X"}"#), 1..=1, "missing field `id`");
        check(&one(r#"{"id":1,"id":1}"#), 1..=1, "duplicate field `id`");
        check(&one(r#"{"id":1,"x":}"#), 1..=1, "line 1: bad event JSON");
        check(
            &one(r#"{"id":1} {"id":2}"#),
            1..=1,
            "line 1: bad event JSON",
        );
    }

    fn invalid_at<T: std::fmt::Debug>(result: Result<T, ArchiveError>) -> String {
        match result {
            Err(ArchiveError::Invalid { at, .. }) => at,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_part_and_keep_their_cause() {
        use std::error::Error as _;
        let dir = TempDir::new().unwrap();
        let members = members_with_events(&ndjson([1, 2, 4]), 3, Some(1), 3);
        assert_eq!(
            invalid_at(verify(&put_members(&dir, &members))),
            "events.ndjson line 3"
        );
        let mut members = good_members(1..=3);
        members.insert(1, raw("notes.txt", b"hello"));
        assert_eq!(
            invalid_at(verify(&put_members(&dir, &members))),
            "notes.txt"
        );
        let data = ndjson(1..=3);
        let mut m = manifest_for(&data, 3, Some(1), 3);
        m.version = 2;
        let path = put_members(&dir, &[manifest_member(&m), raw(EVENTS_NAME, &data)]);
        assert_eq!(
            invalid_at(read_manifest(&path, &Limits::default())),
            "manifest.json"
        );
        let mut inner = tar_bytes(&good_members(1..=3));
        inner.extend(b"junk");
        let path = put(&dir, "junk.tar.gz", &gzip(&inner));
        assert_eq!(invalid_at(verify(&path)), "tar stream");

        let bad_json = members_with_events(b"{\"id\":\"1\"}\n", 1, Some(1), 1);
        match verify(&put_members(&dir, &bad_json)) {
            Err(e @ ArchiveError::Line { line: 1, .. }) => {
                let cause = e.source().unwrap();
                assert!(matches!(
                    cause.downcast_ref::<LineError>(),
                    Some(LineError::Json(_))
                ));
                assert!(cause.source().is_some(), "the serde_json error is kept");
            }
            other => panic!("expected Line, got {other:?}"),
        }
        let path = put(&dir, "text.tar.gz", b"this is not gzip at all");
        assert!(matches!(verify(&path), Err(ArchiveError::Corrupt(_))));
        let path = put_members(&dir, &[raw(MANIFEST_NAME, b"[]"), raw(EVENTS_NAME, &data)]);
        assert!(matches!(verify(&path), Err(ArchiveError::Manifest(_))));
        m.version = VERSION;
        m.created_at = "yesterday".into();
        let path = put_members(&dir, &[manifest_member(&m), raw(EVENTS_NAME, &data)]);
        assert!(matches!(
            verify(&path),
            Err(ArchiveError::CreatedAt { value, .. }) if value == "yesterday"
        ));
    }

    #[test]
    fn on_event_error_aborts() {
        let dir = TempDir::new().unwrap();
        let path = put_members(&dir, &good_members(1..=5));
        let mut calls = 0;
        let result = verify_archive(&path, &Limits::default(), |_, id, _| {
            calls += 1;
            if id == 3 {
                Err("replay failed at 3".into())
            } else {
                Ok(())
            }
        });
        match result {
            Err(ArchiveError::Refused { line: 3, source }) => {
                assert_eq!(source.to_string(), "replay failed at 3");
            }
            other => panic!("expected Refused at line 3, got {other:?}"),
        }
        assert_eq!(calls, 3);
    }

    #[test]
    fn bytes_after_the_gzip_trailer_are_invalid() {
        let dir = TempDir::new().unwrap();
        let good = written_bytes(10);
        let extras: [Vec<u8>; 4] = [b"x".to_vec(), vec![0; 16], gzip(b"more"), good.clone()];
        for extra in extras {
            let mut bad = good.clone();
            bad.extend(extra);
            let path = put(&dir, "bad.tar.gz", &bad);
            assert_eq!(
                invalid_msg(verify(&path)),
                "data after the end of the gzip stream"
            );
        }
    }

    #[test]
    fn data_after_the_tar_end_inside_the_gzip_is_invalid() {
        let dir = TempDir::new().unwrap();
        let mut inner = tar_bytes(&good_members(1..=5));
        inner.extend(b"junk");
        let path = put(&dir, "bad.tar.gz", &gzip(&inner));
        assert_eq!(
            invalid_msg(verify(&path)),
            "data after the end of the tar archive"
        );
    }

    #[test]
    fn hostile_member_names_are_invalid() {
        let dir = TempDir::new().unwrap();
        for name in [
            "../x",
            "/etc/x",
            "a/b",
            "a\\b",
            "..",
            ".",
            "../events.ndjson",
        ] {
            let mut members = good_members(1..=3);
            members.push(raw(name, b"hi"));
            let path = put_members(&dir, &members);
            assert_invalid(verify(&path), "is not a plain file name");

            // Listing the name in the manifest does not make it acceptable.
            let data = ndjson(1..=3);
            let mut m = manifest_for(&data, 3, Some(1), 3);
            m.files.insert(
                name.into(),
                FileEntry {
                    sha256: sha_hex(b"hi"),
                    bytes: 2,
                },
            );
            let listed = [
                manifest_member(&m),
                raw(EVENTS_NAME, &data),
                raw(name, b"hi"),
            ];
            let path = put_members(&dir, &listed);
            assert_invalid(verify(&path), "manifest must list exactly");
        }
        let mut members = good_members(1..=3);
        members[0].name = b"./manifest.json".to_vec();
        let path = put_members(&dir, &members);
        assert_invalid(verify(&path), "is not a plain file name");
    }

    #[test]
    fn non_regular_members_are_invalid() {
        let dir = TempDir::new().unwrap();
        let kinds = [
            tar::EntryType::Symlink,
            tar::EntryType::Link,
            tar::EntryType::Directory,
            tar::EntryType::Fifo,
            tar::EntryType::Char,
            tar::EntryType::Block,
            tar::EntryType::GNULongName,
            tar::EntryType::XHeader,
        ];
        for kind in kinds {
            let mut members = good_members(1..=3);
            members[1].kind = kind;
            let path = put_members(&dir, &members);
            assert_invalid(verify(&path), "is not a regular file");

            let mut members = good_members(1..=3);
            members[0].kind = kind;
            let path = put_members(&dir, &members);
            assert_invalid(
                read_manifest(&path, &Limits::default()),
                "is not a regular file",
            );
        }
    }

    #[test]
    fn duplicate_members_are_invalid() {
        let dir = TempDir::new().unwrap();
        let mut members = good_members(1..=3);
        members.push(raw(EVENTS_NAME, &ndjson(1..=3)));
        let path = put_members(&dir, &members);
        assert_eq!(
            invalid_msg(verify(&path)),
            r#"duplicate member "events.ndjson""#
        );

        let mut members = good_members(1..=3);
        let again = raw(MANIFEST_NAME, &members[0].data);
        members.push(again);
        let path = put_members(&dir, &members);
        assert_eq!(
            invalid_msg(verify(&path)),
            "manifest.json appears more than once"
        );
    }

    #[test]
    fn unlisted_member_is_invalid() {
        let dir = TempDir::new().unwrap();
        let mut members = good_members(1..=3);
        members.insert(1, raw("notes.txt", b"hello"));
        let path = put_members(&dir, &members);
        assert_eq!(
            invalid_msg(verify(&path)),
            r#"member "notes.txt" is not listed in the manifest"#
        );
    }

    #[test]
    fn manifest_must_come_first() {
        let dir = TempDir::new().unwrap();
        let mut members = good_members(1..=3);
        members.reverse();
        let path = put_members(&dir, &members);
        let expected = r#"first member is "events.ndjson", expected manifest.json"#;
        assert_eq!(invalid_msg(verify(&path)), expected);
        assert_eq!(
            invalid_msg(read_manifest(&path, &Limits::default())),
            expected
        );

        let path = put_members(&dir, &[]);
        assert_invalid(verify(&path), "archive is empty");
    }

    #[test]
    fn missing_events_member_is_invalid() {
        let dir = TempDir::new().unwrap();
        let mut members = good_members(1..=3);
        members.pop();
        let path = put_members(&dir, &members);
        assert_eq!(invalid_msg(verify(&path)), "events.ndjson is missing");
        // Listing only looks at the manifest.
        read_manifest(&path, &Limits::default()).unwrap();
    }

    #[test]
    fn manifest_defects_are_invalid() {
        let dir = TempDir::new().unwrap();
        let data = ndjson(1..=3);
        let good = manifest_for(&data, 3, Some(1), 3);
        type Edit = fn(&mut Manifest);
        let cases: Vec<(Edit, &str)> = vec![
            (|m| m.format = "tarball".into(), "not a taskledger backup"),
            (|m| m.version = 2, "unsupported backup version 2"),
            (
                |m| m.created_at = "yesterday".into(),
                "is not an RFC 3339 time",
            ),
            (|m| m.kind = "weekly".into(), "unknown backup kind"),
            (
                |m| m.last_event_id = 5,
                "3 events from id 1 cannot end at id 5",
            ),
            (|m| m.first_event_id = None, "firstEventId is null"),
            (|m| m.first_event_id = Some(0), "at least 1"),
            (
                |m| {
                    m.events = 0;
                    m.last_event_id = 0;
                },
                "an empty backup must have firstEventId null",
            ),
            (
                |m| {
                    m.first_event_id = Some(u64::MAX);
                    m.last_event_id = 1;
                },
                "cannot end at",
            ),
            (
                |m| {
                    let entry = m.files.remove(EVENTS_NAME).unwrap();
                    m.files.insert("events.json".into(), entry);
                },
                "manifest must list exactly",
            ),
            (
                |m| {
                    let upper = m.files[EVENTS_NAME].sha256.to_uppercase();
                    m.files.get_mut(EVENTS_NAME).unwrap().sha256 = upper;
                },
                "not 64 lowercase hex digits",
            ),
        ];
        for (edit, needle) in cases {
            let mut m = good.clone();
            edit(&mut m);
            let path = put_members(&dir, &[manifest_member(&m), raw(EVENTS_NAME, &data)]);
            assert_invalid(verify(&path), needle);
            assert_invalid(read_manifest(&path, &Limits::default()), needle);
        }

        for text in [
            &b"not json"[..],
            br#"{"format":"taskledger-backup"}"#,
            b"[]",
        ] {
            let path = put_members(&dir, &[raw(MANIFEST_NAME, text), raw(EVENTS_NAME, &data)]);
            assert_invalid(verify(&path), "manifest.json is not a valid manifest");
        }
    }

    #[test]
    fn oversized_manifest_is_refused_before_reading() {
        let dir = TempDir::new().unwrap();
        let mut members = good_members(1..=3);
        let real = members[0].data.len() as u64;
        let limits = Limits {
            max_manifest_bytes: real - 1,
            ..Limits::default()
        };
        let path = put_members(&dir, &members);
        let expected = format!("manifest.json is {real} bytes, the limit is {}", real - 1);
        assert_eq!(invalid_msg(verify_collect(&path, &limits).0), expected);
        assert_eq!(invalid_msg(read_manifest(&path, &limits)), expected);

        members[0].header_size = Some(10 << 30);
        let path = put_members(&dir, &members);
        assert_invalid(verify(&path), "manifest.json is 10737418240 bytes");
    }

    #[test]
    fn decompression_bombs_are_stopped() {
        let dir = TempDir::new().unwrap();

        // A manifest declaring more than the limit is refused before any member is read.
        let data = ndjson(1..=3);
        let mut m = manifest_for(&data, 3, Some(1), 3);
        m.files.get_mut(EVENTS_NAME).unwrap().bytes = 100 << 30;
        let path = put_members(&dir, &[manifest_member(&m), raw(EVENTS_NAME, &data)]);
        assert_invalid(verify(&path), "declares");
        assert_invalid(read_manifest(&path, &Limits::default()), "declares");

        // Same with a real archive under a tight limit: not one event is replayed.
        let path = put(&dir, "real.tar.gz", &written_bytes(1000));
        let tight = Limits {
            max_unpacked_bytes: 4096,
            ..Limits::default()
        };
        let (result, seen) = verify_collect(&path, &tight);
        assert_invalid(result, "the limit is 4096");
        assert!(seen.is_empty());

        // A member header claiming 10 GiB is refused without reading it.
        let mut members = good_members(1..=3);
        members[1].header_size = Some(10 << 30);
        let path = put_members(&dir, &members);
        assert_invalid(
            verify(&path),
            "events.ndjson is 10737418240 bytes in the tar header, the manifest says",
        );

        // Zeros after the end marker are counted as they unpack, not after.
        let mut inner = tar_bytes(&good_members(1..=3));
        inner.extend(vec![0u8; 8 << 20]);
        let path = put(&dir, "bomb.tar.gz", &gzip(&inner));
        assert_invalid(verify(&path), "archive unpacks to more than");
    }

    #[test]
    fn io_errors_are_not_invalid() {
        let dir = TempDir::new().unwrap();
        let missing = dir.path().join("nope.tar.gz");
        let not_found = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
        assert!(matches!(verify(&missing), Err(ArchiveError::Io(e)) if not_found(&e)));
        assert!(matches!(
            read_manifest(&missing, &Limits::default()),
            Err(ArchiveError::Io(_))
        ));
        assert!(file_digest(&missing).is_err());

        // Opening a directory works on Unix; reading it fails inside the gzip reader.
        #[cfg(unix)]
        assert!(matches!(verify(dir.path()), Err(ArchiveError::Io(_))));

        let path = put(&dir, "text.tar.gz", b"this is not gzip at all");
        assert_invalid(verify(&path), "corrupt archive");
    }

    #[test]
    fn file_digest_of_known_content() {
        let dir = TempDir::new().unwrap();
        let path = put(&dir, "abc", b"abc");
        assert_eq!(
            file_digest(&path).unwrap(),
            (
                3,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_string()
            )
        );
    }

    #[test]
    fn read_manifest_does_not_read_the_events() {
        let dir = TempDir::new().unwrap();
        let data = ndjson(1..=5);
        let m = manifest_for(&data, 5, Some(1), 5);
        let path = put_members(&dir, &[manifest_member(&m), raw(EVENTS_NAME, b"garbage\n")]);
        assert_eq!(read_manifest(&path, &Limits::default()).unwrap(), m);
        invalid_msg(verify(&path));
    }
}
