//! The backup schedule: an automatic backup every `AUTO_BACKUP_INTERVAL` when
//! something changed since the newest backup, rotation after it, failures
//! retried with capped, jittered backoff. Takes the backup component's handle
//! and nothing else.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::archive::{self, Limits};
use super::manager::{create, durable_prefix, now_secs, AUTO};
use super::{catalog, BackupError, BackupInfo, Backups};
use crate::backoff::Backoff;
use crate::blocking::blocking;

/// The first retry after a failed automatic backup.
const RETRY_FIRST: Duration = Duration::from_secs(10);

/// One scheduled run: a new automatic backup unless nothing changed since the newest backup.
pub(crate) async fn auto_tick(backups: &Arc<Backups>) -> Result<Option<BackupInfo>, BackupError> {
    let (_, seq) = durable_prefix(backups);
    let dir = backups.settings.backup_dir.clone();
    let newest_last = blocking::<_, BackupError>(move || {
        Ok(catalog::list_files(&dir)
            .first()
            .and_then(|f| archive::read_manifest(&dir.join(&f.name), &Limits::default()).ok())
            .map(|m| m.last_event_id))
    })
    .await?;
    let unchanged = match newest_last {
        Some(last) => last == seq,
        None => seq == 0,
    };
    if unchanged {
        tracing::debug!(seq, "automatic backup skipped: nothing changed");
        backups.metrics.backup_current_at.set(now_secs());
        return Ok(None);
    }
    create(backups, AUTO, None, "system", super::Turn::Wait)
        .await
        .map(Some)
}

/// Runs `auto_tick` every `AUTO_BACKUP_INTERVAL` until `stop` flips; missed ticks are
/// skipped, failures retried with capped backoff.
pub(crate) fn spawn_scheduler(
    backups: Arc<Backups>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let period = Duration::from_millis(backups.settings.auto_backup_interval_ms);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // Retries wait longer each time, up to the interval itself: then the
        // next tick takes over.
        let mut backoff = Backoff::new(RETRY_FIRST.min(period), period);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => break,
            }
            loop {
                match auto_tick(&backups).await {
                    Ok(_) => {
                        backoff.succeeded();
                        break;
                    }
                    Err(e) => {
                        let last_try = backoff.capped();
                        let wait = backoff.failed();
                        tracing::warn!(error = %e, retry_in_s = wait.as_secs(), "automatic backup failed");
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = stop.changed() => return,
                        }
                        if last_try {
                            backoff.succeeded();
                            break;
                        }
                    }
                }
            }
            backups.state.scheduled_runs.send_modify(|n| *n += 1);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::manager::{create, list};
    use crate::backup::{Backups, Turn};
    use crate::domain::Command;
    use crate::metrics::Metrics;
    use crate::store::Store;

    fn kinds(backups: &Backups) -> Vec<String> {
        list(
            &backups.state,
            &backups.store.meta,
            &backups.settings.backup_dir,
        )
        .into_iter()
        .map(|b| b.kind)
        .collect()
    }

    /// A write on a blocking thread: while it is in flight, the paused clock may
    /// not jump to the next tick (the writer thread is outside tokio's view), so
    /// no scheduled run can see the log half way through the write.
    async fn write(backups: &Arc<Backups>, n: usize) {
        let backups = backups.clone();
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            rt.block_on(backups.store.execute(
                "t",
                Command::CreateGroup {
                    id: uuid::Uuid::new_v4().into(),
                    name: format!("g{n}"),
                    discussion: None,
                },
            ))
        })
        .await
        .unwrap()
        .unwrap();
    }

    /// Lets an hour pass on the paused clock and waits for the scheduler to
    /// finish the run that hour started (its work runs on real threads).
    async fn one_hour(backups: &Backups, runs: &mut tokio::sync::watch::Receiver<u64>) {
        let before = *runs.borrow_and_update();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        runs.wait_for(|n| *n > before).await.unwrap();
        assert_eq!(*runs.borrow(), before + 1, "one run per interval");
        assert!(backups.state.busy.try_lock().is_ok());
    }

    /// The schedule, with tokio's clock paused: a backup per interval when
    /// something changed, none when nothing did, and only `MAX_BACKUPS`
    /// automatic ones kept. Only the backup component's handle, no application.
    #[tokio::test(start_paused = true)]
    async fn schedule_skips_unchanged_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = crate::config::Config::for_dir(dir.path());
        cfg.backup.auto_backup_interval_ms = 3_600_000;
        cfg.backup.max_backups = 2;
        cfg.ensure_dirs().unwrap();
        let metrics = Arc::new(Metrics::new());
        let store = Arc::new(Store::open(&cfg.store.data_dir, metrics.clone()).unwrap());
        let backups = Arc::new(Backups::new(store, metrics, &cfg));
        let mut runs = backups.state.scheduled_runs.subscribe();
        let (stop_tx, stop_rx) = watch::channel(false);
        let sched = spawn_scheduler(backups.clone(), stop_rx);

        // Empty log: nothing to back up, hour after hour.
        for _ in 0..3 {
            one_hour(&backups, &mut runs).await;
        }
        assert!(kinds(&backups).is_empty());
        write(&backups, 1).await;
        one_hour(&backups, &mut runs).await;
        assert_eq!(kinds(&backups), vec!["auto"]);
        // Nothing changed for five hours: still one.
        for _ in 0..5 {
            one_hour(&backups, &mut runs).await;
        }
        assert_eq!(kinds(&backups), vec!["auto"]);
        create(&backups, "manual", None, "t", Turn::Wait)
            .await
            .unwrap();
        for i in 0..3 {
            write(&backups, 2 + i).await;
            one_hour(&backups, &mut runs).await;
        }
        let k = kinds(&backups);
        assert_eq!(k.iter().filter(|k| *k == "auto").count(), 2, "{k:?}");
        assert_eq!(k.iter().filter(|k| *k == "manual").count(), 1, "{k:?}");
        let _ = stop_tx.send(true);
        sched.await.unwrap();
        backups.store.close();
    }
}
