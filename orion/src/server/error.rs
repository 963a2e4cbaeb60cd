//! API errors as JSON (`{"detail": "…"}`), and the extractors that turn bad input into them.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::Error;
use crate::store::StoreError;
use crate::store::protocol::WireError;

/// An API error: a status and a message naming what was wrong; store errors also carry their
/// kind, so a remote runtime gets the same error back.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) detail: String,
    pub(crate) error: Option<WireError>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: detail.into(),
            error: None,
        }
    }
    /// 422: the request was understood but a value in it is wrong.
    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }
    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            StoreError::AlreadyExists { .. } => StatusCode::CONFLICT,
            StoreError::Backend(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError {
            status,
            detail: e.to_string(),
            error: Some(WireError::from(&e)),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let e = match e {
            Error::Store(store) => return store.into(),
            e => e,
        };
        let status = match &e {
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::Aborted { .. } | Error::Conflict { .. } | Error::ConcurrencyLimit { .. } => {
                StatusCode::CONFLICT
            }
            Error::InvalidParameters { .. }
            | Error::UnknownFlow { .. }
            | Error::Schedule(_)
            | Error::Deployment(_)
            | Error::Setting { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "detail": self.detail });
        if let Some(error) = &self.error {
            body["error"] = serde_json::to_value(error).unwrap_or_default();
        }
        (self.status, axum::Json(body)).into_response()
    }
}

/// A JSON request body; a malformed one is a JSON error naming the field (422), a missing
/// `Content-Type: application/json` 415, a body over the size limit 413.
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(ApiError::new(rejection.status(), rejection.body_text())),
        }
    }
}

/// A JSON body that may be absent (no body, or an empty one, is `T::default()`).
pub(crate) struct OptionalBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| ApiError::new(r.status(), r.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalBody(T::default()));
        }
        parse(&bytes).map(OptionalBody)
    }
}

/// A JSON body parsed, or a 422 naming the field at fault (`flow_runs.state: …`).
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::invalid(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::invalid(format!("invalid JSON body at {path}: {inner}"))
        }
    })
}

/// A URL query (`?limit=10`); a malformed one is a JSON error naming the parameter (422).
pub(crate) struct Params<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Params(value)),
            Err(rejection) => Err(ApiError::invalid(rejection.body_text())),
        }
    }
}

/// An id from the URL path, or a 422 naming it.
pub(crate) fn id(text: &str, what: &str) -> Result<Uuid, ApiError> {
    text.parse()
        .map_err(|_| ApiError::invalid(format!("{what} id {text:?} is not a UUID")))
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
