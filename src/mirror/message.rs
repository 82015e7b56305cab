//! The Kafka message for each event (SPEC §4, the seed format), and the
//! `restored` notice published after a restore.

use serde_json::{json, Value};

use crate::domain::canonical::WORKSPACE;
use crate::domain::time::fmt_ms;
use crate::domain::{describe, StoredEvent};

pub(crate) const EVENT_ID_HEADER: &str = "taskledger-event-id";
/// Key of messages that belong to no group (the `restored` notice).
pub(crate) const SYSTEM_KEY: &str = "taskledger-system";

/// (key, value) for an event; `None` for events never published (users, auth).
pub(crate) fn seed_message(se: &StoredEvent) -> Option<(String, Vec<u8>)> {
    let a = describe(&se.event)?;
    let ts = fmt_ms(se.ts_ms);
    let v: Value = json!({
        "eventType": a.event_type,
        "timestamp": ts,
        "payload": {
            "entity": a.entity,
            "entityId": a.entity_id.to_string(),
            "groupId": a.group_id.to_string(),
            "groupName": a.group_name,
            "taskId": a.task_id.map(|t| t.to_string()),
            "taskName": a.task_name,
            "changes": a.changes,
            "user": se.user,
            "workspace": WORKSPACE,
            "timestamp": ts,
        }
    });
    Some((
        a.group_id.to_string(),
        serde_json::to_vec(&v).unwrap_or_default(),
    ))
}

/// The notice that the log was replaced: consumers resync from `lastEventId`.
pub(crate) fn restored_message(backup: &str, last_event_id: u64, ts_ms: i64) -> Vec<u8> {
    let ts = fmt_ms(ts_ms);
    let v = json!({
        "eventType": "restored",
        "timestamp": ts,
        "payload": {
            "entity": "System",
            "entityId": backup,
            "backupName": backup,
            "lastEventId": last_event_id,
            "changes": format!("Data restored from backup '{backup}'; the log now ends at event {last_event_id}"),
            "user": "system",
            "workspace": WORKSPACE,
            "timestamp": ts,
        }
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{Event, TaskCreated, UserCreated};
    use crate::domain::{Role, Status};
    use uuid::Uuid;

    #[test]
    fn task_created_has_the_seed_shape() {
        let (g, t) = (Uuid::new_v4(), Uuid::new_v4());
        let se = StoredEvent {
            version: 1,
            event_id: Uuid::new_v4(),
            ts_ms: 1_762_788_645_123,
            user: "Dhaya".into(),
            event: Event::TaskCreated(TaskCreated {
                task_id: t.into(),
                group_id: g.into(),
                group_name: "Project Alpha".into(),
                name: "Feature X".into(),
                description: String::new(),
                status: Status::New,
                start_date: None,
                end_date: None,
            }),
        };
        let (key, value) = seed_message(&se).unwrap();
        assert_eq!(key, g.to_string());
        let v: Value = serde_json::from_slice(&value).unwrap();
        assert_eq!(
            v,
            json!({"eventType":"created","timestamp":"2025-11-10T15:30:45.123Z",
                "payload":{"entity":"Task","entityId":t.to_string(),"groupId":g.to_string(),"groupName":"Project Alpha",
                "taskId":t.to_string(),"taskName":"Feature X","changes":"Task 'Feature X' was created",
                "user":"Dhaya","workspace":"default","timestamp":"2025-11-10T15:30:45.123Z"}})
        );
    }

    #[test]
    fn users_are_never_published() {
        let se = StoredEvent {
            version: 1,
            event_id: Uuid::new_v4(),
            ts_ms: 0,
            user: "system".into(),
            event: Event::UserCreated(UserCreated {
                user_id: Uuid::new_v4().into(),
                username: "a".into(),
                role: Role::Admin,
                password_hash: "secret".into(),
            }),
        };
        assert!(seed_message(&se).is_none());
    }
}
