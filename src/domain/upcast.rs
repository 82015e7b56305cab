//! The one place an event's stored version is read, and the path that brings an
//! event written by an older version up to today's shape before anything
//! decodes it. Owns the version dispatch of both stored forms: the bincode
//! envelope in the sled log and the canonical JSON of backups (and of anything
//! else that carries §5 events). Touches nothing but bytes.
//!
//! Changing an event's shape (see the README, "Changing an event's shape"):
//! bump [`EVENT_VERSION`]; add a [`Step`] from the old version that rewrites
//! the old canonical `data` into the new one; and, because bincode has no
//! schema, keep the old payload struct frozen and decode an old-version sled
//! value with it in [`stored`] (then convert it through the same step).

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::event::{StoredEvent, EVENT_VERSION};

/// Why a stored event cannot be brought to today's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UpcastError {
    #[error(
        "event version {found} was written by a newer taskledger (this one reads up to {current})"
    )]
    Newer { found: u32, current: u32 },
    #[error("event version {found} is not one this taskledger can read (it reads {current} and the versions it upgrades)")]
    Unknown { found: u32, current: u32 },
    #[error("event version {version} of {kind}: {why}")]
    Step {
        kind: String,
        version: u32,
        why: String,
    },
    #[error("undecodable event: {0}")]
    Decode(String),
}

/// Rewrites the canonical `data` of one event kind from version `from` to
/// `from + 1`; kinds a step does not name pass through it unchanged.
pub(crate) struct Step {
    pub(crate) from: u32,
    pub(crate) kind: &'static str,
    pub(crate) rewrite: fn(&mut Map<String, Value>) -> Result<(), String>,
}

/// The versions this build reads: `current`, and every older one the steps
/// lead up from.
pub(crate) struct Chain<'a> {
    pub(crate) current: u32,
    pub(crate) steps: &'a [Step],
}

/// Today's chain. Version 1 is the only version written so far: no steps yet.
pub(crate) const CHAIN: Chain<'static> = Chain {
    current: EVENT_VERSION,
    steps: &[],
};

impl Chain<'_> {
    /// The oldest version the steps reach `current` from without a gap.
    fn oldest(&self) -> u32 {
        let mut v = self.current;
        while v > 1 && self.steps.iter().any(|s| s.from == v - 1) {
            v -= 1;
        }
        v
    }

    /// `data` (canonical JSON of an event of `kind` written at `version`) in
    /// today's shape: borrowed as it is when already current.
    pub(crate) fn data<'d>(
        &self,
        kind: &str,
        version: u32,
        data: &'d str,
    ) -> Result<Cow<'d, str>, UpcastError> {
        if version == self.current {
            return Ok(Cow::Borrowed(data));
        }
        if version > self.current {
            return Err(UpcastError::Newer {
                found: version,
                current: self.current,
            });
        }
        if version < self.oldest() {
            return Err(UpcastError::Unknown {
                found: version,
                current: self.current,
            });
        }
        let step_error = |v: u32, why: String| UpcastError::Step {
            kind: kind.to_string(),
            version: v,
            why,
        };
        let mut value: Value =
            serde_json::from_str(data).map_err(|e| step_error(version, e.to_string()))?;
        for v in version..self.current {
            let fields = value
                .as_object_mut()
                .ok_or_else(|| step_error(v, "data is not an object".into()))?;
            for step in self.steps.iter().filter(|s| s.from == v && s.kind == kind) {
                (step.rewrite)(fields).map_err(|why| step_error(v, why))?;
            }
        }
        Ok(Cow::Owned(value.to_string()))
    }
}

/// Decodes a value of the sled log. The envelope's first field is the version
/// (bincode writes a `u32` as 4 little-endian bytes), read before the rest.
pub(crate) fn stored(bytes: &[u8]) -> Result<StoredEvent, UpcastError> {
    let version = bytes
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| UpcastError::Decode("shorter than its version".into()))?;
    if version != CHAIN.current {
        // Older versions are decoded here with their frozen structs once there are any.
        return Err(match version > CHAIN.current {
            true => UpcastError::Newer {
                found: version,
                current: CHAIN.current,
            },
            false => UpcastError::Unknown {
                found: version,
                current: CHAIN.current,
            },
        });
    }
    bincode::deserialize(bytes).map_err(|e| UpcastError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::canonical::{from_canonical_with, to_canonical};
    use crate::domain::event::{
        CommentAdded, Event, GroupCreated, TaskCreated, TaskStatusChanged, UserCreated,
    };
    use crate::domain::model::{Role, Status};
    use crate::domain::state::State;
    use uuid::Uuid;

    /// A synthetic history of one kind's shape: in "version 1",
    /// `TaskStatusChanged` named its statuses `previous` and `status`; "version
    /// 2" (today's struct) calls them `from` and `to`.
    fn rename(fields: &mut Map<String, Value>) -> Result<(), String> {
        for (old, new) in [("previous", "from"), ("status", "to")] {
            let v = fields.remove(old).ok_or(format!("no {old:?} field"))?;
            fields.insert(new.into(), v);
        }
        Ok(())
    }

    const STEPS: &[Step] = &[Step {
        from: 1,
        kind: "TaskStatusChanged",
        rewrite: rename,
    }];
    const TWO: Chain<'static> = Chain {
        current: 2,
        steps: STEPS,
    };

    fn history() -> Vec<StoredEvent> {
        let gid = || -> crate::domain::Id { Uuid::from_u128(10).into() };
        let tid = || -> crate::domain::Id { Uuid::from_u128(20).into() };
        let ev = |n: u128, event| StoredEvent {
            version: 2,
            event_id: Uuid::from_u128(n),
            ts_ms: 1_700_000_000_000 + n as i64,
            user: "admin".into(),
            event,
        };
        let status = |from, to| {
            Event::TaskStatusChanged(TaskStatusChanged {
                task_id: tid(),
                group_id: gid(),
                group_name: "G".into(),
                task_name: "T".into(),
                from,
                to,
            })
        };
        vec![
            ev(
                1,
                Event::UserCreated(UserCreated {
                    user_id: Uuid::from_u128(1).into(),
                    username: "admin".into(),
                    role: Role::Admin,
                    password_hash: "$argon2id$x".into(),
                }),
            ),
            ev(
                2,
                Event::GroupCreated(GroupCreated {
                    group_id: gid(),
                    name: "G".into(),
                    discussion: String::new(),
                }),
            ),
            ev(
                3,
                Event::TaskCreated(TaskCreated {
                    task_id: tid(),
                    group_id: gid(),
                    group_name: "G".into(),
                    name: "T".into(),
                    description: "d".into(),
                    status: Status::New,
                    start_date: None,
                    end_date: None,
                }),
            ),
            ev(4, status(Status::New, Status::InProgress)),
            ev(
                5,
                Event::CommentAdded(CommentAdded {
                    comment_id: Uuid::from_u128(30).into(),
                    task_id: tid(),
                    group_id: gid(),
                    group_name: "G".into(),
                    task_name: "T".into(),
                    text: "hi".into(),
                }),
            ),
            ev(6, status(Status::InProgress, Status::Completed)),
        ]
    }

    /// The same event as a version-1 line: the old envelope version and, for
    /// the kind that changed, the old field names.
    fn as_version_1(seq: u64, se: &StoredEvent) -> Vec<u8> {
        let mut v: Value = serde_json::from_slice(&to_canonical(seq, se)).unwrap();
        v["version"] = 1.into();
        if se.event.type_name() == "TaskStatusChanged" {
            let data = v["data"].as_object_mut().unwrap();
            for (new, old) in [("from", "previous"), ("to", "status")] {
                let x = data.remove(new).unwrap();
                data.insert(old.into(), x);
            }
        }
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn a_version_1_log_replays_through_the_step_to_the_same_state() {
        let events = history();
        let mut want = State::default();
        let mut got = State::default();
        for (i, se) in events.iter().enumerate() {
            let seq = i as u64 + 1;
            want.apply(seq, se);
            let old = as_version_1(seq, se);
            let (s, upcast) = from_canonical_with(&old, &TWO).unwrap();
            assert_eq!(s, seq);
            assert_eq!(&upcast, se, "line {seq} did not come up to today's shape");
            got.apply(seq, &upcast);
            // A current line passes the same chain untouched.
            let (_, current) = from_canonical_with(&to_canonical(seq, se), &TWO).unwrap();
            assert_eq!(&current, se);
        }
        assert_eq!(got, want);
        assert_eq!(crate::domain::state::first_difference(&got, &want), None);
    }

    #[test]
    fn versions_outside_the_chain_are_refused_with_a_reason() {
        let se = &history()[3];
        let mut v: Value = serde_json::from_slice(&to_canonical(4, se)).unwrap();
        v["version"] = 3.into();
        let newer = from_canonical_with(&serde_json::to_vec(&v).unwrap(), &TWO).unwrap_err();
        assert!(newer.contains("newer taskledger"), "{newer}");
        v["version"] = 0.into();
        let older = from_canonical_with(&serde_json::to_vec(&v).unwrap(), &TWO).unwrap_err();
        assert!(
            older.contains("not one this taskledger can read"),
            "{older}"
        );
        // A version-1 line without the old field the step needs says which.
        let mut broken: Value = serde_json::from_slice(&as_version_1(4, se)).unwrap();
        broken["data"].as_object_mut().unwrap().remove("previous");
        let why = from_canonical_with(&serde_json::to_vec(&broken).unwrap(), &TWO).unwrap_err();
        assert!(
            why.contains("TaskStatusChanged") && why.contains("previous"),
            "{why}"
        );
    }

    #[test]
    fn the_sled_envelope_version_is_read_first() {
        let mut se = history()[1].clone();
        se.version = EVENT_VERSION;
        let bytes = bincode::serialize(&se).unwrap();
        assert_eq!(stored(&bytes).unwrap(), se);
        se.version = EVENT_VERSION + 1;
        let newer = stored(&bincode::serialize(&se).unwrap()).unwrap_err();
        assert!(matches!(newer, UpcastError::Newer { .. }), "{newer}");
        assert!(matches!(stored(&[1, 0]), Err(UpcastError::Decode(_))));
    }
}
