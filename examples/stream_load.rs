//! Load client for the live-update benchmark (bench/stream.sh): opens many
//! `GET /api/events/stream?groupId=…` streams (as many users as the per-user
//! cap needs), keeps them reading, and measures how long a write takes from its
//! acknowledgement to its arrival on every stream (probe writes, one every
//! PROBE_MS). Touches nothing but the server's HTTP API.
//!
//! Env: BASE (http://127.0.0.1:3001), ADMIN_PASSWORD, GROUP (group id),
//! STREAMS (1000), SECONDS (how long to measure, 20), PROBE_MS (100),
//! READY_FILE (touched once every stream is open).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const PER_USER: usize = 16;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

async fn login(c: &reqwest::Client, base: &str, user: &str, password: &str) -> String {
    let v: Value = c
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .expect("login request")
        .json()
        .await
        .expect("login answer");
    v["token"]
        .as_str()
        .unwrap_or_else(|| panic!("login as {user}: {v}"))
        .to_string()
}

/// When each probe entry arrived, on any stream.
type Arrivals = Arc<Mutex<Vec<(u64, Instant)>>>;

async fn read_stream(mut resp: reqwest::Response, received: Arc<AtomicU64>, out: Arrivals) {
    let mut buf = String::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let now = Instant::now();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(at) = buf.find("\n\n") {
            let frame: String = buf.drain(..at + 2).collect();
            let Some(id) = frame
                .lines()
                .find_map(|l| l.strip_prefix("id: ")?.trim().parse::<u64>().ok())
            else {
                continue;
            };
            if frame.contains("\ndata: ") {
                received.fetch_add(1, Ordering::Relaxed);
            }
            if frame.contains("\"task_name\":\"probe ") {
                if let Ok(mut v) = out.lock() {
                    v.push((id, now));
                }
            }
        }
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let base = env("BASE", "http://127.0.0.1:3001");
    let admin_pw = env("ADMIN_PASSWORD", "bench-password");
    let group = std::env::var("GROUP").expect("GROUP: the group id to watch");
    let streams: usize = env("STREAMS", "1000").parse().expect("STREAMS");
    let seconds: u64 = env("SECONDS", "20").parse().expect("SECONDS");
    let probe_ms: u64 = env("PROBE_MS", "100").parse().expect("PROBE_MS");
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(streams + 16)
        .build()
        .expect("client");
    let admin = login(&c, &base, "admin", &admin_pw).await;
    let users = streams.div_ceil(PER_USER);
    let mut tokens = Vec::new();
    for u in 0..users {
        let name = format!("load-{u}");
        let password = "load-password";
        let r = c
            .post(format!("{base}/api/auth/users"))
            .bearer_auth(&admin)
            .json(&json!({"username": name, "password": password}))
            .send()
            .await
            .expect("create user");
        assert!(
            r.status().is_success() || r.status().as_u16() == 409,
            "create user {name}: {}",
            r.status()
        );
        tokens.push(login(&c, &base, &name, password).await);
    }
    let received = Arc::new(AtomicU64::new(0));
    let arrivals: Arrivals = Arc::default();
    let mut readers = Vec::new();
    let opened = Instant::now();
    for i in 0..streams {
        let resp = c
            .get(format!(
                "{base}/api/events/stream?groupId={group}&token={}",
                tokens[i / PER_USER]
            ))
            .send()
            .await
            .expect("open stream");
        assert!(resp.status().is_success(), "stream {i}: {}", resp.status());
        readers.push(tokio::spawn(read_stream(
            resp,
            received.clone(),
            arrivals.clone(),
        )));
    }
    eprintln!(
        "stream_load: {streams} streams open in {:.1} s",
        opened.elapsed().as_secs_f64()
    );
    if let Ok(f) = std::env::var("READY_FILE") {
        let _ = std::fs::write(f, b"ready\n");
    }

    // Probes: acknowledged at `ack`, sequence from X-Taskledger-Seq.
    let acks: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut k = 0u64;
    while Instant::now() < until {
        k += 1;
        let r = c
            .post(format!("{base}/api/groups/{group}/tasks"))
            .bearer_auth(&admin)
            .json(&json!({"name": format!("probe {k}")}))
            .send()
            .await;
        let ack = Instant::now();
        if let Ok(r) = r {
            let seq = r
                .headers()
                .get("x-taskledger-seq")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if let (true, Some(seq)) = (r.status().is_success(), seq) {
                if let Ok(mut m) = acks.lock() {
                    m.insert(seq, ack);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(probe_ms)).await;
    }
    // The last probes' time to arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still_open = readers.iter().filter(|r| !r.is_finished()).count();
    for r in &readers {
        r.abort();
    }
    let acks = acks.lock().map(|m| m.clone()).unwrap_or_default();
    let arrivals = arrivals.lock().map(|v| v.clone()).unwrap_or_default();
    // An entry may arrive before the client has read the write's answer: 0.
    let mut lat: Vec<Duration> = arrivals
        .iter()
        .filter_map(|(seq, at)| acks.get(seq).map(|ack| at.saturating_duration_since(*ack)))
        .collect();
    lat.sort_unstable();
    let expected = acks.len() * streams;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "streams={streams} open_at_end={still_open} probes={} deliveries={}/{expected} entries_received={} p50_ms={:.1} p99_ms={:.1} max_ms={:.1}",
        acks.len(),
        lat.len(),
        received.load(Ordering::Relaxed),
        ms(pct(&lat, 0.50)),
        ms(pct(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default()),
    );
}
