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

use rdkafka::config::ClientConfig;

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
    /// A promotion (SPEC §12): from here on only this term's messages count.
    Term,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Generation => "generation",
            Kind::Heartbeat => "heartbeat",
            Kind::Session => "session",
            Kind::Term => "term",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Kind> {
        [
            Kind::Event,
            Kind::Generation,
            Kind::Heartbeat,
            Kind::Session,
            Kind::Term,
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

/// A promotion: a new primary took over at `lastEventId` of `generation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TermMarker {
    pub(crate) term: u64,
    pub(crate) generation: u64,
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
pub(crate) const CURSOR: &str = "log_cursor";
pub(crate) const CURSOR_GEN: &str = "log_cursor_gen";
pub(crate) const GENERATION_KEY: &str = "log_generation";
pub(crate) const GENERATION_FOR: &str = "log_generation_for";
pub(crate) const SESSIONS: &str = "log_session_cursor";
pub(crate) const TERM_KEY: &str = "term";
/// The term this node last announced with a term marker.
pub(crate) const ANNOUNCED: &str = "term_announced";

/// How often the open transaction is committed: commits only keep the
/// transactional producer alive (readers read uncommitted; a message counts
/// once the broker acknowledged it), so they need not be per batch.
const COMMIT_EVERY: Duration = Duration::from_secs(1);
/// Transaction and message timeout of the log topic's producer.
const TXN_TIMEOUT_MS: &str = "60000";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// Where a fenced node keeps what it never published.
    pub(crate) backup_dir: std::path::PathBuf,
    /// A producer already holding the transactional id (a promotion fenced
    /// the old primary with it); `None`: the relay makes its own.
    pub(crate) producer: Option<RelayProducer>,
}

/// Every primary of one log topic shares this transactional id: the broker
/// lets only the newest producer holding it write (Kafka's own fencing).
pub(crate) fn transactional_id(topic: &str) -> String {
    format!("taskledger-log-{topic}")
}

/// The log topic's producer: idempotent, acks=all, and transactional so that a
/// newer primary fences it.
pub(crate) fn log_producer_config(k: &KafkaConfig, topic: &str) -> ClientConfig {
    let mut c = producer_config(k);
    c.set("transactional.id", transactional_id(topic))
        .set("transaction.timeout.ms", TXN_TIMEOUT_MS)
        .set("message.timeout.ms", TXN_TIMEOUT_MS)
        // Sync mode waits for every batch: do not hold messages back.
        .set("linger.ms", "1");
    c
}

/// Whether Kafka said another producer now holds the transactional id.
pub(crate) fn is_fenced(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(C::ProducerFenced | C::InvalidProducerEpoch | C::Fenced)
    )
}

/// Takes the transactional id (fencing whoever held it) and opens a
/// transaction; blocking.
pub(crate) fn take_over(producer: &RelayProducer) -> Result<(), KafkaError> {
    producer.init_transactions(CALL_TIMEOUT)?;
    producer.begin_transaction()
}

/// A consumer of the log topic (no group offsets: every reader keeps its own
/// position). `purpose` names it in the broker's view.
pub(crate) fn log_consumer(
    k: &KafkaConfig,
    purpose: &str,
) -> Result<rdkafka::consumer::BaseConsumer<QuietContext>, KafkaError> {
    log_consumer_config(k, purpose).create_with_context(QuietContext)
}

fn log_consumer_config(k: &KafkaConfig, purpose: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers)
        .set(
            "group.id",
            format!("taskledger-{purpose}-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // A message counts once the broker acknowledged it (SPEC §12); the
        // log topic's transactions only carry the producer's fencing.
        .set("isolation.level", "read_uncommitted")
        .set("socket.timeout.ms", "10000")
        .set("log_level", "4");
    c
}

/// The `taskledger-term` header of a message (`None`: not ours).
pub(crate) fn term_of<M: rdkafka::message::Message>(m: &M) -> Option<u64> {
    use rdkafka::message::Headers;
    m.headers().and_then(|hs| {
        hs.iter()
            .find(|h| h.key == TERM)
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse::<u64>().ok())
    })
}

/// The term of the topic's last message (`None`: empty or not ours); blocking.
pub(crate) fn last_term(k: &KafkaConfig, topic: &str) -> Result<Option<u64>, KafkaError> {
    use rdkafka::consumer::Consumer;
    let consumer = log_consumer(k, "term")?;
    let (low, high) = consumer.fetch_watermarks(topic, 0, CALL_TIMEOUT)?;
    if high <= low {
        return Ok(None);
    }
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Offset(high - 1))?;
    consumer.assign(&tpl)?;
    let until = Instant::now() + CALL_TIMEOUT;
    while Instant::now() < until {
        if let Some(r) = consumer.poll(Duration::from_millis(100)) {
            return Ok(term_of(&r?));
        }
    }
    Err(KafkaError::MessageConsumption(
        RDKafkaErrorCode::RequestTimedOut,
    ))
}

type Tail = rdkafka::consumer::BaseConsumer<QuietContext>;

/// A consumer at the topic's end: a primary reads what others write there, so
/// it notices a promotion even on a broker that does not fence producers.
fn tail(k: &KafkaConfig, topic: &str) -> Result<Tail, KafkaError> {
    use rdkafka::consumer::Consumer;
    // Promptly: this is how a zombie learns of a promotion on such a broker.
    let c: Tail = log_consumer_config(k, "tail")
        .set("fetch.wait.max.ms", "100")
        .create_with_context(QuietContext)?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::End)?;
    c.assign(&tpl)?;
    Ok(c)
}

/// A higher term seen on the topic, and where its primary took over when its
/// marker was among the messages read.
struct Superseded {
    term: u64,
    marker: Option<TermMarker>,
}

/// The highest term among the messages `tail` has received since last asked.
fn newest_term(tail: &Tail) -> Option<Superseded> {
    use rdkafka::message::{Headers, Message};
    let mut newest: Option<Superseded> = None;
    while let Some(Ok(m)) = tail.poll(Duration::ZERO) {
        let Some(term) = term_of(&m) else { continue };
        let is_marker = m.headers().is_some_and(|hs| {
            hs.iter()
                .any(|h| h.key == TYPE && h.value == Some(Kind::Term.as_str().as_bytes()))
        });
        let marker = is_marker
            .then(|| serde_json::from_slice::<TermMarker>(m.payload().unwrap_or_default()).ok())
            .flatten();
        match &mut newest {
            Some(n) if n.term > term => {}
            Some(n) if n.term == term => n.marker = n.marker.take().or(marker),
            _ => newest = Some(Superseded { term, marker }),
        }
    }
    newest
}

struct LogRelay {
    deps: LogDeps,
    producer: RelayProducer,
    tail: Option<Tail>,
    /// The producer holds the transactional id and a transaction is open.
    ready: bool,
    /// Since when the open transaction has had messages.
    txn_since: Option<Instant>,
    /// The broker cannot end transactions (tansu): the one transaction stays
    /// open; it still fences, which is what it is for.
    commits: bool,
    /// Last published event of the local generation `cursor_gen`.
    cursor: u64,
    cursor_gen: u64,
    /// The topic's generation for `cursor_gen` (shared by every node).
    generation: u64,
    sessions: u64,
    term: u64,
    announced: u64,
    last_sent: Instant,
    backoff: Backoff,
    /// The promotion that superseded this node, when its marker was read: what
    /// this node published after that point counts for no one either.
    superseded: Option<TermMarker>,
}

pub(crate) fn spawn(
    mut deps: LogDeps,
    stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, RelayError> {
    let (producer, ready) = match deps.producer.take() {
        Some(p) => (p, true),
        None => (
            log_producer_config(&deps.kafka, &deps.topic).create_with_context(QuietContext)?,
            false,
        ),
    };
    let meta = &deps.store.meta;
    let relay = LogRelay {
        cursor: meta.relay_get(CURSOR)?.unwrap_or(0),
        cursor_gen: meta.relay_get(CURSOR_GEN)?.unwrap_or(0),
        generation: meta.relay_get(GENERATION_KEY)?.unwrap_or(0),
        sessions: meta.relay_get(SESSIONS)?.unwrap_or(0),
        term: meta.relay_get(TERM_KEY)?.unwrap_or(1),
        announced: meta.relay_get(ANNOUNCED)?.unwrap_or(1),
        producer,
        tail: None,
        ready,
        txn_since: None,
        commits: true,
        last_sent: Instant::now(),
        backoff: Backoff::new(Duration::from_millis(200), MAX_BACKOFF),
        superseded: None,
        deps,
    };
    relay.deps.status.enabled.store(true, Ordering::Relaxed);
    relay
        .deps
        .status
        .last_published
        .store(relay.cursor, Ordering::Relaxed);
    relay
        .deps
        .store
        .commit_gate()
        .acked(relay.cursor_gen, relay.cursor);
    Ok(tokio::spawn(relay.run(stop)))
}

/// What a failed step means for the relay.
enum Failure {
    /// Another node holds the transactional id or announced a higher term.
    Fenced(String),
    /// Retried with a fresh producer after a backoff.
    Retry(RelayError),
}

impl From<RelayError> for Failure {
    fn from(e: RelayError) -> Self {
        match &e {
            RelayError::Kafka(k) if is_fenced(k) => Failure::Fenced(e.to_string()),
            _ => Failure::Retry(e),
        }
    }
}

impl From<KafkaError> for Failure {
    fn from(e: KafkaError) -> Self {
        RelayError::Kafka(e).into()
    }
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
        self.txn_since.get_or_insert_with(Instant::now);
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

    /// Makes the producer the one holding the transactional id — unless the
    /// topic says a newer primary exists, which would be fenced by taking it.
    async fn prepare(&mut self) -> Result<(), Failure> {
        if let Some(seen) = self
            .tail
            .as_ref()
            .and_then(newest_term)
            .filter(|t| t.term > self.term)
        {
            let why = format!(
                "a primary of term {} writes to the log topic; this node's term is {}",
                seen.term, self.term
            );
            self.superseded = seen.marker;
            return Err(Failure::Fenced(why));
        }
        if self.tail.is_none() {
            let (k, t) = (self.deps.kafka.clone(), self.deps.topic.clone());
            self.tail = Some(
                tokio::task::spawn_blocking(move || tail(&k, &t))
                    .await
                    .map_err(RelayError::from)??,
            );
        }
        if self.ready {
            return Ok(());
        }
        let (k, t) = (self.deps.kafka.clone(), self.deps.topic.clone());
        let seen = tokio::task::spawn_blocking(move || last_term(&k, &t))
            .await
            .map_err(RelayError::from)??;
        if let Some(seen) = seen.filter(|s| *s > self.term) {
            return Err(Failure::Fenced(format!(
                "the log topic is at term {seen}, this node's term is {}",
                self.term
            )));
        }
        let p = self.producer.clone();
        tokio::task::spawn_blocking(move || take_over(&p))
            .await
            .map_err(RelayError::from)??;
        self.ready = true;
        self.txn_since = None;
        Ok(())
    }

    /// Commits the open transaction now and then (keeps the producer's
    /// transaction within its timeout) and opens the next.
    async fn maybe_commit(&mut self) -> Result<(), Failure> {
        if !self.commits || self.txn_since.is_none_or(|t| t.elapsed() < COMMIT_EVERY) {
            return Ok(());
        }
        let p = self.producer.clone();
        let done = tokio::task::spawn_blocking(move || {
            p.commit_transaction(CALL_TIMEOUT)?;
            p.begin_transaction()
        })
        .await
        .map_err(RelayError::from)?;
        match done {
            Ok(()) => {
                self.txn_since = None;
                Ok(())
            }
            Err(e)
                if matches!(
                    e.rdkafka_error_code(),
                    Some(
                        RDKafkaErrorCode::UnsupportedFeature | RDKafkaErrorCode::UnsupportedVersion
                    )
                ) =>
            {
                tracing::info!(error = %e, "the broker cannot end transactions; keeping one open (fencing still works)");
                self.commits = false;
                // The failed call may have left the producer unusable: a new one.
                Err(Failure::Retry(e.into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A promoted node says so once, before anything else of its term.
    async fn announce(&mut self, gen: u64, seq: u64) -> Result<(), Failure> {
        if self.announced >= self.term || self.cursor_gen != gen {
            return Ok(());
        }
        let m = TermMarker {
            term: self.term,
            generation: self.generation,
            last_event_id: seq,
            timestamp_ms: now_ms(),
        };
        let value = serde_json::to_vec(&m).unwrap_or_default();
        self.send_one(Kind::Term, seq, &value).await?;
        self.announced = self.term;
        self.save(vec![(ANNOUNCED, self.term)]).await?;
        tracing::info!(
            term = self.term,
            last_event_id = seq,
            "log topic: this node is primary; term announced"
        );
        Ok(())
    }

    async fn step(
        &mut self,
        synced: &mut watch::Receiver<crate::store::Durable>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<bool, Failure> {
        self.prepare().await?;
        let d = *synced.borrow_and_update();
        self.announce(d.gen, self.cursor).await?;
        if d.gen != self.cursor_gen {
            self.mark_generation(d.gen, d.seq).await?;
        } else if let Some(r) = self.publish_sessions().await {
            // Sessions first: under a steady stream of writes there is always
            // an event to send, and a login must still reach the replicas
            // (a promoted replica that lacks it refuses the client's token).
            r?
        } else if d.seq > self.cursor {
            tokio::select! {
                r = self.publish_events(d.gen, d.seq) => r?,
                _ = stop.changed() => return Ok(false),
            }
        } else if self.last_sent.elapsed() >= HEARTBEAT {
            self.heartbeat(d.seq).await?
        } else {
            let nap = HEARTBEAT
                .saturating_sub(self.last_sent.elapsed())
                .min(COMMIT_EVERY);
            tokio::select! {
                _ = synced.changed() => {}
                _ = tokio::time::sleep(nap) => {}
                _ = stop.changed() => return Ok(false),
            }
        }
        self.maybe_commit().await?;
        Ok(true)
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut synced = self.deps.store.synced();
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
            match self.step(&mut synced, &mut stop).await {
                Ok(true) => {
                    self.backoff.succeeded();
                    self.set_connected(true, "");
                }
                Ok(false) => break,
                Err(Failure::Fenced(why)) => {
                    self.fenced(&why).await;
                    return;
                }
                Err(Failure::Retry(e)) => {
                    self.set_connected(false, &e.to_string());
                    let cfg = log_producer_config(&self.deps.kafka, &self.deps.topic);
                    self.ready = false;
                    if !recover(&mut self.producer, &cfg, &mut self.backoff, &mut stop).await {
                        break;
                    }
                }
            }
        }
        if self.ready {
            let p = self.producer.clone();
            let _ = tokio::task::spawn_blocking(move || {
                p.flush(Duration::from_secs(5))?;
                p.commit_transaction(Duration::from_secs(5))
            })
            .await;
        }
    }

    /// Another node is primary: refuse writes from now on and keep what this
    /// node acknowledged but never published in a `…_diverged` backup.
    async fn fenced(&mut self, why: &str) {
        let store = self.deps.store.clone();
        store.fence();
        self.deps.status.connected.store(false, Ordering::Relaxed);
        tracing::error!(
            reason = why,
            "fenced: another node is primary; this node acknowledges no more writes (restart it as a replica)"
        );
        // On a broker that does not fence producers, writes this node sent
        // after the promotion were published with the old term and every
        // reader ignores them: they are as diverged as the unpublished ones.
        let taken_over = self
            .superseded
            .as_ref()
            .filter(|m| m.generation == self.generation)
            .map(|m| m.last_event_id);
        let (cursor, cursor_gen, dir) =
            (self.cursor, self.cursor_gen, self.deps.backup_dir.clone());
        let kept = tokio::task::spawn_blocking(move || {
            let snap = store.gen();
            let end = snap.gen.last_seq()?;
            let from = if snap.id() == cursor_gen {
                taken_over.map_or(cursor, |t| t.min(cursor)) + 1
            } else {
                1
            };
            if end < from {
                return Ok(None);
            }
            let w = crate::backup::manager::write_backup(
                &snap.gen,
                end,
                &dir,
                crate::backup::manager::MANUAL,
                Some("diverged"),
            )?;
            Ok::<_, crate::backup::BackupError>(Some((from, end, w.path)))
        })
        .await;
        match kept {
            Ok(Ok(None)) => tracing::info!("fenced: every event of this node was published"),
            Ok(Ok(Some((from, to, path)))) => tracing::error!(
                from,
                to,
                backup = %path.display(),
                "fenced: events {from}..={to} were written here but never published (or only after \
                 another node took over); they are kept in {}",
                path.display()
            ),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "fenced: could not write the diverged backup")
            }
            Err(e) => tracing::error!(error = %e, "fenced: the diverged backup task failed"),
        }
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
        self.deps.store.commit_gate().acked(gen, 0);
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
        self.txn_since.get_or_insert_with(Instant::now);
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
            self.deps.store.commit_gate().acked(gen, acked);
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
