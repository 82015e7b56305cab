//! How a request meets the node it reached (SPEC §12): a replica sends writes
//! to the primary (307, method and body kept) or refuses them (503 `read-only
//! replica`), and any GET may ask for a state at least as new as a write it
//! made (`X-Taskledger-Min-Seq`: a replica waits up to 5 s for it). Touches
//! the application state only to read the role and the durable watermark.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use axum::Json;

use super::auth::Admin;
use super::error::{error_body, ApiError, ApiResult};
use crate::app::AppState;
use crate::replica::promote::{self, PromoteError, Promoted};

pub(crate) const MIN_SEQ: &str = "x-taskledger-min-seq";
/// How long a replica waits for the sequence a client asked for.
const MIN_SEQ_WAIT: Duration = Duration::from_secs(5);
pub(crate) const READ_ONLY_REPLICA: &str = "read-only replica";

/// Writes a replica takes itself: its own backup files, which change no log,
/// and its promotion.
fn local_on_replica(method: &Method, path: &str) -> bool {
    matches!(
        (method, path),
        (&Method::POST, "/api/backup/create")
            | (&Method::POST, "/api/backup/upload")
            | (&Method::POST, "/api/admin/promote")
    ) || (method == Method::DELETE && path.starts_with("/api/backup/"))
}

/// `POST /api/admin/promote` (admin): this replica becomes the primary.
pub(crate) async fn promote_node(
    State(app): State<AppState>,
    Admin(admin): Admin,
) -> ApiResult<Json<Promoted>> {
    tracing::info!(by = %admin.username, "promotion requested");
    // Its own task: a client that gives up (or the request timeout) must not
    // stop a promotion half way.
    let a = app.clone();
    let done = tokio::spawn(async move { promote::promote(&a).await })
        .await
        .map_err(ApiError::internal)?;
    done.map(Json).map_err(|e| match e {
        PromoteError::NotReplica(_) => ApiError::Conflict(e.to_string()),
        PromoteError::Kafka(_) | PromoteError::CatchUp(_) | PromoteError::Relay(_) => {
            ApiError::Unavailable(e.to_string())
        }
        PromoteError::Store(_) | PromoteError::Task(_) => ApiError::internal(e),
    })
}

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

pub(crate) async fn replica_gate(
    State(app): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if app.role.takes_writes()
        || is_read(req.method())
        || !req.uri().path().starts_with("/api/")
        || local_on_replica(req.method(), req.uri().path())
    {
        return next.run(req).await;
    }
    match &app.config.replica.primary_url {
        Some(primary) => {
            let target = match req.uri().path_and_query() {
                Some(pq) => format!("{primary}{pq}"),
                None => format!("{primary}{}", req.uri().path()),
            };
            match HeaderValue::from_str(&target) {
                Ok(location) => (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, location)],
                )
                    .into_response(),
                Err(_) => error_body(StatusCode::SERVICE_UNAVAILABLE, READ_ONLY_REPLICA),
            }
        }
        None => error_body(StatusCode::SERVICE_UNAVAILABLE, READ_ONLY_REPLICA),
    }
}

pub(crate) async fn min_seq(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let Some(raw) = req.headers().get(MIN_SEQ) else {
        return next.run(req).await;
    };
    let Some(want) = raw.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) else {
        return error_body(
            StatusCode::BAD_REQUEST,
            "X-Taskledger-Min-Seq must be a non-negative integer",
        );
    };
    // The primary has everything it acknowledged: answered at once.
    if app.replica.is_some() {
        let mut durable = app.store.durable();
        let reached = tokio::time::timeout(MIN_SEQ_WAIT, durable.wait_for(|d| d.seq >= want)).await;
        if !matches!(reached, Ok(Ok(_))) {
            let mut resp = error_body(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "this replica has not applied event {want} yet (it is at {}); retry",
                    app.store.durable().borrow().seq
                ),
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return resp;
        }
    }
    next.run(req).await
}
