//! Live updates (SPEC §13): `GET /api/events/stream`, Server-Sent Events of the
//! activity entries of §2. Owns the tailer (the one reader of new log entries for
//! every stream), the per-client forwarders with their bounded buffers, and the
//! per-user cap. Touches the store read-only (the durable watch, the published
//! snapshot) and a client's connection only through [`Abort`], to close it.
//!
//! Data flow: the flusher's durable watch wakes the tailer, which reads the new
//! events once, encodes each entry as a ready SSE frame and broadcasts the batch.
//! Each client has a forwarder task that filters the batches and `try_send`s the
//! frames into its own bounded channel, which the response body drains as the
//! socket accepts data. A full channel means the client is not reading: it is
//! dropped. Nothing here ever waits on a client while holding something a writer
//! or another client needs.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

use super::auth::Auth;
use super::error::{ApiError, ApiResult};
use super::logs::{entry, query, QueryMap};
use crate::app::AppState;
use crate::domain::Id;
use crate::metrics::Metrics;
use crate::serve::Abort;
use crate::store::{Snapshot, Store, StoreError};

/// Open streams one user may hold; the next is refused with 429. A browser tab
/// holds one; the cap only stops a runaway client from holding thousands.
pub(crate) const MAX_PER_USER: usize = 16;
/// Frames buffered per client. A client this far behind is not reading.
const BUFFER: usize = 256;
/// The kernel's send buffer of a stream's connection (it doubles it).
const SEND_BUFFER: usize = 32 * 1024;
/// A comment line after this much silence, below the 15 s of SPEC §13.
const KEEP_ALIVE: Duration = Duration::from_secs(14);
/// Batches the broadcast keeps for forwarders that have not run yet; one that
/// falls further behind reads what it missed from the log.
const BROADCAST: usize = 1024;
/// Events read from the log per blocking call.
const READ_CHUNK: u64 = 1024;
/// A resume further behind than this gets `event: reset` (reload) instead of a
/// replay of the whole gap.
const CATCH_UP_MAX: u64 = 100_000;
/// How long a catch-up waits for a client to take a frame before dropping it.
const CATCH_UP_WAIT: Duration = Duration::from_secs(10);

/// One new entry, encoded once for every stream.
#[derive(Clone)]
struct Item {
    seq: u64,
    group_id: String,
    task_id: Option<String>,
    frame: Bytes,
}

enum Batch {
    /// Entries of generation `gen` up to `upto` (events without an entry, e.g.
    /// users, are left out).
    Entries {
        gen: u64,
        upto: u64,
        items: Vec<Item>,
    },
    /// A restore swapped in generation `gen`, whose log ends at `seq`.
    Reset { gen: u64, seq: u64 },
}

/// The streams of one server: the broadcasts of new entries, the shutdown
/// signal, and who holds how many streams.
pub(crate) struct Streams {
    /// Every entry, for unfiltered streams.
    tx: broadcast::Sender<Arc<Batch>>,
    /// One group's entries, for the streams narrowed to it (or to one of its
    /// tasks): a stream is woken only for batches that hold something for it.
    groups: Mutex<HashMap<String, broadcast::Sender<Arc<Batch>>>>,
    stop: watch::Receiver<bool>,
    per_user: Mutex<HashMap<String, usize>>,
    metrics: Arc<Metrics>,
}

impl Streams {
    /// `stop` turns true when shutdown begins: every stream ends then.
    pub(crate) fn new(metrics: Arc<Metrics>, stop: watch::Receiver<bool>) -> Streams {
        let (tx, _) = broadcast::channel(BROADCAST);
        Streams {
            tx,
            groups: Mutex::new(HashMap::new()),
            stop,
            per_user: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn subscribe(&self, group: Option<&str>) -> broadcast::Receiver<Arc<Batch>> {
        let Some(g) = group else {
            return self.tx.subscribe();
        };
        match self.groups.lock() {
            Ok(mut map) => map
                .entry(g.to_string())
                .or_insert_with(|| broadcast::channel(BROADCAST).0)
                .subscribe(),
            // Never poisoned in practice; the full feed is still correct.
            Err(_) => self.tx.subscribe(),
        }
    }

    /// The groups someone listens to (dropping the channels nobody does), and
    /// whether anyone listens to everything; None when nobody listens at all.
    fn listeners(&self) -> Option<(bool, HashSet<String>)> {
        let all = self.tx.receiver_count() > 0;
        let mut groups = HashSet::new();
        if let Ok(mut map) = self.groups.lock() {
            map.retain(|_, tx| tx.receiver_count() > 0);
            groups.extend(map.keys().cloned());
        }
        (all || !groups.is_empty()).then_some((all, groups))
    }

    fn publish(&self, batch: Batch) {
        let Ok(map) = self.groups.lock() else {
            let _ = self.tx.send(Arc::new(batch));
            return;
        };
        match batch {
            Batch::Reset { .. } => {
                let batch = Arc::new(batch);
                for tx in map.values() {
                    let _ = tx.send(batch.clone());
                }
                let _ = self.tx.send(batch);
            }
            Batch::Entries { gen, upto, items } => {
                let mut by_group: HashMap<&str, Vec<Item>> = HashMap::new();
                for it in &items {
                    if map.contains_key(&it.group_id) {
                        by_group.entry(&it.group_id).or_default().push(it.clone());
                    }
                }
                for (g, items) in by_group {
                    if let Some(tx) = map.get(g) {
                        let _ = tx.send(Arc::new(Batch::Entries { gen, upto, items }));
                    }
                }
                if self.tx.receiver_count() > 0 {
                    let _ = self.tx.send(Arc::new(Batch::Entries { gen, upto, items }));
                }
            }
        }
    }

    fn acquire(self: &Arc<Self>, user: &str) -> Option<Slot> {
        let mut map = self.per_user.lock().ok()?;
        let n = map.entry(user.to_string()).or_insert(0);
        if *n >= MAX_PER_USER {
            return None;
        }
        *n += 1;
        self.metrics.stream_open.inc();
        Some(Slot {
            streams: self.clone(),
            user: user.to_string(),
        })
    }
}

/// One open stream, counted for its user until the forwarder ends.
struct Slot {
    streams: Arc<Streams>,
    user: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.streams.metrics.stream_open.dec();
        if let Ok(mut map) = self.streams.per_user.lock() {
            if let Some(n) = map.get_mut(&self.user) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&self.user);
                }
            }
        }
    }
}

/// Starts the tailer; it ends when shutdown begins.
pub(crate) fn spawn_tailer(
    store: Arc<Store>,
    streams: Arc<Streams>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(tail(store, streams))
}

async fn tail(store: Arc<Store>, streams: Arc<Streams>) {
    let mut durable = store.durable();
    let mut stop = streams.stop.clone();
    let first = store.gen();
    let (mut gen, mut cursor) = (first.id(), first.last_seq());
    drop(first);
    loop {
        // Seen before the snapshot is read: a later publication wakes the wait below.
        durable.borrow_and_update();
        let snap = store.gen();
        if snap.id() != gen {
            gen = snap.id();
            cursor = snap.last_seq();
            streams.publish(Batch::Reset { gen, seq: cursor });
            continue;
        }
        if snap.last_seq() > cursor {
            // Nobody listening: nothing to read. A stream that subscribes later
            // reads from the log up to a snapshot at least this new.
            let Some((all, groups)) = streams.listeners() else {
                cursor = snap.last_seq();
                continue;
            };
            let (from, to) = (cursor + 1, snap.last_seq().min(cursor + READ_CHUNK));
            // Only entries someone listens to are read and encoded (a group's
            // through its activity index); a group whose first stream subscribes
            // after this point reads them from the log itself.
            let read = if all {
                read_items(snap, from, to, |_: &str, _: Option<&str>| true).await
            } else {
                read_groups(snap, from, to, groups).await
            };
            match read {
                Ok(items) => {
                    cursor = to;
                    streams.publish(Batch::Entries {
                        gen,
                        upto: to,
                        items,
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, from, to, "live updates: reading the log failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stopped(&mut stop) => return,
                    }
                }
            }
            continue;
        }
        drop(snap);
        tokio::select! {
            r = durable.changed() => if r.is_err() { return },
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Resolves once shutdown has begun (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// Which entries a stream wants.
#[derive(Clone, Default)]
struct Filter {
    group_id: Option<String>,
    task_id: Option<String>,
}

impl Filter {
    fn wants(&self, group_id: &str, task_id: Option<&str>) -> bool {
        self.group_id.as_deref().is_none_or(|g| g == group_id)
            && self.task_id.as_deref().is_none_or(|t| Some(t) == task_id)
    }
}

/// Events `from..=to` of `snap` that have an entry `keep`s, encoded.
async fn read_items(
    snap: Arc<Snapshot>,
    from: u64,
    to: u64,
    keep: impl Fn(&str, Option<&str>) -> bool + Send + 'static,
) -> Result<Vec<Item>, ApiError> {
    crate::blocking::blocking(move || {
        let mut items = Vec::new();
        for r in snap.gen.events(from, to) {
            let (seq, se) = r.map_err(ApiError::from)?;
            let Some(e) = entry(seq, se) else { continue };
            if !keep(e.group_id(), e.task_id()) {
                continue;
            }
            items.push(item(seq, &e)?);
        }
        Ok(items)
    })
    .await
}

/// The entries of `groups` among events `from..=to`, found through the
/// groups' activity indexes instead of a scan of the log.
async fn read_groups(
    snap: Arc<Snapshot>,
    from: u64,
    to: u64,
    groups: HashSet<String>,
) -> Result<Vec<Item>, ApiError> {
    read_indexed(snap, from, to, groups, None).await
}

/// The entries among events `from..=to` of the `groups` (or, with `task`, of
/// that task), through the activity indexes.
async fn read_indexed(
    snap: Arc<Snapshot>,
    from: u64,
    to: u64,
    groups: HashSet<String>,
    task: Option<String>,
) -> Result<Vec<Item>, ApiError> {
    crate::blocking::blocking(move || {
        let limit = usize::try_from(to - from + 1).unwrap_or(usize::MAX);
        let mut seqs: Vec<u64> = match task.as_deref().and_then(Id::parse) {
            Some(t) => snap.state.task_log(&t, Some(to + 1), limit),
            None => groups
                .iter()
                .filter_map(|g| Id::parse(g))
                .flat_map(|g| snap.state.group_log(&g, Some(to + 1), limit))
                .collect(),
        };
        seqs.retain(|s| *s >= from);
        seqs.sort_unstable();
        seqs.dedup();
        let mut items = Vec::new();
        for (seq, se) in snap.bodies(seqs)? {
            if let Some(e) = entry(seq, se) {
                items.push(item(seq, &e)?);
            }
        }
        Ok(items)
    })
    .await
}

fn item(seq: u64, e: &super::logs::LogEntry) -> Result<Item, ApiError> {
    let json =
        serde_json::to_string(e).map_err(|e| ApiError::from(StoreError::Corrupt(e.to_string())))?;
    Ok(Item {
        seq,
        group_id: e.group_id().to_string(),
        task_id: e.task_id().map(str::to_string),
        frame: Bytes::from(format!("id: {seq}\ndata: {json}\n\n")),
    })
}

fn reset_frame(gen: u64, seq: u64) -> Bytes {
    Bytes::from(format!(
        "event: reset\nid: {seq}\ndata: {{\"generation\":{gen},\"lastEventId\":{seq}}}\n\n"
    ))
}

/// Why a forwarder stops.
enum End {
    /// The client went away, or shutdown began.
    Done,
    /// The client's buffer is full: it is not reading.
    Slow,
}

/// One client's forwarder: its place in the log and its buffer.
struct Client {
    store: Arc<Store>,
    streams: Arc<Streams>,
    filter: Filter,
    gen: u64,
    cursor: u64,
    tx: mpsc::Sender<Bytes>,
    last_sent: Instant,
}

impl Client {
    fn push(&mut self, frame: Bytes) -> Result<(), End> {
        match self.tx.try_send(frame) {
            Ok(()) => {
                self.last_sent = Instant::now();
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(End::Slow),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(End::Done),
        }
    }

    fn reset(&mut self, gen: u64, seq: u64) -> Result<(), End> {
        self.gen = gen;
        self.cursor = seq;
        self.push(reset_frame(gen, seq))
    }

    /// Reads from the log up to the published snapshot; the client may take
    /// its time for each frame, up to [`CATCH_UP_WAIT`].
    async fn catch_up(&mut self) -> Result<(), End> {
        loop {
            let snap = self.store.gen();
            if snap.id() != self.gen {
                return self.reset(snap.id(), snap.last_seq());
            }
            let last = snap.last_seq();
            if last <= self.cursor {
                return Ok(());
            }
            if last - self.cursor > CATCH_UP_MAX {
                return self.reset(snap.id(), last);
            }
            let (from, to) = (self.cursor + 1, last.min(self.cursor + READ_CHUNK));
            let filter = self.filter.clone();
            // A narrowed stream finds its entries through the activity indexes.
            let read = match (&filter.group_id, &filter.task_id) {
                (None, None) => read_items(snap, from, to, |_: &str, _: Option<&str>| true).await,
                (g, t) => {
                    let groups = g.iter().cloned().collect();
                    read_indexed(snap, from, to, groups, t.clone())
                        .await
                        .map(|items| {
                            items
                                .into_iter()
                                .filter(|it| filter.wants(&it.group_id, it.task_id.as_deref()))
                                .collect()
                        })
                }
            };
            let items = read
                .map_err(|e| {
                    tracing::warn!(error = %e, "live updates: catch-up read failed; closing the stream");
                    End::Done
                })?;
            let n = items.len() as u64;
            for it in items {
                match self.tx.send_timeout(it.frame, CATCH_UP_WAIT).await {
                    Ok(()) => {}
                    Err(mpsc::error::SendTimeoutError::Timeout(_)) => return Err(End::Slow),
                    Err(mpsc::error::SendTimeoutError::Closed(_)) => return Err(End::Done),
                }
            }
            self.streams.metrics.stream_entries_sent.inc_by(n);
            self.last_sent = Instant::now();
            self.cursor = to;
            if *self.streams.stop.borrow() {
                return Err(End::Done);
            }
        }
    }

    fn take(&mut self, batch: &Batch) -> Result<bool, End> {
        match batch {
            Batch::Reset { gen, seq } => {
                if *gen > self.gen {
                    self.reset(*gen, *seq)?;
                }
                Ok(true)
            }
            Batch::Entries { gen, .. } if *gen < self.gen => Ok(true),
            // Entries of a newer generation before its reset: read the log instead.
            Batch::Entries { gen, .. } if *gen > self.gen => Ok(false),
            Batch::Entries { upto, items, .. } => {
                let mut sent = 0;
                let from = self.cursor;
                for it in items.iter().filter(|it| it.seq > from) {
                    if self.filter.wants(&it.group_id, it.task_id.as_deref()) {
                        self.push(it.frame.clone())?;
                        sent += 1;
                    }
                }
                if sent > 0 {
                    self.streams.metrics.stream_entries_sent.inc_by(sent);
                }
                self.cursor = self.cursor.max(*upto);
                Ok(true)
            }
        }
    }

    async fn run(&mut self, mut sub: broadcast::Receiver<Arc<Batch>>) -> End {
        match self.run_inner(&mut sub).await {
            Ok(()) => End::Done,
            Err(e) => e,
        }
    }

    async fn run_inner(&mut self, sub: &mut broadcast::Receiver<Arc<Batch>>) -> Result<(), End> {
        let mut stop = self.streams.stop.clone();
        self.catch_up().await?;
        loop {
            let idle_until = self.last_sent + KEEP_ALIVE;
            tokio::select! {
                biased;
                _ = stopped(&mut stop) => return Ok(()),
                _ = self.tx.closed() => return Ok(()),
                r = sub.recv() => match r {
                    Ok(batch) => {
                        if !self.take(&batch)? {
                            self.catch_up().await?;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up().await?,
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                _ = tokio::time::sleep_until(idle_until) => {
                    self.push(Bytes::from_static(b": keep-alive\n\n"))?;
                }
            }
        }
    }
}

/// The caller, from `Authorization: Bearer` or, for `EventSource` (which
/// cannot set headers), `?token=`.
pub(crate) struct StreamAuth(Auth);

impl FromRequestParts<AppState> for StreamAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(StreamAuth(Auth::from_request_parts(parts, app).await?));
        }
        let q = axum::extract::Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(q)| q)
            .map_err(|e| ApiError::BadRequest(format!("bad query string: {e}")))?;
        let token = q.get("token");
        match token {
            Some(t) if !t.trim().is_empty() => {
                Ok(StreamAuth(super::auth::by_token(app, t.trim())?))
            }
            _ => Err(ApiError::Unauthorized("authentication required".into())),
        }
    }
}

fn id_param(q: &HashMap<String, String>, name: &str) -> ApiResult<Option<String>> {
    match q.get(name) {
        None => Ok(None),
        Some(v) => match Id::parse(v) {
            Some(_) => Ok(Some(v.clone())),
            None => Err(ApiError::BadRequest(format!("{name} is not a valid id"))),
        },
    }
}

/// `Last-Event-ID` (what `EventSource` sends on reconnect) wins over
/// `?lastEventId=`, which stays the same across reconnects.
fn last_event_id(headers: &HeaderMap, q: &HashMap<String, String>) -> ApiResult<Option<u64>> {
    let raw = match headers.get("last-event-id") {
        Some(v) => Some(v.to_str().map_err(|_| {
            ApiError::BadRequest("Last-Event-ID must be a non-negative integer".into())
        })?),
        None => q.get("lastEventId").map(String::as_str),
    };
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
            ApiError::BadRequest("Last-Event-ID must be a non-negative integer".into())
        }),
    }
}

pub(crate) async fn event_stream(
    State(app): State<AppState>,
    StreamAuth(auth): StreamAuth,
    headers: HeaderMap,
    abort: Option<axum::Extension<Abort>>,
    q: QueryMap,
) -> ApiResult<Response> {
    let q = query(q)?;
    let filter = Filter {
        group_id: id_param(&q, "groupId")?,
        task_id: id_param(&q, "taskId")?,
    };
    let last = last_event_id(&headers, &q)?;
    if *app.streams.stop.borrow() {
        return Err(ApiError::Unavailable("server is shutting down".into()));
    }
    let slot = app.streams.acquire(&auth.username).ok_or_else(|| {
        ApiError::TooMany(format!(
            "too many open event streams for this user (at most {MAX_PER_USER}); close one first"
        ))
    })?;
    // Subscribed before the snapshot is read: every batch published after it
    // arrives, and everything before it is in the snapshot (no gap at the seam).
    let snap = app.store.gen();
    // The group a task stream listens on; an unknown task (not yet created, or
    // gone) listens to everything.
    let group = filter.group_id.clone().or_else(|| {
        let task = Id::parse(filter.task_id.as_deref()?)?;
        Some(snap.state.task_rec(&task)?.group_id.to_string())
    });
    drop(snap);
    let sub = app.streams.subscribe(group.as_deref());
    let snap = app.store.gen();
    let (tx, mut rx) = mpsc::channel::<Bytes>(BUFFER);
    // Sent at once, so the client sees the stream open before the first entry.
    let _ = tx.try_send(Bytes::from_static(b"retry: 2000\n: live\n\n"));
    let mut client = Client {
        store: app.store.clone(),
        streams: app.streams.clone(),
        filter,
        gen: snap.id(),
        cursor: snap.last_seq(),
        tx,
        last_sent: Instant::now(),
    };
    match last {
        Some(n) if n > snap.last_seq() => {
            // An id this log never reached: a restore replaced the log it came from.
            let _ = client.reset(snap.id(), snap.last_seq());
        }
        Some(n) => client.cursor = n,
        None => {}
    }
    drop(snap);
    let abort = abort.map(|axum::Extension(a)| a);
    if let Some(a) = &abort {
        a.limit_send_buffer(SEND_BUFFER);
    }
    tokio::spawn(async move {
        let _slot = slot;
        let end = client.run(sub).await;
        let unsent = client.tx.capacity() < client.tx.max_capacity();
        match end {
            End::Slow => {
                client.streams.metrics.stream_dropped_slow.inc();
                tracing::info!("live updates: dropping a client that does not read");
                if let Some(a) = &abort {
                    a.abort();
                }
            }
            // Shutdown with frames the client has not taken: it would hold the
            // drain for its whole deadline.
            End::Done if unsent && *client.streams.stop.borrow() => {
                if let Some(a) = &abort {
                    a.abort();
                }
            }
            End::Done => {}
        }
    });
    let body = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(Ok::<_, Infallible>))
    });
    let mut resp = (StatusCode::OK, Body::from_stream(body)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies (nginx) must pass frames on as they come.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_group_and_task() {
        let all = Filter::default();
        assert!(all.wants("g", None));
        let g = Filter {
            group_id: Some("g".into()),
            task_id: None,
        };
        assert!(g.wants("g", Some("t")));
        assert!(!g.wants("h", None));
        let t = Filter {
            group_id: None,
            task_id: Some("t".into()),
        };
        assert!(t.wants("g", Some("t")));
        assert!(!t.wants("g", None));
        assert!(!t.wants("g", Some("u")));
    }

    #[test]
    fn last_event_id_header_wins_and_bad_ones_are_refused() {
        let mut h = HeaderMap::new();
        let mut q = HashMap::new();
        assert_eq!(last_event_id(&h, &q).ok(), Some(None));
        q.insert("lastEventId".to_string(), "7".to_string());
        assert_eq!(last_event_id(&h, &q).ok(), Some(Some(7)));
        h.insert("last-event-id", HeaderValue::from_static("9"));
        assert_eq!(last_event_id(&h, &q).ok(), Some(Some(9)));
        h.insert("last-event-id", HeaderValue::from_static("x"));
        assert!(matches!(
            last_event_id(&h, &q),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn reset_frame_names_the_event_and_the_new_id() {
        let f = reset_frame(3, 42);
        let text = std::str::from_utf8(&f).unwrap_or_default();
        assert!(text.starts_with("event: reset\nid: 42\n"));
        assert!(text.ends_with("\n\n"));
    }
}
