//! The follower: one blocking thread that reads the log topic in order and
//! hands each run of events to the store's replicate input, swaps in a new
//! generation when a marker says so, takes session changes into meta, and
//! records how far it got (after what it applied is durable, so a kill -9
//! resumes from its own log, never from zero).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio::sync::watch;

use super::ReplicaStatus;
use crate::config::KafkaConfig;
use crate::domain::canonical::from_canonical;
use crate::domain::StoredEvent;
use crate::metrics::Metrics;
use crate::mirror::log_topic::{self, Heartbeat, Kind, Marker, TermMarker};
use crate::mirror::relay::QuietContext;
use crate::store::gen::encode_event;
use crate::store::meta::SessionChange;
use crate::store::replay::Importer;
use crate::store::{Gen, Store, StoreError, WriteError};

/// Offset of the last message whose effect is durable here (meta, relay tree).
pub(crate) const POSITION: &str = "replica_offset";
/// The topic generation the position belongs to.
const FOLLOWING: &str = "replica_generation";
/// The local generation the position was recorded for: a data dir restored by
/// hand since then has no position.
const LOCAL_GEN: &str = "replica_local_gen";

/// Events handed to the store at a time.
const RUN: usize = 5_000;
const POLL: Duration = Duration::from_millis(100);
/// A promotion's follower has the whole topic once it found nothing for this long.
const PROMOTE_IDLE: Duration = Duration::from_millis(1500);

/// What the follower may touch.
pub(crate) struct FollowDeps {
    pub(crate) store: Arc<Store>,
    pub(crate) kafka: KafkaConfig,
    pub(crate) topic: String,
    pub(crate) status: Arc<ReplicaStatus>,
    pub(crate) metrics: Arc<Metrics>,
}

#[derive(Debug, thiserror::Error)]
enum FollowError {
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("write: {0}")]
    Write(#[from] WriteError),
    #[error("swap: {0}")]
    Swap(#[from] crate::store::SwapError),
    #[error("message at offset {offset}: {why}")]
    Bad { offset: i64, why: String },
}

/// A message of the log topic, decoded.
enum Body {
    Event {
        generation: u64,
        seq: u64,
        event: Box<StoredEvent>,
    },
    Generation(Marker),
    Heartbeat(Heartbeat),
    Session(SessionChange),
    Term(TermMarker),
}

/// A message and the term of the primary that sent it.
struct Msg {
    term: u64,
    body: Body,
}

fn header<'a>(m: &'a BorrowedMessage<'_>, key: &str) -> Option<&'a str> {
    let hs = m.headers()?;
    (0..hs.count())
        .map(|i| hs.get(i))
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

fn decode(m: &BorrowedMessage<'_>) -> Result<Option<Msg>, FollowError> {
    let bad = |why: String| FollowError::Bad {
        offset: m.offset(),
        why,
    };
    let Some(kind) = header(m, log_topic::TYPE).and_then(Kind::parse) else {
        // Not ours (another producer on the topic): skipped.
        return Ok(None);
    };
    let value = m.payload().unwrap_or_default();
    let num = |key: &str| header(m, key).and_then(|v| v.parse::<u64>().ok());
    let term = num(log_topic::TERM).unwrap_or(1);
    let body = match kind {
        Kind::Event => {
            let (seq, event) = from_canonical(value).map_err(bad)?;
            let generation =
                num(log_topic::GENERATION).ok_or_else(|| bad("no generation".into()))?;
            Body::Event {
                generation,
                seq,
                event: Box::new(event),
            }
        }
        Kind::Generation => {
            Body::Generation(serde_json::from_slice(value).map_err(|e| bad(e.to_string()))?)
        }
        Kind::Heartbeat => {
            Body::Heartbeat(serde_json::from_slice(value).map_err(|e| bad(e.to_string()))?)
        }
        Kind::Session => {
            Body::Session(serde_json::from_slice(value).map_err(|e| bad(e.to_string()))?)
        }
        Kind::Term => Body::Term(serde_json::from_slice(value).map_err(|e| bad(e.to_string()))?),
    };
    Ok(Some(Msg { term, body }))
}

/// A generation being built aside until its marker's last event arrives.
struct Building {
    generation: u64,
    target: u64,
    gen: Gen,
    /// Checks continuity and the rules and builds the image; the log is
    /// appended here beside it, in chunks (the importer does not hold `gen`).
    importer: Importer<'static>,
    pending: Vec<(u64, Vec<u8>)>,
    last_ts: i64,
}

/// Events appended to a generation being built at a time.
const CHUNK: usize = 8_192;

impl Building {
    fn push(&mut self, seq: u64, event: StoredEvent) -> Result<(), FollowError> {
        self.last_ts = event.ts_ms;
        self.pending.push((seq, encode_event(&event)));
        self.importer.push(seq, event)?;
        if self.pending.len() >= CHUNK {
            self.gen.append(&self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }

    /// The log on disk and its image.
    fn finish(self) -> Result<(Gen, crate::domain::state::State), FollowError> {
        self.gen.append(&self.pending)?;
        self.gen.sync()?;
        Ok((self.gen, self.importer.finish()?))
    }
}

struct Follower {
    deps: FollowDeps,
    rt: Handle,
    consumer: BaseConsumer<QuietContext>,
    /// Topic generation followed; 0: none yet.
    following: u64,
    building: Option<Building>,
    /// Events read but not yet handed to the store.
    run: Vec<(u64, StoredEvent)>,
    run_last_ts: i64,
    /// Offset of the last message read (its effect durable once `run` is flushed).
    read_to: i64,
    /// Highest term seen: messages of a lower one are a fenced primary's.
    term: u64,
}

pub(crate) fn spawn(deps: FollowDeps, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    let rt = Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut backoff =
            crate::backoff::Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        let mut deps = Some(deps);
        while !*stop.borrow() {
            let Some(d) = deps.take() else { return };
            let status = d.status.clone();
            let store = d.store.clone();
            let (kafka, topic, metrics) = (d.kafka.clone(), d.topic.clone(), d.metrics.clone());
            match Follower::new(d, rt.clone()).and_then(|mut f| f.follow(&stop)) {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "replica: following the log topic failed; retrying");
                    let _ = status;
                    deps = Some(FollowDeps {
                        store,
                        kafka,
                        topic,
                        status: status.clone(),
                        metrics,
                    });
                    let wait = backoff.failed();
                    let until = Instant::now() + wait;
                    while Instant::now() < until && !*stop.borrow() {
                        std::thread::sleep(POLL);
                    }
                }
            }
        }
    })
}

impl Follower {
    fn new(deps: FollowDeps, rt: Handle) -> Result<Follower, FollowError> {
        let deps_term = deps.store.meta.relay_get(log_topic::TERM_KEY)?.unwrap_or(1);
        let consumer = log_topic::log_consumer(&deps.kafka, "replica")?;
        Ok(Follower {
            deps,
            rt,
            consumer,
            following: 0,
            building: None,
            run: Vec::with_capacity(RUN),
            run_last_ts: 0,
            read_to: -1,
            term: deps_term,
        })
    }

    /// The consumer's next offset (past control records it skipped); -1 unknown.
    fn next_offset(&self) -> i64 {
        self.consumer
            .position()
            .ok()
            .and_then(|tpl| {
                tpl.find_partition(&self.deps.topic, 0)
                    .and_then(|p| p.offset().to_raw())
            })
            .unwrap_or(-1)
    }

    fn assign(&self, offset: Offset) -> Result<(), FollowError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.deps.topic, 0, offset)?;
        self.consumer.assign(&tpl)?;
        Ok(())
    }

    /// Where to read from: the recorded position, or (a new replica) the place
    /// in the latest generation where the local log ends.
    fn position(&mut self, stop: &watch::Receiver<bool>) -> Result<Option<i64>, FollowError> {
        let meta = &self.deps.store.meta;
        let local = self.deps.store.gen();
        if let (Some(offset), Some(generation), Some(gen)) = (
            meta.relay_get(POSITION)?,
            meta.relay_get(FOLLOWING)?,
            meta.relay_get(LOCAL_GEN)?,
        ) {
            if gen == local.id() {
                self.following = generation;
                return Ok(Some(offset as i64));
            }
            tracing::warn!(
                "replica: the data dir changed since its position was recorded; finding it again"
            );
        }
        let (seq, event_id) = match local.last_seq() {
            0 => (0, None),
            n => (n, local.gen.event(n)?.map(|e| e.event_id)),
        };
        let found = self.locate(seq, event_id, stop)?;
        match found {
            Located::After { offset, generation } => {
                self.following = generation;
                tracing::info!(
                    offset,
                    generation,
                    from = seq + 1,
                    "replica: found where the local log ends in the topic"
                );
                Ok(Some(offset))
            }
            Located::Rebuild { marker_offset } => {
                tracing::info!(marker_offset, "replica: the local log is not a prefix of the current generation; rebuilding it from the topic");
                Ok(Some(marker_offset - 1))
            }
            Located::Nothing => Ok(None),
        }
    }

    /// Reads the whole topic once: the latest marker, and in its generation the
    /// event `seq` with this `event_id` (the local log's end).
    fn locate(
        &mut self,
        seq: u64,
        event_id: Option<uuid::Uuid>,
        stop: &watch::Receiver<bool>,
    ) -> Result<Located, FollowError> {
        let (low, high) =
            self.consumer
                .fetch_watermarks(&self.deps.topic, 0, Duration::from_secs(10))?;
        if high <= low {
            return Ok(Located::Nothing);
        }
        self.assign(Offset::Offset(low))?;
        let mut marker: Option<(i64, u64)> = None;
        let mut found: Option<i64> = None;
        let mut last = low - 1;
        while last < high - 1 {
            if *stop.borrow() {
                return Ok(Located::Nothing);
            }
            let Some(r) = self.consumer.poll(POLL) else {
                continue;
            };
            let m = r?;
            last = m.offset();
            match decode(&m)?.map(|m| m.body) {
                // Sessions are not in backups: a replica that starts from one
                // takes every session change the topic holds, in order.
                Some(Body::Session(change)) => {
                    self.deps.store.meta.apply_session_change(&change)?;
                }
                Some(Body::Generation(mk)) => {
                    marker = Some((m.offset(), mk.generation));
                    found = (seq == 0).then_some(m.offset());
                }
                Some(Body::Event {
                    generation,
                    seq: s,
                    event,
                }) if s == seq
                    && Some(generation) == marker.map(|m| m.1)
                    && Some(event.event_id) == event_id =>
                {
                    found = Some(m.offset());
                }
                _ => {}
            }
        }
        Ok(match (marker, found) {
            (Some((_, generation)), Some(offset)) => Located::After { offset, generation },
            (Some((marker_offset, _)), None) => Located::Rebuild { marker_offset },
            (None, _) => Located::Nothing,
        })
    }

    fn follow(&mut self, stop: &watch::Receiver<bool>) -> Result<(), FollowError> {
        let start = loop {
            if *stop.borrow() {
                return Ok(());
            }
            match self.position(stop)? {
                Some(offset) => break offset,
                None => {
                    if let Some(req) = self.deps.status.take_promotion() {
                        let _ = req.reply.send(Err(
                            "the log topic holds no generation yet: nothing to take over".into(),
                        ));
                    }
                    tracing::info!("replica: the log topic holds no generation yet; waiting");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        };
        self.read_to = start;
        let applied = self.deps.store.gen().last_seq();
        if self.following > 0 {
            self.deps.status.set_positioned(self.following, applied);
        }
        self.assign(Offset::Offset(start + 1))?;
        let mut last_export = Instant::now();
        let mut idle_since: Option<Instant> = None;
        let mut promotion_seen = false;
        while !*stop.borrow() {
            match self.consumer.poll(if self.run.is_empty() {
                POLL
            } else {
                Duration::ZERO
            }) {
                Some(r) => {
                    idle_since = None;
                    let m = r?;
                    let offset = m.offset();
                    if let Some(msg) = decode(&m)? {
                        self.take(msg, offset)?;
                    }
                    self.read_to = offset;
                    if self.run.len() >= RUN {
                        self.flush()?;
                    }
                }
                None => {
                    self.flush()?;
                    idle_since.get_or_insert_with(Instant::now);
                }
            }
            if let Some(until) = self.deps.status.promotion_until() {
                if !promotion_seen {
                    // Idle counts from the request on: what came before may
                    // not have been fetched yet.
                    promotion_seen = true;
                    idle_since = None;
                }
                // The last offsets may be control records (the old primary's
                // transaction, aborted by the take-over), which a consumer
                // never sees: after the take-over nothing more can arrive, so
                // a consumer that has found nothing new for a while has it all.
                let drained = idle_since.is_some_and(|t| t.elapsed() >= PROMOTE_IDLE)
                    || self.next_offset() > until;
                if (self.read_to >= until || drained) && self.building.is_none() {
                    self.flush()?;
                    if let Some(req) = self.deps.status.take_promotion() {
                        let _ = req.reply.send(Ok(super::Caught {
                            applied: self.deps.store.gen().last_seq(),
                            generation: self.following,
                            term: self.term,
                        }));
                        tracing::info!(
                            offset = self.read_to,
                            "replica: applied the whole log topic; stopping to take over"
                        );
                        self.deps.status.export(&self.deps.metrics);
                        return Ok(());
                    }
                }
            }
            if last_export.elapsed() >= Duration::from_millis(200) {
                self.deps.status.export(&self.deps.metrics);
                last_export = Instant::now();
            }
        }
        self.flush()
    }

    fn take(&mut self, msg: Msg, offset: i64) -> Result<(), FollowError> {
        // A primary that was superseded may still have written after the
        // promotion (a broker without fencing): its term gives it away.
        if msg.term < self.term {
            return Ok(());
        }
        self.term = msg.term;
        match msg.body {
            Body::Event {
                generation,
                seq,
                event,
            } => {
                if let Some(b) = self.building.as_mut() {
                    if generation != b.generation {
                        return Ok(());
                    }
                    if seq <= b.importer.seq() {
                        return Ok(());
                    }
                    b.push(seq, *event)?;
                    if seq >= b.target {
                        self.finish_building(offset)?;
                    }
                    return Ok(());
                }
                if generation != self.following {
                    return Ok(());
                }
                self.run_last_ts = event.ts_ms;
                self.run.push((seq, *event));
            }
            Body::Generation(mk) => {
                if mk.generation <= self.following && self.building.is_none() {
                    return Ok(()); // a marker sent twice
                }
                self.flush()?;
                self.start_building(mk, offset)?;
            }
            Body::Heartbeat(hb) => {
                if self.building.is_none() {
                    self.flush()?;
                    self.deps.status.heard(hb.last_event_id, hb.timestamp_ms);
                }
            }
            Body::Session(change) => {
                self.deps.store.meta.apply_session_change(&change)?;
            }
            Body::Term(t) => {
                if self.building.is_none() {
                    self.flush()?;
                    self.deps.status.heard(t.last_event_id, t.timestamp_ms);
                }
                tracing::info!(
                    term = t.term,
                    last_event_id = t.last_event_id,
                    "replica: a new primary took over; following it"
                );
            }
        }
        Ok(())
    }

    /// Hands the events read so far to the store (durable when it answers),
    /// then records the position.
    fn flush(&mut self) -> Result<(), FollowError> {
        if self.building.is_some() {
            return Ok(());
        }
        if !self.run.is_empty() {
            let events = std::mem::take(&mut self.run);
            let store = self.deps.store.clone();
            let out = self.rt.block_on(store.replicate(events))?;
            self.deps.status.set_applied(out.seq, self.run_last_ts);
        }
        if self.following > 0 && self.read_to >= 0 {
            self.save_position()?;
        }
        Ok(())
    }

    fn save_position(&self) -> Result<(), FollowError> {
        let meta = &self.deps.store.meta;
        let local = self.deps.store.gen().id();
        meta.relay_set_all(&[
            (POSITION, self.read_to as u64),
            (FOLLOWING, self.following),
            (LOCAL_GEN, local),
            (log_topic::TERM_KEY, self.term),
        ])?;
        Ok(())
    }

    fn start_building(&mut self, mk: Marker, offset: i64) -> Result<(), FollowError> {
        tracing::info!(
            generation = mk.generation,
            events = mk.last_event_id,
            "replica: a new generation; building it aside"
        );
        if let Some(old) = self.building.take() {
            Store::discard_gen(old.gen);
        }
        let gen = self.deps.store.prepare_gen()?;
        let importer = Importer::new(None);
        self.deps
            .status
            .new_generation(mk.generation, mk.last_event_id);
        self.building = Some(Building {
            generation: mk.generation,
            target: mk.last_event_id,
            gen,
            importer,
            pending: Vec::with_capacity(CHUNK),
            last_ts: mk.timestamp_ms,
        });
        if mk.last_event_id == 0 {
            self.finish_building(offset)?;
        }
        Ok(())
    }

    fn finish_building(&mut self, offset: i64) -> Result<(), FollowError> {
        let Some(b) = self.building.take() else {
            return Ok(());
        };
        let (generation, last_ts) = (b.generation, b.last_ts);
        let (gen, state) = b.finish()?;
        let applied = state.seq;
        self.rt.block_on(self.deps.store.swap_in(gen, state))?;
        self.following = generation;
        self.read_to = offset;
        self.save_position()?;
        self.deps.status.set_positioned(generation, applied);
        self.deps.status.set_applied(applied, last_ts);
        tracing::info!(
            generation,
            events = applied,
            "replica: switched to the new generation"
        );
        Ok(())
    }
}

enum Located {
    /// Read on after this offset, in this generation.
    After { offset: i64, generation: u64 },
    /// The local log is not in the current generation: rebuild from its marker.
    Rebuild { marker_offset: i64 },
    /// No generation in the topic yet.
    Nothing,
}
