//! HTTP errors: every failure leaves as `application/problem+json` (RFC 9457) with a stable
//! machine-readable `code`. Server-side failures are logged with an incident id and the body
//! carries only that id, never the cause.

use crate::auth::tokens::TokenError;
use crate::network::store::NetworkError;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: bad JSON, unknown or missing fields, bad values.
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("authentication required")]
    Unauthenticated { code: &'static str, detail: String },
    #[error("forbidden")]
    Forbidden { detail: String },
    #[error("csrf token missing or wrong")]
    Csrf,
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64, detail: String },
    #[error("account locked")]
    Locked { retry_after_secs: u64 },
    #[error("unsupported media type")]
    UnsupportedMediaType { detail: String },
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("not acceptable")]
    NotAcceptable { detail: String },
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request is understood but the stored content cannot be processed (pixel data
    /// that does not decode, say).
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    #[error("service unavailable")]
    Unavailable { detail: String },
    /// Anything the client cannot fix. The cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    code: &'a str,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    incident: Option<String>,
}

impl ApiError {
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest { code, detail: detail.into() }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Conflict { code, detail: detail.into() }
    }

    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        ApiError::Unauthenticated { code: "unauthenticated", detail: detail.into() }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } | ApiError::Csrf => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::TooManyRequests { .. } | ApiError::Locked { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotAcceptable { .. } => StatusCode::NOT_ACCEPTABLE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code clients may match on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Unauthenticated { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unprocessable { code, .. } => code,
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::Csrf => "csrf_failed",
            ApiError::NotFound { .. } => "not_found",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::Locked { .. } => "account_locked",
            ApiError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::NotAcceptable { .. } => "not_acceptable",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    fn detail(&self) -> String {
        match self {
            ApiError::BadRequest { detail, .. }
            | ApiError::Unauthenticated { detail, .. }
            | ApiError::Conflict { detail, .. }
            | ApiError::Unprocessable { detail, .. }
            | ApiError::Forbidden { detail }
            | ApiError::TooManyRequests { detail, .. }
            | ApiError::UnsupportedMediaType { detail }
            | ApiError::NotAcceptable { detail }
            | ApiError::Unavailable { detail } => detail.clone(),
            ApiError::Csrf => {
                "cookie-authenticated writes need the X-CSRF-Token header from /api/me".into()
            }
            ApiError::NotFound { what } => format!("{what} not found"),
            ApiError::Locked { retry_after_secs } => format!(
                "too many failed logins; the account is locked for {} more minute(s)",
                retry_after_secs.div_ceil(60)
            ),
            ApiError::PayloadTooLarge => "request body exceeds the configured limit".into(),
            ApiError::MethodNotAllowed => "this route does not accept that method".into(),
            ApiError::Internal(_) => {
                "the server failed to complete the request; quote the incident id to the administrator"
                    .into()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let incident = match &self {
            ApiError::Internal(cause) => {
                let id = crate::ids::random_id(8);
                // The cause is for operators; it holds no request data (handlers wrap only
                // storage and IO failures).
                tracing::error!(incident = %id, error = format!("{cause:#}"), "internal error");
                Some(id)
            }
            _ => None,
        };
        let body = Problem {
            kind: format!("https://ferry.invalid/problems/{}", self.code()),
            title: status.canonical_reason().unwrap_or("error"),
            status: status.as_u16(),
            code: self.code(),
            detail: self.detail(),
            incident,
        };
        let retry = match &self {
            ApiError::TooManyRequests { retry_after_secs, .. }
            | ApiError::Locked { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        let mut resp = (status, Json(body)).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = retry {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if matches!(self, ApiError::Unauthenticated { .. }) {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ferry\""),
            );
        }
        resp
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType {
                detail: "expected Content-Type: application/json".into(),
            },
            JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
                "invalid_json",
                format!("body is not valid JSON: {}", e.body_text()),
            ),
            JsonRejection::JsonDataError(e) => ApiError::bad_request("invalid_body", e.body_text()),
            JsonRejection::BytesRejection(e) => {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::bad_request("unreadable_body", "the request body could not be read")
                }
            }
            other => ApiError::bad_request("invalid_body", other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request("invalid_path", r.body_text())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                ApiError::Unavailable {
                    detail: "the database is not reachable; try again shortly".into(),
                }
            }
            _ => ApiError::Internal(e.into()),
        }
    }
}

/// JSON body extractor whose rejections are problem+json like every other error.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(v) = Json::<T>::from_request(req, state).await?;
        Ok(JsonBody(v))
    }
}

/// Query-string extractor with problem+json rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueryParams<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for QueryParams<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(v) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(QueryParams(v))
    }
}

/// Path extractor with problem+json rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct PathParams<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for PathParams<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(v) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(PathParams(v))
    }
}

// Domain errors become problems here, at the HTTP edge: the domain modules know nothing of
// HTTP.

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Invalid(why) => ApiError::bad_request("invalid_value", why),
            TokenError::NotFound => ApiError::NotFound { what: "token" },
            TokenError::Sql(e) => e.into(),
        }
    }
}

impl From<NetworkError> for ApiError {
    fn from(e: NetworkError) -> Self {
        match e {
            NetworkError::Exists(what) => {
                ApiError::conflict("already_exists", format!("{what} already exists"))
            }
            NetworkError::NotFound(what) => ApiError::NotFound { what },
            NetworkError::Invalid(why) => ApiError::bad_request("invalid_value", why),
            NetworkError::Sql(e) => e.into(),
        }
    }
}
