//! Property test: random command sequences run through the real store (sled,
//! group-commit writer) and through the pure in-memory model must agree — same
//! accept/reject decisions, same events, same projections — across reopening the
//! store, and `check` must find the store consistent at the end.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use taskledger::domain::memory::MemState;
use taskledger::domain::{decide, Command, Role, Status};
use taskledger::metrics::Metrics;
use taskledger::store::{replay, Store, WriteError};
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Op {
    Cmd(Command),
    Reopen,
}

fn gid(n: u8) -> Uuid {
    Uuid::from_u128(0x1000 + n as u128)
}
fn tid(n: u8) -> Uuid {
    Uuid::from_u128(0x2000 + n as u128)
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
                id: Uuid::new_v4(),
                task_id: tid(t),
                text,
            }
        )),
        "[a-c]{1,2}".prop_map(|u| Op::Cmd(Command::CreateUser {
            id: Uuid::new_v4(),
            username: u,
            password_hash: "h".into(),
            role: Role::Member,
            if_absent: false,
        })),
        Just(Op::Reopen),
    ]
}

fn open(dir: &Path) -> Store {
    Store::open(dir, Arc::new(Metrics::new())).expect("store opens")
}

/// The store's projections, read back through its read API, equal the model.
fn assert_same(store: &Store, model: &MemState) {
    let gen = store.gen();
    let groups = gen.groups().unwrap();
    let mut model_groups: Vec<_> = model.groups.values().cloned().collect();
    model_groups.sort_by_key(|g| g.created_seq);
    assert_eq!(groups, model_groups);
    for g in &groups {
        let tasks = gen.tasks_of_group(g.id).unwrap();
        let mut want: Vec<_> = model
            .tasks
            .values()
            .filter(|t| t.group_id == g.id)
            .cloned()
            .collect();
        want.sort_by_key(|t| t.created_seq);
        assert_eq!(tasks, want);
        for t in &tasks {
            let comments = gen.comments(t.id).unwrap();
            assert_eq!(&comments, model.comments.get(&t.id).unwrap_or(&Vec::new()));
        }
    }
    for t in model.tasks.values() {
        assert_eq!(gen.task(t.id).unwrap().as_ref(), Some(t));
    }
    // Nothing beyond the model either (orphans are invisible through the indexes).
    let counts = replay::counts(&gen).unwrap();
    let comments: usize = model.comments.values().map(Vec::len).sum();
    assert_eq!(
        (counts.groups, counts.tasks, counts.comments, counts.users),
        (
            model.groups.len() as u64,
            model.tasks.len() as u64,
            comments as u64,
            model.users.len() as u64
        )
    );
    let users = gen.users().unwrap();
    assert_eq!(users.len(), model.users.len());
    for u in users {
        assert_eq!(model.users.get(&u.username), Some(&u));
    }
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
                Op::Cmd(cmd) => {
                    let expected = decide(&model, cmd.clone());
                    let got = rt.block_on(store.execute("tester", cmd));
                    match (expected, got) {
                        (Ok(events), Ok(out)) => {
                            let gen = store.gen();
                            let stored: Vec<_> = gen.events(seq + 1, out.last_seq).map(|r| r.unwrap()).collect();
                            let kinds: Vec<_> = stored.iter().map(|(_, se)| se.event.clone()).collect();
                            prop_assert_eq!(kinds, events);
                            for (s, se) in &stored {
                                model.apply(*s, se);
                                seq = *s;
                            }
                        }
                        (Err(want), Err(WriteError::Domain(got))) => prop_assert_eq!(want, got),
                        (want, got) => prop_assert!(false, "model said {:?}, store said {:?}", want, got.map(|o| o.last_seq)),
                    }
                }
            }
        }
        assert_same(&store, &model);
        let problems = replay::check(&store.gen()).unwrap();
        prop_assert!(problems.is_empty(), "{:?}", problems);
        store.close();
    }
}

/// `rebuild` reproduces byte-identical projections, and `check` notices tampering.
#[test]
fn rebuild_restores_and_check_detects_damage() {
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
    let gen = store.gen();
    assert!(replay::check(&gen).unwrap().is_empty());
    // Damage a projection: check must see it, rebuild must repair it.
    let key = taskledger::store::keys::id(taskledger::store::keys::TASK, tid(3));
    gen.tree().remove(key).unwrap();
    let problems = replay::check(&gen).unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    let counts = replay::rebuild(&gen).unwrap();
    assert_eq!((counts.events, counts.groups, counts.tasks), (7, 1, 4));
    assert!(replay::check(&gen).unwrap().is_empty());
    // A gap in the log is reported.
    gen.tree()
        .remove(taskledger::store::keys::event(3))
        .unwrap();
    let problems = replay::check(&gen).unwrap();
    assert!(problems.iter().any(|p| p.contains("gap")), "{problems:?}");
    drop(gen);
    store.close();
}
