//! Where a full replay spends its time: sled scan, decode, apply:
//! `cargo run --release --example replayprobe -- DIR`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: replayprobe DIR"));
    let gen = taskledger::store::open_offline(&dir).expect("data dir");
    let t = std::time::Instant::now();
    let mut n = 0u64;
    let mut bytes = 0usize;
    for r in gen.raw_events(1, u64::MAX) {
        let (_, v) = r.expect("scan");
        n += 1;
        bytes += v.len();
    }
    println!(
        "scan: {n} events {bytes} bytes in {} ms",
        t.elapsed().as_millis()
    );
    let t = std::time::Instant::now();
    let mut evs = Vec::with_capacity(n as usize);
    for r in gen.events(1, u64::MAX) {
        evs.push(r.expect("decode"));
    }
    println!("scan+decode: {} ms", t.elapsed().as_millis());
    let t = std::time::Instant::now();
    let mut s = taskledger::domain::state::State::default();
    for (seq, e) in &evs {
        s.apply(*seq, e);
    }
    println!("apply: {} ms", t.elapsed().as_millis());
    let t = std::time::Instant::now();
    let mut p = taskledger::domain::past::Past::default();
    for (seq, e) in &evs {
        p.apply(*seq, e);
    }
    println!(
        "apply to a past image (time travel): {} ms",
        t.elapsed().as_millis()
    );
    let t = std::time::Instant::now();
    let p = taskledger::store::history::past_at(&gen, n).expect("past_at");
    println!(
        "past_at (scan | decode+apply pipelined): {} ms, {} events",
        t.elapsed().as_millis(),
        p.seq
    );
}
