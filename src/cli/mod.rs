//! The offline subcommands: rebuild, check, backup and restore against a data
//! dir that no server is using (the LOCK file enforces it).

use std::time::Instant;

mod backup;

use crate::backup::restore::Source;
use crate::config::{Cmd, Config};
use crate::store::{self, lock, replay};
use crate::RunError;

/// Runs one offline command; returns the process exit code.
pub fn offline(config: &Config, cmd: Cmd) -> Result<u8, RunError> {
    match cmd {
        Cmd::Serve { .. } | Cmd::Replica => Err(RunError::fault(
            "serve and replica are not offline commands",
        )),
        Cmd::Promote => {
            config.ensure_dirs()?;
            let _lock = lock::acquire(&config.store.data_dir)?;
            let meta = store::meta::Meta::open(&config.store.data_dir.join("meta"))?;
            if meta.relay_get(crate::replica::follow::POSITION)?.is_none() {
                return Err(RunError::Refused(
                    format!(
                        "{}: not a replica's data dir (it has no position in a log topic)",
                        config.store.data_dir.display()
                    )
                    .into(),
                ));
            }
            meta.relay_set_all(&[(crate::replica::promote::PENDING, 1)])?;
            println!(
                "promotion recorded: the next start of this data dir applies the rest of the log topic, fences the old primary and takes writes"
            );
            Ok(0)
        }
        Cmd::Rebuild => {
            config.ensure_dirs()?;
            let _lock = lock::acquire(&config.store.data_dir)?;
            let gen = store::open_offline(&config.store.data_dir)?;
            let t = Instant::now();
            let c = replay::rebuild(&gen)?;
            println!(
                "rebuilt the memory image from {} events (checkpoint written) in {:.2}s: {} users, {} groups, {} tasks, {} comments",
                c.events,
                t.elapsed().as_secs_f64(),
                c.users,
                c.groups,
                c.tasks,
                c.comments
            );
            Ok(0)
        }
        Cmd::Check => {
            config.ensure_dirs()?;
            let _lock = lock::acquire(&config.store.data_dir)?;
            let gen = store::open_offline(&config.store.data_dir)?;
            let mark = store::recorded_mark(&config.store.data_dir, gen.id);
            let replay::CheckReport {
                problems,
                notes,
                state,
            } = replay::check(&gen, mark)?;
            for n in &notes {
                println!("note: {n}");
            }
            let c = state.counts();
            if problems.is_empty() {
                println!(
                    "ok: {} events, gapless, none lost; the start image equals a fresh replay ({} users, {} groups, {} tasks, {} comments)",
                    c.events, c.users, c.groups, c.tasks, c.comments
                );
                Ok(0)
            } else {
                for p in &problems {
                    println!("{p}");
                }
                println!("check FAILED: {} problem(s)", problems.len());
                Ok(1)
            }
        }
        Cmd::Backup(b) => backup::backup(config, b),
        Cmd::Restore { file, at } => {
            let upto = match at.as_deref().map(crate::store::history::At::parse) {
                None => None,
                Some(Ok(at)) => Some(at),
                Some(Err(e)) => return Err(RunError::Refused(format!("--at: {e}").into())),
            };
            backup::restore(config, Source::Archive { path: file, upto })
        }
        Cmd::Import { file } => backup::restore(config, Source::Import { path: file }),
    }
}
