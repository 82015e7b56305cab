//! The HTTP edge: one router, per-resource handlers, the auth extractors, and the
//! mapping of every error (ours and axum's) to `{"success":false,"error":…}`.

pub(crate) mod auth;
pub(crate) mod backup;
pub(crate) mod error;
pub(crate) mod health;
pub(crate) mod history;
pub(crate) mod input;
pub(crate) mod logs;
pub(crate) mod nodes;
pub(crate) mod openapi;
pub(crate) mod stream;
pub(crate) mod tasks;
pub(crate) mod ui;
pub(crate) mod views;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;

use crate::app::AppState;
use crate::config::Cors;
use crate::domain::state::TouchedRecord;
pub(crate) use error::{ApiError, ApiResult};

/// The JSON body limit of SPEC §2.
pub(crate) const BODY_LIMIT: usize = 1024 * 1024;

/// `{"success": true, "<key>": value}`, serialized straight from `value` (no
/// intermediate `serde_json::Value` tree: the hot read routes answer with it).
pub(crate) struct Success<T> {
    key: &'static str,
    value: T,
}

impl<T: serde::Serialize> serde::Serialize for Success<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("success", &true)?;
        m.serialize_entry(self.key, &self.value)?;
        m.end()
    }
}

pub(crate) fn success<T: serde::Serialize>(key: &'static str, value: T) -> axum::Json<Success<T>> {
    axum::Json(Success { key, value })
}

/// `X-Taskledger-Seq` on a write's answer (SPEC §12): the sequence of its last
/// event, so a client can ask a replica for a state at least that new.
pub(crate) struct Written(pub(crate) u64);

impl axum::response::IntoResponseParts for Written {
    type Error = std::convert::Infallible;

    fn into_response_parts(
        self,
        mut res: axum::response::ResponseParts,
    ) -> Result<axum::response::ResponseParts, Self::Error> {
        res.headers_mut()
            .insert("x-taskledger-seq", axum::http::HeaderValue::from(self.0));
        Ok(res)
    }
}

/// The record a command touched, of the type the handler renders; another
/// kind (or none) is a bug in the command, not the client's doing.
pub(crate) fn touched<T: TouchedRecord>(out: &crate::store::Outcome) -> ApiResult<T> {
    T::pick(&out.touched).ok_or_else(|| {
        ApiError::internal(format!(
            "the command answered {:?}, not a {}",
            out.touched,
            T::KIND
        ))
    })
}

pub(crate) fn router(app: AppState) -> Router {
    let api = Router::new()
        .route("/api/health", get(health::get_health))
        .route("/api/openapi.json", get(openapi::get_openapi))
        .route("/metrics", get(health::get_metrics))
        .route("/api/admin/promote", post(nodes::promote_node))
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/logout", post(auth::logout))
        .route(
            "/api/auth/users",
            get(auth::list_users).post(auth::create_user),
        )
        .route(
            "/api/groups",
            get(tasks::list_groups).post(tasks::create_group),
        )
        .route(
            "/api/groups/{id}",
            get(tasks::get_group)
                .put(tasks::update_group)
                .delete(tasks::delete_group),
        )
        .route("/api/groups/{id}/tasks", post(tasks::create_task))
        .route(
            "/api/tasks/{id}",
            get(tasks::get_task)
                .put(tasks::update_task)
                .delete(tasks::delete_task),
        )
        .route("/api/tasks/{id}/status", put(tasks::change_status))
        .route(
            "/api/tasks/{id}/comments",
            get(tasks::list_comments).post(tasks::add_comment),
        )
        .route("/api/logs/groups", get(logs::list_log_groups))
        .route("/api/logs/group/{id}", get(logs::list_group_logs))
        .route(
            "/api/logs/group/{id}/tasks",
            get(logs::list_group_task_logs),
        )
        .route("/api/logs/task/{id}", get(logs::list_task_logs))
        .route("/api/snapshot", get(history::get_snapshot))
        .route("/api/v1/snapshots/{id}", get(history::list_stream_months))
        .route(
            "/api/v1/snapshots/{id}/archive",
            get(history::get_stream_archive),
        )
        .route(
            "/api/v1/snapshots/{id}/{month}",
            get(history::get_stream_month),
        )
        .route("/api/backup/create", post(backup::create_backup))
        .route("/api/backup/list", get(backup::list_backups))
        .route("/api/backup/restore", post(backup::restore_backup))
        .route("/api/backup/export-metadata", get(backup::export_metadata))
        .route("/api/backup/audit", get(backup::list_audit))
        .route("/api/backup/{name}", delete(backup::delete_backup))
        .fallback(ui::fallback)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            app.config.request_timeout,
        ));
    // Streaming routes: their own, larger body limit, and no request timeout.
    let streaming = Router::new()
        .route("/api/backup/download/{name}", get(backup::download_backup))
        .route("/api/backup/upload", post(backup::upload_backup))
        .route("/api/backup/import", post(backup::import_snapshot))
        .route("/api/events/stream", get(stream::event_stream));
    let router = api.merge(streaming);
    // Only a replica redirects writes or waits for a sequence (a primary has
    // every write it acknowledged): the primary's requests pay for neither.
    let router = if app.replica.is_some() {
        router
            .layer(middleware::from_fn_with_state(app.clone(), nodes::min_seq))
            .layer(middleware::from_fn_with_state(
                app.clone(),
                nodes::replica_gate,
            ))
    } else {
        router
    };
    let router = router
        .layer(middleware::from_fn_with_state(app.clone(), refuse_large))
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a request handler panicked");
            error::error_body(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
        }));
    let router = match cors_layer(&app.config.http.cors) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.with_state(app)
}

/// `CORS_ORIGIN` (SPEC §11): preflights answered, the listed origins allowed.
fn cors_layer(cors: &Cors) -> Option<CorsLayer> {
    let base = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("last-event-id"),
        ])
        .max_age(std::time::Duration::from_secs(600));
    match cors {
        Cors::Off => None,
        Cors::Any => Some(base.allow_origin(AllowOrigin::any())),
        Cors::Origins(list) => {
            let origins: Vec<header::HeaderValue> = list
                .iter()
                .filter_map(|o| header::HeaderValue::from_str(o).ok())
                .collect();
            Some(base.allow_origin(AllowOrigin::list(origins)))
        }
    }
}

/// Longest accepted request target (path and query).
const MAX_URI: usize = 8 * 1024;
/// Most header bytes accepted (names and values).
const MAX_HEADERS: usize = 64 * 1024;

/// A declared body over the route's limit is refused from the header, before a
/// byte of it is read (a client announcing 1 TiB is not waited for); an
/// over-long target or header set gets its 414/431 here, with the JSON error
/// shape, before the HTTP library's own (bodyless) limits are reached.
async fn refuse_large(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI {
        return error::error_body(StatusCode::URI_TOO_LONG, "request target is too long");
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > MAX_HEADERS {
        return error::error_body(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request headers are too large",
        );
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(len) = declared {
        let path = req.uri().path();
        let limit = if path == "/api/backup/upload" || path == "/api/backup/import" {
            app.backups.settings.upload_limit_bytes
        } else {
            BODY_LIMIT as u64
        };
        if len > limit {
            // A client that sends its whole body before reading the answer gets
            // a reset instead of the 413 if the socket is closed with the body
            // unread. Moderate overshoots are read and thrown away so the answer
            // arrives and the connection stays usable; huge ones are not waited for.
            if len - limit <= DRAIN_MAX && drain(req.into_body()).await {
                return ApiError::TooLarge.into_response();
            }
            return closing(ApiError::TooLarge.into_response());
        }
    }
    let resp = next.run(req).await;
    // A body refused while being read (chunked, over the limit) is unread too.
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return closing(resp);
    }
    resp
}

/// How far past its limit a declared body is still read (and discarded) to
/// answer 413 cleanly.
const DRAIN_MAX: u64 = 16 * 1024 * 1024;

/// Reads a body to its end and discards it; false if it broke off.
async fn drain(body: axum::body::Body) -> bool {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        if chunk.is_err() {
            return false;
        }
    }
    true
}

/// The connection cannot be reused when the request body was left unread; say
/// so, or a keep-alive client sends its next request into a closing socket.
fn closing(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    resp
}

/// Metric label for a method: the known ones, everything else `other` (labels
/// must not grow with client input).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("route not found".into())
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Counts every request by route and status, and gives axum's own bare error
/// answers (405, body-limit 413, …) the JSON error shape.
async fn observe(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let mut resp = next.run(req).await;
    let status = resp.status();
    if (status.is_client_error() || status.is_server_error()) && !is_json(&resp) {
        let msg = match status {
            StatusCode::METHOD_NOT_ALLOWED => "method not allowed".to_string(),
            StatusCode::PAYLOAD_TOO_LARGE => "request body is too large".to_string(),
            s => s.canonical_reason().unwrap_or("error").to_lowercase(),
        };
        let keep_allow = resp.headers().get(header::ALLOW).cloned();
        resp = error::error_body(status, &msg);
        if let Some(allow) = keep_allow {
            resp.headers_mut().insert(header::ALLOW, allow);
        }
    }
    app.metrics
        .requests
        .with_label_values(&[method, route.as_str(), status.as_str()])
        .inc();
    resp.into_response()
}
