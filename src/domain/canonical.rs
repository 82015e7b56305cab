//! The canonical JSON form of an event (SPEC §5), as written to backups:
//! `{"id","eventId","type","version","timestamp","user","workspace","data"}`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use super::event::{Event, StoredEvent};
use super::time::{fmt_ms, parse_ms};
use super::upcast;

pub(crate) const WORKSPACE: &str = "default";

/// Written straight from the event: no intermediate JSON tree (backups of a
/// million events serialize a million of these).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CanonicalOut<'a> {
    id: u64,
    event_id: Uuid,
    #[serde(rename = "type")]
    kind: &'a str,
    version: u32,
    timestamp: String,
    user: &'a str,
    workspace: &'a str,
    data: Data<'a>,
}

struct Data<'a>(&'a Event);

impl Serialize for Data<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Event::UserCreated(e) => e.serialize(s),
            Event::GroupCreated(e) => e.serialize(s),
            Event::GroupUpdated(e) => e.serialize(s),
            Event::GroupDeleted(e) => e.serialize(s),
            Event::TaskCreated(e) => e.serialize(s),
            Event::TaskUpdated(e) => e.serialize(s),
            Event::TaskStatusChanged(e) => e.serialize(s),
            Event::TaskDeleted(e) => e.serialize(s),
            Event::CommentAdded(e) => e.serialize(s),
        }
    }
}

/// Read side: `data` stays raw until the type says what it must be.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CanonicalIn<'a> {
    id: u64,
    event_id: Uuid,
    // Cow: borrowed unless the JSON string has escapes.
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    version: u32,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    user: String,
    #[allow(dead_code)]
    #[serde(borrow)]
    workspace: Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// One line of `events.ndjson` (without the newline).
pub(crate) fn to_canonical(seq: u64, ev: &StoredEvent) -> Vec<u8> {
    let c = CanonicalOut {
        id: seq,
        event_id: ev.event_id,
        kind: ev.event.type_name(),
        version: ev.version,
        timestamp: fmt_ms(ev.ts_ms),
        user: &ev.user,
        workspace: WORKSPACE,
        data: Data(&ev.event),
    };
    // Every payload is plain structs of strings, numbers and enums.
    serde_json::to_vec(&c).expect("canonical events always serialize to JSON")
}

/// Parses and checks one canonical line; the error says what is wrong. A line
/// of an older event version is brought to today's shape first.
pub(crate) fn from_canonical(line: &[u8]) -> Result<(u64, StoredEvent), String> {
    from_canonical_with(line, &upcast::CHAIN)
}

/// [`from_canonical`] with a given chain of versions (tests use synthetic ones).
pub(crate) fn from_canonical_with(
    line: &[u8],
    chain: &upcast::Chain,
) -> Result<(u64, StoredEvent), String> {
    let c: CanonicalIn =
        serde_json::from_slice(line).map_err(|e| format!("bad event JSON: {e}"))?;
    let ts_ms = parse_ms(&c.timestamp).ok_or_else(|| format!("bad timestamp {:?}", c.timestamp))?;
    let data = chain
        .data(c.kind.as_ref(), c.version, c.data.get())
        .map_err(|e| e.to_string())?;
    let event = Event::from_canonical_parts(c.kind.as_ref(), &data)?;
    Ok((
        c.id,
        StoredEvent {
            version: chain.current,
            event_id: c.event_id,
            ts_ms,
            user: c.user,
            event,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::TaskCreated;
    use crate::domain::model::Status;

    #[test]
    fn round_trips_and_has_the_spec_shape() {
        let ev = StoredEvent {
            version: 1,
            event_id: Uuid::new_v4(),
            ts_ms: 1_762_788_645_123,
            user: "Dhaya".into(),
            event: Event::TaskCreated(TaskCreated {
                task_id: Uuid::new_v4().into(),
                group_id: Uuid::new_v4().into(),
                group_name: "Project Alpha".into(),
                name: "Feature X".into(),
                description: String::new(),
                status: Status::InProgress,
                start_date: Some("2025-01-02".into()),
                end_date: None,
            }),
        };
        let line = to_canonical(7, &ev);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["type"], "TaskCreated");
        assert_eq!(v["version"], 1);
        assert_eq!(v["timestamp"], "2025-11-10T15:30:45.123Z");
        assert_eq!(v["workspace"], "default");
        assert_eq!(v["data"]["status"], "In Progress");
        assert_eq!(v["data"]["groupName"], "Project Alpha");
        assert_eq!(from_canonical(&line).unwrap(), (7, ev));
    }

    #[test]
    fn rejects_unknown_types_and_fields() {
        let bad = br#"{"id":1,"eventId":"00000000-0000-0000-0000-000000000000","type":"Nope","version":1,"timestamp":"2025-11-10T15:30:45.123Z","user":"u","workspace":"default","data":{}}"#;
        assert!(from_canonical(bad)
            .unwrap_err()
            .contains("unknown event type"));
        assert!(from_canonical(b"{\"id\":1}").is_err());
        assert!(from_canonical(b"not json").is_err());
    }
}
