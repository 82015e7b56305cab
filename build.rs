//! Build script: records the git commit the binary is built from, for
//! `taskledger --version` and `/api/health`. `TASKLEDGER_COMMIT` in the
//! environment wins (builds without a .git, such as the Docker image); without
//! either, "unknown".

use std::path::{Path, PathBuf};
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
    // cargo rerun this script (and rebuild the crate) on every build. In a git
    // worktree `.git` is a file naming the real git dir (and its common dir).
    let (git, common) = git_dirs();
    let mut watch = vec![git.join("HEAD"), common.join("packed-refs")];
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD")) {
        if let Some(r) = head.trim().strip_prefix("ref: ") {
            watch.push(git.join(r));
            watch.push(common.join(r));
        }
    }
    for p in watch.into_iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}

/// The git dir and the common dir (the same outside a worktree).
fn git_dirs() -> (PathBuf, PathBuf) {
    let dot = Path::new(".git");
    let git = match std::fs::read_to_string(dot) {
        Ok(text) => match text.trim().strip_prefix("gitdir: ") {
            Some(d) => PathBuf::from(d),
            None => dot.to_path_buf(),
        },
        Err(_) => dot.to_path_buf(),
    };
    let common = std::fs::read_to_string(git.join("commondir"))
        .map(|c| git.join(c.trim()))
        .unwrap_or_else(|_| git.clone());
    (git, common)
}

fn git_commit() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !commit.trim().is_empty()).then(|| commit.trim().to_string())
}
