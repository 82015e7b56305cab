//! The log topic (SPEC §12): the primary publishes its whole log, users
//! included, to `KAFKA_LOG_TOPIC` on one partition, each value the canonical
//! event of §5, so replicas can rebuild the same state. Its own persisted
//! cursor, independent of the §4 mirror; a generation marker after every
//! restore or import, followed by the new generation's whole log; session
//! changes, so tokens work on every node; a heartbeat at least every second.
//!
//! Touches the store (snapshots, durable watermark, meta for its cursors and
//! the session journal), its Kafka settings and the metrics; nothing else.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureRecord, Producer};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::relay::{
    ensure_topic_until, producer_config, recover, QuietContext, RelayError, RelayProducer,
    TopicSpec,
};
use crate::backoff::Backoff;
use crate::config::KafkaConfig;
use crate::domain::canonical::to_canonical;
use crate::domain::time::now_ms;
use crate::metrics::Metrics;
use crate::store::Store;

pub(crate) const TYPE: &str = "taskledger-type";
pub(crate) const SEQ: &str = "taskledger-seq";
pub(crate) const GENERATION: &str = "taskledger-generation";
pub(crate) const TERM: &str = "taskledger-term";

/// What a message of the log topic is, from its `taskledger-type` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Event,
    Generation,
    Heartbeat,
    Session,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Generation => "generation",
            Kind::Heartbeat => "heartbeat",
            Kind::Session => "session",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Kind> {
        [
            Kind::Event,
            Kind::Generation,
            Kind::Heartbeat,
            Kind::Session,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A generation marker: the log that follows (from event 1) replaces the one
/// before; `lastEventId` is where it ended when the marker was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Marker {
    pub(crate) generation: u64,
    pub(crate) last_event_id: u64,
    pub(crate) timestamp_ms: i64,
}

/// The primary is alive and durable up to `lastEventId` at `timestampMs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Heartbeat {
    pub(crate) last_event_id: u64,
    pub(crate) timestamp_ms: i64,
}

/// Events per round, acknowledged as a whole before the cursor moves.
const BATCH: u64 = 10_000;
const SESSIONS_PER_ROUND: usize = 1_000;
/// An idle primary still speaks this often (SPEC §12: at least every second).
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

// Meta keys (relay tree).
const CURSOR: &str = "log_cursor";
const CURSOR_GEN: &str = "log_cursor_gen";
const GENERATION_KEY: &str = "log_generation";
const GENERATION_FOR: &str = "log_generation_for";
const SESSIONS: &str = "log_session_cursor";
pub(crate) const TERM_KEY: &str = "term";

/// What health and metrics show about the log topic.
#[derive(Debug, Default)]
pub(crate) struct LogStatus {
    pub(crate) enabled: AtomicBool,
    pub(crate) connected: AtomicBool,
    pub(crate) last_published: AtomicU64,
}

/// What the log relay may touch.
pub(crate) struct LogDeps {
    pub(crate) store: Arc<Store>,
    pub(crate) kafka: KafkaConfig,
    pub(crate) topic: String,
    pub(crate) status: Arc<LogStatus>,
    pub(crate) metrics: Arc<Metrics>,
}

struct LogRelay {
    deps: LogDeps,
    producer: RelayProducer,
    /// Last published event of the local generation `cursor_gen`.
    cursor: u64,
    cursor_gen: u64,
    /// The topic's generation for `cursor_gen` (shared by every node).
    generation: u64,
    sessions: u64,
    term: u64,
    last_sent: Instant,
    backoff: Backoff,
}

pub(crate) fn spawn(
    deps: LogDeps,
    stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, RelayError> {
    let producer: RelayProducer = producer_config(&deps.kafka).create_with_context(QuietContext)?;
    let meta = &deps.store.meta;
    let relay = LogRelay {
        cursor: meta.relay_get(CURSOR)?.unwrap_or(0),
        cursor_gen: meta.relay_get(CURSOR_GEN)?.unwrap_or(0),
        generation: meta.relay_get(GENERATION_KEY)?.unwrap_or(0),
        sessions: meta.relay_get(SESSIONS)?.unwrap_or(0),
        term: meta.relay_get(TERM_KEY)?.unwrap_or(1),
        producer,
        last_sent: Instant::now(),
        backoff: Backoff::new(Duration::from_millis(200), MAX_BACKOFF),
        deps,
    };
    relay.deps.status.enabled.store(true, Ordering::Relaxed);
    relay
        .deps
        .status
        .last_published
        .store(relay.cursor, Ordering::Relaxed);
    Ok(tokio::spawn(relay.run(stop)))
}

impl LogRelay {
    fn headers(&self, kind: Kind, seq: u64) -> OwnedHeaders {
        let (seq, generation, term) = (
            seq.to_string(),
            self.generation.to_string(),
            self.term.to_string(),
        );
        OwnedHeaders::new_with_capacity(4)
            .insert(Header {
                key: TYPE,
                value: Some(kind.as_str()),
            })
            .insert(Header {
                key: SEQ,
                value: Some(&seq),
            })
            .insert(Header {
                key: GENERATION,
                value: Some(&generation),
            })
            .insert(Header {
                key: TERM,
                value: Some(&term),
            })
    }

    /// Sends one message and waits for its acknowledgement.
    async fn send_one(&mut self, kind: Kind, seq: u64, value: &[u8]) -> Result<(), RelayError> {
        let rec: FutureRecord<'_, (), [u8]> = FutureRecord::to(&self.deps.topic)
            .partition(0)
            .payload(value)
            .headers(self.headers(kind, seq));
        match self.producer.send(rec, Duration::from_secs(0)).await {
            Ok(_) => {
                self.last_sent = Instant::now();
                Ok(())
            }
            Err((e, _)) => Err(e.into()),
        }
    }

    async fn save(&self, values: Vec<(&'static str, u64)>) -> Result<(), RelayError> {
        let store = self.deps.store.clone();
        tokio::task::spawn_blocking(move || store.meta.relay_set_all(&values)).await??;
        Ok(())
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut durable = self.deps.store.durable();
        let (brokers, topic) = (self.deps.kafka.brokers.clone(), self.deps.topic.clone());
        let target = TopicSpec {
            brokers: &brokers,
            topic: &topic,
            partitions: 1,
            keep_forever: true,
        };
        let status = self.deps.status.clone();
        let created =
            ensure_topic_until(&self.producer, &target, &mut self.backoff, &mut stop, |e| {
                if status.connected.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "log topic unreachable");
                }
            })
            .await;
        if !created {
            return;
        }
        loop {
            if *stop.borrow() {
                break;
            }
            let d = *durable.borrow_and_update();
            let step = if d.gen != self.cursor_gen {
                self.mark_generation(d.gen, d.seq).await
            } else if d.seq > self.cursor {
                tokio::select! {
                    r = self.publish_events(d.gen, d.seq) => r,
                    _ = stop.changed() => break,
                }
            } else if let Some(r) = self.publish_sessions().await {
                r
            } else if self.last_sent.elapsed() >= HEARTBEAT {
                self.heartbeat(d.seq).await
            } else {
                let nap = HEARTBEAT.saturating_sub(self.last_sent.elapsed());
                tokio::select! {
                    _ = durable.changed() => {}
                    _ = tokio::time::sleep(nap) => {}
                    _ = stop.changed() => break,
                }
                Ok(())
            };
            match step {
                Ok(()) => {
                    self.backoff.succeeded();
                    self.set_connected(true, "");
                }
                Err(e) => {
                    self.set_connected(false, &e.to_string());
                    let k = self.deps.kafka.clone();
                    if !recover(&mut self.producer, &k, &mut self.backoff, &mut stop).await {
                        break;
                    }
                }
            }
        }
        let p = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(5))).await;
    }

    fn set_connected(&mut self, up: bool, why: &str) {
        let was = self.deps.status.connected.swap(up, Ordering::Relaxed);
        if was != up {
            if up {
                tracing::info!(cursor = self.cursor, "log topic reachable: publishing");
            } else {
                tracing::warn!(
                    reason = why,
                    cursor = self.cursor,
                    "log topic unreachable: the log is published in order when it returns"
                );
            }
        }
    }

    /// A new local generation (first start, restore, import): the next topic
    /// generation, its marker, and its log from event 1. The number is saved
    /// before the marker is sent, so a crash in between resends the same one.
    async fn mark_generation(&mut self, gen: u64, durable_seq: u64) -> Result<(), RelayError> {
        let meta = &self.deps.store.meta;
        let generation = match meta.relay_get(GENERATION_FOR)? {
            Some(g) if g == gen && self.generation > 0 => self.generation,
            _ => {
                let next = self.generation + 1;
                self.save(vec![(GENERATION_KEY, next), (GENERATION_FOR, gen)])
                    .await?;
                next
            }
        };
        self.generation = generation;
        let marker = Marker {
            generation,
            last_event_id: durable_seq,
            timestamp_ms: now_ms(),
        };
        let value = serde_json::to_vec(&marker).unwrap_or_default();
        self.send_one(Kind::Generation, durable_seq, &value).await?;
        tracing::info!(
            generation,
            last_event_id = durable_seq,
            "log topic: new generation announced"
        );
        self.cursor_gen = gen;
        self.cursor = 0;
        self.save(vec![(CURSOR_GEN, gen), (CURSOR, 0)]).await?;
        self.deps.status.last_published.store(0, Ordering::Relaxed);
        Ok(())
    }

    async fn publish_events(&mut self, gen: u64, durable_seq: u64) -> Result<(), RelayError> {
        let live = self.deps.store.gen();
        if live.id() != gen {
            return Ok(()); // a swap is in progress; the next round sees it
        }
        let from = self.cursor + 1;
        let to = durable_seq.min(self.cursor + BATCH);
        let lines = tokio::task::spawn_blocking(move || {
            live.gen
                .events(from, to)
                .map(|r| r.map(|(seq, se)| (seq, to_canonical(seq, &se))))
                .collect::<Result<Vec<_>, _>>()
        })
        .await??;
        let mut inflight = Vec::with_capacity(lines.len());
        for (seq, line) in &lines {
            let rec: FutureRecord<'_, (), [u8]> = FutureRecord::to(&self.deps.topic)
                .partition(0)
                .payload(line.as_slice())
                .headers(self.headers(Kind::Event, *seq));
            match self.producer.send_result(rec) {
                Ok(f) => inflight.push((*seq, f)),
                // Local queue full: what is queued now, the rest next round.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => break,
                Err((e, _)) => return Err(e.into()),
            }
        }
        let mut acked = self.cursor;
        let mut failure = None;
        for (seq, f) in inflight {
            match f.await {
                Ok(Ok(_)) if failure.is_none() => acked = seq,
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    failure.get_or_insert(RelayError::Kafka(e));
                }
                Err(_) => {
                    failure.get_or_insert(RelayError::NoAnswer("delivery cancelled"));
                }
            }
        }
        if acked > self.cursor {
            self.last_sent = Instant::now();
            self.cursor = acked;
            self.save(vec![(CURSOR, acked)]).await?;
            self.deps
                .status
                .last_published
                .store(acked, Ordering::Relaxed);
            self.deps.metrics.log_topic_published.set(acked as i64);
        }
        failure.map_or(Ok(()), Err)
    }

    /// Session changes not yet published, if any (`None`: nothing to do).
    async fn publish_sessions(&mut self) -> Option<Result<(), RelayError>> {
        let changes = match self
            .deps
            .store
            .meta
            .session_changes(self.sessions, SESSIONS_PER_ROUND)
        {
            Ok(c) if c.is_empty() => return None,
            Ok(c) => c,
            Err(e) => return Some(Err(e.into())),
        };
        for (id, change) in changes {
            let value = serde_json::to_vec(&change).unwrap_or_default();
            if let Err(e) = self.send_one(Kind::Session, self.cursor, &value).await {
                return Some(Err(e));
            }
            self.sessions = id;
        }
        Some(self.save(vec![(SESSIONS, self.sessions)]).await)
    }

    async fn heartbeat(&mut self, durable_seq: u64) -> Result<(), RelayError> {
        let hb = Heartbeat {
            last_event_id: durable_seq,
            timestamp_ms: now_ms(),
        };
        let value = serde_json::to_vec(&hb).unwrap_or_default();
        self.send_one(Kind::Heartbeat, self.cursor, &value).await
    }
}
