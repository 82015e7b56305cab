//! The canonical JSON form of an event (SPEC §5), as written to backups:
//! `{"id","eventId","type","version","timestamp","user","workspace","data"}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::event::{Event, StoredEvent, EVENT_VERSION};
use super::time::{fmt_ms, parse_ms};

pub const WORKSPACE: &str = "default";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Canonical {
    id: u64,
    event_id: Uuid,
    #[serde(rename = "type")]
    kind: String,
    version: u32,
    timestamp: String,
    user: String,
    workspace: String,
    data: Value,
}

fn data_of(event: &Event) -> Result<Value, serde_json::Error> {
    match event {
        Event::UserCreated(e) => serde_json::to_value(e),
        Event::GroupCreated(e) => serde_json::to_value(e),
        Event::GroupUpdated(e) => serde_json::to_value(e),
        Event::GroupDeleted(e) => serde_json::to_value(e),
        Event::TaskCreated(e) => serde_json::to_value(e),
        Event::TaskUpdated(e) => serde_json::to_value(e),
        Event::TaskStatusChanged(e) => serde_json::to_value(e),
        Event::TaskDeleted(e) => serde_json::to_value(e),
        Event::CommentAdded(e) => serde_json::to_value(e),
    }
}

/// One line of `events.ndjson` (without the newline).
pub fn to_canonical(seq: u64, ev: &StoredEvent) -> Vec<u8> {
    let c = Canonical {
        id: seq,
        event_id: ev.event_id,
        kind: ev.event.type_name().to_string(),
        version: ev.version,
        timestamp: fmt_ms(ev.ts_ms),
        user: ev.user.clone(),
        workspace: WORKSPACE.to_string(),
        // Every payload is plain structs of strings, numbers and enums.
        data: data_of(&ev.event).expect("event payloads always serialize to JSON"),
    };
    serde_json::to_vec(&c).expect("canonical events always serialize to JSON")
}

/// Parses and checks one canonical line; the error says what is wrong.
pub fn from_canonical(line: &[u8]) -> Result<(u64, StoredEvent), String> {
    let c: Canonical = serde_json::from_slice(line).map_err(|e| format!("bad event JSON: {e}"))?;
    if c.version != EVENT_VERSION {
        return Err(format!("unsupported event version {}", c.version));
    }
    let ts_ms = parse_ms(&c.timestamp).ok_or_else(|| format!("bad timestamp {:?}", c.timestamp))?;
    fn d<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, String> {
        serde_json::from_value(v).map_err(|e| format!("bad event data: {e}"))
    }
    let event = match c.kind.as_str() {
        "UserCreated" => Event::UserCreated(d(c.data)?),
        "GroupCreated" => Event::GroupCreated(d(c.data)?),
        "GroupUpdated" => Event::GroupUpdated(d(c.data)?),
        "GroupDeleted" => Event::GroupDeleted(d(c.data)?),
        "TaskCreated" => Event::TaskCreated(d(c.data)?),
        "TaskUpdated" => Event::TaskUpdated(d(c.data)?),
        "TaskStatusChanged" => Event::TaskStatusChanged(d(c.data)?),
        "TaskDeleted" => Event::TaskDeleted(d(c.data)?),
        "CommentAdded" => Event::CommentAdded(d(c.data)?),
        other => return Err(format!("unknown event type {other:?}")),
    };
    Ok((
        c.id,
        StoredEvent {
            version: c.version,
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
        let v: Value = serde_json::from_slice(&line).unwrap();
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
