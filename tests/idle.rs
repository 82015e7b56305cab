//! An idle server costs (almost) no CPU: the drop-folder watcher, the scheduler
//! and the relay must all sleep when nothing happens. Measured on the real binary
//! from the kernel's own accounting (/proc/PID/stat), with every default
//! background component on.

use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').expect("comm ends with ')'") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    let hz = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    ticks / hz
}

#[test]
fn an_idle_server_uses_almost_no_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut child = common::binary(
        dir.path(),
        &["serve", "--addr", &format!("127.0.0.1:{port}")],
    )
    .env("AUTO_RESTORE_ENABLED", "true")
    .env("AUTO_BACKUP_ENABLED", "true")
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("binary starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let start-up work (seeding, first scans) finish before measuring.
    std::thread::sleep(Duration::from_secs(2));
    let before = cpu_seconds(child.id());
    std::thread::sleep(Duration::from_secs(4));
    let used = cpu_seconds(child.id()) - before;
    let _ = child.kill();
    let _ = child.wait();
    // A busy loop burns ~4 s here; a sleeping server a few ticks at most.
    assert!(used < 0.2, "idle server used {used:.2} s of CPU in 4 s");
}
