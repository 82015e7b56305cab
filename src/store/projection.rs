//! Applies one event to the projections held in the tree. Infallible and
//! mechanical: the event carries every fact, this only copies and indexes.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::keys::{self, *};
use super::overlay::{Base, Overlay};
use crate::domain::event::Event;
use crate::domain::{describe, CommentRec, GroupRec, StoredEvent, TaskRec, UserRec};

/// Activity summary of a group or of a task within a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSummary {
    /// The latest name seen in its events (kept after deletion).
    pub name: String,
    pub count: u64,
    pub last_ms: i64,
}

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    bincode::serialize(v).expect("plain records always serialize with bincode")
}

/// Appends the event itself under its sequence number.
pub fn append<B: Base>(ov: &mut Overlay<B>, seq: u64, se: &StoredEvent) {
    ov.put(keys::event(seq), encode(se));
}

fn remove_task<B: Base>(ov: &mut Overlay<B>, task_id: Uuid) {
    if let Some(t) = ov.get_as::<TaskRec>(&keys::id(TASK, task_id)) {
        ov.remove(keys::id_seq(GROUP_TASK, t.group_id, t.created_seq));
    }
    ov.remove(keys::id(TASK, task_id));
    for (k, _) in ov.scan(&keys::id(COMMENT, task_id)) {
        ov.remove(k);
    }
}

fn bump<B: Base>(ov: &mut Overlay<B>, key: Vec<u8>, name: &str, ts: i64) {
    let mut s = ov.get_as::<LogSummary>(&key).unwrap_or(LogSummary {
        name: String::new(),
        count: 0,
        last_ms: ts,
    });
    s.name = name.to_string();
    s.count += 1;
    s.last_ms = s.last_ms.max(ts);
    ov.put(key, encode(&s));
}

/// Updates every projection for one event.
pub fn project<B: Base>(ov: &mut Overlay<B>, seq: u64, se: &StoredEvent) {
    let ts = se.ts_ms;
    match &se.event {
        Event::UserCreated(e) => {
            let rec = UserRec {
                id: e.user_id,
                username: e.username.clone(),
                role: e.role,
                password_hash: e.password_hash.clone(),
                created_ms: ts,
            };
            ov.put(keys::user(&e.username), encode(&rec));
        }
        Event::GroupCreated(e) => {
            let rec = GroupRec {
                id: e.group_id,
                name: e.name.clone(),
                discussion: e.discussion.clone(),
                created_seq: seq,
                created_ms: ts,
                updated_ms: ts,
            };
            ov.put(keys::id(GROUP, e.group_id), encode(&rec));
        }
        Event::GroupUpdated(e) => {
            let key = keys::id(GROUP, e.group_id);
            if let Some(mut g) = ov.get_as::<GroupRec>(&key) {
                g.name = e.name.clone();
                g.discussion = e.discussion.clone();
                g.updated_ms = ts;
                ov.put(key, encode(&g));
            }
        }
        Event::GroupDeleted(e) => {
            for t in &e.task_ids {
                remove_task(ov, *t);
            }
            // Belt and braces: the index of the group goes whole.
            for (k, _) in ov.scan(&keys::id(GROUP_TASK, e.group_id)) {
                ov.remove(k);
            }
            ov.remove(keys::id(GROUP, e.group_id));
        }
        Event::TaskCreated(e) => {
            let rec = TaskRec {
                id: e.task_id,
                group_id: e.group_id,
                name: e.name.clone(),
                description: e.description.clone(),
                status: e.status,
                start_date: e.start_date.clone(),
                end_date: e.end_date.clone(),
                created_seq: seq,
                created_ms: ts,
                updated_ms: ts,
            };
            ov.put(keys::id(TASK, e.task_id), encode(&rec));
            ov.put(
                keys::id_seq(GROUP_TASK, e.group_id, seq),
                e.task_id.as_bytes().to_vec(),
            );
        }
        Event::TaskUpdated(e) => {
            let key = keys::id(TASK, e.task_id);
            if let Some(mut t) = ov.get_as::<TaskRec>(&key) {
                t.name = e.name.clone();
                t.description = e.description.clone();
                t.status = e.status;
                t.start_date = e.start_date.clone();
                t.end_date = e.end_date.clone();
                t.updated_ms = ts;
                ov.put(key, encode(&t));
            }
        }
        Event::TaskStatusChanged(e) => {
            let key = keys::id(TASK, e.task_id);
            if let Some(mut t) = ov.get_as::<TaskRec>(&key) {
                t.status = e.to;
                t.updated_ms = ts;
                ov.put(key, encode(&t));
            }
        }
        Event::TaskDeleted(e) => remove_task(ov, e.task_id),
        Event::CommentAdded(e) => {
            let rec = CommentRec {
                id: e.comment_id,
                task_id: e.task_id,
                text: e.text.clone(),
                author: se.user.clone(),
                created_ms: ts,
            };
            ov.put(keys::id_seq(COMMENT, e.task_id, seq), encode(&rec));
        }
    }
    if let Some(a) = describe(&se.event) {
        ov.put(keys::id_seq(LOG_GROUP, a.group_id, seq), Vec::new());
        bump(ov, keys::id(SUM_GROUP, a.group_id), &a.group_name, ts);
        if let (Some(tid), Some(tname)) = (a.task_id, a.task_name.as_deref()) {
            ov.put(keys::id_seq(LOG_TASK, tid, seq), Vec::new());
            bump(ov, keys::id_id(SUM_TASK, a.group_id, tid), tname, ts);
        }
    }
}
