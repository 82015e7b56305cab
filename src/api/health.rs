//! `GET /api/health` (no auth) and `GET /metrics` (Prometheus text).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::app::AppState;

pub(crate) async fn get_health(State(app): State<AppState>) -> impl IntoResponse {
    let durable = *app.store.durable().borrow();
    let dir = app.backups.settings.backup_dir.clone();
    let offsite = app.offsite.clone();
    let backup = tokio::task::spawn_blocking(move || {
        let mut b = crate::backup::catalog::health_block(&dir);
        b["offsite"] = match &offsite {
            Some(o) => o.health(),
            None => {
                json!({"enabled": false, "pending": 0, "lastCopiedAt": null, "lastError": null})
            }
        };
        b
    })
    .await
    .unwrap_or_else(
        |_| json!({"available": false, "count": 0, "latest": null, "totalSizeMB": 0.0}),
    );
    let role = if app.store.fenced() {
        "fenced"
    } else if app.role.takes_writes() {
        "primary"
    } else {
        "replica"
    };
    let mut answer = json!({
        "success": true,
        "message": "taskledger is running",
        "version": env!("CARGO_PKG_VERSION"),
        "commit": env!("TASKLEDGER_COMMIT"),
        "events": durable.seq,
        "lastEventId": durable.seq,
        "backup": backup,
        "kafka": app.relay.snapshot(durable.seq),
        "writable": app.store.writable(),
        "role": role,
    });
    if let Some(r) = app.replica.as_ref().filter(|_| role == "replica") {
        if let (Some(a), serde_json::Value::Object(extra)) = (answer.as_object_mut(), r.health()) {
            a.extend(extra);
        }
    }
    if let Some(l) = app
        .log_topic
        .as_ref()
        .filter(|l| l.enabled.load(std::sync::atomic::Ordering::Relaxed))
    {
        use std::sync::atomic::Ordering::Relaxed;
        let last = l.last_published.load(Relaxed);
        answer["logTopic"] = json!({
            "connected": l.connected.load(Relaxed),
            "lastPublishedEventId": last,
            "lag": durable.seq.saturating_sub(last),
            "commit": app.config.kafka.commit.as_str(),
        });
    }
    Json(answer)
}

pub(crate) async fn get_metrics(State(app): State<AppState>) -> impl IntoResponse {
    let durable = app.store.durable().borrow().seq;
    let last = app
        .relay
        .last_published
        .load(std::sync::atomic::Ordering::Relaxed);
    app.metrics.writable.set(i64::from(app.store.writable()));
    app.metrics
        .kafka_enabled
        .set(i64::from(app.config.kafka.enabled));
    app.metrics
        .backup_interval_seconds
        .set(if app.backups.settings.auto_backup_enabled {
            (app.backups.settings.auto_backup_interval_ms / 1000) as i64
        } else {
            0
        });
    if let Some(o) = app.offsite.clone() {
        let (pending, failing) = tokio::task::spawn_blocking(move || o.gauges())
            .await
            .unwrap_or((0, false));
        app.metrics.offsite_pending.set(pending as i64);
        app.metrics.offsite_failing.set(i64::from(failing));
    }
    if let Some(r) = &app.replica {
        r.export(&app.metrics);
    }
    if app.relay.enabled.load(std::sync::atomic::Ordering::Relaxed) {
        app.metrics
            .kafka_lag
            .set(durable.saturating_sub(last) as i64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
}
