//! The backup routes (admin only): create, list, restore, export-metadata,
//! download, upload, delete, audit.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::auth::Admin;
use super::error::{ApiError, ApiResult};
use super::input::{JsonObject, MaybeJsonObject};
use crate::app::AppState;
use crate::backup::manager::{self, MANUAL, UPLOADED};
use crate::backup::{check_name, restore, BackupError, BackupView};

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> ApiResult<T> {
    Ok(crate::backup::blocking(f).await?)
}

async fn all(app: &AppState) -> ApiResult<Vec<BackupView>> {
    let a = app.clone();
    blocking(move || {
        Ok(manager::list(
            &a.backups,
            &a.store.meta,
            &a.config.backup_dir,
        ))
    })
    .await
}

pub async fn create(
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
    let v = tokio::spawn(async move { manager::create(&a, MANUAL, label, &user).await })
        .await
        .map_err(|e| ApiError::Internal(format!("backup task failed: {e}")))??;
    Ok((
        StatusCode::CREATED,
        Json(json!({"success": true, "backup": v})),
    ))
}

pub async fn list(State(app): State<AppState>, _admin: Admin) -> ApiResult<impl IntoResponse> {
    Ok(Json(json!({"success": true, "backups": all(&app).await?})))
}

pub async fn export_metadata(
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

pub async fn restore_route(
    State(app): State<AppState>,
    Admin(admin): Admin,
    body: JsonObject,
) -> ApiResult<impl IntoResponse> {
    let name = body.req_str("backupName")?;
    check_name(&name)?;
    let path = app.config.backup_dir.join(&name);
    if !path.is_file() {
        return Err(ApiError::NotFound(format!("backup {name} not found")));
    }
    // Detached: a client that hangs up must not cancel a restore halfway.
    let a = app.clone();
    let user = admin.username.clone();
    let r = tokio::spawn(async move { restore::restore(&a, path, "api", &user).await })
        .await
        .map_err(|e| ApiError::Internal(format!("restore task failed: {e}")))??;
    Ok(Json(json!({
        "success": true,
        "message": format!("restored {} ({} events)", r.backup, r.restored.events),
        "restored": r.restored,
        "safetyBackup": r.safety_backup,
    })))
}

pub async fn download(
    State(app): State<AppState>,
    _admin: Admin,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    check_name(&name)?;
    let path = app.config.backup_dir.join(&name);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::NotFound(format!("backup {name} not found")))
        }
        Err(e) => return Err(ApiError::Internal(e.to_string())),
    };
    let len = file
        .metadata()
        .await
        .map(|m| m.len())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
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

pub async fn delete(
    State(app): State<AppState>,
    Admin(admin): Admin,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    manager::delete(&app, &name, &admin.username).await?;
    Ok(Json(json!({"success": true})))
}

pub async fn audit(State(app): State<AppState>, _admin: Admin) -> ApiResult<impl IntoResponse> {
    let entries = app.store.meta.audit_entries(1000)?;
    Ok(Json(json!({"success": true, "audit": entries})))
}

/// Raw body upload: streamed to a temporary file under the size limit, verified
/// completely (replay included), then given its name. `?name=` keeps a valid,
/// unused backup file name; otherwise one is made up from the current time.
pub async fn upload(
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
    let dir = app.config.backup_dir.clone();
    let tmp = dir.join(format!(".upload-{}.tmp", uuid::Uuid::new_v4()));
    let limit = app.config.upload_limit_bytes;
    let written = async {
        let mut f = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let mut stream = body.into_data_stream();
        let mut n: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::BadRequest(format!("could not read upload: {e}")))?;
            n += chunk.len() as u64;
            if n > limit {
                return Err(ApiError::TooLarge);
            }
            f.write_all(&chunk)
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
        }
        f.sync_all()
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        if n == 0 {
            return Err(ApiError::BadRequest("upload body is empty".into()));
        }
        Ok(n)
    }
    .await;
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    let _busy = app.backups.busy.lock().await;
    let t = tmp.clone();
    let verified = tokio::task::spawn_blocking(move || restore::verify_file(&t))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()));
    let manifest = match verified {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e.into());
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
    };
    let name = match wanted {
        Some(n) if !dir.join(&n).exists() => n,
        Some(n) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(ApiError::Conflict(format!("backup {n} already exists")));
        }
        None => loop {
            let label = manifest
                .label
                .as_deref()
                .and_then(crate::backup::clean_label);
            let n = format!(
                "backup_{}_{}.tar.gz",
                chrono::Utc::now().format("%Y-%m-%d_%H%M%S"),
                label.unwrap_or_else(|| UPLOADED.to_string())
            );
            if !dir.join(&n).exists() {
                break n;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        },
    };
    app.store.meta.set_backup_kind(&name, Some(UPLOADED))?;
    if let Err(e) = tokio::fs::rename(&tmp, dir.join(&name)).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        let _ = app.store.meta.set_backup_kind(&name, None);
        return Err(ApiError::Internal(e.to_string()));
    }
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    let a = app.clone();
    let n = name.clone();
    let view = blocking(move || manager::view(&a.backups, &a.store.meta, &a.config.backup_dir, &n))
        .await?;
    manager::audit(
        &app,
        "BACKUP_CREATED",
        Some(&name),
        &admin.username,
        json!({"kind": UPLOADED, "events": view.events, "size": view.size}),
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({"success": true, "backup": view})),
    ))
}
