//! Promotion (SPEC §12): a replica becomes the primary. It takes the log
//! topic's transactional id first (Kafka fences the old primary's producer:
//! from then on nothing the old primary sends is taken), then applies the
//! whole topic, takes the next term, and starts publishing — its first message
//! a term marker — before it takes writes, continuing the sequence.
//!
//! Touches the follower (through [`ReplicaStatus`]), the store's meta (cursors
//! and term), the commit gate, and starts the relays a primary runs.

use std::time::Duration;

use rdkafka::consumer::Consumer;

use super::{Caught, PromoteReq, Role};
use crate::app::AppState;
use crate::config::Commit;
use crate::mirror::log_topic::{self, log_producer_config, take_over, LogDeps};
use crate::mirror::relay::{self, QuietContext, RelayProducer};

/// Meta key: `taskledger promote` ran on this stopped data dir; the next
/// start takes over as soon as it has caught up.
pub(crate) const PENDING: &str = "promote_pending";

/// How long a promotion may take to apply the rest of the topic.
const CATCH_UP: Duration = Duration::from_secs(120);

/// Why a promotion did not happen (the node stays a replica).
#[derive(Debug, thiserror::Error)]
pub(crate) enum PromoteError {
    /// 409: only a replica can be promoted.
    #[error("this node is not a replica (it is {0})")]
    NotReplica(&'static str),
    /// 503: the log topic's broker did not answer.
    #[error("cannot take over the log topic: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// 503: the follower could not apply the whole topic.
    #[error("cannot apply the whole log topic: {0}")]
    CatchUp(String),
    /// 503: the relays a primary runs could not start.
    #[error("starting the relays: {0}")]
    Relay(#[from] crate::mirror::relay::RelayError),
    /// 500: the new position could not be recorded.
    #[error("recording the new role failed: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("promotion task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What the new primary answers.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Promoted {
    pub(crate) role: &'static str,
    pub(crate) term: u64,
    pub(crate) applied_seq: u64,
    pub(crate) generation: u64,
}

pub(crate) async fn promote(app: &AppState) -> Result<Promoted, PromoteError> {
    if !app.role.swap(Role::Replica, Role::Promoting) {
        return Err(PromoteError::NotReplica(match app.role.get() {
            Role::Primary => "the primary",
            _ => "already being promoted",
        }));
    }
    match take_over_log(app).await {
        Ok(p) => Ok(p),
        Err(e) => {
            tracing::error!(error = %e, "promotion failed; still a replica");
            app.role.set(Role::Replica);
            Err(e)
        }
    }
}

async fn take_over_log(app: &AppState) -> Result<Promoted, PromoteError> {
    let (Some(status), Some(topic)) = (&app.replica, app.config.kafka.log_topic.clone()) else {
        return Err(PromoteError::NotReplica("not following a log topic"));
    };
    let kafka = app.config.kafka.clone();
    tracing::info!(
        topic,
        "promotion: taking the log topic over (fences the old primary)"
    );
    let (k, t) = (kafka.clone(), topic.clone());
    let (producer, high) = tokio::task::spawn_blocking(move || {
        let p: RelayProducer = log_producer_config(&k, &t).create_with_context(QuietContext)?;
        take_over(&p)?;
        // Nothing the old primary sends from now on is taken: this is the end.
        let c = log_topic::log_consumer(&k, "promote")?;
        let (_, high) = c.fetch_watermarks(&t, 0, Duration::from_secs(10))?;
        Ok::<_, rdkafka::error::KafkaError>((p, high))
    })
    .await??;
    let (reply, rx) = tokio::sync::oneshot::channel();
    status.request_promotion(PromoteReq {
        until: high - 1,
        reply,
    });
    let caught: Caught = match tokio::time::timeout(CATCH_UP, rx).await {
        Ok(Ok(Ok(c))) => c,
        Ok(Ok(Err(why))) => return Err(PromoteError::CatchUp(why)),
        Ok(Err(_)) => return Err(PromoteError::CatchUp("the follower stopped".into())),
        Err(_) => {
            return Err(PromoteError::CatchUp(format!(
                "not done within {} s",
                CATCH_UP.as_secs()
            )))
        }
    };
    let term = caught.term + 1;
    let store = app.store.clone();
    let enabled = app.config.kafka.enabled;
    tokio::task::spawn_blocking(move || {
        let local = store.gen().id();
        let sessions = store.meta.session_journal_end()?;
        let mut values = vec![
            (log_topic::TERM_KEY, term),
            (log_topic::ANNOUNCED, term - 1),
            (log_topic::GENERATION_KEY, caught.generation),
            (log_topic::GENERATION_FOR, local),
            (log_topic::CURSOR_GEN, local),
            (log_topic::CURSOR, caught.applied),
            (log_topic::SESSIONS, sessions),
            (PENDING, 0),
        ];
        // The §4 mirror goes on from here: the old primary published (up to
        // its lag) what came before.
        if enabled {
            values.push((relay::CURSOR_GEN, local));
            values.push((relay::CURSOR, caught.applied));
        }
        store.meta.relay_set_all(&values)
    })
    .await??;
    start_primary_work(app, &topic, Some(producer))?;
    app.role.set(Role::Primary);
    tracing::info!(
        term,
        applied_seq = caught.applied,
        "promotion: this node is the primary"
    );
    Ok(Promoted {
        role: "primary",
        term,
        applied_seq: caught.applied,
        generation: caught.generation,
    })
}

/// Starts what a primary runs beside the writer: the log topic relay (with
/// the producer a promotion already made), the commit gate in sync mode, and
/// the §4 mirror when enabled.
pub(crate) fn start_primary_work(
    app: &AppState,
    topic: &str,
    producer: Option<RelayProducer>,
) -> Result<(), crate::mirror::relay::RelayError> {
    if app.config.kafka.commit == Commit::Sync {
        app.store
            .commit_gate()
            .arm(Duration::from_millis(app.config.kafka.commit_timeout_ms));
    }
    let mut handles = Vec::new();
    if let Some(status) = &app.log_topic {
        let deps = LogDeps {
            store: app.store.clone(),
            kafka: app.config.kafka.clone(),
            topic: topic.to_string(),
            status: status.clone(),
            metrics: app.metrics.clone(),
            backup_dir: app.config.backup.backup_dir.clone(),
            producer,
        };
        handles.push(log_topic::spawn(deps, app.stop.clone())?);
    }
    if app.config.kafka.enabled {
        let deps = relay::RelayDeps {
            store: app.store.clone(),
            kafka: app.config.kafka.clone(),
            status: app.relay.clone(),
            metrics: app.metrics.clone(),
        };
        handles.push(relay::spawn_relay(deps, app.stop.clone())?);
    }
    if let Ok(mut w) = app.workers.lock() {
        w.extend(handles);
    }
    Ok(())
}

/// `taskledger promote` ran on this data dir: take over once the follower has
/// found its place, retrying while the broker or the topic is not ready.
pub(crate) fn spawn_pending(app: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stop = app.stop.clone();
        loop {
            let positioned = app
                .replica
                .as_ref()
                .is_some_and(|r| r.phase() != super::Phase::Bootstrapping);
            if positioned && promote(&app).await.is_ok() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => return,
            }
        }
    })
}
