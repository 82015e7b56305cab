//! `taskledger backup …`, `restore FILE [--at T]` and `import FILE` against a stopped server.

use std::time::Instant;

use serde_json::json;

use crate::backup::archive::{self, Limits};
use crate::backup::manager::{write_backup, MANUAL};
use crate::backup::restore::{restore_offline, Source};
use crate::backup::verify::verify_file;
use crate::config::{BackupCmd, Config};
use crate::store::{self, lock, Meta};
use crate::RunError;

fn audit(config: &Config, action: &str, backup: &str, details: serde_json::Value) {
    match Meta::open(&config.store.data_dir.join("meta")) {
        Ok(meta) => {
            if let Err(e) = meta.audit(action, Some(backup), "cli", details) {
                eprintln!("warning: could not record the audit entry: {e}");
            }
        }
        Err(e) => eprintln!("warning: could not open the audit trail: {e}"),
    }
}

pub(crate) fn backup(config: &Config, cmd: BackupCmd) -> Result<u8, RunError> {
    match cmd {
        BackupCmd::Create { label } => {
            config.ensure_dirs()?;
            let _lock = lock::acquire(&config.store.data_dir)?;
            let gen = store::open_offline(&config.store.data_dir)?;
            let t = Instant::now();
            let upto = gen.last_seq()?;
            let w = write_backup(
                &gen,
                upto,
                &config.backup.backup_dir,
                MANUAL,
                label.as_deref(),
            )?;
            let name = w
                .path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            drop(gen);
            audit(
                config,
                "BACKUP_CREATED",
                &name,
                json!({"kind": MANUAL, "events": w.manifest.events, "size": w.size}),
            );
            println!(
                "{} ({} events, {} bytes, sha256 {}) in {:.2}s",
                w.path.display(),
                w.manifest.events,
                w.size,
                w.sha256,
                t.elapsed().as_secs_f64()
            );
            Ok(0)
        }
        BackupCmd::List => {
            let files = crate::backup::catalog::list_files(&config.backup.backup_dir);
            if files.is_empty() {
                println!("no backups in {}", config.backup.backup_dir.display());
            }
            for f in files {
                match archive::read_manifest(
                    &config.backup.backup_dir.join(&f.name),
                    &Limits::default(),
                ) {
                    Ok(m) => println!(
                        "{}  {:<11} {:>9} events  {:>12} bytes  {}",
                        f.name, m.kind, m.events, f.size, m.created_at
                    ),
                    Err(e) => println!("{}  UNREADABLE: {e}", f.name),
                }
            }
            Ok(0)
        }
        BackupCmd::Verify { file } => {
            let t = Instant::now();
            match verify_file(&file) {
                Ok(m) => {
                    let (size, sha) = archive::file_digest(&file)?;
                    println!(
                        "ok: {} — {} events (ids {}..{}), kind {}, created {}, {} bytes, sha256 {} ({:.2}s)",
                        file.display(),
                        m.events,
                        m.first_event_id.unwrap_or(0),
                        m.last_event_id,
                        m.kind,
                        m.created_at,
                        size,
                        sha,
                        t.elapsed().as_secs_f64()
                    );
                    Ok(0)
                }
                Err(e) => {
                    println!("INVALID: {}: {e}", file.display());
                    Ok(1)
                }
            }
        }
    }
}

/// `taskledger restore FILE [--at T]` and `taskledger import FILE`.
pub(crate) fn restore(config: &Config, source: Source) -> Result<u8, RunError> {
    config.ensure_dirs()?;
    let _lock = lock::acquire(&config.store.data_dir)?;
    let t = Instant::now();
    match restore_offline(&config.store.data_dir, &config.backup.backup_dir, &source) {
        Ok((r, gen)) => {
            drop(gen);
            let mut details = json!({"source": "cli", "events": r.restored.events, "lastEventId": r.last_event_id, "safetyBackup": r.safety_backup});
            if let Some(at) = &r.at {
                details["at"] = json!(at);
            }
            if let Some(i) = &r.imported {
                details["imported"] = json!(i);
            }
            audit(config, "BACKUP_RESTORED", &r.backup, details);
            let what = match (&r.imported, &r.at) {
                (Some(i), _) => format!(
                    "imported {}: {} users, {} groups, {} tasks, {} comments",
                    r.backup, i.users, i.groups, i.tasks, i.comments
                ),
                (None, Some(at)) => format!(
                    "restored {} up to {at} (event {}): {} groups, {} tasks, {} comments",
                    r.backup,
                    r.last_event_id,
                    r.restored.groups,
                    r.restored.tasks,
                    r.restored.comments
                ),
                (None, None) => format!(
                    "restored {}: {} events, {} groups, {} tasks, {} comments",
                    r.backup,
                    r.restored.events,
                    r.restored.groups,
                    r.restored.tasks,
                    r.restored.comments
                ),
            };
            println!(
                "{what} in {:.2}s; previous state saved as {}",
                t.elapsed().as_secs_f64(),
                r.safety_backup
            );
            Ok(0)
        }
        Err(e) => {
            let what = match source {
                Source::Import { .. } => "import",
                _ => "restore",
            };
            println!("{what} refused, data dir untouched: {e}");
            Ok(1)
        }
    }
}
