//! Heap profile of the memory image: loads a data dir's image (checkpoint + tail)
//! under dhat and writes `dhat-heap.json` (view it with dhat's viewer, or sum it
//! per record type with `bench/heap_by_type.py`):
//! `cargo run --release --example heapprofile -- DIR [OUT.json]`.
//! Only the load is profiled: what the image holds at its peak and at the end.

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: heapprofile DIR [OUT.json]"));
    let out = args.next().unwrap_or_else(|| "dhat-heap.json".into());
    let gen = taskledger::store::open_offline(&dir).expect("data dir");
    let profiler = dhat::Profiler::builder().file_name(&out).build();
    let before = dhat::HeapStats::get();
    let (state, from) = taskledger::store::replay::load(&gen).expect("load");
    let after = dhat::HeapStats::get();
    let c = state.counts();
    let live = after.curr_bytes.saturating_sub(before.curr_bytes) as u64;
    println!(
        "{} events ({from:?}): image {} MB in {} blocks; {} bytes per event, {} bytes per live task \
         ({} tasks, {} comments, {} groups); peak during the load {} MB",
        c.events,
        live >> 20,
        after.curr_blocks - before.curr_blocks,
        live / c.events.max(1),
        live / c.tasks.max(1),
        c.tasks,
        c.comments,
        c.groups,
        after.max_bytes >> 20,
    );
    drop(profiler);
    drop(state);
}
