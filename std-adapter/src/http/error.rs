//! The error envelope: `{"error":{"code":"…","message":"…","target":"…"}}`.
//!
//! Every refusal of the binding is an [`ApiError`]: a status (400, 404, 405, 409, 503…), a
//! stable [`ErrorCode`], a message for people and, where it helps, the `target` — the
//! parameter or path segment at fault. A caller's mistake is always 4xx.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::ontap::wire::JobLink;

/// The stable `error.code` values of the binding (strings, as ONTAP prints them).
///
/// | code | status | meaning |
/// | --- | --- | --- |
/// | `4` | 404 | no such job (never issued here, expired without a kept outcome, or from before a restart) |
/// | `262179` | 400 | unexpected query parameter |
/// | `262185` | 400 | invalid value for a query parameter or a path segment |
/// | `262186` | 400 | malformed request body |
/// | `458762` | 409 | a job action on a job that already ended (ONTAP's code) |
/// | `458771` | 409 | resume of a job that is running (ONTAP's code) |
/// | `458776` | 409 | pause or resume of a job that is not running (ONTAP's code) |
/// | `458783` | 409 | pause of a job that cannot be paused (ONTAP's code) |
/// | `458784` | 409 | cancel of a job that cannot be canceled (ONTAP's code) |
/// | `460769` | 409 | the object's state refuses the request (a service's own conflicts) |
/// | `460770` | 409 | the job declared it cannot be paused or canceled (no longer used by the job actions) |
/// | `460771` | 400 | the submitted job was refused (text too long, bad dependencies…) |
/// | `460772` | 503 | the job table is full (see `Retry-After`) |
/// | `460773` | 405 | method not allowed on this path |
/// | `460774` | 404 | no such path |
/// | `460775` | 401 | no credentials, or wrong ones (with `WWW-Authenticate`) |
/// | `460776` | 403 | the user's role does not allow the request (a read-only user's write) |
/// | `460777` | 413 | the request body is larger than the service takes |
/// | `460778` | 414 | the request target (path and query) is too long |
/// | `460779` | 431 | the request's header fields are too large or too many |
/// | `460780` | 503 | the service is at its connection cap or shutting down, a change could not be saved, or the job store could not be reached (see `Retry-After`) |
/// | `460781` | 409 | an idempotency key already names a job of another request |
/// | `460782` | 503 | no room for another idempotency key (see `Retry-After`) |
/// | the job's own code | 400 | a job that ended within `return_timeout` failed |
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum ErrorCode {
    /// No such job.
    NotFound,
    /// Unexpected query parameter.
    UnexpectedArgument,
    /// Invalid value.
    InvalidValue,
    /// Malformed body.
    InvalidBody,
    /// The job's state refuses the action.
    InvalidState,
    /// The job refuses the action by its options.
    NotAllowed,
    /// The job was refused at submit.
    SubmitRefused,
    /// The job table is full.
    TableFull,
    /// Method not allowed.
    MethodNotAllowed,
    /// No such path.
    NoRoute,
    /// No credentials, or wrong ones.
    Unauthorized,
    /// The user's role does not allow the request.
    Forbidden,
    /// The request body is too large.
    PayloadTooLarge,
    /// The request target is too long.
    UriTooLong,
    /// The header fields are too large or too many.
    HeadersTooLarge,
    /// At the connection cap, shutting down, a change not saved, or the job store not reached.
    Unavailable,
    /// A job action on a job that already ended (ONTAP 458762).
    AlreadyTerminal,
    /// Resume of a running job (ONTAP 458771).
    JobRunning,
    /// Pause or resume of a job that is not running (ONTAP 458776).
    JobNotRunning,
    /// Pause of a job that cannot be paused (ONTAP 458783).
    PauseNotSupported,
    /// Cancel of a job that cannot be canceled (ONTAP 458784).
    CancelNotSupported,
    /// The idempotency key names a job of another request (R-IDEMPOTENT).
    KeyConflict,
    /// No room for another idempotency key.
    KeysFull,
}

impl ErrorCode {
    /// The code as printed in `error.code`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "4",
            ErrorCode::UnexpectedArgument => "262179",
            ErrorCode::InvalidValue => "262185",
            ErrorCode::InvalidBody => "262186",
            ErrorCode::InvalidState => "460769",
            ErrorCode::NotAllowed => "460770",
            ErrorCode::SubmitRefused => "460771",
            ErrorCode::TableFull => "460772",
            ErrorCode::MethodNotAllowed => "460773",
            ErrorCode::NoRoute => "460774",
            ErrorCode::Unauthorized => "460775",
            ErrorCode::Forbidden => "460776",
            ErrorCode::PayloadTooLarge => "460777",
            ErrorCode::UriTooLong => "460778",
            ErrorCode::HeadersTooLarge => "460779",
            ErrorCode::Unavailable => "460780",
            ErrorCode::AlreadyTerminal => "458762",
            ErrorCode::JobRunning => "458771",
            ErrorCode::JobNotRunning => "458776",
            ErrorCode::PauseNotSupported => "458783",
            ErrorCode::CancelNotSupported => "458784",
            ErrorCode::KeyConflict => "460781",
            ErrorCode::KeysFull => "460782",
        }
    }
}

/// A refusal, rendered as the error envelope (with `Retry-After` on a 503 that has one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError(Box<Parts>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Parts {
    status: StatusCode,
    code: String,
    message: String,
    target: Option<String>,
    retry_after: Option<u64>,
    job: Option<JobLink>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self(Box::new(Parts {
            status,
            code: code.as_str().to_owned(),
            message: message.into(),
            target: None,
            retry_after: None,
            job: None,
        }))
    }

    /// Name the parameter or field at fault (`error.target`).
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.0.target = Some(target.into());
        self
    }

    /// Print this `error.code` instead (a failed job's own code).
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.0.code = code.into();
        self
    }

    /// Send `Retry-After: secs`.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.0.retry_after = Some(secs);
        self
    }

    /// Print the link of the job the error is about beside the error (`"job": {…}`).
    pub fn with_job(mut self, job: JobLink) -> Self {
        self.0.job = Some(job);
        self
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// `error.code`.
    pub fn code(&self) -> &str {
        &self.0.code
    }

    /// `error.message`.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// `error.target`.
    pub fn target(&self) -> Option<&str> {
        self.0.target.as_deref()
    }

    /// `Retry-After` seconds.
    pub fn retry_after(&self) -> Option<u64> {
        self.0.retry_after
    }

    /// 400: a parameter's value is invalid.
    pub fn invalid(target: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidValue, message).with_target(target)
    }

    /// 400: a parameter nobody asked for.
    pub fn unexpected(target: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::UnexpectedArgument,
            format!("unexpected argument \"{target}\""),
        )
        .with_target(target)
    }

    /// 404: no such job.
    pub fn not_found(uuid: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message).with_target(uuid)
    }

    /// 404 for a path no route serves.
    pub fn no_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NoRoute, "no such path")
    }

    /// 405 for a method a path does not serve.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            "method not allowed on this path",
        )
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    job: Option<&'a JobLink>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let p = &self.0;
        let body = Envelope {
            error: Body {
                code: &p.code,
                message: &p.message,
                target: p.target.as_deref(),
            },
            job: p.job.as_ref(),
        };
        let mut response = (p.status, axum::Json(body)).into_response();
        if let Some(secs) = p.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.0.status.as_u16(),
            self.0.code,
            self.0.message
        )
    }
}

impl std::error::Error for ApiError {}

/// Router fallback answering 404 with the envelope (axum's own is an empty body): add it
/// with `Router::fallback` to the service's router.
pub async fn fallback() -> ApiError {
    ApiError::no_route()
}

/// Method fallback answering 405 with the envelope (axum's own is an empty body): add it to
/// each of the service's own routes with `MethodRouter::fallback`, as the binding does to its
/// own. axum still sets the `Allow` header listing the methods the path serves.
///
/// ```
/// use axum::routing::post;
/// use jobstate_std::http::method_not_allowed;
/// let route = post(|| async { "created" }).fallback(method_not_allowed);
/// # let _: axum::routing::MethodRouter<()> = route;
/// ```
pub async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
