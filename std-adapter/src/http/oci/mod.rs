//! Oracle Cloud's work-request dialect (network load balancer API, version `20200501`): jobs as
//! work requests under `/20200501/workRequests`, for the `oci` SDK's
//! `NetworkLoadBalancerClient` (`get_work_request`, `list_work_requests`,
//! `list_work_request_errors`, `list_work_request_logs`) and OCI's `CancelWorkRequest` shape.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /20200501/workRequests?compartmentId=…&limit=…&page=…` | newest first; `opc-next-page` leads on |
//! | `GET /20200501/workRequests/{workRequestId}` | one work request |
//! | `GET /20200501/workRequests/{workRequestId}/errors` | its errors (a failed job's outcome), from the journal |
//! | `GET /20200501/workRequests/{workRequestId}/logs` | its log: the journal's events of the job |
//! | `DELETE /20200501/workRequests/{workRequestId}` | cancel (202; `CANCELING` until the worker acts, then `CANCELED`) |
//!
//! The work request is the shared [`JobView`] renamed; its status is a mapping table
//! ([`status`]). What the job *is* — `operationType` and `resources[]` — only the service knows:
//! it says so with [`JobsApi::with_work_requests`]. Refusals are OCI's error body
//! `{"code": "NotAuthorizedOrNotFound", "message": …}` ([`OciError`]) with `opc-request-id`.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jobstate::{EventKind, Job, JobId, LookupError, State as JobState, Table};
use serde::Serialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::UuidSegment;
use super::paging::{self, Position};
use super::params::Args;
use super::poll::{self, Action};
use super::rfc3339::Rfc3339;
use super::view::{self, JobView};
use super::JobsApi;
use crate::engine::EngineTable;
use crate::snapshot::Snapshot;

/// The API version the paths start with.
pub const PREFIX: &str = "/20200501";

/// The largest `limit`.
pub const MAX_LIMIT: u64 = 1000;

/// The `limit` when none is given.
pub const DEFAULT_LIMIT: u64 = 100;

/// The compartment the binding's work requests belong to unless the service says otherwise.
pub const DEFAULT_COMPARTMENT: &str = "ocid1.compartment.oc1..jobstate";

/// One resource a work request acts on (`resources[]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// What kind of resource (`backendset`, `backend`).
    pub entity_type: String,
    /// What the work request does to it once it succeeded: `CREATED`, `UPDATED`, `DELETED`
    /// (while it is live the binding prints `IN_PROGRESS`, after a failure `RELATED`).
    pub action_type: &'static str,
    /// Its identifier.
    pub identifier: String,
    /// Where it is served.
    pub entity_uri: String,
}

/// What a job is, as a work request says it: `operationType` and `resources[]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// `operationType` (the NLB API's names: `CREATE_BACKENDSET`, `DELETE_BACKEND`, …).
    pub operation_type: Cow<'static, str>,
    /// The resources it acts on.
    pub resources: Vec<Resource>,
}

impl Default for Operation {
    fn default() -> Self {
        Operation {
            operation_type: Cow::Borrowed("JOB"),
            resources: Vec::new(),
        }
    }
}

/// How the service describes its jobs as work requests.
pub(crate) struct WorkRequests<S> {
    pub(crate) compartment: String,
    pub(crate) describe: Arc<dyn Fn(&S) -> Operation + Send + Sync>,
}

impl<S> Clone for WorkRequests<S> {
    fn clone(&self) -> Self {
        Self {
            compartment: self.compartment.clone(),
            describe: self.describe.clone(),
        }
    }
}

impl<S> Default for WorkRequests<S> {
    fn default() -> Self {
        Self {
            compartment: DEFAULT_COMPARTMENT.to_owned(),
            describe: Arc::new(|_| Operation::default()),
        }
    }
}

/// The status of a work request: the state mapping table of this dialect.
///
/// | core | `status` |
/// | --- | --- |
/// | `Queued` | `ACCEPTED` |
/// | `Running`, `Paused` | `IN_PROGRESS`; `CANCELING` once a cancel is asked for |
/// | `Succeeded` (any severity) | `SUCCEEDED` |
/// | `Failed` with reason `Canceled` | `CANCELED` |
/// | `Failed`, any other reason | `FAILED` |
pub fn status(v: &JobView<'_>) -> &'static str {
    match v.state {
        JobState::Queued => "ACCEPTED",
        JobState::Running | JobState::Paused if v.cancel_requested => "CANCELING",
        JobState::Running | JobState::Paused => "IN_PROGRESS",
        JobState::Succeeded => "SUCCEEDED",
        JobState::Failed if v.canceled() => "CANCELED",
        _ => "FAILED",
    }
}

/// Every `status` value.
pub const STATUSES: [&str; 6] = [
    "ACCEPTED",
    "IN_PROGRESS",
    "CANCELING",
    "SUCCEEDED",
    "CANCELED",
    "FAILED",
];

/// A work request (and a work request summary: the same fields).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkRequest {
    id: String,
    operation_type: Cow<'static, str>,
    status: &'static str,
    compartment_id: String,
    resources: Vec<Resource>,
    percent_complete: f64,
    time_accepted: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_started: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_finished: Option<String>,
}

fn time(t: SystemTime) -> String {
    Rfc3339(t).to_string()
}

fn work_request<S>(v: &JobView<'_>, spec: Option<&S>, wr: &WorkRequests<S>) -> WorkRequest {
    let op = spec.map(|s| (wr.describe)(s)).unwrap_or_default();
    let action = |done: &'static str| match v.state {
        JobState::Succeeded => done,
        JobState::Failed => "RELATED",
        _ => "IN_PROGRESS",
    };
    let resources = op
        .resources
        .into_iter()
        .map(|r| Resource {
            action_type: action(r.action_type),
            ..r
        })
        .collect();
    let percent = match (v.progress, v.state) {
        (_, JobState::Succeeded) => 100.0,
        (Some(p), _) => f64::from(p),
        (None, _) => 0.0,
    };
    let accepted = v
        .create_time
        .or(v.end_time)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    WorkRequest {
        id: v.uuid.hyphenated().to_string(),
        operation_type: op.operation_type,
        status: status(v),
        compartment_id: wr.compartment.clone(),
        resources,
        percent_complete: percent,
        time_accepted: time(accepted),
        time_started: v.start_time.map(time),
        time_finished: v.end_time.filter(|_| v.is_terminal()).map(time),
    }
}

// ----- errors --------------------------------------------------------------------------------

/// A refusal in OCI's shape: `{"code": …, "message": …}`, with `opc-request-id`. Made from
/// the binding's [`ApiError`] (same status; a 422 — a body that is JSON but not the expected
/// object — is OCI's 400 `InvalidParameter`).
#[derive(Debug)]
pub struct OciError {
    error: ApiError,
    request_id: Option<String>,
}

impl OciError {
    /// With this `opc-request-id`.
    pub fn with_request_id(mut self, id: &OpcRequestId) -> Self {
        self.request_id = Some(id.0.clone());
        self
    }

    /// OCI's `code` for a status.
    pub fn code_of(status: StatusCode) -> &'static str {
        match status.as_u16() {
            400 | 414 | 422 | 431 => "InvalidParameter",
            401 => "NotAuthenticated",
            403 | 404 => "NotAuthorizedOrNotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            413 => "RequestEntityTooLarge",
            415 => "UnsupportedMediaType",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            _ => "InternalServerError",
        }
    }
}

impl From<ApiError> for OciError {
    fn from(error: ApiError) -> Self {
        OciError {
            error,
            request_id: None,
        }
    }
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let status = match self.error.status() {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            s => s,
        };
        let mut message = self.error.message().to_owned();
        if let Some(t) = self.error.target() {
            message = format!("{message} ({t})");
        }
        let body = json!({"code": Self::code_of(status), "message": message});
        let mut r = (status, Json(body)).into_response();
        if let Some(secs) = self.error.retry_after() {
            r.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(id) = self.request_id.and_then(|i| HeaderValue::try_from(i).ok()) {
            r.headers_mut().insert(OPC_REQUEST_ID.clone(), id);
        }
        r
    }
}

/// Method fallback for OCI paths: 405 in OCI's shape, with `opc-request-id` (axum still sets
/// `Allow`).
pub async fn method_not_allowed(request: Result<OpcRequestId, OciError>) -> OciError {
    let e = OciError::from(ApiError::method_not_allowed());
    match request {
        Ok(id) => e.with_request_id(&id),
        Err(_) => e,
    }
}

/// `opc-request-id`.
pub static OPC_REQUEST_ID: HeaderName = HeaderName::from_static("opc-request-id");
/// `opc-work-request-id`.
pub static OPC_WORK_REQUEST_ID: HeaderName = HeaderName::from_static("opc-work-request-id");
/// `opc-next-page`.
pub static OPC_NEXT_PAGE: HeaderName = HeaderName::from_static("opc-next-page");

/// The request's `opc-request-id` (1–98 visible ASCII characters), or one the binding makes;
/// every OCI answer carries it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpcRequestId(pub String);

impl<St: Send + Sync> FromRequestParts<St> for OpcRequestId {
    type Rejection = OciError;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        match parts.headers.get(&OPC_REQUEST_ID) {
            None => {
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                let t = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_micros();
                Ok(OpcRequestId(format!("{t:X}/{n:X}")))
            }
            Some(v)
                if !v.is_empty()
                    && v.len() <= 98
                    && v.as_bytes().iter().all(|b| (0x21..=0x7e).contains(b)) =>
            {
                Ok(OpcRequestId(
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                ))
            }
            Some(_) => Err(ApiError::invalid(
                "opc-request-id",
                "\"opc-request-id\" must be 1 to 98 visible ASCII characters",
            )
            .into()),
        }
    }
}

/// Headers of an OCI answer: `opc-request-id`, and more.
fn headers(id: &OpcRequestId) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::try_from(id.0.as_str()) {
        h.insert(OPC_REQUEST_ID.clone(), v);
    }
    h
}

/// The answer of a mutating call that started job `id`: `202 Accepted`, no body,
/// `opc-work-request-id` and `opc-request-id` — what the SDK's `create_backend_set` and
/// friends read. It leaves once the job is on disk (R-DURABLE), and counts as a submit for
/// the observer.
pub async fn accepted<S, const T: usize, Tb>(
    api: &JobsApi<Tb>,
    id: JobId,
    request: &OpcRequestId,
) -> Result<Response, OciError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    api.observe(|o| o.submitted());
    answer_accepted(api, id, request).await
}

/// The answer of a mutating call whose `opc-retry-token` named job `id`, started by an earlier
/// call (R-IDEMPOTENT): as [`accepted`], but it counts as a replay for the observer
/// ([`super::ApiObserver::replayed`]), not as a submit.
pub async fn accepted_again<S, const T: usize, Tb>(
    api: &JobsApi<Tb>,
    id: JobId,
    request: &OpcRequestId,
) -> Result<Response, OciError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    api.observe(|o| o.replayed());
    answer_accepted(api, id, request).await
}

async fn answer_accepted<S, const T: usize, Tb>(
    api: &JobsApi<Tb>,
    id: JobId,
    request: &OpcRequestId,
) -> Result<Response, OciError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    let fail = |e: ApiError| OciError::from(e).with_request_id(request);
    let key = api.uuid_of(id).hyphenated().to_string();
    let revision = match api.lookup(&key, id).await.map_err(fail)? {
        Ok(s) => s.revision(),
        Err(_) => api
            .store()
            .revision()
            .await
            .map_err(|e| fail(api.store_error(&key, e)))?,
    };
    api.acknowledge(revision).await.map_err(fail)?;
    let mut h = headers(request);
    if let Ok(v) = HeaderValue::try_from(api.uuid_of(id).hyphenated().to_string()) {
        h.insert(OPC_WORK_REQUEST_ID.clone(), v);
    }
    Ok((StatusCode::ACCEPTED, h).into_response())
}

// ----- handlers ------------------------------------------------------------------------------

type Api<Tb> = State<JobsApi<Tb>>;

/// `compartmentId` (required), `limit` and `page` of a list.
struct ListArgs {
    compartment: String,
    limit: usize,
    page: Option<String>,
}

fn list_args(args: &mut Args, max: u64) -> Result<ListArgs, ApiError> {
    let compartment = args
        .take("compartmentId")?
        .ok_or_else(|| ApiError::invalid("compartmentId", "\"compartmentId\" is required"))?;
    if compartment.is_empty() {
        return Err(ApiError::invalid(
            "compartmentId",
            "\"compartmentId\" must not be empty",
        ));
    }
    let limit = args.number("limit", 1..=max)?.unwrap_or(DEFAULT_LIMIT);
    let page = args.take("page")?;
    Ok(ListArgs {
        compartment,
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
        page,
    })
}

fn bad_page() -> ApiError {
    ApiError::invalid(
        "page",
        "\"page\" is not a page token; copy it from opc-next-page",
    )
}

/// The job a work request id names, in OCI's terms.
fn job<S, const T: usize, Tb>(api: &JobsApi<Tb>, uuid: &str) -> Result<JobId, ApiError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    api.job_id(uuid)
}

/// `GET /20200501/workRequests`: newest first, `limit` per page, `opc-next-page`.
async fn list<S, const T: usize, Tb>(
    State(api): Api<Tb>,
    request: OpcRequestId,
    mut args: Args,
) -> Result<Response, OciError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    let fail = |e: ApiError| OciError::from(e).with_request_id(&request);
    let l = list_args(&mut args, MAX_LIMIT).map_err(fail)?;
    args.finish().map_err(fail)?;
    let start = match &l.page {
        Some(t) => Some(Position::parse(t, false).ok_or_else(|| fail(bad_page()))?),
        None => None,
    };
    let wr = api.inner.work_requests.clone();
    let jobs = if l.compartment == wr.compartment {
        api.list_jobs().await.map_err(fail)?
    } else {
        Vec::new()
    };
    let newest = jobs.iter().map(|j| j.revision()).max().unwrap_or_default();
    api.acknowledge(newest).await.map_err(fail)?;
    let uuids = api.uuids();
    let (page, next) = paging::page(jobs, uuids, None, true, start.as_ref(), Some(l.limit));
    let items: Vec<WorkRequest> = page
        .iter()
        .map(|s| work_request(&JobView::from_snapshot(s, uuids), Some(s.spec()), &wr))
        .collect();
    let mut h = headers(&request);
    if let Some(v) = next.and_then(|p| HeaderValue::try_from(p.token(false)).ok()) {
        h.insert(OPC_NEXT_PAGE.clone(), v);
    }
    Ok((h, Json(json!({ "items": items }))).into_response())
}

/// The job behind a work request: its snapshot, or the tombstone's view.
enum Found<S, const T: usize> {
    Job(Box<Snapshot<S, T>>),
    Gone(jobstate::Tombstone),
}

async fn find<S, const T: usize, Tb>(
    api: &JobsApi<Tb>,
    uuid: &str,
) -> Result<(JobId, Found<S, T>), ApiError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    let id = job(api, uuid)?;
    match api.lookup(uuid, id).await? {
        Ok(s) => {
            api.acknowledge(s.revision()).await?;
            Ok((id, Found::Job(Box::new(s))))
        }
        Err(LookupError::Expired(Some(t))) => Ok((id, Found::Gone(t))),
        Err(e) => Err(api.lookup_error(uuid, e)),
    }
}

fn view_of<'a, S, const T: usize, Tb>(
    api: &JobsApi<Tb>,
    id: JobId,
    found: &'a Found<S, T>,
) -> JobView<'a>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    match found {
        Found::Job(s) => JobView::from_snapshot(s, api.uuids()),
        Found::Gone(t) => {
            let clock = api.store().clock();
            JobView::from_tombstone(t, api.uuid_of(id), |i| clock.to_system_time(i))
        }
    }
}

/// `GET /20200501/workRequests/{workRequestId}`.
async fn get_one<S, const T: usize, Tb>(
    State(api): Api<Tb>,
    request: OpcRequestId,
    UuidSegment(uuid): UuidSegment,
    args: Args,
) -> Result<Response, OciError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    let fail = |e: ApiError| OciError::from(e).with_request_id(&request);
    args.finish().map_err(fail)?;
    let (id, found) = find(&api, &uuid).await.map_err(fail)?;
    let spec = match &found {
        Found::Job(s) => Some(s.spec()),
        Found::Gone(_) => None,
    };
    let body = work_request(&view_of(&api, id, &found), spec, &api.inner.work_requests);
    Ok((headers(&request), Json(body)).into_response())
}

/// `DELETE /20200501/workRequests/{workRequestId}`: cancel (R-CONTROL). 202; a refusal is
/// 409 (`Conflict`: the job already ended, or cannot be canceled).
async fn cancel<S, const T: usize, Tb>(
    State(api): Api<Tb>,
    request: OpcRequestId,
    UuidSegment(uuid): UuidSegment,
    args: Args,
) -> Result<Response, OciError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    let fail = |e: ApiError| OciError::from(e).with_request_id(&request);
    args.finish().map_err(fail)?;
    let id = job(&api, &uuid).map_err(fail)?;
    let now = poll::act(&api, &uuid, id, Action::Cancel, Duration::ZERO)
        .await
        .map_err(fail)?;
    if let Ok(s) = &now {
        api.acknowledge(s.revision()).await.map_err(fail)?;
    }
    Ok((StatusCode::ACCEPTED, headers(&request)).into_response())
}

/// One entry of a work request's log or errors, with the revision it came from (the page
/// token).
struct Line {
    revision: u64,
    body: Value,
}

/// A page of entries after `page` (a revision), at most `limit`.
fn line_page(
    lines: Vec<Line>,
    page: Option<&str>,
    limit: usize,
) -> Result<(Vec<Value>, Option<String>), ApiError> {
    let after = match page {
        Some(p) => Some(p.parse::<u64>().map_err(|_| bad_page())?),
        None => None,
    };
    let rest: Vec<Line> = lines
        .into_iter()
        .filter(|l| after.is_none_or(|a| l.revision > a))
        .collect();
    let next = (rest.len() > limit)
        .then(|| {
            rest.get(limit.saturating_sub(1))
                .map(|l| l.revision.to_string())
        })
        .flatten();
    Ok((rest.into_iter().take(limit).map(|l| l.body).collect(), next))
}

/// A job's log from the journal: one line per event, oldest first. The journal records
/// revisions, not times: an entry's timestamp is the job's submit, start or end time for
/// those events, and otherwise the latest of those before it.
fn log_lines(v: &JobView<'_>, history: &view::History) -> Vec<Line> {
    let mut out = Vec::new();
    let mut at = v
        .create_time
        .or(v.end_time)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    if !history.complete {
        let first = history.entries.first().map_or(0, |e| e.revision.get());
        out.push(Line {
            revision: first.saturating_sub(1),
            body: json!({"message": "earlier entries are no longer kept (the journal holds the latest events, and none from before a restart)",
                         "timestamp": time(at)}),
        });
    }
    for e in &history.entries {
        let message = match e.kind {
            EventKind::Submitted => format!("accepted: {}", v.description.unwrap_or("")),
            EventKind::StateChanged { from, to } => {
                at = match to {
                    JobState::Running if from == JobState::Queued => v.start_time.unwrap_or(at),
                    s if s.is_terminal() => v.end_time.unwrap_or(at),
                    _ => at,
                };
                format!("{} -> {}", from.as_str(), to.as_str())
            }
            EventKind::Progress { percent } => format!("progress {percent}%"),
            EventKind::Requested(r) => format!("{r:?} requested").to_lowercase(),
            EventKind::Log => e
                .line
                .clone()
                .unwrap_or_else(|| "(log line no longer kept)".to_owned()),
            EventKind::Removed => "record removed".to_owned(),
            EventKind::Restored => "restored after a restart".to_owned(),
            EventKind::Ready => "ready to retry".to_owned(),
            _ => "event".to_owned(),
        };
        out.push(Line {
            revision: e.revision.get(),
            body: json!({"message": message, "timestamp": time(at)}),
        });
    }
    out
}

/// A job's errors: its failure (code and message), once it failed — a cancel is no error.
/// Its revision is the journal's failure event, or the job's last revision when the journal
/// no longer holds it.
fn error_lines(v: &JobView<'_>, history: &view::History) -> Vec<Line> {
    if v.state != JobState::Failed || v.canceled() {
        return Vec::new();
    }
    let revision = history
        .entries
        .iter()
        .find(|e| {
            matches!(
                e.kind,
                EventKind::StateChanged {
                    to: JobState::Failed,
                    ..
                }
            )
        })
        .map(|e| e.revision.get())
        .or(v.revision)
        .unwrap_or(0);
    let at = v.end_time.unwrap_or(SystemTime::UNIX_EPOCH);
    vec![Line {
        revision,
        body: json!({"code": v.code().unwrap_or(0).to_string(), "message": v.message, "timestamp": time(at)}),
    }]
}

/// `GET …/{workRequestId}/logs` and `…/errors`.
async fn sub<S, const T: usize, Tb>(
    api: JobsApi<Tb>,
    request: OpcRequestId,
    uuid: String,
    mut args: Args,
    errors: bool,
) -> Result<Response, OciError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    let fail = |e: ApiError| OciError::from(e).with_request_id(&request);
    let l = list_args(&mut args, MAX_LIMIT).map_err(fail)?;
    args.finish().map_err(fail)?;
    let (id, found) = find(&api, &uuid).await.map_err(fail)?;
    if l.compartment != api.inner.work_requests.compartment {
        return Err(fail(api.lookup_error(&uuid, LookupError::NotFound)));
    }
    let v = view_of(&api, id, &found);
    let history = match found {
        Found::Job(_) => api
            .store()
            .history(id)
            .await
            .map_err(|e| fail(api.store_error(&uuid, e)))?,
        Found::Gone(_) => view::History::default(),
    };
    let lines = if errors {
        error_lines(&v, &history)
    } else {
        log_lines(&v, &history)
    };
    let (items, next) = line_page(lines, l.page.as_deref(), l.limit).map_err(fail)?;
    let mut h = headers(&request);
    if let Some(v) = next.and_then(|n| HeaderValue::try_from(n).ok()) {
        h.insert(OPC_NEXT_PAGE.clone(), v);
    }
    Ok((h, Json(json!({ "items": items }))).into_response())
}

async fn logs<S, const T: usize, Tb>(
    State(api): Api<Tb>,
    request: OpcRequestId,
    UuidSegment(uuid): UuidSegment,
    args: Args,
) -> Result<Response, OciError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    sub(api, request, uuid, args, false).await
}

async fn errors<S, const T: usize, Tb>(
    State(api): Api<Tb>,
    request: OpcRequestId,
    UuidSegment(uuid): UuidSegment,
    args: Args,
) -> Result<Response, OciError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    sub(api, request, uuid, args, true).await
}

pub mod doc;

/// The dialect's routes.
pub(crate) fn router<S, const T: usize, Tb, St>(api: &JobsApi<Tb>) -> Router<St>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
    St: Clone + Send + Sync + 'static,
{
    let m = || method_not_allowed;
    Router::new()
        .route(
            "/20200501/workRequests",
            get(list::<S, T, Tb>).fallback(m()),
        )
        .route(
            "/20200501/workRequests/{workRequestId}",
            get(get_one::<S, T, Tb>)
                .delete(cancel::<S, T, Tb>)
                .fallback(m()),
        )
        .route(
            "/20200501/workRequests/{workRequestId}/errors",
            get(errors::<S, T, Tb>).fallback(m()),
        )
        .route(
            "/20200501/workRequests/{workRequestId}/logs",
            get(logs::<S, T, Tb>).fallback(m()),
        )
        .with_state(api.clone())
}
