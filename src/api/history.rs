//! Time travel routes (SPEC §7): the whole state at an instant in the
//! predecessor's snapshot shape, a group or task as it was, and monthly stream
//! snapshots with the archive of old activity. Replays run on blocking threads.

use chrono::{TimeZone, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::auth::Auth;
use super::error::{ApiError, ApiResult};
use super::input::PathId;
use super::logs::{entry, paging, query, LogEntry, QueryMap};
use super::views::{group_view, task_view};
use crate::app::AppState;
use crate::blocking::blocking;
use crate::domain::past::Past;
use crate::domain::time::{fmt_ms, now_ms};
use crate::domain::{Id, Records};
use crate::store::history::{
    self, month_bounds, month_cut, month_of, At, Cut, HistoryError, Stream,
};
use crate::store::Snapshot;

/// Activity older than this is "archived" (SPEC §7).
const ARCHIVE_AGE_MS: i64 = 90 * 24 * 3600 * 1000;

impl From<HistoryError> for ApiError {
    fn from(e: HistoryError) -> Self {
        match e {
            HistoryError::BadInstant(m) => ApiError::BadRequest(m),
            HistoryError::Store(e) => e.into(),
        }
    }
}

/// The `at` query parameter, when given.
pub(crate) fn at_param(q: QueryMap) -> ApiResult<Option<At>> {
    match query(q)?.get("at") {
        None => Ok(None),
        Some(raw) => Ok(Some(At::parse(raw)?)),
    }
}

fn did_not_exist(what: &str, cut: &Cut) -> ApiError {
    ApiError::NotFound(format!("{what} did not exist at {}", cut.at()))
}

pub(crate) async fn group_at(app: &AppState, _auth: &Auth, id: Id, at: At) -> ApiResult<Response> {
    let snap = app.store.gen();
    blocking::<_, ApiError>(move || {
        let cut = history::resolve(&snap, at, now_ms())?;
        let stream = history::stream(&snap, &id)?.filter(|s| s.is_group);
        let past = stream.map(|s| s.past(cut.seq)).unwrap_or_default();
        let g = past
            .group_rec(&id)
            .ok_or_else(|| did_not_exist("group", &cut))?;
        Ok(super::success("group", group_view(&past, g)).into_response())
    })
    .await
}

pub(crate) async fn task_at(app: &AppState, _auth: &Auth, id: Id, at: At) -> ApiResult<Response> {
    let snap = app.store.gen();
    blocking::<_, ApiError>(move || {
        let cut = history::resolve(&snap, at, now_ms())?;
        let stream = history::stream(&snap, &id)?.filter(|s| !s.is_group);
        let past = stream.map(|s| s.past(cut.seq)).unwrap_or_default();
        let t = past
            .task_rec(&id)
            .ok_or_else(|| did_not_exist("task", &cut))?;
        Ok(super::success("task", task_view(&past, t)).into_response())
    })
    .await
}

// The whole-state answer is the largest this server gives (hundreds of MB at a
// million events): borrowed fields, serialized straight to bytes, no JSON tree.

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapGroup<'a> {
    #[serde(rename = "_id")]
    id: &'a Id,
    name: &'a str,
    discussion: &'a str,
    tasks: Vec<&'a Id>,
    created_at: String,
    updated_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapTask<'a> {
    #[serde(rename = "_id")]
    id: &'a Id,
    group_id: &'a Id,
    name: &'a str,
    description: &'a str,
    status: &'static str,
    start_date: &'a Option<String>,
    end_date: &'a Option<String>,
    comments: Vec<&'a Id>,
    created_at: String,
    updated_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapComment<'a> {
    #[serde(rename = "_id")]
    id: &'a Id,
    task_id: &'a Id,
    text: &'a str,
    author: &'a str,
    timestamp: String,
    created_at: String,
    updated_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapUser<'a> {
    #[serde(rename = "_id")]
    id: &'a Id,
    username: &'a str,
    role: &'static str,
    created_at: String,
}

#[derive(Serialize, Default)]
struct SnapData<'a> {
    groups: Vec<SnapGroup<'a>>,
    tasks: Vec<SnapTask<'a>>,
    comments: Vec<SnapComment<'a>>,
    users: Vec<SnapUser<'a>>,
}

#[derive(Serialize)]
struct SnapCounts {
    groups: usize,
    tasks: usize,
    comments: usize,
    users: usize,
}

#[derive(Serialize)]
struct SnapMeta {
    counts: SnapCounts,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapBody<'a> {
    success: bool,
    snapshot_id: String,
    created_at: String,
    created_by: &'a str,
    at: String,
    last_event_id: u64,
    data: SnapData<'a>,
    metadata: SnapMeta,
}

/// The predecessor's snapshot shape of a whole state.
fn snapshot_data(r: &impl Records) -> SnapData<'_> {
    let mut d = SnapData::default();
    for g in r.all_groups() {
        let tasks = r.tasks_of(&g.id);
        d.groups.push(SnapGroup {
            id: &g.id,
            name: &g.name,
            discussion: &g.discussion,
            tasks: tasks.iter().map(|t| &t.id).collect(),
            created_at: fmt_ms(g.created_ms),
            updated_at: fmt_ms(g.updated_ms),
        });
        for t in tasks {
            let comments = r.comments_of(&t.id);
            d.tasks.push(SnapTask {
                id: &t.id,
                group_id: &t.group_id,
                name: &t.name,
                description: &t.description,
                status: t.status.as_str(),
                start_date: &t.start_date,
                end_date: &t.end_date,
                comments: comments.iter().map(|c| &c.id).collect(),
                created_at: fmt_ms(t.created_ms),
                updated_at: fmt_ms(t.updated_ms),
            });
            d.comments.extend(comments.into_iter().map(|c| {
                let ts = fmt_ms(c.created_ms);
                SnapComment {
                    id: &c.id,
                    task_id: &c.task_id,
                    text: &c.text,
                    author: &c.author,
                    timestamp: ts.clone(),
                    created_at: ts.clone(),
                    updated_at: ts,
                }
            }));
        }
    }
    d.users = r
        .all_users()
        .into_iter()
        .map(|u| SnapUser {
            id: &u.id,
            username: &u.username,
            role: u.role.as_str(),
            created_at: fmt_ms(u.created_ms),
        })
        .collect();
    d
}

/// Writes the snapshot answer for `r` at `cut` into `out`.
fn write_snapshot(
    out: impl std::io::Write,
    cut: &Cut,
    user: &str,
    r: &impl Records,
) -> serde_json::Result<()> {
    let data = snapshot_data(r);
    let counts = SnapCounts {
        groups: data.groups.len(),
        tasks: data.tasks.len(),
        comments: data.comments.len(),
        users: data.users.len(),
    };
    let at = Utc.timestamp_millis_opt(cut.at_ms).single();
    let body = SnapBody {
        success: true,
        snapshot_id: at
            .map(|t| t.format("snapshot_%Y_%m_%d_%H_%M_%S").to_string())
            .unwrap_or_else(|| "snapshot_1970_01_01_00_00_00".into()),
        created_at: fmt_ms(now_ms()),
        created_by: user,
        at: cut.at(),
        last_event_id: cut.seq,
        data,
        metadata: SnapMeta { counts },
    };
    serde_json::to_writer(out, &body)
}

/// Bytes of a streamed answer per chunk.
const CHUNK: usize = 256 * 1024;

/// Hands what is written to it to the response body in chunks; the channel's
/// bound keeps a slow client from making the answer pile up in memory, and a
/// client that went away ends the writing.
struct ChunkWriter {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<std::io::Result<axum::body::Bytes>>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(chunk.into()))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// The image a snapshot is rendered from: the live one, or one rebuilt for a past cut.
enum Image {
    Live(std::sync::Arc<Snapshot>),
    Past(Box<Past>),
}

/// `GET /api/snapshot?at=T`: now by default, straight from the live image then.
/// The instant is resolved and the past image rebuilt before the answer starts
/// (so errors keep their status); the JSON is then streamed as it is written,
/// never held whole in memory (hundreds of MB at a million events).
pub(crate) async fn get_snapshot(
    State(app): State<AppState>,
    auth: Auth,
    q: QueryMap,
) -> ApiResult<impl IntoResponse> {
    let at = at_param(q)?;
    let snap = app.store.gen();
    let user = auth.username;
    let (cut, image) = blocking::<_, ApiError>(move || {
        let now = now_ms();
        let cut = match at {
            Some(at) => history::resolve(&snap, at, now)?,
            None => Cut {
                seq: snap.last_seq(),
                at_ms: now,
            },
        };
        let image = if cut.seq == snap.last_seq() {
            Image::Live(snap)
        } else {
            Image::Past(Box::new(history::past_at(&snap.gen, cut.seq)?))
        };
        Ok((cut, image))
    })
    .await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            buf: Vec::with_capacity(CHUNK),
            tx,
        };
        let written = match &image {
            Image::Live(s) => write_snapshot(&mut out, &cut, &user, &s.state),
            Image::Past(p) => write_snapshot(&mut out, &cut, &user, p.as_ref()),
        };
        let sent = written.map_err(std::io::Error::from).and_then(|()| {
            use std::io::Write;
            out.flush()
        });
        if let Err(e) = sent {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                tracing::error!(error = %e, "snapshot answer broke off");
                // The status is sent; an error chunk makes the client see a broken body.
                let _ = out.tx.blocking_send(Err(e));
            }
        }
    });
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(body),
    ))
}

/// The stream's state as JSON, or `None` if it did not exist in `past`.
fn stream_state(stream: &Stream, past: &Past) -> Option<Value> {
    let v = if stream.is_group {
        serde_json::to_value(group_view(past, past.group_rec(&stream.id)?))
    } else {
        serde_json::to_value(task_view(past, past.task_rec(&stream.id)?))
    };
    v.ok()
}

async fn load_stream(app: &AppState, raw: String) -> ApiResult<Option<Stream>> {
    let snap: std::sync::Arc<Snapshot> = app.store.gen();
    blocking::<_, ApiError>(move || match Id::parse(&raw) {
        Some(id) => Ok(history::stream(&snap, &id)?),
        None => Ok(None),
    })
    .await
}

/// `GET /api/v1/snapshots/:streamId`: one snapshot per month with events.
pub(crate) async fn list_stream_months(
    State(app): State<AppState>,
    _auth: Auth,
    PathId(raw): PathId,
) -> ApiResult<impl IntoResponse> {
    let stream = load_stream(&app, raw.clone()).await?;
    let mut out = Vec::new();
    if let Some(stream) = stream {
        let now = now_ms();
        let mut months: Vec<String> = stream
            .own
            .iter()
            .filter_map(|s| stream.own_ts(*s))
            .map(month_of)
            .collect();
        months.dedup();
        let mut past = Past::default();
        for m in months {
            let Some((start, next)) = month_bounds(&m) else {
                continue;
            };
            let c = month_cut(&stream, start, next, now);
            stream.replay_onto(&mut past, c.upto);
            out.push(json!({
                "month": m,
                "at": fmt_ms(c.at_ms),
                "lastEventId": c.last_own,
                "state": stream_state(&stream, &past),
            }));
        }
    }
    Ok(Json(
        json!({"success": true, "streamId": raw, "snapshots": out}),
    ))
}

/// `GET /api/v1/snapshots/:streamId/:month`.
pub(crate) async fn get_stream_month(
    State(app): State<AppState>,
    _auth: Auth,
    axum::extract::Path((raw, month)): axum::extract::Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let (start, next) = month_bounds(&month)
        .ok_or_else(|| ApiError::BadRequest(format!("month must be YYYY-MM, not {month:?}")))?;
    let now = now_ms();
    if start > now {
        return Err(ApiError::BadRequest(format!(
            "month {month} is in the future"
        )));
    }
    let stream = load_stream(&app, raw.clone())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("stream {raw} has no history")))?;
    let c = month_cut(&stream, start, next, now);
    let past = stream.past(c.upto);
    let state = stream_state(&stream, &past).ok_or_else(|| {
        ApiError::NotFound(format!("stream {raw} did not exist at the end of {month}"))
    })?;
    Ok(Json(json!({
        "success": true,
        "streamId": raw,
        "month": month,
        "at": fmt_ms(c.at_ms),
        "lastEventId": c.last_own,
        "state": state,
    })))
}

/// `GET /api/v1/snapshots/:streamId/archive`: activity older than 90 days.
pub(crate) async fn get_stream_archive(
    State(app): State<AppState>,
    _auth: Auth,
    PathId(raw): PathId,
    q: QueryMap,
) -> ApiResult<impl IntoResponse> {
    let p = paging(&query(q)?)?;
    let snap = app.store.gen();
    let logs: Vec<LogEntry> = blocking::<_, ApiError>(move || {
        let Some(id) = Id::parse(&raw) else {
            return Ok(Vec::new());
        };
        let mut own: Vec<u64> = snap.state.group_log(&id, None, usize::MAX);
        if own.is_empty() {
            own = snap.state.task_log(&id, None, usize::MAX);
        }
        own.reverse();
        let old = history::count_until(&snap.gen, &own, now_ms() - ARCHIVE_AGE_MS - 1)?;
        let end = match p.before {
            Some(b) => own[..old].partition_point(|s| *s < b),
            None => old,
        };
        let start = end.saturating_sub(p.limit);
        let mut out = Vec::with_capacity(end - start);
        for seq in own[start..end].iter().rev() {
            if let Some(se) = snap.gen.event(*seq)? {
                out.extend(entry(*seq, se));
            }
        }
        Ok(out)
    })
    .await?;
    Ok(super::success("logs", logs))
}
