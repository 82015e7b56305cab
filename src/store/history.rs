//! Time travel over a durable snapshot: where an instant falls in the log (its
//! cut), the whole state at a cut (a prefix replay), and one stream's state at a
//! cut (a replay of only that stream's events, found through the activity index).
//! Reads the log only; never writes.
//!
//! Timestamps never go back along the log (the writer stamps `max(now, last)`,
//! verification refuses logs that do), so "every event with timestamp ≤ T" is a
//! prefix, found by binary search.

use crate::domain::id::Id;
use crate::domain::past::Past;
use crate::domain::time::{fmt_ms, parse_ms};
use crate::domain::StoredEvent;
use chrono::{Datelike, NaiveDate, TimeZone, Utc};

use super::gen::{decode_event, Gen};
use super::snapshot::Snapshot;
use super::StoreError;

/// An instant as a client names it: an event id or a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum At {
    Seq(u64),
    Time(i64),
}

/// Why a past state cannot be answered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HistoryError {
    /// 400: `at` is not an instant or an event id, or lies in the future.
    #[error("{0}")]
    BadInstant(String),
    /// 500: reading the log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl At {
    /// `T`: a positive integer (event id) or an RFC 3339 time.
    pub(crate) fn parse(raw: &str) -> Result<At, HistoryError> {
        let raw = raw.trim();
        if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
            return match raw.parse::<u64>() {
                Ok(n) if n > 0 => Ok(At::Seq(n)),
                _ => Err(HistoryError::BadInstant(
                    "at must be a positive event id or an RFC 3339 time".into(),
                )),
            };
        }
        parse_ms(raw).map(At::Time).ok_or_else(|| {
            HistoryError::BadInstant(format!(
                "at must be an RFC 3339 time (2025-11-10T15:30:45.123Z) or an event id, not {raw:?}"
            ))
        })
    }
}

/// Where an instant falls: the last event included and the instant as a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cut {
    pub(crate) seq: u64,
    pub(crate) at_ms: i64,
}

impl Cut {
    pub(crate) fn at(&self) -> String {
        fmt_ms(self.at_ms)
    }
}

/// The largest index in `0..=len` whose prefix holds only times ≤ `t`, given the
/// time of the element at an index (ascending).
fn partition(
    len: usize,
    t: i64,
    mut ts_at: impl FnMut(usize) -> Result<i64, StoreError>,
) -> Result<usize, StoreError> {
    let (mut lo, mut hi) = (0usize, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if ts_at(mid)? <= t {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

fn event(gen: &Gen, seq: u64) -> Result<StoredEvent, StoreError> {
    gen.event(seq)?
        .ok_or_else(|| StoreError::Corrupt(format!("event {seq} is missing from the log")))
}

/// Resolves `at` against what is durable in `snap`; `now_ms` bounds "the future".
pub(crate) fn resolve(snap: &Snapshot, at: At, now_ms: i64) -> Result<Cut, HistoryError> {
    let last = snap.last_seq();
    match at {
        At::Seq(n) if n > last => Err(HistoryError::BadInstant(format!(
            "at is in the future: the last event is {last}"
        ))),
        At::Seq(n) => Ok(Cut {
            seq: n,
            at_ms: event(&snap.gen, n)?.ts_ms,
        }),
        At::Time(t) if t > now_ms => Err(HistoryError::BadInstant(format!(
            "at is in the future (now is {})",
            fmt_ms(now_ms)
        ))),
        At::Time(t) => {
            let n = partition(last as usize, t, |i| {
                Ok(event(&snap.gen, i as u64 + 1)?.ts_ms)
            })?;
            Ok(Cut {
                seq: n as u64,
                at_ms: t,
            })
        }
    }
}

/// Raw events handed from the scanning thread to the replaying one at a time.
const CHUNK: usize = 4096;

/// The whole state after event `upto`: a prefix replay, sled's scan on one thread
/// and decode + apply on this one (the two cost about the same).
pub fn past_at(gen: &Gen, upto: u64) -> Result<Past, StoreError> {
    let mut past = Past::default();
    if upto == 0 {
        return Ok(past);
    }
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(u64, sled::IVec)>>(16);
        let scanner = scope.spawn(move || -> Result<(), StoreError> {
            let mut chunk = Vec::with_capacity(CHUNK);
            for r in gen.raw_events(1, upto) {
                chunk.push(r?);
                if chunk.len() == CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    if tx.send(full).is_err() {
                        return Ok(());
                    }
                }
            }
            let _ = tx.send(chunk);
            Ok(())
        });
        let mut applied: Result<(), StoreError> = Ok(());
        for chunk in rx {
            for (seq, bytes) in chunk {
                match decode_event(&bytes) {
                    Ok(se) => past.apply(seq, &se),
                    Err(e) => {
                        applied = Err(e);
                        break;
                    }
                }
            }
            if applied.is_err() {
                break;
            }
        }
        let scanned = scanner
            .join()
            .unwrap_or_else(|_| Err(StoreError::Corrupt("the log scan panicked".into())));
        scanned?;
        applied?;
        if past.seq != upto {
            return Err(StoreError::Corrupt(format!(
                "the log ends at event {} before event {upto}",
                past.seq
            )));
        }
        Ok(past)
    })
}

/// One stream (a group or a task): its own events and the events that decide its
/// state (a task's group can delete it, so a task replays its group's stream).
pub(crate) struct Stream {
    pub(crate) id: Id,
    pub(crate) is_group: bool,
    /// Sequences of the stream's own events (its activity), ascending.
    pub(crate) own: Vec<u64>,
    /// The events to replay for its state, ascending, with their bodies.
    pub(crate) events: Vec<(u64, StoredEvent)>,
}

fn ascending(mut newest_first: Vec<u64>) -> Vec<u64> {
    newest_first.reverse();
    newest_first
}

/// Finds a stream by id (groups first) in what is durable; `None` if it has no history.
pub(crate) fn stream(snap: &Snapshot, id: &Id) -> Result<Option<Stream>, StoreError> {
    let state = &snap.state;
    let group_own = ascending(state.group_log(id, None, usize::MAX));
    if !group_own.is_empty() {
        let events = bodies(&snap.gen, &group_own)?;
        return Ok(Some(Stream {
            id: id.clone(),
            is_group: true,
            own: group_own,
            events,
        }));
    }
    let own = ascending(state.task_log(id, None, usize::MAX));
    let Some(first) = own.first() else {
        return Ok(None);
    };
    let group = event(&snap.gen, *first)?
        .event
        .group_id()
        .ok_or_else(|| StoreError::Corrupt(format!("event {first} of task {id} names no group")))?;
    let replay = ascending(state.group_log(&group, None, usize::MAX));
    Ok(Some(Stream {
        id: id.clone(),
        is_group: false,
        own,
        events: bodies(&snap.gen, &replay)?,
    }))
}

fn bodies(gen: &Gen, seqs: &[u64]) -> Result<Vec<(u64, StoredEvent)>, StoreError> {
    seqs.iter().map(|s| Ok((*s, event(gen, *s)?))).collect()
}

impl Stream {
    /// The stream's state after every event with sequence ≤ `upto`.
    pub(crate) fn past(&self, upto: u64) -> Past {
        let mut past = Past::default();
        self.replay_onto(&mut past, upto);
        past
    }

    /// Continues `past` with the stream's events after `past.seq` up to `upto`.
    pub(crate) fn replay_onto(&self, past: &mut Past, upto: u64) {
        let from = self.events.partition_point(|(s, _)| *s <= past.seq);
        for (seq, se) in &self.events[from..] {
            if *seq > upto {
                break;
            }
            past.apply(*seq, se);
        }
    }

    /// Timestamp of one of its own events.
    pub(crate) fn own_ts(&self, seq: u64) -> Option<i64> {
        self.events
            .binary_search_by_key(&seq, |(s, _)| *s)
            .ok()
            .map(|i| self.events[i].1.ts_ms)
    }
}

/// How many of `seqs` (ascending, timestamps ascending) have a timestamp ≤ `t`.
pub(crate) fn count_until(gen: &Gen, seqs: &[u64], t: i64) -> Result<usize, StoreError> {
    partition(seqs.len(), t, |i| Ok(event(gen, seqs[i])?.ts_ms))
}

// Monthly stream snapshots (SPEC §7): which instant and which events make a month.

/// A calendar month, `YYYY-MM`: its first instant and the first of the next.
pub(crate) fn month_bounds(raw: &str) -> Option<(i64, i64)> {
    let b = raw.as_bytes();
    if b.len() != 7
        || b[4] != b'-'
        || !raw[..4]
            .bytes()
            .chain(raw[5..].bytes())
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let y: i32 = raw[..4].parse().ok()?;
    let m: u32 = raw[5..].parse().ok()?;
    let start = NaiveDate::from_ymd_opt(y, m, 1)?;
    let next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)?
    };
    let ms = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis())
    };
    Some((ms(start)?, ms(next)?))
}

pub(crate) fn month_of(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => format!("{:04}-{:02}", t.year(), t.month()),
        None => "1970-01".into(),
    }
}

/// One month of a stream: the instant it is shown at, the last own event by
/// then, and the last event of any kind to replay.
pub(crate) struct MonthCut {
    pub(crate) at_ms: i64,
    pub(crate) last_own: u64,
    pub(crate) upto: u64,
}

pub(crate) fn month_cut(stream: &Stream, start: i64, next: i64, now: i64) -> MonthCut {
    let last_own_ts = stream.own.last().and_then(|s| stream.own_ts(*s));
    let at_ms = if next > now {
        // The current month: its end has not happened; show the latest.
        match last_own_ts {
            Some(t) if t >= start => t,
            _ => now,
        }
    } else {
        next - 1
    };
    let last_own = stream
        .own
        .iter()
        .rev()
        .find(|s| stream.own_ts(**s).is_some_and(|t| t <= at_ms))
        .copied()
        .unwrap_or(0);
    let upto = stream
        .events
        .iter()
        .rev()
        .find(|(_, e)| e.ts_ms <= at_ms)
        .map(|(s, _)| *s)
        .unwrap_or(0);
    MonthCut {
        at_ms,
        last_own,
        upto,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_parse_strictly() {
        assert_eq!(At::parse("12").unwrap(), At::Seq(12));
        assert!(At::parse("0").is_err());
        assert!(At::parse("-3").is_err());
        assert!(At::parse("1.5").is_err());
        assert!(At::parse("yesterday").is_err());
        assert_eq!(
            At::parse("2025-11-10T15:30:45.123Z").unwrap(),
            At::Time(1_762_788_645_123)
        );
        assert_eq!(
            At::parse("2025-11-10T16:30:45.123+01:00").unwrap(),
            At::Time(1_762_788_645_123)
        );
    }

    #[test]
    fn partition_finds_the_last_time_at_or_before() {
        let ts = [10, 20, 20, 30];
        let p = |t| partition(ts.len(), t, |i| Ok(ts[i])).unwrap();
        assert_eq!(p(5), 0);
        assert_eq!(p(10), 1);
        assert_eq!(p(20), 3);
        assert_eq!(p(25), 3);
        assert_eq!(p(30), 4);
        assert_eq!(p(99), 4);
    }
}
