//! Build script: records the git commit the binary is built from, for
//! `taskledger --version` and `/api/health`. `TASKLEDGER_COMMIT` in the
//! environment wins (builds without a .git, such as the Docker image); without
//! either, "unknown".

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=TASKLEDGER_COMMIT");
    let commit = std::env::var("TASKLEDGER_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TASKLEDGER_COMMIT={}", commit.trim());
    // Rerun when HEAD moves. Only paths that exist: a missing one would make
    // cargo rerun this script (and rebuild the crate) on every build.
    let git = Path::new(".git");
    for p in ["HEAD", "packed-refs"] {
        if git.join(p).exists() {
            println!("cargo:rerun-if-changed=.git/{p}");
        }
    }
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD")) {
        if let Some(r) = head.trim().strip_prefix("ref: ") {
            if git.join(r).exists() {
                println!("cargo:rerun-if-changed=.git/{r}");
            }
        }
    }
}

fn git_commit() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !commit.trim().is_empty()).then(|| commit.trim().to_string())
}
