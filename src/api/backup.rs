//! The backup routes (admin only): create, list, restore, export-metadata,
//! download, upload, delete, audit.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::auth::Admin;
use super::error::{ApiError, ApiResult};
use super::input::{JsonObject, MaybeJsonObject};
use super::logs::{query, QueryMap};
use crate::app::AppState;
use crate::backup::manager::{self, MANUAL};
use crate::backup::restore::Restored;
use crate::backup::restore::Source;
use crate::backup::{check_name, restore, BackupError, BackupInfo, Turn};
use crate::blocking::blocking;
use crate::domain::time::now_ms;
use crate::offsite::OffsiteError;
use crate::store::history::At;

/// A backup as the API shows it (SPEC §3 `Backup`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BackupView {
    pub(crate) name: String,
    pub(crate) size: u64,
    #[serde(rename = "sizeMB")]
    pub(crate) size_mb: f64,
    pub(crate) created: String,
    pub(crate) kind: String,
    pub(crate) label: Option<String>,
    pub(crate) events: u64,
    pub(crate) last_event_id: u64,
    pub(crate) sha256: String,
    /// `copied` / `pending` with off-site copies on, `null` without (SPEC §9).
    pub(crate) offsite: Option<&'static str>,
}

impl BackupView {
    fn new(b: BackupInfo, offsite: Option<&'static str>) -> BackupView {
        BackupView {
            size_mb: crate::backup::catalog::mb(b.size),
            name: b.name,
            size: b.size,
            created: b.created,
            kind: b.kind,
            label: b.label,
            events: b.events,
            last_event_id: b.last_event_id,
            sha256: b.sha256,
            offsite,
        }
    }

    /// A backup listed: its copy's state when copies are on (reads meta: call
    /// it off the async threads).
    fn listed(app: &AppState, b: BackupInfo) -> BackupView {
        let state = app.offsite.as_ref().map(|o| o.state_of(&b.name, b.size));
        BackupView::new(b, state)
    }

    /// A backup just written: not yet copied anywhere.
    fn fresh(app: &AppState, b: BackupInfo) -> BackupView {
        BackupView::new(b, app.offsite.is_some().then_some("pending"))
    }
}

/// What a restore put in place, as the answer counts it.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub(crate) struct RestoredView {
    events: u64,
    groups: u64,
    tasks: u64,
    comments: u64,
}

impl From<Restored> for RestoredView {
    fn from(r: Restored) -> Self {
        RestoredView {
            events: r.events,
            groups: r.groups,
            tasks: r.tasks,
            comments: r.comments,
        }
    }
}

async fn all(app: &AppState) -> ApiResult<Vec<BackupView>> {
    let a = app.clone();
    blocking::<_, ApiError>(move || {
        let infos = manager::list(
            &a.backups.state,
            &a.store.meta,
            &a.backups.settings.backup_dir,
        );
        Ok(infos
            .into_iter()
            .map(|b| BackupView::listed(&a, b))
            .collect())
    })
    .await
}

impl From<BackupError> for ApiError {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::BadName(m) => ApiError::BadRequest(m),
            BackupError::NotFound(m) => ApiError::NotFound(m),
            BackupError::Invalid(m) => ApiError::Unprocessable(m),
            BackupError::Busy => ApiError::Conflict(e.to_string()),
            BackupError::Exists(m) => ApiError::Conflict(m),
            BackupError::BadInstant(m) => ApiError::BadRequest(m),
            BackupError::NoSpace => ApiError::InsufficientStorage,
            BackupError::Io(_)
            | BackupError::Store(_)
            | BackupError::Swap(_)
            | BackupError::Task(_) => ApiError::internal(e),
        }
    }
}

fn offsite_of(app: &AppState) -> ApiResult<&crate::offsite::Offsite> {
    app.offsite.as_deref().ok_or_else(|| {
        ApiError::BadRequest(
            "off-site copies are not configured (S3_BUCKET_NAME is not set)".into(),
        )
    })
}

impl From<OffsiteError> for ApiError {
    fn from(e: OffsiteError) -> Self {
        match e {
            OffsiteError::NotFound(what) => {
                ApiError::NotFound(format!("{what} not found off-site"))
            }
            OffsiteError::Store(m) => {
                ApiError::Unavailable(format!("off-site storage unavailable: {m}"))
            }
            e => ApiError::internal(e),
        }
    }
}

pub(crate) async fn create_backup(
    State(app): State<AppState>,
    Admin(admin): Admin,
    MaybeJsonObject(body): MaybeJsonObject,
) -> ApiResult<impl IntoResponse> {
    let label = body.opt_str("label")?;
    if label.as_ref().is_some_and(|l| l.chars().count() > 200) {
        return Err(ApiError::BadRequest(
            "label must be at most 200 characters".into(),
        ));
    }
    let a = app.clone();
    let user = admin.username.clone();
    let v = tokio::spawn(async move {
        manager::create(&a.backups, MANUAL, label, &user, Turn::RefuseIfBusy).await
    })
    .await
    .map_err(ApiError::internal)??;
    Ok((
        StatusCode::CREATED,
        Json(json!({"success": true, "backup": BackupView::fresh(&app, v)})),
    ))
}

pub(crate) async fn list_backups(
    State(app): State<AppState>,
    _admin: Admin,
    q: QueryMap,
) -> ApiResult<impl IntoResponse> {
    match query(q)?.get("source").map(String::as_str) {
        None | Some("local") => Ok(Json(json!({"success": true, "backups": all(&app).await?}))),
        Some("offsite") => {
            let remote = offsite_of(&app)?.list().await?;
            let local = all(&app).await?;
            let backups: Vec<serde_json::Value> = remote
                .into_iter()
                .map(|r| {
                    let copied_at = r.copied_ms.map(crate::domain::time::fmt_ms);
                    let mut v = match local.iter().find(|l| l.name == r.name && l.size == r.size) {
                        Some(l) => json!(l),
                        None => json!({
                            "name": r.name, "size": r.size, "sizeMB": crate::backup::catalog::mb(r.size),
                            "created": r.created_ms.map(crate::domain::time::fmt_ms),
                            "kind": null, "label": null, "events": null, "lastEventId": null,
                            "sha256": r.sha256, "offsite": "copied",
                        }),
                    };
                    v["copiedAt"] = json!(copied_at);
                    v
                })
                .collect();
            Ok(Json(json!({"success": true, "backups": backups})))
        }
        Some(other) => Err(ApiError::BadRequest(format!(
            "source must be local or offsite, not {other:?}"
        ))),
    }
}

pub(crate) async fn export_metadata(
    State(app): State<AppState>,
    _admin: Admin,
) -> ApiResult<impl IntoResponse> {
    let backups = all(&app).await?;
    let total: u64 = backups.iter().map(|b| b.size).sum();
    Ok(Json(json!({"success": true, "metadata": {
        "backupCount": backups.len(),
        "totalSize": total,
        "oldestBackup": backups.last(),
        "newestBackup": backups.first(),
        "backups": backups,
    }})))
}

/// `at` in a JSON body: an event id (number or digits) or an RFC 3339 time.
fn body_at(body: &JsonObject) -> ApiResult<Option<At>> {
    let at = match body.0.get("at") {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::String(s)) => At::parse(s),
        Some(serde_json::Value::Number(n)) => At::parse(&n.to_string()),
        Some(_) => {
            return Err(ApiError::BadRequest(
                "at must be an RFC 3339 time or an event id".into(),
            ))
        }
    };
    let at = at?;
    if let At::Time(t) = at {
        if t > now_ms() {
            return Err(ApiError::BadRequest("at is in the future".into()));
        }
    }
    Ok(Some(at))
}

pub(crate) async fn restore_backup(
    State(app): State<AppState>,
    Admin(admin): Admin,
    body: JsonObject,
) -> ApiResult<impl IntoResponse> {
    let at = body_at(&body)?;
    let from_offsite = match body.opt_str("source")?.as_deref() {
        None | Some("local") => false,
        Some("offsite") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "source must be local or offsite, not {other:?}"
            )))
        }
    };
    if from_offsite {
        return restore_offsite(app, admin.username, body.req_str("backupName")?, at).await;
    }
    let source = match (body.opt_str("backupName")?, at) {
        (Some(name), upto) => {
            check_name(&name)?;
            let path = app.backups.settings.backup_dir.join(&name);
            if !path.is_file() {
                return Err(ApiError::NotFound(format!("backup {name} not found")));
            }
            Source::Archive { path, upto }
        }
        (None, Some(upto)) => Source::Live { upto },
        (None, None) => {
            return Err(ApiError::BadRequest(
                "backupName is required (or at, to restore the live log's own past)".into(),
            ))
        }
    };
    // Detached: a client that hangs up must not cancel a restore halfway.
    let a = app.clone();
    let user = admin.username.clone();
    let r = tokio::spawn(async move {
        restore::restore(&a.backups, source, "api", &user, Turn::RefuseIfBusy).await
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(Json(restore_answer(&r)))
}

fn restore_answer(r: &restore::RestoreReport) -> serde_json::Value {
    let mut answer = json!({
        "success": true,
        "message": format!("restored {} ({} events)", r.backup, r.restored.events),
        "restored": RestoredView::from(r.restored),
        "safetyBackup": r.safety_backup,
    });
    if let Some(at) = &r.at {
        answer["at"] = json!(at);
        answer["lastEventId"] = json!(r.last_event_id);
    }
    answer
}

/// Restore of an off-site copy: downloaded aside, then verified and restored as
/// any backup (a tampered or truncated object is a 422 and changes nothing).
async fn restore_offsite(
    app: AppState,
    user: String,
    name: String,
    at: Option<At>,
) -> ApiResult<Json<serde_json::Value>> {
    check_name(&name)?;
    let off = offsite_of(&app)?;
    let dir = app
        .backups
        .settings
        .backup_dir
        .join(format!(".offsite-{}", uuid::Uuid::new_v4()));
    tokio::fs::create_dir(&dir)
        .await
        .map_err(ApiError::internal)?;
    let path = dir.join(&name);
    let outcome = async {
        off.download(&name, &path).await?;
        let a = app.clone();
        let source = Source::Archive { path, upto: at };
        tokio::spawn(async move {
            restore::restore(&a.backups, source, "offsite", &user, Turn::RefuseIfBusy).await
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    Ok(Json(restore_answer(&outcome?)))
}

/// `POST /api/backup/import`: a predecessor snapshot (raw JSON body) replaces
/// the live state like a restore (SPEC §8).
pub(crate) async fn import_snapshot(
    State(app): State<AppState>,
    Admin(admin): Admin,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    let dir = app
        .backups
        .settings
        .backup_dir
        .join(format!(".import-{}", uuid::Uuid::new_v4()));
    tokio::fs::create_dir(&dir)
        .await
        .map_err(ApiError::internal)?;
    let name = format!(
        "import_{}.json",
        chrono::Utc::now().format("%Y-%m-%d_%H%M%S")
    );
    let path = dir.join(&name);
    let outcome = async {
        receive(body, &path, app.backups.settings.upload_limit_bytes).await?;
        let a = app.clone();
        let user = admin.username.clone();
        let source = Source::Import { path: path.clone() };
        tokio::spawn(async move {
            restore::restore(&a.backups, source, "api", &user, Turn::RefuseIfBusy).await
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    let r = outcome?;
    Ok(Json(json!({
        "success": true,
        "imported": r.imported.unwrap_or_default(),
        "restored": RestoredView::from(r.restored),
        "safetyBackup": r.safety_backup,
    })))
}

/// Streams a request body into `path` (fsync'd) under `limit` bytes.
async fn receive(body: Body, path: &std::path::Path, limit: u64) -> ApiResult<u64> {
    let written = async {
        let mut f = tokio::fs::File::create(path)
            .await
            .map_err(ApiError::internal)?;
        let mut stream = body.into_data_stream();
        let mut n: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::BadRequest(format!("could not read upload: {e}")))?;
            n += chunk.len() as u64;
            if n > limit {
                return Err(ApiError::TooLarge);
            }
            f.write_all(&chunk).await.map_err(ApiError::internal)?;
        }
        f.sync_all().await.map_err(ApiError::internal)?;
        if n == 0 {
            return Err(ApiError::BadRequest("upload body is empty".into()));
        }
        Ok(n)
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(path).await;
    }
    written
}

pub(crate) async fn download_backup(
    State(app): State<AppState>,
    _admin: Admin,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    check_name(&name)?;
    let path = app.backups.settings.backup_dir.join(&name);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::NotFound(format!("backup {name} not found")))
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    let len = file
        .metadata()
        .await
        .map(|m| m.len())
        .map_err(ApiError::internal)?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}

pub(crate) async fn delete_backup(
    State(app): State<AppState>,
    Admin(admin): Admin,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    manager::delete(&app.backups, &name, &admin.username).await?;
    Ok(Json(json!({"success": true})))
}

pub(crate) async fn list_audit(
    State(app): State<AppState>,
    _admin: Admin,
) -> ApiResult<impl IntoResponse> {
    let meta = app.store.meta.clone();
    let entries = blocking::<_, ApiError>(move || Ok(meta.audit_entries(1000)?)).await?;
    Ok(Json(json!({"success": true, "audit": entries})))
}

/// Raw body upload: streamed to a temporary file under the size limit, verified
/// completely (replay included), then given its name. `?name=` keeps a valid,
/// unused backup file name; otherwise one is made up from the current time.
pub(crate) async fn upload_backup(
    State(app): State<AppState>,
    Admin(admin): Admin,
    Query(q): Query<HashMap<String, String>>,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    let wanted = match q.get("name") {
        Some(n) => {
            check_name(n)?;
            if !crate::backup::catalog::is_backup_name(n) {
                return Err(ApiError::BadRequest(
                    "name must look like backup_YYYY-MM-DD_HHMMSS[_label].tar.gz".into(),
                ));
            }
            Some(n.clone())
        }
        None => None,
    };
    let dir = app.backups.settings.backup_dir.clone();
    let tmp = dir.join(format!(".upload-{}.tmp", uuid::Uuid::new_v4()));
    receive(body, &tmp, app.backups.settings.upload_limit_bytes).await?;
    let _busy = match app.backups.state.turn(Turn::RefuseIfBusy).await {
        Ok(b) => b,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e.into());
        }
    };
    let info = manager::adopt_upload(&app.backups, tmp, wanted, &admin.username).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"success": true, "backup": BackupView::fresh(&app, info)})),
    ))
}
