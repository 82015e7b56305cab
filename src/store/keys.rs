//! The key layout of the single sled tree that holds the log and every projection.
//!
//! One tree on purpose: a sled `Batch` is atomic only within one tree, and the
//! append and its projection updates must land together. Each kind of record gets
//! a one-byte prefix; ids are 16 raw bytes and sequences 8 big-endian bytes, so
//! prefix scans return children in creation order.

use uuid::Uuid;

pub const EVENT: u8 = b'E';
pub const USER: u8 = b'U';
pub const GROUP: u8 = b'G';
pub const TASK: u8 = b'T';
/// Tasks of a group: `X gid seq -> tid`.
pub const GROUP_TASK: u8 = b'X';
/// Comments of a task: `C tid seq -> CommentRec`.
pub const COMMENT: u8 = b'C';
/// Activity index by group: `L gid seq -> ()`.
pub const LOG_GROUP: u8 = b'L';
/// Activity index by task: `K tid seq -> ()`.
pub const LOG_TASK: u8 = b'K';
/// Activity summary per group: `S gid -> LogSummary`.
pub const SUM_GROUP: u8 = b'S';
/// Activity summary per task of a group: `R gid tid -> LogSummary`.
pub const SUM_TASK: u8 = b'R';

/// Every projection prefix (all but the log), for rebuild and check.
pub const PROJECTIONS: [u8; 9] = [
    USER, GROUP, TASK, GROUP_TASK, COMMENT, LOG_GROUP, LOG_TASK, SUM_GROUP, SUM_TASK,
];

pub fn event(seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(EVENT);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub fn seq_of_event_key(k: &[u8]) -> Option<u64> {
    if k.len() == 9 && k[0] == EVENT {
        let mut b = [0u8; 8];
        b.copy_from_slice(&k[1..]);
        Some(u64::from_be_bytes(b))
    } else {
        None
    }
}

pub fn user(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(USER);
    k.extend_from_slice(name.as_bytes());
    k
}

pub fn id(prefix: u8, id: Uuid) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(prefix);
    k.extend_from_slice(id.as_bytes());
    k
}

pub fn id_seq(prefix: u8, id: Uuid, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(25);
    k.push(prefix);
    k.extend_from_slice(id.as_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub fn id_id(prefix: u8, a: Uuid, b: Uuid) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(prefix);
    k.extend_from_slice(a.as_bytes());
    k.extend_from_slice(b.as_bytes());
    k
}

/// The trailing sequence of an `id_seq` key.
pub fn trailing_seq(k: &[u8]) -> Option<u64> {
    if k.len() < 8 {
        return None;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&k[k.len() - 8..]);
    Some(u64::from_be_bytes(b))
}

/// The trailing 16-byte id of a key.
pub fn trailing_id(k: &[u8]) -> Option<Uuid> {
    if k.len() < 16 {
        return None;
    }
    Uuid::from_slice(&k[k.len() - 16..]).ok()
}
