//! The backup archive format, and what both of its sides share: the names and
//! version, the manifest, the error and limits types, the hashing pipe and the checks
//! that writing and reading must agree on (kind, `createdAt`, an event line's id).
//! [`write`] makes archives and [`read`] verifies them; this module touches no file
//! itself, and nothing here names, schedules, rotates or restores backups.
//!
//! A backup is a gzip'd tar whose first member is `manifest.json`, followed by
//! `events.ndjson` (one canonical event per line). Events are not interpreted beyond
//! their `"id"` (the caller's `on_event` replays them).
//!
//! The manifest's checksum covers a member that comes after it, so verification
//! can only confirm it at the end: whatever `on_event` did is provisional until
//! [`verify_archive`] returns `Ok`.

mod read;
mod write;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

pub(crate) use read::{file_digest, read_manifest, verify_archive};
pub(crate) use write::{write_archive, WrittenArchive};

/// The `format` every manifest carries.
pub(crate) const FORMAT: &str = "taskledger-backup";
/// The only format version this build reads and writes.
pub(crate) const VERSION: u32 = 1;
/// Name of the first member.
pub(crate) const MANIFEST_NAME: &str = "manifest.json";
/// Name of the member holding the events.
pub(crate) const EVENTS_NAME: &str = "events.ndjson";
/// Every `kind` a manifest may carry.
pub(crate) const KINDS: [&str; 4] = ["auto", "manual", "pre-restore", "uploaded"];

/// Buffer for file and member I/O, on both sides.
const IO_BUF: usize = 64 << 10;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub(crate) format: String,
    pub(crate) version: u32,
    pub(crate) created_at: String,
    pub(crate) kind: String,
    pub(crate) label: Option<String>,
    pub(crate) app_version: String,
    pub(crate) events: u64,
    pub(crate) first_event_id: Option<u64>,
    pub(crate) last_event_id: u64,
    pub(crate) files: BTreeMap<String, FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct FileEntry {
    pub(crate) sha256: String,
    pub(crate) bytes: u64,
}

/// What the caller decides about a backup; the rest of the manifest is measured.
#[derive(Debug, Clone)]
pub(crate) struct ArchiveMeta {
    /// RFC 3339, e.g. `2025-11-10T15:30:45.123Z`.
    pub(crate) created_at: String,
    /// `created_at` in whole seconds; becomes the members' mtime.
    pub(crate) created_unix_secs: u64,
    pub(crate) kind: String,
    pub(crate) label: Option<String>,
    pub(crate) app_version: String,
}

/// What can go wrong with an archive. At the backup layer's boundary
/// (`BackupError`'s `From`) `Io` becomes `BackupError::Io` (500), or `NoSpace` (507)
/// when the disk is full; every other variant means the file (or, when writing, the
/// data given for it) fails a check, and becomes `BackupError::Invalid` with this
/// very text (422). Each of those texts starts with `invalid backup: `.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ArchiveError {
    /// Reading or writing a file, or reading the log being archived, failed: the
    /// disk, not the data.
    #[error("backup i/o error: {0}")]
    Io(#[from] io::Error),
    /// A check failed. `at` names the part in one vocabulary for code to branch on:
    /// `archive`, `gzip stream`, `tar stream`, `manifest.json`, a member's name,
    /// `events.ndjson`, `events.ndjson line N`; when writing also `meta` and
    /// `event N`. `why` is the sentence users see; it keeps the wording users and
    /// scripts already match on, so it names the part in its own words
    /// (`line 7: …`, `manifest: …`) rather than being glued to `at`.
    #[error("invalid backup: {why}")]
    Invalid { at: String, why: String },
    /// gzip or tar cannot decode the stream (a bad CRC or header, cut short).
    #[error("invalid backup: corrupt archive: {0}")]
    Corrupt(#[source] io::Error),
    /// `manifest.json` is not JSON of a manifest's shape.
    #[error("invalid backup: {} is not a valid manifest: {}", MANIFEST_NAME, .0)]
    Manifest(#[source] serde_json::Error),
    /// `createdAt`, of a manifest or of the meta given for writing, is not RFC 3339.
    #[error("invalid backup: createdAt {value:?} is not an RFC 3339 time: {source}")]
    CreatedAt {
        value: String,
        #[source]
        source: chrono::ParseError,
    },
    /// Line `line` of `events.ndjson` is not a canonical event line.
    #[error("invalid backup: line {line}: {source}")]
    Line {
        line: u64,
        #[source]
        source: LineError,
    },
    /// When writing: the bytes given for event `id` are not a canonical event line.
    #[error("invalid backup: event {id}: {source}")]
    Event {
        id: u64,
        #[source]
        source: LineError,
    },
    /// The caller's `on_event` refused line `line` of `events.ndjson`.
    #[error("invalid backup: {source}")]
    Refused {
        line: u64,
        #[source]
        source: Refusal,
    },
}

/// Why [`verify_archive`]'s `on_event` refuses a line; kept as the cause of
/// [`ArchiveError::Refused`].
pub(crate) type Refusal = Box<dyn std::error::Error + Send + Sync>;

fn invalid<T>(at: impl Into<String>, why: impl Into<String>) -> Result<T, ArchiveError> {
    Err(ArchiveError::Invalid {
        at: at.into(),
        why: why.into(),
    })
}

/// Why some bytes are not a canonical event line. Reaches users only inside
/// [`ArchiveError::Line`] or [`ArchiveError::Event`] (422).
#[derive(Debug, thiserror::Error)]
pub(crate) enum LineError {
    #[error("empty line")]
    Empty,
    /// Padded, or not an object at all.
    #[error("not a JSON object")]
    NotObject,
    /// An object, but not JSON, or without exactly one unsigned `"id"`.
    #[error("bad event JSON: {0}")]
    Json(#[source] serde_json::Error),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Cap on the members' content (manifest plus every listed file).
    pub(crate) max_unpacked_bytes: u64,
    pub(crate) max_manifest_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_unpacked_bytes: 64 << 30,
            max_manifest_bytes: 1 << 20,
        }
    }
}

// ---------------------------------------------------------------------------
// Byte plumbing shared by writing and reading.

/// Hashes and counts whatever flows through it, in either direction.
struct Hashing<T> {
    inner: T,
    hasher: Sha256,
    bytes: u64,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    fn finish(self) -> (T, u64, String) {
        (self.inner, self.bytes, hex::encode(self.hasher.finalize()))
    }

    fn absorb(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.absorb(&buf[..n]);
        Ok(n)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.absorb(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

// ---------------------------------------------------------------------------
// Checks shared by writing and reading.

/// `at` is where the kind was read: `manifest.json`, or `meta` when writing.
fn check_kind(kind: &str, at: &str) -> Result<(), ArchiveError> {
    if KINDS.contains(&kind) {
        Ok(())
    } else {
        invalid(at, format!("unknown backup kind {kind:?}"))
    }
}

fn parse_created_at(created_at: &str) -> Result<i64, ArchiveError> {
    match chrono::DateTime::parse_from_rfc3339(created_at) {
        Ok(t) => Ok(t.timestamp()),
        Err(source) => Err(ArchiveError::CreatedAt {
            value: created_at.to_string(),
            source,
        }),
    }
}

/// The `"id"` of one canonical event line, which must be a JSON object.
struct LineId(u64);

impl<'de> Deserialize<'de> for LineId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        enum Key {
            Id,
            Other,
        }
        impl<'de> Deserialize<'de> for Key {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct KeyVisitor;
                impl Visitor<'_> for KeyVisitor {
                    type Value = Key;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("a field name")
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                        Ok(if v == "id" { Key::Id } else { Key::Other })
                    }
                }
                d.deserialize_identifier(KeyVisitor)
            }
        }

        struct LineVisitor;
        impl<'de> Visitor<'de> for LineVisitor {
            type Value = LineId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object with a numeric \"id\"")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LineId, A::Error> {
                let mut id = None;
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Id if id.is_some() => return Err(de::Error::duplicate_field("id")),
                        Key::Id => id = Some(map.next_value::<u64>()?),
                        Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                id.map(LineId).ok_or_else(|| de::Error::missing_field("id"))
            }
        }
        d.deserialize_map(LineVisitor)
    }
}

fn event_line_id(line: &[u8]) -> Result<u64, LineError> {
    if line.is_empty() {
        return Err(LineError::Empty);
    }
    // Canonical lines are bare objects; serde_json alone would accept padding.
    if line.first() != Some(&b'{') || line.last() != Some(&b'}') {
        return Err(LineError::NotObject);
    }
    match serde_json::from_slice::<LineId>(line) {
        Ok(LineId(id)) => Ok(id),
        Err(e) => Err(LineError::Json(e)),
    }
}

/// What the tests of both sides build archives and events from.
#[cfg(test)]
mod fixtures {
    use std::fs;
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use flate2::write::GzEncoder;
    use flate2::Compression;
    use tempfile::TempDir;

    use super::*;

    pub(super) const CREATED_AT: &str = "2025-11-10T15:30:45.123Z";
    pub(super) const CREATED_SECS: u64 = 1_762_788_645;

    pub(super) type Item = Result<(u64, Vec<u8>), ArchiveError>;

    pub(super) fn meta() -> ArchiveMeta {
        ArchiveMeta {
            created_at: CREATED_AT.into(),
            created_unix_secs: CREATED_SECS,
            kind: "manual".into(),
            label: Some("before upgrade".into()),
            app_version: "0.1.0".into(),
        }
    }

    pub(super) fn line(id: u64) -> Vec<u8> {
        format!(r#"{{"id":{id},"type":"X"}}"#).into_bytes()
    }

    pub(super) fn events(ids: impl IntoIterator<Item = u64>) -> Vec<Item> {
        ids.into_iter().map(|id| Ok((id, line(id)))).collect()
    }

    pub(super) fn ndjson(ids: impl IntoIterator<Item = u64>) -> Vec<u8> {
        let mut out = Vec::new();
        for id in ids {
            out.extend(line(id));
            out.push(b'\n');
        }
        out
    }

    pub(super) fn sha_hex(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    pub(super) fn manifest_for(
        events_file: &[u8],
        count: u64,
        first: Option<u64>,
        last: u64,
    ) -> Manifest {
        let m = meta();
        Manifest {
            format: FORMAT.into(),
            version: VERSION,
            created_at: m.created_at,
            kind: m.kind,
            label: m.label,
            app_version: m.app_version,
            events: count,
            first_event_id: first,
            last_event_id: last,
            files: BTreeMap::from([(
                EVENTS_NAME.to_string(),
                FileEntry {
                    sha256: sha_hex(events_file),
                    bytes: events_file.len() as u64,
                },
            )]),
        }
    }

    pub(super) fn dir_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    pub(super) type Seen = Vec<(u64, u64, Vec<u8>)>;

    pub(super) fn verify_collect(
        path: &Path,
        limits: &Limits,
    ) -> (Result<Manifest, ArchiveError>, Seen) {
        let mut seen = Vec::new();
        let result = verify_archive(path, limits, |n, id, bytes| {
            seen.push((n, id, bytes.to_vec()));
            Ok(())
        });
        (result, seen)
    }

    pub(super) fn verify(path: &Path) -> Result<Manifest, ArchiveError> {
        verify_collect(path, &Limits::default()).0
    }

    /// The text after `invalid backup: ` of an error saying the archive fails a check.
    pub(super) fn invalid_msg<T>(result: Result<T, ArchiveError>) -> String {
        match result {
            Err(ArchiveError::Io(e)) => panic!("expected an invalid archive, got {e:?}"),
            Err(e) => e
                .to_string()
                .strip_prefix("invalid backup: ")
                .expect("every check's text starts so")
                .to_string(),
            Ok(_) => panic!("expected Invalid, got Ok"),
        }
    }

    pub(super) fn assert_invalid<T>(result: Result<T, ArchiveError>, needle: &str) {
        let msg = invalid_msg(result);
        assert!(msg.contains(needle), "{msg:?} does not mention {needle:?}");
    }

    /// A member written byte for byte as given, header fields included, so
    /// tests can build what our writer never would.
    pub(super) struct Raw {
        pub(super) name: Vec<u8>,
        pub(super) kind: tar::EntryType,
        pub(super) data: Vec<u8>,
        pub(super) header_size: Option<u64>,
    }

    pub(super) fn raw(name: &str, data: &[u8]) -> Raw {
        Raw {
            name: name.as_bytes().to_vec(),
            kind: tar::EntryType::Regular,
            data: data.to_vec(),
            header_size: None,
        }
    }

    pub(super) fn tar_bytes(members: &[Raw]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for m in members {
            let mut h = tar::Header::new_ustar();
            // Bypasses set_path, which refuses the hostile names tested here.
            h.as_old_mut().name[..m.name.len()].copy_from_slice(&m.name);
            h.set_size(m.header_size.unwrap_or(m.data.len() as u64));
            h.set_mode(0o644);
            h.set_mtime(CREATED_SECS);
            h.set_entry_type(m.kind);
            if matches!(m.kind, tar::EntryType::Symlink | tar::EntryType::Link) {
                h.set_link_name("target").unwrap();
            }
            h.set_cksum();
            builder.append(&h, m.data.as_slice()).unwrap();
        }
        builder.into_inner().unwrap()
    }

    pub(super) fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    pub(super) fn manifest_member(m: &Manifest) -> Raw {
        raw(MANIFEST_NAME, &serde_json::to_vec(m).unwrap())
    }

    /// The manifest and events members of a correct archive holding `ids`.
    pub(super) fn good_members(ids: std::ops::RangeInclusive<u64>) -> Vec<Raw> {
        let data = ndjson(ids.clone());
        let m = manifest_for(
            &data,
            ids.clone().count() as u64,
            Some(*ids.start()),
            *ids.end(),
        );
        vec![manifest_member(&m), raw(EVENTS_NAME, &data)]
    }

    /// An archive whose events member is `data`, with a manifest that vouches for it.
    pub(super) fn members_with_events(
        data: &[u8],
        count: u64,
        first: Option<u64>,
        last: u64,
    ) -> Vec<Raw> {
        vec![
            manifest_member(&manifest_for(data, count, first, last)),
            raw(EVENTS_NAME, data),
        ]
    }

    pub(super) fn put(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    pub(super) fn put_members(dir: &TempDir, members: &[Raw]) -> PathBuf {
        put(dir, "crafted.tar.gz", &gzip(&tar_bytes(members)))
    }

    pub(super) fn written_bytes(count: u64) -> Vec<u8> {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("b.tar.gz");
        write_archive(&path, &meta(), events(1..=count)).unwrap();
        fs::read(path).unwrap()
    }
}
