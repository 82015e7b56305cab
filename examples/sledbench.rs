//! Raw sled insert speed on this machine (the floor under replay and rebuild):
//! `cargo run --release --example sledbench -- N`.
use std::time::Instant;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("sledbench-{}", std::process::id()));
    let db = sled::Config::new()
        .path(&dir)
        .cache_capacity(
            std::env::var("CACHE_MB")
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(64)
                << 20,
        )
        .mode(sled::Mode::HighThroughput)
        .open()
        .expect("open");
    let value = vec![7u8; 100];
    let t = Instant::now();
    let mut batch = sled::Batch::default();
    for i in 0..n {
        let mut k = vec![b'E'];
        k.extend_from_slice(&i.to_be_bytes());
        batch.insert(k, value.clone());
        if i % 20_000 == 19_999 {
            db.apply_batch(std::mem::take(&mut batch)).expect("batch");
        }
    }
    db.apply_batch(batch).expect("batch");
    db.flush().expect("flush");
    let s = t.elapsed().as_secs_f64();
    println!(
        "{n} sequential inserts in batches of 20k: {s:.2}s = {:.0}/s",
        n as f64 / s
    );
    let t = Instant::now();
    let c = db.iter().count();
    println!("iterate {c}: {:.2}s", t.elapsed().as_secs_f64());
    drop(db);
    let _ = std::fs::remove_dir_all(dir);
}
