//! A Kafka broker for scripts: librdkafka's mock cluster (the real Kafka protocol
//! over loopback TCP, in this process), with one topic created up front.
//!
//! ```sh
//! cargo run --example mock_broker -- OUT.jsonl [TOPIC] [PARTITIONS]
//! ```
//!
//! Prints the bootstrap servers as the first line on stdout (give them to the
//! server as `KAFKA_BROKER`), then waits for end of input on stdin, SIGTERM or
//! SIGINT. Then it reads the topic from the start of every partition up to its
//! high watermark and writes each message to `OUT.jsonl` as one JSON object per
//! line: `{"partition","offset","key","headers":{name: value},"value"}` (key,
//! header values and value as UTF-8 strings, `null` when absent), in partition
//! then offset order, and exits. The topic defaults to `todo-history-events`
//! with 1 partition, taskledger's defaults.

use std::io::{BufWriter, Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Map, Value};

fn main() {
    if let Err(e) = run() {
        eprintln!("mock_broker: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .ok_or("usage: mock_broker OUT.jsonl [TOPIC] [PARTITIONS]")?;
    let topic = args.next().unwrap_or_else(|| "todo-history-events".into());
    let partitions: i32 = match args.next() {
        Some(p) => p
            .parse()
            .map_err(|_| format!("PARTITIONS must be a number, got {p:?}"))?,
        None => 1,
    };

    let cluster = MockCluster::new(1).map_err(|e| format!("mock cluster: {e}"))?;
    cluster
        .create_topic(&topic, partitions, 1)
        .map_err(|e| format!("create topic {topic}: {e}"))?;
    let brokers = cluster.bootstrap_servers();
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{brokers}").map_err(|e| e.to_string())?;
        stdout.flush().map_err(|e| e.to_string())?;
    }

    wait_for_stop()?;

    let lines = drain(&brokers, &topic, partitions)?;
    let file = std::fs::File::create(&out).map_err(|e| format!("create {out}: {e}"))?;
    let mut w = BufWriter::new(file);
    for line in &lines {
        writeln!(w, "{line}").map_err(|e| format!("write {out}: {e}"))?;
    }
    w.flush().map_err(|e| format!("write {out}: {e}"))?;
    eprintln!("mock_broker: {} messages written to {out}", lines.len());
    drop(cluster);
    Ok(())
}

/// Blocks until stdin reaches its end or the process gets SIGTERM/SIGINT.
fn wait_for_stop() -> Result<(), String> {
    let (tx, rx) = mpsc::channel::<&'static str>();
    let on_eof = tx.clone();
    std::thread::spawn(move || {
        let mut sink = [0u8; 4096];
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _ = on_eof.send("end of stdin");
    });
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(_) => return,
        };
        rt.block_on(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            let why = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            let _ = tx.send(why);
        });
    });
    let why = rx.recv().map_err(|e| e.to_string())?;
    eprintln!("mock_broker: {why}: reading the topic");
    Ok(())
}

/// Every message of every partition from offset 0 to the high watermark.
fn drain(brokers: &str, topic: &str, partitions: i32) -> Result<Vec<Value>, String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "mock-broker-drain")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| format!("consumer: {e}"))?;
    let timeout = Duration::from_secs(10);
    let mut tpl = TopicPartitionList::new();
    let mut remaining = Vec::new();
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(|e| format!("watermarks of {topic}/{p}: {e}"))?;
        if high > low {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(|e| e.to_string())?;
            remaining.push((p, high));
        }
    }
    let mut got: Vec<(i32, i64, Value)> = Vec::new();
    if remaining.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&tpl).map_err(|e| format!("assign: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !remaining.is_empty() {
        if Instant::now() > deadline {
            return Err(format!(
                "topic not read to its end within 30 s (left: {remaining:?})"
            ));
        }
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = msg.map_err(|e| format!("consume: {e}"))?;
        let text = |b: Option<&[u8]>| {
            b.map(|b| Value::String(String::from_utf8_lossy(b).into_owned()))
                .unwrap_or(Value::Null)
        };
        let mut headers = Map::new();
        if let Some(hs) = m.headers() {
            for h in hs.iter() {
                headers.insert(h.key.to_string(), text(h.value));
            }
        }
        let line = json!({
            "partition": m.partition(),
            "offset": m.offset(),
            "key": text(m.key()),
            "headers": headers,
            "value": text(m.payload()),
        });
        got.push((m.partition(), m.offset(), line));
        let (p, off) = (m.partition(), m.offset());
        remaining.retain(|&(rp, high)| !(rp == p && off + 1 >= high));
    }
    got.sort_by_key(|(p, o, _)| (*p, *o));
    got.dedup_by_key(|(p, o, _)| (*p, *o));
    Ok(got.into_iter().map(|(_, _, v)| v).collect())
}
