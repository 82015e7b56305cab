//! Property test: random command sequences run through the real store (sled log,
//! group-commit writer, durability barrier, checkpoints) and through the pure
//! domain (`decide` + `State::apply` in memory, nothing persisted) must agree —
//! same accept/reject decisions, same events, same memory image — across clean
//! reopens (from a checkpoint), unclean ones (stale checkpoint plus log tail) and
//! reopens without any checkpoint (full replay); `check` must find the store
//! consistent at the end.

use std::path::Path;
use std::sync::Arc;

use crate::domain::state::State as MemState;
use crate::domain::{decide, Command, Id, Role, Status};
use crate::metrics::Metrics;
use crate::store::{replay, Store, WriteError};
use proptest::prelude::*;
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Op {
    Cmd(Command),
    /// Clean close (writes a checkpoint) and open.
    Reopen,
    /// Drop without closing: the next open starts from an older checkpoint, if any.
    Abandon,
    /// Delete the checkpoint, then reopen: a full replay.
    ForgetCheckpoint,
}

/// Ids of both kinds: ours (UUIDs) and imported text ids (ObjectId-like).
fn gid(n: u8) -> Id {
    if n.is_multiple_of(2) {
        Uuid::from_u128(0x1000 + n as u128).into()
    } else {
        Id::parse(&format!("65a1b2c3d4e5f6a7b8c9d0{n:02x}")).unwrap()
    }
}
fn tid(n: u8) -> Id {
    if n.is_multiple_of(2) {
        Uuid::from_u128(0x2000 + n as u128).into()
    } else {
        Id::parse(&format!("task-{n}")).unwrap()
    }
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("".to_string()),
        Just("  padded  ".to_string()),
        "[a-zA-Z ]{1,12}",
        Just("x".repeat(201)),
    ]
}

fn status() -> impl Strategy<Value = Status> {
    prop::sample::select(Status::ALL.to_vec())
}

fn date() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("2025-01-10".to_string())),
        Just(Some("2025-03-01".to_string())),
        Just(Some("2025-02-30".to_string())),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let g = 0u8..3;
    let t = 0u8..6;
    prop_oneof![
        (g.clone(), name(), prop::option::of("[a-z]{0,8}")).prop_map(|(g, name, discussion)| {
            Op::Cmd(Command::CreateGroup {
                id: gid(g),
                name,
                discussion,
            })
        }),
        (
            g.clone(),
            prop::option::of(name()),
            prop::option::of("[a-z]{0,8}")
        )
            .prop_map(|(g, name, discussion)| Op::Cmd(Command::UpdateGroup {
                id: gid(g),
                name,
                discussion
            })),
        g.clone()
            .prop_map(|g| Op::Cmd(Command::DeleteGroup { id: gid(g) })),
        (
            t.clone(),
            g,
            name(),
            prop::option::of(status()),
            date(),
            date()
        )
            .prop_map(|(t, g, name, status, start_date, end_date)| Op::Cmd(
                Command::CreateTask {
                    id: tid(t),
                    group_id: gid(g),
                    name,
                    description: None,
                    status,
                    start_date,
                    end_date,
                }
            )),
        (
            t.clone(),
            prop::option::of(name()),
            prop::option::of(status()),
            prop::option::of(date())
        )
            .prop_map(|(t, name, status, end_date)| Op::Cmd(Command::UpdateTask {
                id: tid(t),
                name,
                description: Some("d".into()),
                status,
                start_date: None,
                end_date,
            })),
        (t.clone(), status())
            .prop_map(|(t, status)| Op::Cmd(Command::ChangeStatus { id: tid(t), status })),
        t.clone()
            .prop_map(|t| Op::Cmd(Command::DeleteTask { id: tid(t) })),
        (t, prop_oneof![Just("".to_string()), "[a-z ]{1,10}"]).prop_map(|(t, text)| Op::Cmd(
            Command::AddComment {
                id: Uuid::new_v4().into(),
                task_id: tid(t),
                text,
            }
        )),
        "[a-c]{1,2}".prop_map(|u| Op::Cmd(Command::CreateUser {
            id: Uuid::new_v4().into(),
            username: u,
            password_hash: "h".into(),
            role: Role::Member,
            if_absent: false,
        })),
        Just(Op::Reopen),
        Just(Op::Abandon),
        Just(Op::ForgetCheckpoint),
    ]
}

fn open(dir: &Path) -> Store {
    Store::open(dir, Arc::new(Metrics::new())).expect("store opens")
}

/// The store's published memory image equals the model.
fn assert_same(store: &Store, model: &MemState) {
    let snap = store.gen();
    assert_eq!(&snap.state, model);
    assert_eq!(snap.state.groups().count() as u64, model.counts().groups);
}

fn checkpoint_of(dir: &Path) -> std::path::PathBuf {
    let current = std::fs::read_to_string(dir.join("CURRENT")).unwrap();
    dir.join(format!("gen-{}", current.trim()))
        .join("checkpoint")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_the_model_across_reopen(ops in prop::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        let mut model = MemState::default();
        let mut seq = 0u64;
        for op in ops {
            match op {
                Op::Reopen => {
                    store.close();
                    drop(store);
                    store = open(dir.path());
                    assert_same(&store, &model);
                }
                Op::Abandon => {
                    drop(store);
                    store = open(dir.path());
                    assert_same(&store, &model);
                }
                Op::ForgetCheckpoint => {
                    store.close();
                    drop(store);
                    let _ = std::fs::remove_file(checkpoint_of(dir.path()));
                    store = open(dir.path());
                    assert_same(&store, &model);
                }
                Op::Cmd(cmd) => {
                    let expected = decide(&model, cmd.clone());
                    let got = rt.block_on(store.execute("tester", cmd));
                    match (expected, got) {
                        (Ok(events), Ok(_)) => {
                            let gen = store.gen();
                            let stored: Vec<_> = gen.gen.events(seq + 1, gen.last_seq()).map(|r| r.unwrap()).collect();
                            let kinds: Vec<_> = stored.iter().map(|(_, se)| se.event.clone()).collect();
                            prop_assert_eq!(kinds, events);
                            for (s, se) in &stored {
                                model.apply(*s, se);
                                seq = *s;
                            }
                        }
                        (Err(want), Err(WriteError::Domain(got))) => prop_assert_eq!(want, got),
                        (want, got) => prop_assert!(false, "model said {:?}, store said {:?}", want, got),
                    }
                }
            }
        }
        assert_same(&store, &model);
        store.close();
        drop(store);
        let gen = crate::store::open_offline(dir.path()).unwrap();
        let replay::CheckReport { problems, state: fresh, .. } = replay::check(&gen, None).unwrap();
        prop_assert!(problems.is_empty(), "{:?}", problems);
        prop_assert_eq!(&fresh, &model);
    }
}

/// `rebuild` writes a checkpoint a start then uses; `check` notices a gap and a
/// log that ends before its checkpoint; a store whose log lost its tail refuses to open.
#[test]
fn rebuild_and_check_detect_damage() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    rt.block_on(async {
        store
            .execute(
                "u",
                Command::CreateGroup {
                    id: gid(1),
                    name: "G".into(),
                    discussion: None,
                },
            )
            .await
            .unwrap();
        for t in 0..5 {
            store
                .execute(
                    "u",
                    Command::CreateTask {
                        id: tid(t),
                        group_id: gid(1),
                        name: format!("t{t}"),
                        description: None,
                        status: None,
                        start_date: None,
                        end_date: None,
                    },
                )
                .await
                .unwrap();
        }
        store
            .execute("u", Command::DeleteTask { id: tid(2) })
            .await
            .unwrap();
    });
    store.close();
    drop(store);
    let gen = crate::store::open_offline(dir.path()).unwrap();
    let counts = replay::rebuild(&gen).unwrap();
    assert_eq!((counts.events, counts.groups, counts.tasks), (7, 1, 4));
    assert!(checkpoint_of(dir.path()).exists());
    let problems = replay::check(&gen, None).unwrap().problems;
    assert!(problems.is_empty(), "{problems:?}");
    // The last event vanishes (a lost tail): the checkpoint at 7 gives it away.
    let last = gen.db.pop_max().unwrap().unwrap();
    let problems = replay::check(&gen, None).unwrap().problems;
    assert!(
        problems
            .iter()
            .any(|p| p.contains("log ends at event 6 but event 7 was acknowledged")),
        "{problems:?}"
    );
    // The same, kept only by the high-water mark.
    std::fs::remove_file(checkpoint_of(dir.path())).unwrap();
    let problems = replay::check(&gen, Some(7)).unwrap().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    // A gap in the log is reported.
    gen.db.insert(last.0, last.1).unwrap();
    let key3: Vec<u8> = std::iter::once(b'E').chain(3u64.to_be_bytes()).collect();
    let third = gen.db.remove(&key3).unwrap().unwrap();
    let problems = replay::check(&gen, None).unwrap().problems;
    assert!(problems.iter().any(|p| p.contains("gap")), "{problems:?}");
    gen.db.insert(&key3, third).unwrap();
    gen.db.flush().unwrap();
    drop(gen);
    // A start refuses a store whose log lost events the mark says were acknowledged.
    let gen = crate::store::open_offline(dir.path()).unwrap();
    gen.db.pop_max().unwrap();
    gen.db.flush().unwrap();
    drop(gen);
    match Store::open(dir.path(), Arc::new(Metrics::new())) {
        Err(e) => assert!(e.to_string().contains("was acknowledged"), "{e}"),
        Ok(_) => panic!("a store that lost its tail opened"),
    }
}

/// `check` names where a checkpoint and the replay part: the entity, its id and
/// the field, with both values; a checkpoint of another format is only a note.
#[test]
fn check_names_the_first_difference() {
    use crate::domain::event::{Event, StoredEvent, UserCreated, EVENT_VERSION};
    use crate::store::{checkpoint, gen::Gen};
    let dir = tempfile::tempdir().unwrap();
    let gen = Gen::open(1, &dir.path().join("gen-1")).unwrap();
    let user = |role| StoredEvent {
        version: EVENT_VERSION,
        event_id: Uuid::from_u128(1),
        ts_ms: 1_700_000_000_000,
        user: "system".into(),
        event: Event::UserCreated(UserCreated {
            user_id: gid(2),
            username: "alice".into(),
            role,
            password_hash: "$argon2id$x".into(),
        }),
    };
    let mut importer = replay::Importer::new(Some(&gen));
    importer.push(1, user(Role::Member)).unwrap();
    let state = importer.finish().unwrap();
    // An image that disagrees with its own log in one field of one record.
    let mut altered = MemState::default();
    altered.apply(1, &user(Role::Admin));
    checkpoint::write(&gen.dir, gen.id, &altered).unwrap();
    let report = replay::check(&gen, None).unwrap();
    assert_eq!(report.state, state);
    assert_eq!(
        report.problems,
        vec![
            "checkpoint plus log tail differs from a fresh replay (checkpoint vs replay) at user alice: field role: \"admin\" vs \"member\""
                .to_string()
        ]
    );
    // The same image is consistent once the checkpoint says what the log says.
    checkpoint::write(&gen.dir, gen.id, &state).unwrap();
    let report = replay::check(&gen, None).unwrap();
    assert!(
        report.problems.is_empty() && report.notes.is_empty(),
        "{:?}",
        report.problems
    );
    // A checkpoint written by another version is ignored at start, so it is a note.
    let path = checkpoint::path(&gen.dir);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let report = replay::check(&gen, None).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.notes.len(), 1, "{:?}", report.notes);
    assert!(report.notes[0].contains("format 3"), "{:?}", report.notes);
}

/// `check` applies the rules backups are verified against: a log that breaks
/// them (here a second `admin`, as an older binary seeding an empty-looking store
/// once wrote) fails `check`, since its backups could not be restored.
#[test]
fn check_applies_the_rules_a_backup_must_pass() {
    use crate::domain::event::{Event, StoredEvent, UserCreated, EVENT_VERSION};
    use crate::store::gen::{encode_event, Gen};
    let dir = tempfile::tempdir().unwrap();
    let gen = Gen::open(1, &dir.path().join("gen-1")).unwrap();
    let admin = |n: u128| StoredEvent {
        version: EVENT_VERSION,
        event_id: Uuid::from_u128(n),
        ts_ms: 1_700_000_000_000,
        user: "system".into(),
        event: Event::UserCreated(UserCreated {
            user_id: Uuid::from_u128(n).into(),
            username: "admin".into(),
            role: Role::Admin,
            password_hash: "$argon2id$x".into(),
        }),
    };
    gen.append(&[(1, encode_event(&admin(1))), (2, encode_event(&admin(2)))])
        .unwrap();
    gen.sync().unwrap();
    let problems = replay::check(&gen, None).unwrap().problems;
    assert_eq!(
        problems,
        vec![
            "event 2 breaks the rules a backup is verified against: user admin already exists"
                .to_string()
        ]
    );
}
