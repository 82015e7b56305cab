//! The relay: publishes the durable log to Kafka from a cursor persisted in the
//! meta db, advancing it only on broker acknowledgement, in order. It never sits
//! on the write path: writers only bump the durable watermark it watches.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use tokio::sync::watch;

use super::message::{restored_message, seed_message, EVENT_ID_HEADER, SYSTEM_KEY};
use std::sync::Arc;

use super::RelayStatus;
use crate::backoff::Backoff;
use crate::config::KafkaConfig;
use crate::domain::time::now_ms;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// Events read and sent per round; acknowledged as a whole before the cursor moves.
const BATCH: u64 = 10_000;
const MAX_BACKOFF: Duration = Duration::from_secs(10);
const PROBE_EVERY: Duration = Duration::from_secs(10);

pub(crate) const CURSOR: &str = "cursor";
pub(crate) const CURSOR_GEN: &str = "cursor_gen";

/// Why a relay round failed. Every one is retried with backoff; the kind says
/// whether the broker, the log or the relay itself was at fault.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RelayError {
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("creating topic {topic}: {code}")]
    CreateTopic {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("no answer from the broker: {0}")]
    NoAnswer(&'static str),
    #[error("reading the log: {0}")]
    Log(#[from] StoreError),
    #[error("relay task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// librdkafka reports every failed retry; the relay logs state changes itself
/// (one line on disconnect, one on reconnect), so the library's own chatter goes
/// to debug level.
#[derive(Clone, Copy, Default)]
pub(crate) struct QuietContext;

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(target: "librdkafka", ?level, fac, "{log_message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", %error, "{reason}");
    }
}

// Consumers (replicas) keep librdkafka's chatter at debug level too.
impl rdkafka::consumer::ConsumerContext for QuietContext {}

pub(crate) type RelayProducer = FutureProducer<QuietContext>;

pub(crate) fn producer_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        // Never give up on a message: a timeout makes librdkafka bump the producer
        // epoch, which some brokers answer by fencing the producer for good. An outage
        // just holds the round open (shown as disconnected after 5 s without acks).
        .set("message.timeout.ms", "0")
        .set("socket.timeout.ms", "10000")
        .set("log_level", "4")
        // The relay creates the topic itself, with the configured partitions.
        .set("allow.auto.create.topics", "false");
    c
}

/// What the relay may touch: the store (snapshots, durable watermark, meta for
/// its cursor and the restore notice), its Kafka settings, its status and the
/// metrics. It never sees the rest of the application.
pub(crate) struct RelayDeps {
    pub(crate) store: Arc<Store>,
    pub(crate) kafka: KafkaConfig,
    pub(crate) status: Arc<RelayStatus>,
    pub(crate) metrics: Arc<Metrics>,
}

struct Relay {
    deps: RelayDeps,
    producer: RelayProducer,
    topic: String,
    cursor: u64,
    cursor_gen: u64,
    connected: bool,
    backoff: Backoff,
}

pub(crate) fn spawn_relay(
    deps: RelayDeps,
    stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, RelayError> {
    let producer: RelayProducer = producer_config(&deps.kafka).create_with_context(QuietContext)?;
    // An unreadable cursor is not "nothing published yet": republishing the
    // whole log would flood consumers, so the relay does not start.
    let cursor = deps.store.meta.relay_get(CURSOR)?.unwrap_or(0);
    let cursor_gen = deps.store.meta.relay_get(CURSOR_GEN)?.unwrap_or(0);
    let status = &deps.status;
    status.enabled.store(true, Ordering::Relaxed);
    status.last_published.store(cursor, Ordering::Relaxed);
    let relay = Relay {
        topic: deps.kafka.topic.clone(),
        deps,
        producer,
        cursor,
        cursor_gen,
        connected: false,
        backoff: Backoff::new(Duration::from_millis(500), MAX_BACKOFF),
    };
    Ok(tokio::spawn(relay.run(stop)))
}

/// Whether the topic exists, asked without triggering auto-creation.
pub(crate) async fn topic_exists(
    producer: &RelayProducer,
    topic: &str,
) -> Result<bool, RelayError> {
    let p = producer.clone();
    let t = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let md = p
            .client()
            .fetch_metadata(Some(&t), Duration::from_secs(5))?;
        Ok(md
            .topics()
            .iter()
            .any(|mt| mt.name() == t && mt.error().is_none() && !mt.partitions().is_empty()))
    })
    .await?
}

/// A topic to make sure of.
pub(crate) struct TopicSpec<'a> {
    pub(crate) brokers: &'a str,
    pub(crate) topic: &'a str,
    pub(crate) partitions: i32,
    /// `retention.ms=-1` (the log topic).
    pub(crate) keep_forever: bool,
}

/// Creates the topic if needed, retrying with backoff until it works; false
/// when `stop` flipped first. `failed` hears each failure.
pub(crate) async fn ensure_topic_until(
    producer: &RelayProducer,
    t: &TopicSpec<'_>,
    backoff: &mut Backoff,
    stop: &mut watch::Receiver<bool>,
    mut failed: impl FnMut(&RelayError),
) -> bool {
    loop {
        match ensure_topic(producer, t.brokers, t.topic, t.partitions, t.keep_forever).await {
            Ok(()) => {
                backoff.succeeded();
                return true;
            }
            Err(e) => {
                failed(&e);
                let wait = backoff.failed();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return false,
                }
            }
        }
    }
}

/// After a failed round: a fresh producer (new producer id: whatever state the
/// old one was left in, fenced or fatal, the cursor says what to resend) and a
/// backoff wait. False when `stop` flipped during the wait.
pub(crate) async fn recover(
    producer: &mut RelayProducer,
    config: &ClientConfig,
    backoff: &mut Backoff,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    match config.create_with_context::<_, RelayProducer>(QuietContext) {
        Ok(p) => *producer = p,
        Err(err) => tracing::warn!(error = %err, "could not recreate the Kafka producer"),
    }
    let wait = backoff.failed();
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = stop.changed() => false,
    }
}

/// Creates `topic` when it is missing; `keep_forever` sets `retention.ms=-1`
/// (the log topic: a replica needs its current generation from the marker on).
pub(crate) async fn ensure_topic(
    producer: &RelayProducer,
    brokers: &str,
    topic: &str,
    partitions: i32,
    keep_forever: bool,
) -> Result<(), RelayError> {
    if topic_exists(producer, topic).await? {
        return Ok(());
    }
    let admin: AdminClient<QuietContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("socket.timeout.ms", "10000")
        .create_with_context(QuietContext)?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    if keep_forever {
        new = new.set("retention.ms", "-1");
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let res = tokio::time::timeout(Duration::from_secs(15), admin.create_topics([&new], &opts))
        .await
        .map_err(|_| RelayError::NoAnswer("create topic"))??;
    for r in res {
        match r {
            Ok(_) => tracing::info!(topic, partitions, "created Kafka topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            // A broker that refuses the retention setting still gets the topic;
            // keeping it is then the operator's to configure (the README says how).
            Err((_, code)) if keep_forever => {
                tracing::warn!(topic, %code, "the broker refused retention.ms=-1; creating the topic with its default retention");
                return Box::pin(ensure_topic(producer, brokers, topic, partitions, false)).await;
            }
            Err((topic, code)) => return Err(RelayError::CreateTopic { topic, code }),
        }
    }
    Ok(())
}

impl Relay {
    /// Persists the cursor (one batch, one flush, on a blocking thread).
    async fn save_cursor(&self) {
        let store = self.deps.store.clone();
        let values = [(CURSOR_GEN, self.cursor_gen), (CURSOR, self.cursor)];
        let saved = tokio::task::spawn_blocking(move || store.meta.relay_set_all(&values)).await;
        if !matches!(saved, Ok(Ok(()))) {
            tracing::error!(
                "could not persist the Kafka cursor; events may be republished after a restart"
            );
        }
        self.deps
            .status
            .last_published
            .store(self.cursor, Ordering::Relaxed);
        self.deps
            .metrics
            .kafka_last_published
            .set(self.cursor as i64);
    }

    fn set_connected(&mut self, up: bool, why: &str) {
        if up != self.connected {
            if up {
                tracing::info!(cursor = self.cursor, "Kafka reachable: publishing");
            } else {
                tracing::warn!(
                    reason = why,
                    cursor = self.cursor,
                    "Kafka unreachable: events are kept and published in order when it returns"
                );
            }
        }
        self.connected = up;
        self.deps.status.connected.store(up, Ordering::Relaxed);
        self.deps.metrics.kafka_connected.set(i64::from(up));
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut durable = self.deps.store.durable();
        // Topic first: many brokers do not auto-create. Retried until it works.
        let k = self.deps.kafka.clone();
        let target = TopicSpec {
            brokers: &k.brokers,
            topic: &k.topic,
            partitions: k.partitions,
            keep_forever: false,
        };
        let (producer, backoff) = (&self.producer, &mut self.backoff);
        let (status, metrics) = (&self.deps.status, &self.deps.metrics);
        let created = ensure_topic_until(producer, &target, backoff, &mut stop, |e| {
            status.connected.store(false, Ordering::Relaxed);
            metrics.kafka_connected.set(0);
            tracing::debug!(error = %e, "Kafka topic not ready");
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
            let lag = d.seq.saturating_sub(self.cursor);
            self.deps.metrics.kafka_lag.set(lag as i64);
            let step = if d.gen != self.cursor_gen {
                self.after_swap(d.gen, d.seq).await
            } else if d.seq > self.cursor {
                // A dead broker holds a round for up to message.timeout.ms; shutdown does not wait.
                tokio::select! {
                    r = self.publish_batch(d.gen, d.seq) => r,
                    _ = stop.changed() => break,
                }
            } else {
                // Caught up: wait for new events, probing the broker now and then.
                tokio::select! {
                    _ = durable.changed() => {}
                    _ = tokio::time::sleep(PROBE_EVERY) => self.probe().await,
                    _ = stop.changed() => break,
                }
                Ok(())
            };
            if let Err(e) = step {
                self.set_connected(false, &e.to_string());
                let k = self.deps.kafka.clone();
                if !recover(
                    &mut self.producer,
                    &producer_config(&k),
                    &mut self.backoff,
                    &mut stop,
                )
                .await
                {
                    break;
                }
            }
        }
        let p = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(5))).await;
    }

    async fn probe(&mut self) {
        let p = self.producer.clone();
        let topic = self.topic.clone();
        let ok = tokio::task::spawn_blocking(move || {
            p.client()
                .fetch_metadata(Some(&topic), Duration::from_secs(3))
                .is_ok()
        })
        .await
        .unwrap_or(false);
        self.set_connected(ok, "metadata request failed");
    }

    /// The live log was replaced (restore, or a first start on an older cursor).
    async fn after_swap(&mut self, gen: u64, durable_seq: u64) -> Result<(), RelayError> {
        let first_run = self.cursor_gen == 0 && self.cursor == 0;
        if first_run {
            // Nothing published yet: the whole log is ours to publish.
            self.cursor_gen = gen;
            self.save_cursor().await;
            return Ok(());
        }
        let (backup, last) = match self.deps.store.meta.restore_notice() {
            Some(p) if p.gen == gen => (p.backup, p.last_event_id),
            // Restored offline (CLI) or the notice was lost: resync from the log end.
            _ => ("offline restore".to_string(), durable_seq),
        };
        let value = restored_message(&backup, last, now_ms());
        let headers = OwnedHeaders::new().insert(Header {
            key: "taskledger-event-type",
            value: Some("restored"),
        });
        let rec = FutureRecord::to(&self.topic)
            .key(SYSTEM_KEY)
            .payload(&value)
            .headers(headers);
        match self.producer.send(rec, Duration::from_secs(0)).await {
            Ok(_) => {
                tracing::info!(backup = %backup, last_event_id = last, "announced restore on Kafka");
                self.cursor_gen = gen;
                self.cursor = last;
                self.save_cursor().await;
                let _ = self.deps.store.meta.clear_restore_notice();
                self.backoff.succeeded();
                self.set_connected(true, "");
                Ok(())
            }
            Err((e, _)) => Err(e.into()),
        }
    }

    async fn publish_batch(&mut self, gen: u64, durable_seq: u64) -> Result<(), RelayError> {
        let live = self.deps.store.gen();
        if live.id() != gen {
            return Ok(()); // a swap is in progress; the next round sees it
        }
        let from = self.cursor + 1;
        let to = durable_seq.min(self.cursor + BATCH);
        let events = tokio::task::spawn_blocking(move || {
            live.gen.events(from, to).collect::<Result<Vec<_>, _>>()
        })
        .await??;
        let mut inflight = Vec::with_capacity(events.len());
        for (seq, se) in &events {
            let Some((key, value)) = seed_message(se) else {
                continue;
            };
            let id = seq.to_string();
            let headers = OwnedHeaders::new().insert(Header {
                key: EVENT_ID_HEADER,
                value: Some(&id),
            });
            let rec = FutureRecord::to(&self.topic)
                .key(&key)
                .payload(&value)
                .headers(headers);
            match self.producer.send_result(rec) {
                Ok(f) => inflight.push((*seq, f)),
                // Local queue full: publish what is queued, the rest next round.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => break,
                Err((e, _)) => return Err(e.into()),
            }
        }
        // Everything up to the first unsent publishable event, user events included.
        let sent_until = match inflight.len() {
            n if n
                == events
                    .iter()
                    .filter(|(_, se)| seed_message(se).is_some())
                    .count() =>
            {
                to
            }
            _ => inflight.last().map(|(s, _)| *s).unwrap_or(self.cursor),
        };
        let mut acked_until = sent_until;
        let mut failure = None;
        for (seq, f) in inflight {
            // A broker that stops answering shows as disconnected long before the
            // delivery timeout ends the round.
            tokio::pin!(f);
            let done = match tokio::time::timeout(Duration::from_secs(5), &mut f).await {
                Ok(done) => done,
                Err(_) => {
                    self.set_connected(false, "no acknowledgement for 5 s");
                    f.await
                }
            };
            match done {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    failure.get_or_insert(RelayError::Kafka(e));
                    acked_until = acked_until.min(seq - 1);
                }
                Err(_) => {
                    failure.get_or_insert(RelayError::NoAnswer("delivery cancelled"));
                    acked_until = acked_until.min(seq - 1);
                }
            }
        }
        if acked_until > self.cursor {
            let n = acked_until - self.cursor;
            self.cursor = acked_until;
            self.save_cursor().await;
            self.deps.metrics.kafka_published.inc_by(n);
        }
        match failure {
            Some(e) => Err(e),
            None => {
                self.backoff.succeeded();
                self.set_connected(true, "");
                Ok(())
            }
        }
    }
}
