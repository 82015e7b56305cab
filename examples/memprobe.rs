//! Memory of the image: loads a data dir's memory image (checkpoint + tail) and
//! prints RSS before and after, and the record counts:
//! `cargo run --release --example memprobe -- DIR [--load-only]`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: memprobe DIR"));
    let gen = taskledger::store::open_offline(&dir).expect("data dir");
    let before = rss_kb();
    let t = std::time::Instant::now();
    let (state, from) = taskledger::store::replay::load(&gen).expect("load");
    let ms = t.elapsed().as_millis();
    let after = rss_kb();
    let c = state.counts();
    println!(
        "loaded {} events ({from:?}) in {ms} ms; RSS {} MB -> {} MB: {} bytes per live task ({} tasks, {} comments, {} groups)",
        c.events,
        before / 1024,
        after / 1024,
        (after - before) * 1024 / c.tasks.max(1),
        c.tasks,
        c.comments,
        c.groups
    );
    if std::env::args().nth(2).as_deref() == Some("--load-only") {
        return;
    }
    let t = std::time::Instant::now();
    let fresh = taskledger::store::replay::fresh(&gen).expect("replay");
    println!(
        "full replay: {} ms, RSS now {} MB, equal: {}",
        t.elapsed().as_millis(),
        rss_kb() / 1024,
        fresh == state
    );
}
