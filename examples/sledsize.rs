//! Where a data dir's bytes go: the raw size of the log's keys and values, and
//! what sled makes of them on disk written the way the writer writes them
//! (batches, each flushed):
//! `cargo run --release --example sledsize -- DATA_DIR [BATCH=64]`.

use std::time::Instant;

fn dir_bytes(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let data = std::path::PathBuf::from(args.next().expect("usage: sledsize DATA_DIR [BATCH]"));
    let batch: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(64);
    let gen = taskledger::store::open_offline(&data).expect("data dir");
    let (mut n, mut keys, mut values) = (0u64, 0u64, 0u64);
    let all: Vec<(sled::IVec, sled::IVec)> = gen.db.iter().flatten().collect();
    for (k, v) in &all {
        n += 1;
        keys += k.len() as u64;
        values += v.len() as u64;
    }
    println!(
        "{n} entries: keys {} MB, values {} MB ({} bytes per value)",
        keys >> 20,
        values >> 20,
        values / n.max(1)
    );
    {
        let dir = std::env::temp_dir().join(format!("sledsize-{}", std::process::id()));
        let db = sled::Config::new()
            .path(&dir)
            .cache_capacity(32 << 20)
            .mode(sled::Mode::HighThroughput)
            .open()
            .expect("sled");
        let t = Instant::now();
        for chunk in all.chunks(batch) {
            let mut b = sled::Batch::default();
            for (k, v) in chunk {
                b.insert(k, v);
            }
            db.apply_batch(b).expect("batch");
            db.flush().expect("flush");
        }
        let secs = t.elapsed().as_secs_f64();
        drop(db);
        println!(
            "rewritten in batches of {batch}: {} MB on disk, in {secs:.1} s",
            dir_bytes(&dir) >> 20
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
