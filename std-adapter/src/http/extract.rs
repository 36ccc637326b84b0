//! Extractors whose refusals are the error envelope (axum's own answer plain text).

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::{ApiError, ErrorCode};
use super::params::{Args, MAX_TIMEOUT_SECS};

/// Path parameters (`{name}` segments) whose refusals — a segment that does not parse as
/// `T`, or is not valid percent-encoded UTF-8 — answer 400 with the envelope
/// (`target: "path"`) instead of axum's plain text.
#[derive(Clone, Copy, Debug, Default)]
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, St: Send + Sync> FromRequestParts<St> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(PathParams(v)),
            Err(e) => Err(ApiError::invalid("path", e.body_text())),
        }
    }
}

/// The `{uuid}` segment of a job path, as sent.
#[derive(Clone, Debug)]
pub(crate) struct UuidSegment(pub(crate) String);

impl<St: Send + Sync> FromRequestParts<St> for UuidSegment {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(s)) => Ok(UuidSegment(s)),
            Err(e) => Err(ApiError::invalid("uuid", e.body_text())),
        }
    }
}

/// `return_timeout` (0 to [`MAX_TIMEOUT_SECS`] s, default 0) of a service's own asynchronous
/// endpoint.
///
/// Reads only `return_timeout` from the query and leaves the endpoint's other parameters to
/// it; an out-of-range or malformed value answers 400 with the envelope.
///
/// ```
/// use jobstate_std::http::ReturnTimeout;
/// async fn create(ReturnTimeout(wait): ReturnTimeout) -> String {
///     format!("waiting up to {wait:?}")
/// }
/// # let _ = axum::routing::post::<_, _, ()>(create);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReturnTimeout(pub Duration);

impl<St: Send + Sync> FromRequestParts<St> for ReturnTimeout {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        let mut args = Args::from_request_parts(parts, state).await?;
        Ok(ReturnTimeout(
            args.seconds("return_timeout", 0..=MAX_TIMEOUT_SECS)?
                .unwrap_or_default(),
        ))
    }
}

/// A JSON request body whose refusals (wrong content type, malformed JSON, missing or
/// mistyped field) answer 400/415 with the envelope instead of axum's plain text.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequest<St> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &St) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(e) => {
                let status = match &e {
                    JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    _ if e.status().is_client_error() => e.status(),
                    _ => StatusCode::BAD_REQUEST,
                };
                Err(ApiError::new(status, ErrorCode::InvalidBody, e.body_text())
                    .with_target("body"))
            }
        }
    }
}
