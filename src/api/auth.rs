//! Authentication: login/logout, bearer-token extractors, user routes, and the
//! Argon2id hashing they rely on (always off the async threads).

use std::sync::Arc;

use std::sync::OnceLock;

use crate::domain::Id;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::input::JsonObject;
use crate::app::AppState;
use crate::blocking::blocking;
use crate::domain::decide::{check_password, check_username};
use crate::domain::password::{hash_password, verify_password};
use crate::domain::time::now_ms;
use crate::domain::{Command, Role, UserRec};

/// A hash to verify against for unknown users, so both failures cost the same time.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy-password-never-matches").unwrap_or_default())
}

pub(crate) async fn hash_blocking(password: String) -> ApiResult<String> {
    blocking(move || {
        hash_password(&password).map_err(|e| ApiError::internal(format!("hashing a password: {e}")))
    })
    .await
}

/// The caller, resolved from `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub(crate) struct Auth {
    pub(crate) username: String,
    pub(crate) role: Role,
    pub(crate) token: String,
}

/// An authenticated admin.
pub(crate) struct Admin(pub Auth);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("authentication required".into()))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Unauthorized("authorization must be a Bearer token".into()))?;
        by_token(app, token)
    }
}

/// The caller holding `token`, however it was presented.
pub(crate) fn by_token(app: &AppState, token: &str) -> Result<Auth, ApiError> {
    let session = app
        .store
        .meta
        .session(token, now_ms())
        .ok_or_else(|| ApiError::Unauthorized("invalid or expired token".into()))?;
    // The user must still exist in the live state (a restore may have removed it).
    let user = app
        .store
        .gen()
        .user(&session.username)
        .ok_or_else(|| ApiError::Unauthorized("invalid or expired token".into()))?;
    Ok(Auth {
        username: user.username,
        role: user.role,
        token: token.to_string(),
    })
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_request_parts(parts, app).await?;
        if auth.role != Role::Admin {
            return Err(ApiError::Forbidden("admin role required".into()));
        }
        Ok(Admin(auth))
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct UserView {
    #[serde(rename = "_id")]
    id: String,
    username: String,
    role: &'static str,
}

impl From<&UserRec> for UserView {
    fn from(u: &UserRec) -> Self {
        UserView {
            id: u.id.to_string(),
            username: u.username.clone(),
            role: u.role.as_str(),
        }
    }
}

pub(crate) async fn login(
    State(app): State<AppState>,
    body: JsonObject,
) -> ApiResult<impl IntoResponse> {
    let username = body.req_str("username")?;
    let password = body.req_str("password")?;
    let user = app.store.gen().user(&username);
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| decoy_hash().to_string());
    let ok = blocking(move || Ok::<_, ApiError>(verify_password(&password, &hash))).await?;
    let user = match (ok, user) {
        (true, Some(u)) => u,
        _ => {
            return Err(ApiError::Unauthorized(
                "invalid username or password".into(),
            ))
        }
    };
    let ttl_ms =
        i64::try_from(app.config.auth.token_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let meta = app.store.meta.clone();
    let name = user.username.clone();
    let token = blocking(move || {
        Ok::<_, ApiError>(meta.create_session(&name, now_ms().saturating_add(ttl_ms))?)
    })
    .await?;
    Ok(Json(
        json!({"success": true, "token": token, "data": UserView::from(&user)}),
    ))
}

pub(crate) async fn logout(
    State(app): State<AppState>,
    auth: Auth,
) -> ApiResult<impl IntoResponse> {
    let meta = app.store.meta.clone();
    blocking(move || Ok::<_, ApiError>(meta.revoke(&auth.token)?)).await?;
    Ok(Json(json!({"success": true, "message": "logged out"})))
}

pub(crate) async fn list_users(
    State(app): State<AppState>,
    _auth: Auth,
) -> ApiResult<impl IntoResponse> {
    let users: Vec<UserView> = app.store.gen().users().iter().map(UserView::from).collect();
    Ok(Json(json!({"success": true, "users": users})))
}

pub(crate) async fn create_user(
    State(app): State<AppState>,
    Admin(admin): Admin,
    body: JsonObject,
) -> ApiResult<impl IntoResponse> {
    let username = body.req_str("username")?;
    let password = body.req_str("password")?;
    let role = match body.opt_str("role")? {
        None => Role::Member,
        Some(r) => Role::parse(&r)
            .ok_or_else(|| ApiError::BadRequest("role must be admin or member".into()))?,
    };
    check_username(&username)?;
    check_password(&password)?;
    if app.store.gen().user(&username).is_some() {
        // Cheap early answer; the writer re-checks, so a race still gets its 409.
        return Err(ApiError::Conflict("username is already taken".into()));
    }
    let password_hash = hash_blocking(password).await?;
    let out = app
        .store
        .execute(
            &admin.username,
            Command::CreateUser {
                id: Id::generate(),
                username,
                password_hash,
                role,
                if_absent: false,
            },
        )
        .await?;
    let user: Arc<UserRec> = super::touched(&out)?;
    Ok((
        StatusCode::CREATED,
        super::Written(out.seq),
        Json(json!({"success": true, "user": UserView::from(&*user)})),
    ))
}
