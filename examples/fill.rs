//! Fills a data dir through the real writer (no HTTP) with a realistic profile, for
//! measuring startup, check, backup, verify and restore on big logs:
//! `cargo run --release --example fill -- DIR EVENTS`.
//!
//! Profile per 1,000,000 events: 1,000 groups, 400,000 task creations, 400,000
//! comments, 150,000 status changes, the rest task updates; names of ~30
//! characters, descriptions of ~200, comments of ~120. Deterministic (seeded).

use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use taskledger::domain::{Command, Id, Status};
use taskledger::metrics::Metrics;
use taskledger::store::Store;

const WORDS: [&str; 24] = [
    "review",
    "deploy",
    "fix",
    "design",
    "write",
    "test",
    "the",
    "api",
    "login",
    "page",
    "backup",
    "restore",
    "report",
    "for",
    "customer",
    "release",
    "notes",
    "metrics",
    "dashboard",
    "migration",
    "sprint",
    "plan",
    "invoice",
    "budget",
];

fn text(rng: &mut StdRng, chars: usize) -> String {
    let mut s = String::with_capacity(chars + 12);
    while s.len() < chars {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(WORDS[rng.gen_range(0..WORDS.len())]);
    }
    s
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).expect("usage: fill DIR EVENTS"));
    let n: usize = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    std::fs::create_dir_all(&dir).expect("data dir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = Arc::new(Store::open(&dir, Arc::new(Metrics::new())).expect("store"));
    let t = Instant::now();
    let groups = (n / 1000).max(1);
    let mut rng = StdRng::seed_from_u64(7);
    let gids: Vec<Id> = (0..groups).map(|_| Id::generate()).collect();
    let mut cmds = Vec::with_capacity(n);
    for (i, g) in gids.iter().enumerate() {
        cmds.push(Command::CreateGroup {
            id: g.clone(),
            name: format!("Project {i} {}", text(&mut rng, 16)),
            discussion: Some(text(&mut rng, 200)),
        });
    }
    let mut tasks: Vec<Id> = Vec::new();
    while cmds.len() < n {
        let roll = rng.gen_range(0..1000);
        if tasks.is_empty() || roll < 400 {
            let id = Id::generate();
            tasks.push(id.clone());
            cmds.push(Command::CreateTask {
                id,
                group_id: gids[rng.gen_range(0..groups)].clone(),
                name: text(&mut rng, 30),
                description: Some(text(&mut rng, 200)),
                status: None,
                start_date: Some("2026-01-05".into()),
                end_date: None,
            });
            continue;
        }
        let task = tasks[rng.gen_range(0..tasks.len())].clone();
        cmds.push(if roll < 800 {
            Command::AddComment {
                id: Id::generate(),
                task_id: task,
                text: text(&mut rng, 120),
            }
        } else if roll < 950 {
            Command::ChangeStatus {
                id: task,
                status: Status::ALL[rng.gen_range(1..Status::ALL.len())],
            }
        } else {
            Command::UpdateTask {
                id: task,
                name: Some(text(&mut rng, 30)),
                description: Some(text(&mut rng, 200)),
                status: None,
                start_date: None,
                end_date: None,
            }
        });
    }
    // Groups first (in order), then 64 concurrent writers over the rest, as 64
    // clients would: group commit sees real batches.
    let rest = cmds.split_off(groups);
    rt.block_on(async {
        for c in cmds {
            store.execute("bench", c).await.expect("group");
        }
        let mut lanes: Vec<Vec<Command>> = (0..64).map(|_| Vec::new()).collect();
        for (i, c) in rest.into_iter().enumerate() {
            lanes[i % 64].push(c);
        }
        let mut handles = Vec::new();
        for lane in lanes {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                for c in lane {
                    // A status change to the current status is refused: fine.
                    let _ = store.execute("bench", c).await;
                }
            }));
        }
        for h in handles {
            h.await.expect("writer task");
        }
    });
    let secs = t.elapsed().as_secs_f64();
    let events = store.gen().last_seq();
    println!(
        "{events} events in {secs:.2}s = {:.0}/s (64 concurrent writers, durable)",
        events as f64 / secs
    );
    store.close();
}
