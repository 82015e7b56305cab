//! Fills a data dir with N task creations through the real writer (no HTTP), for
//! measuring rebuild, startup and backup on big logs: `cargo run --release --example fill -- DIR N`.

use std::sync::Arc;
use std::time::Instant;

use taskledger::domain::Command;
use taskledger::metrics::Metrics;
use taskledger::store::Store;
use uuid::Uuid;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).expect("usage: fill DIR N"));
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    std::fs::create_dir_all(&dir).expect("data dir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = Arc::new(Store::open(&dir, Arc::new(Metrics::new())).expect("store"));
    let t = Instant::now();
    rt.block_on(async {
        let gid = Uuid::now_v7();
        store
            .execute(
                "bench",
                Command::CreateGroup {
                    id: gid,
                    name: "bench".into(),
                    discussion: None,
                },
            )
            .await
            .expect("group");
        let mut handles = Vec::new();
        for w in 0..64 {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                for i in (w..n).step_by(64) {
                    store
                        .execute(
                            "bench",
                            Command::CreateTask {
                                id: Uuid::now_v7(),
                                group_id: gid,
                                name: format!("task {i}"),
                                description: None,
                                status: None,
                                start_date: None,
                                end_date: None,
                            },
                        )
                        .await
                        .expect("task");
                }
            }));
        }
        for h in handles {
            h.await.expect("writer task");
        }
    });
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{n} tasks in {secs:.2}s = {:.0}/s (64 concurrent writers, durable)",
        n as f64 / secs
    );
    store.close();
}
