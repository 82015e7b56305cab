//! Writing archives: [`write_archive`] spools the events to a temp file while
//! checking, counting and hashing them, then builds the tar.gz next to the final
//! path and renames it into place. It touches only the final path and its two
//! dot-named temp files, and leaves neither temp file behind on any error or panic.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;

use std::collections::BTreeMap;

use super::{
    check_kind, event_line_id, invalid, parse_created_at, ArchiveError, ArchiveMeta, FileEntry,
    Hashing, Limits, Manifest, EVENTS_NAME, FORMAT, IO_BUF, MANIFEST_NAME, VERSION,
};

#[derive(Debug, Clone)]
pub(crate) struct WrittenArchive {
    pub(crate) path: PathBuf,
    /// Size of the whole archive file.
    pub(crate) size: u64,
    /// SHA-256 of the whole archive file, lowercase hex.
    pub(crate) sha256: String,
    pub(crate) manifest: Manifest,
}

/// Removes the temp files unless disarmed; a guard so that early returns and
/// panics in the caller's event iterator clean up too.
struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for path in &self.0 {
            // Best effort: the error that got us here matters more, and a file
            // that was never created is the usual case.
            let _ = fs::remove_file(path);
        }
    }
}

fn temp_name(name: &std::ffi::OsStr, suffix: &str) -> OsString {
    // A leading dot and a `.tmp` end keep the drop-folder watcher and listings away.
    let mut s = OsString::from(".");
    s.push(name);
    s.push(suffix);
    s
}

/// Writes `final_path` atomically. Events go to a temp file `<dir>/.<name>.events.tmp` while
/// being hashed and counted; then the tar.gz is written to `<dir>/.<name>.tmp` (`manifest.json`
/// first, then `events.ndjson` copied from the temp file), fsync'd, renamed to `final_path`, and
/// the directory fsync'd. Temp files are removed on every error path, panics included.
///
/// `events` yields (sequence id, canonical JSON bytes without the trailing newline). Ids must be
/// consecutive from at least 1, and each line must pass the verifier's line check (a JSON object
/// whose `"id"` is that id, no newline), so that whatever is written can be restored; otherwise
/// `Invalid` or `Event` naming the event, as a bad `meta` is `Invalid` at `meta` (unknown kind,
/// `created_at` not matching `created_unix_secs`) or `CreatedAt` (not RFC 3339). An `Err` from
/// `events` is returned as is. An existing `final_path` is
/// replaced. If only the final directory fsync fails, the archive is already in place.
pub(crate) fn write_archive<I>(
    final_path: &Path,
    meta: &ArchiveMeta,
    events: I,
) -> Result<WrittenArchive, ArchiveError>
where
    I: IntoIterator<Item = Result<(u64, Vec<u8>), ArchiveError>>,
{
    let Some(name) = final_path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("backup path {} has no file name", final_path.display()),
        )
        .into());
    };
    let dir = match final_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    check_kind(&meta.kind, "meta")?;
    let secs = parse_created_at(&meta.created_at)?;
    if u64::try_from(secs).ok() != Some(meta.created_unix_secs) {
        return invalid(
            "meta",
            format!(
                "createdAt {} is not {} seconds after the epoch",
                meta.created_at, meta.created_unix_secs
            ),
        );
    }

    let events_tmp = dir.join(temp_name(name, ".events.tmp"));
    let archive_tmp = dir.join(temp_name(name, ".tmp"));
    let mut guard = TempFiles(vec![events_tmp.clone(), archive_tmp.clone()]);
    let (size, sha256, manifest) = build_archive(&events_tmp, &archive_tmp, meta, events)?;
    fs::remove_file(&events_tmp)?;
    fs::rename(&archive_tmp, final_path)?;
    // Both temp files are gone; removing their names again could only hit a concurrent attempt's.
    guard.0.clear();
    sync_dir(dir)?;
    Ok(WrittenArchive {
        path: final_path.to_path_buf(),
        size,
        sha256,
        manifest,
    })
}

struct Spooled {
    file: File,
    events: u64,
    first: Option<u64>,
    last: u64,
    bytes: u64,
    sha256: String,
}

/// Writes the event lines to `path`, checking them, and leaves the file rewound.
fn spool_events<I>(path: &Path, events: I) -> Result<Spooled, ArchiveError>
where
    I: IntoIterator<Item = Result<(u64, Vec<u8>), ArchiveError>>,
{
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let mut out = Hashing::new(BufWriter::with_capacity(IO_BUF, file));
    let mut first = None;
    let mut last = 0u64;
    let mut count = 0u64;
    for item in events {
        let (id, line) = item?;
        let at = || format!("event {id}");
        let expected = match first {
            None if id == 0 => return invalid(at(), "event ids start at 1, got 0"),
            None => id,
            Some(_) => match last.checked_add(1) {
                Some(next) => next,
                None => return invalid(at(), format!("event id {last} is the last possible id")),
            },
        };
        if id != expected {
            return invalid(
                at(),
                format!("event ids must be consecutive: {expected} expected, got {id}"),
            );
        }
        if line.contains(&b'\n') {
            return invalid(at(), format!("event {id}: line contains a newline"));
        }
        match event_line_id(&line) {
            Ok(inner) if inner == id => {}
            Ok(inner) => return invalid(at(), format!("event {id}: its JSON says id {inner}")),
            Err(source) => return Err(ArchiveError::Event { id, source }),
        }
        out.write_all(&line)?;
        out.write_all(b"\n")?;
        first.get_or_insert(id);
        last = id;
        count += 1;
    }
    let (writer, bytes, sha256) = out.finish();
    let mut file = writer
        .into_inner()
        .map_err(io::IntoInnerError::into_error)?;
    // Scratch data: if the machine dies it is thrown away, so no fsync here.
    file.seek(SeekFrom::Start(0))?;
    Ok(Spooled {
        file,
        events: count,
        first,
        last,
        bytes,
        sha256,
    })
}

fn member_header(name: &str, size: u64, mtime: u64) -> io::Result<tar::Header> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name)?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Ok(header)
}

/// Everything up to and including the fsync of the archive temp file. Its file
/// handles are all closed when it returns, before anything is renamed or removed.
fn build_archive<I>(
    events_tmp: &Path,
    archive_tmp: &Path,
    meta: &ArchiveMeta,
    events: I,
) -> Result<(u64, String, Manifest), ArchiveError>
where
    I: IntoIterator<Item = Result<(u64, Vec<u8>), ArchiveError>>,
{
    let mut spooled = spool_events(events_tmp, events)?;
    let manifest = Manifest {
        format: FORMAT.to_string(),
        version: VERSION,
        created_at: meta.created_at.clone(),
        kind: meta.kind.clone(),
        label: meta.label.clone(),
        app_version: meta.app_version.clone(),
        events: spooled.events,
        first_event_id: spooled.first,
        last_event_id: spooled.last,
        files: BTreeMap::from([(
            EVENTS_NAME.to_string(),
            FileEntry {
                sha256: spooled.sha256.clone(),
                bytes: spooled.bytes,
            },
        )]),
    };
    let manifest_json = serde_json::to_vec(&manifest)
        .expect("a manifest is strings, numbers and a string-keyed map; it always serializes");
    let manifest_limit = Limits::default().max_manifest_bytes;
    if manifest_json.len() as u64 > manifest_limit {
        return invalid(
            MANIFEST_NAME,
            format!(
                "manifest would be {} bytes, readers accept at most {manifest_limit}",
                manifest_json.len()
            ),
        );
    }

    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(archive_tmp)?;
    let counted = Hashing::new(BufWriter::with_capacity(IO_BUF, file));
    let mut tar = tar::Builder::new(GzEncoder::new(counted, Compression::fast()));
    let mtime = meta.created_unix_secs;
    tar.append(
        &member_header(MANIFEST_NAME, manifest_json.len() as u64, mtime)?,
        manifest_json.as_slice(),
    )?;
    // Hash the copy again: the manifest vouches for these bytes, so a temp file
    // that changed underneath us must not slip into the archive.
    let mut copy = Hashing::new((&mut spooled.file).take(spooled.bytes));
    tar.append(
        &member_header(EVENTS_NAME, spooled.bytes, mtime)?,
        &mut copy,
    )?;
    let (_, copied, copied_sha) = copy.finish();
    if copied != spooled.bytes || copied_sha != spooled.sha256 {
        return Err(
            io::Error::other("events temp file changed while it was being archived").into(),
        );
    }
    let gz = tar.into_inner()?;
    let (writer, size, sha256) = gz.finish()?.finish();
    let file = writer
        .into_inner()
        .map_err(io::IntoInnerError::into_error)?;
    file.sync_all()?;
    Ok((size, sha256, manifest))
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Directories cannot be opened for fsync here; the rename is as durable as the OS makes it.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::archive::fixtures::*;
    use crate::backup::archive::{file_digest, read_manifest, LineError};
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use tempfile::TempDir;

    #[test]
    fn round_trip_of_a_thousand_events() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("backup.tar.gz");
        let written = write_archive(&path, &meta(), events(1..=1000)).unwrap();

        assert_eq!(written.path, path);
        assert_eq!(
            written.manifest,
            manifest_for(&ndjson(1..=1000), 1000, Some(1), 1000)
        );
        assert_eq!(dir_names(dir.path()), vec!["backup.tar.gz"]);

        let (result, seen) = verify_collect(&path, &Limits::default());
        let verified = result.unwrap();
        let expected: Seen = (1..=1000).map(|i| (i, i, line(i))).collect();
        assert_eq!(seen, expected);
        assert_eq!(verified, written.manifest);

        let bytes = fs::read(&path).unwrap();
        let digest = file_digest(&path).unwrap();
        assert_eq!(digest, (bytes.len() as u64, sha_hex(&bytes)));
        assert_eq!((written.size, written.sha256.clone()), digest);
        assert_eq!(
            read_manifest(&path, &Limits::default()).unwrap(),
            written.manifest
        );
    }

    #[test]
    fn members_follow_the_contract() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("b.tar.gz");
        write_archive(&path, &meta(), events(1..=3)).unwrap();

        let file = fs::read(&path).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file.as_slice()));
        let mut members = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let h = entry.header().clone();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            let name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
            members.push((
                name,
                h.entry_type(),
                h.mode().unwrap(),
                h.mtime().unwrap(),
                data,
            ));
        }
        let names: Vec<&str> = members.iter().map(|m| m.0.as_str()).collect();
        assert_eq!(names, [MANIFEST_NAME, EVENTS_NAME]);
        for (_, kind, mode, mtime, _) in &members {
            assert_eq!(
                (*kind, *mode, *mtime),
                (tar::EntryType::Regular, 0o644, CREATED_SECS)
            );
        }
        let events_file = ndjson(1..=3);
        assert_eq!(members[1].4, events_file);
        let json = String::from_utf8(members[0].4.clone()).unwrap();
        // Key order and spelling are part of the contract, so compare the text.
        let expected = [
            r#"{"format":"taskledger-backup","version":1,"#,
            r#""createdAt":"2025-11-10T15:30:45.123Z","kind":"manual","#,
            r#""label":"before upgrade","appVersion":"0.1.0","#,
            r#""events":3,"firstEventId":1,"lastEventId":3,"#,
            &format!(
                r#""files":{{"events.ndjson":{{"sha256":"{}","#,
                sha_hex(&events_file)
            ),
            &format!(r#""bytes":{}}}}}}}"#, events_file.len()),
        ]
        .concat();
        assert_eq!(json, expected);
    }

    #[test]
    fn empty_archive() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("empty.tar.gz");
        let meta = ArchiveMeta {
            label: None,
            ..meta()
        };
        let written = write_archive(&path, &meta, Vec::<Item>::new()).unwrap();
        let m = &written.manifest;
        assert_eq!((m.events, m.first_event_id, m.last_event_id), (0, None, 0));
        assert_eq!(
            m.files[EVENTS_NAME],
            FileEntry {
                sha256: sha_hex(b""),
                bytes: 0
            }
        );
        let json = String::from_utf8(serde_json::to_vec(m).unwrap()).unwrap();
        assert!(json.contains(r#""label":null"#), "{json}");
        assert!(
            json.contains(r#""firstEventId":null,"lastEventId":0"#),
            "{json}"
        );

        let (result, seen) = verify_collect(&path, &Limits::default());
        assert_eq!(result.unwrap(), written.manifest);
        assert!(seen.is_empty());
    }

    #[test]
    fn failed_writes_leave_no_files() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("b.tar.gz");

        let mut source = events(1..=10);
        source.push(Err(ArchiveError::Invalid {
            at: "source".into(),
            why: "source failed".into(),
        }));
        source.extend(events(11..=20));
        assert_eq!(
            invalid_msg(write_archive(&path, &meta(), source)),
            "source failed"
        );
        assert!(dir_names(dir.path()).is_empty());

        let bad_inputs: Vec<(Vec<Item>, &str)> = vec![
            (events([1, 2, 4]), "consecutive: 3 expected, got 4"),
            (events([0, 1]), "start at 1"),
            (vec![Ok((1, br#"{"id":2}"#.to_vec()))], "its JSON says id 2"),
            (
                vec![Ok((1, b"{\"id\":1,\n\"a\":1}".to_vec()))],
                "contains a newline",
            ),
            (vec![Ok((1, b"[1]".to_vec()))], "not a JSON object"),
            (vec![Ok((1, Vec::new()))], "empty line"),
        ];
        for (source, needle) in bad_inputs {
            assert_invalid(write_archive(&path, &meta(), source), needle);
            assert!(dir_names(dir.path()).is_empty(), "{needle}");
        }

        let bad_kind = ArchiveMeta {
            kind: "weekly".into(),
            ..meta()
        };
        assert_invalid(
            write_archive(&path, &bad_kind, events(1..=3)),
            "unknown backup kind",
        );
        let bad_secs = ArchiveMeta {
            created_unix_secs: CREATED_SECS + 1,
            ..meta()
        };
        assert_invalid(
            write_archive(&path, &bad_secs, events(1..=3)),
            "seconds after the epoch",
        );
        assert!(dir_names(dir.path()).is_empty());
    }

    #[test]
    fn write_errors_name_the_event() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("b.tar.gz");
        match write_archive(&path, &meta(), events([1, 2, 4])) {
            Err(ArchiveError::Invalid { at, .. }) => assert_eq!(at, "event 4"),
            other => panic!("expected Invalid, got {other:?}"),
        }
        match write_archive(&path, &meta(), vec![Ok((1, b"[1]".to_vec()))]) {
            Err(ArchiveError::Event {
                id: 1,
                source: LineError::NotObject,
            }) => {}
            other => panic!("expected Event, got {other:?}"),
        }
        let bad_kind = ArchiveMeta {
            kind: "weekly".into(),
            ..meta()
        };
        match write_archive(&path, &bad_kind, events(1..=3)) {
            Err(ArchiveError::Invalid { at, .. }) => assert_eq!(at, "meta"),
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert!(dir_names(dir.path()).is_empty());
    }

    #[test]
    fn a_panicking_source_leaves_no_files() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("b.tar.gz");
        let source = (1..=100u64).map(|id| {
            assert!(id < 50, "source blew up");
            Ok((id, line(id)))
        });
        let outcome = catch_unwind(AssertUnwindSafe(|| write_archive(&path, &meta(), source)));
        assert!(outcome.is_err());
        assert!(dir_names(dir.path()).is_empty());
    }
}
