//! Request input: JSON bodies read as raw bytes (so every parse failure is our own
//! 400, not axum's 422), typed field access with clear messages, ids and query params.

use crate::domain::Id;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::domain::Status;

/// A JSON object body.
pub(crate) struct JsonObject(pub Map<String, Value>);

fn read_error(e: axum::extract::rejection::BytesRejection) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge
    } else {
        ApiError::BadRequest(format!("could not read request body: {e}"))
    }
}

fn parse_object(bytes: &[u8]) -> Result<JsonObject, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "request body must be a JSON object".into(),
        ));
    }
    match serde_json::from_slice::<Body>(bytes) {
        Ok(Body::Object(m)) => Ok(JsonObject(m)),
        Ok(Body::Other) => Err(ApiError::BadRequest(
            "request body must be a JSON object".into(),
        )),
        Err(e) => Err(ApiError::BadRequest(format!("invalid JSON: {e}"))),
    }
}

/// A request body: a JSON object whose keys are unique (`{"name":"a","name":"b"}`
/// is ambiguous, so it is refused rather than read as the last one), or anything else.
enum Body {
    Object(Map<String, Value>),
    Other,
}

impl<'de> serde::Deserialize<'de> for Body {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Body, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Body;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Body, A::Error> {
                let mut m = Map::new();
                while let Some((k, v)) = a.next_entry::<String, Value>()? {
                    if m.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!("duplicate key {k:?}")));
                    }
                    m.insert(k, v);
                }
                Ok(Body::Object(m))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Body, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Body::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Body, E> {
                Ok(Body::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Body, E> {
                Ok(Body::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Body, E> {
                Ok(Body::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Body, E> {
                Ok(Body::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Body, E> {
                Ok(Body::Other)
            }
            fn visit_unit<E>(self) -> Result<Body, E> {
                Ok(Body::Other)
            }
        }
        d.deserialize_any(V)
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(read_error)?;
        parse_object(&bytes)
    }
}

/// A JSON object body that may also be left out entirely (empty body: `{}`).
pub(crate) struct MaybeJsonObject(pub JsonObject);

impl<S: Send + Sync> FromRequest<S> for MaybeJsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(read_error)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(MaybeJsonObject(JsonObject(Map::new())));
        }
        parse_object(&bytes).map(MaybeJsonObject)
    }
}

impl JsonObject {
    /// A string field that may be left out; `null` is a wrong type like any
    /// other (SPEC §2: only the dates may be `null`).
    pub(crate) fn opt_str(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::BadRequest(format!("{name} must be a string"))),
        }
    }

    pub(crate) fn req_str(&self, name: &str) -> Result<String, ApiError> {
        self.opt_str(name)?
            .ok_or_else(|| ApiError::BadRequest(format!("{name} is required")))
    }

    /// Absent: `None`; `null`: `Some(None)`; a string: `Some(Some(s))`.
    pub(crate) fn nullable_str(&self, name: &str) -> Result<Option<Option<String>>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
            Some(_) => Err(ApiError::BadRequest(format!(
                "{name} must be a string or null"
            ))),
        }
    }

    pub(crate) fn opt_status(&self, name: &str) -> Result<Option<Status>, ApiError> {
        match self.opt_str(name)? {
            None => Ok(None),
            Some(s) => Status::parse(&s).map(Some).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{name} must be one of New, Backlog, In Progress, Completed, Approved"
                ))
            }),
        }
    }
}

/// Path ids: anything that is not one of ours simply is not found.
pub(crate) fn parse_id(raw: &str, what: &str) -> Result<Id, ApiError> {
    Id::parse(raw).ok_or_else(|| ApiError::NotFound(format!("{what} not found")))
}

/// The `{id}` path segment as text. A segment that is not even valid UTF-8 is no
/// id of ours: it reads as empty, which every route treats as "not found".
pub(crate) struct PathId(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(id)) => Ok(PathId(id)),
            Err(_) => Ok(PathId(String::new())),
        }
    }
}
