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
/// endpoint — and no other query parameter.
///
/// An out-of-range or malformed value, a repeated `return_timeout`, or any other parameter
/// (`?retrun_timeout=10`) answers 400 with the envelope, so a client's typo never turns into
/// a different request. An endpoint that takes more parameters reads them all with
/// [`QueryArgs`] instead.
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
        let wait = args
            .seconds("return_timeout", 0..=MAX_TIMEOUT_SECS)?
            .unwrap_or_default();
        args.finish()?;
        Ok(ReturnTimeout(wait))
    }
}

/// An endpoint that takes no query parameter: any parameter answers 400 with the envelope
/// (`error.code` `262179`, `target` naming it).
///
/// ```
/// use jobstate_std::http::NoQuery;
/// async fn list(_: NoQuery) -> &'static str {
///     "[]"
/// }
/// # let _ = axum::routing::get::<_, _, ()>(list);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoQuery;

impl<St: Send + Sync> FromRequestParts<St> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        Args::from_request_parts(parts, state).await?.finish()?;
        Ok(NoQuery)
    }
}

/// The query parameters of a service's own endpoint, read one by one with the binding's
/// rules (a repeated name or a bad value is a 400 naming it), then [`QueryArgs::finish`]ed:
/// any parameter nobody read is a 400 too.
///
/// ```
/// use jobstate_std::http::{ApiError, QueryArgs};
/// async fn list(mut q: QueryArgs) -> Result<String, ApiError> {
///     let verbose = q.boolean("verbose")?.unwrap_or(false);
///     let wait = q.seconds("return_timeout", 0..=120)?;
///     q.finish()?;
///     Ok(format!("{verbose} {wait:?}"))
/// }
/// # let _ = axum::routing::get::<_, _, ()>(list);
/// ```
#[derive(Debug, Default)]
pub struct QueryArgs(Args);

impl<St: Send + Sync> FromRequestParts<St> for QueryArgs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        Ok(QueryArgs(Args::from_request_parts(parts, state).await?))
    }
}

impl QueryArgs {
    /// The parameters of a query string (`a=1&b=2`).
    pub fn parse(query: &str) -> Self {
        QueryArgs(Args::parse(query))
    }

    /// Take the text of `name`.
    pub fn take(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        self.0.take(name)
    }

    /// Take `name` as a decimal integer in `range`.
    pub fn number(
        &mut self,
        name: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<u64>, ApiError> {
        self.0.number(name, range)
    }

    /// Take `name` as whole seconds in `range`.
    pub fn seconds(
        &mut self,
        name: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<Duration>, ApiError> {
        self.0.seconds(name, range)
    }

    /// Take `name` as `true` or `false`.
    pub fn boolean(&mut self, name: &str) -> Result<Option<bool>, ApiError> {
        self.0.boolean(name)
    }

    /// 400 naming the first parameter nobody took.
    pub fn finish(self) -> Result<(), ApiError> {
        self.0.finish()
    }
}

/// A JSON request body whose refusals answer with the envelope instead of axum's plain text:
/// 415 for a content type other than JSON, 400 for malformed JSON, 422 for a missing,
/// mistyped or unknown field (with `#[serde(deny_unknown_fields)]`), 413 (`error.code`
/// `460777`) for a body over the router's `DefaultBodyLimit`.
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
                let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    ErrorCode::PayloadTooLarge
                } else {
                    ErrorCode::InvalidBody
                };
                Err(ApiError::new(status, code, e.body_text()).with_target("body"))
            }
        }
    }
}

/// The longest idempotency key the binding takes (OCI's limit for `opc-retry-token`).
pub const MAX_KEY_LEN: usize = 64;

fn key_header(parts: &Parts, name: &str) -> Result<Option<Vec<u8>>, ApiError> {
    let mut values = parts.headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::invalid(
            name,
            format!("\"{name}\" is given more than once"),
        ));
    }
    let bytes = value.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_KEY_LEN
        || !bytes.iter().all(|b| (0x21..=0x7e).contains(b))
    {
        return Err(ApiError::invalid(
            name,
            format!("\"{name}\" must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
        ));
    }
    Ok(Some(bytes.to_vec()))
}

/// The `Idempotency-Key` header of a service's own asynchronous endpoint (R-IDEMPOTENT; the
/// IETF draft's name): 1 to [`MAX_KEY_LEN`] visible ASCII characters, or absent. A malformed
/// or repeated header answers 400 with the envelope (`target: "Idempotency-Key"`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdempotencyKey(pub Option<Vec<u8>>);

impl IdempotencyKey {
    /// The header's name.
    pub const HEADER: &'static str = "Idempotency-Key";
}

impl<St: Send + Sync> FromRequestParts<St> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        key_header(parts, Self::HEADER).map(IdempotencyKey)
    }
}

/// OCI's `opc-retry-token` header (R-IDEMPOTENT): 1 to [`MAX_KEY_LEN`] visible ASCII
/// characters, or absent; refusals as [`IdempotencyKey`]'s.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryToken(pub Option<Vec<u8>>);

impl RetryToken {
    /// The header's name.
    pub const HEADER: &'static str = "opc-retry-token";
}

impl<St: Send + Sync> FromRequestParts<St> for RetryToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        key_header(parts, Self::HEADER).map(RetryToken)
    }
}
