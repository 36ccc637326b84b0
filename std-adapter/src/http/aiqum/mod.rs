//! Active IQ Unified Manager's job dialect (`/api/management-server/jobs`): jobs addressed by
//! `key`, the outcome as `state` (`NORMAL`, `WARNING`, `PARTIAL_FAILURES`, `ERROR`) and the
//! most recent jobs listed first.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /api/management-server/jobs` | newest first; `max_records` + `_links.next` |
//! | `GET /api/management-server/jobs/{key}` | one job; long-poll with `poll_timeout` until it ends |
//!
//! The job object is the shared [`JobView`] renamed; `state` and `status` are a mapping table
//! ([`state`], [`status`]). Unified Manager's long-poll answers once the job reached a terminal
//! state (the core's `Condition::Terminal`, success or failure alike) or after `poll_timeout`.

pub mod doc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jobstate::{Condition, Job, Outcome, Severity, State as JobState, Table};
use serde_json::{json, Map, Value};

use super::error::{method_not_allowed, ApiError};
use super::extract::UuidSegment;
use super::paging::{self, Position};
use super::params::{Args, MAX_TIMEOUT_SECS};
use super::poll::{self, Plan};
use super::view::{put_times_and_link, JobView};
use super::JobsApi;
use crate::engine::EngineTable;

/// Where the dialect serves its jobs.
pub const JOBS: &str = "/api/management-server/jobs";

/// The outcome of an ended job: the mapping table of this dialect's `state` (absent while the
/// job is live: Unified Manager's states are its terminal ones).
///
/// | core | `state` |
/// | --- | --- |
/// | `Queued`, `Running`, `Paused` | — |
/// | `Succeeded` with severity `Normal` | `NORMAL` |
/// | `Succeeded` with severity `Warning` | `WARNING` |
/// | `Succeeded` with severity `PartialFailure` | `PARTIAL_FAILURES` |
/// | `Failed` (any reason) | `ERROR` |
pub fn state(v: &JobView<'_>) -> Option<&'static str> {
    match v.outcome? {
        Outcome::Succeeded {
            severity: Severity::Warning,
        } => Some("WARNING"),
        Outcome::Succeeded {
            severity: Severity::PartialFailure,
        } => Some("PARTIAL_FAILURES"),
        Outcome::Succeeded { .. } => Some("NORMAL"),
        _ => Some("ERROR"),
    }
}

/// Where the job is in its life: `QUEUED`, `RUNNING`, `PAUSED`, `COMPLETED` (ended, however).
pub fn status(v: &JobView<'_>) -> &'static str {
    match v.state {
        JobState::Queued => "QUEUED",
        JobState::Running => "RUNNING",
        JobState::Paused => "PAUSED",
        _ => "COMPLETED",
    }
}

/// Every `state` value.
pub const STATES: [&str; 4] = ["NORMAL", "WARNING", "PARTIAL_FAILURES", "ERROR"];
/// Every `status` value.
pub const STATUSES: [&str; 4] = ["QUEUED", "RUNNING", "PAUSED", "COMPLETED"];

/// The largest `max_records`.
pub const MAX_RECORDS: u64 = 1000;

/// The job object.
pub fn job(v: &JobView<'_>) -> Value {
    let mut m = Map::new();
    let key = v.uuid.hyphenated().to_string();
    m.insert("key".into(), json!(key));
    if let Some(d) = v.description {
        m.insert("name".into(), json!(d));
    }
    if let Some(s) = state(v) {
        m.insert("state".into(), json!(s));
    }
    m.insert("status".into(), json!(status(v)));
    if let Some(p) = v.progress {
        m.insert("progress_percentage".into(), json!(p));
    }
    m.insert("message".into(), json!(v.message));
    if let Some(c) = v.code() {
        m.insert("code".into(), json!(c));
    }
    put_times_and_link(
        &mut m,
        &[
            ("submit_time", v.create_time),
            ("start_time", v.start_time),
            ("completion_time", v.end_time),
        ],
        format!("{JOBS}/{key}"),
    );
    Value::Object(m)
}

type Api<Tb> = State<JobsApi<Tb>>;

/// `GET /api/management-server/jobs/{key}`: at once, or a long-poll until it ends.
async fn get_job<S, const T: usize, Tb>(
    State(api): Api<Tb>,
    UuidSegment(key): UuidSegment,
    mut args: Args,
) -> Result<Response, ApiError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    let poll = args.seconds("poll_timeout", 1..=MAX_TIMEOUT_SECS)?;
    args.finish()?;
    let id = api.job_id(&key)?;
    // As ONTAP's `GET`: little held across the wait (see `poll::plan`).
    let decide =
        |now: &crate::snapshot::Snapshot<S, T>| (!now.is_terminal()).then_some(Condition::Terminal);
    let (condition, timeout) = match Box::pin(poll::plan(&api, &key, id, poll, decide)).await? {
        Plan::Now(now) => return Box::pin(poll::view_answer(&api, &key, id, now, job)).await,
        Plan::Poll(condition, timeout) => (condition, timeout),
    };
    let found = poll::long_poll(&api, &key, id, condition, timeout).await?;
    Box::pin(poll::view_answer(&api, &key, id, found, job)).await
}

/// `GET /api/management-server/jobs`: the most recent first.
async fn list<S, const T: usize, Tb>(
    State(api): Api<Tb>,
    mut args: Args,
) -> Result<Response, ApiError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    let max = args.number("max_records", 1..=MAX_RECORDS)?;
    let start = match args.take("start")? {
        Some(t) => Some(Position::parse(&t, false).ok_or_else(|| {
            ApiError::invalid(
                "start",
                "\"start\" is not a paging cursor; copy it from _links.next",
            )
        })?),
        None => None,
    };
    args.finish()?;
    let jobs = api.list_jobs().await?;
    let newest = jobs.iter().map(|j| j.revision()).max().unwrap_or_default();
    api.acknowledge(newest).await?;
    let total = jobs.len();
    let uuids = api.uuids();
    let max = max.map(|m| usize::try_from(m).unwrap_or(usize::MAX));
    let (page, last) = paging::page(jobs, uuids, None, true, start.as_ref(), max);
    let records: Vec<Value> = page
        .iter()
        .map(|s| job(&JobView::from_snapshot(s, uuids)))
        .collect();
    let href = |start: Option<&Position>| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(m) = max {
            q.append_pair("max_records", &m.to_string());
        }
        if let Some(p) = start {
            q.append_pair("start", &p.token(false));
        }
        let q = q.finish();
        if q.is_empty() {
            JOBS.to_owned()
        } else {
            format!("{JOBS}?{q}")
        }
    };
    let mut links = json!({"self": {"href": href(start.as_ref())}});
    if let Some(p) = &last {
        links["next"] = json!({"href": href(Some(p))});
    }
    Ok(Json(json!({
        "records": records,
        "num_records": records.len(),
        "total_records": total,
        "_links": links
    }))
    .into_response())
}

/// The dialect's routes.
pub(crate) fn router<S, const T: usize, Tb, St>(api: &JobsApi<Tb>) -> Router<St>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
    St: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(JOBS, get(list::<S, T, Tb>).fallback(method_not_allowed))
        .route(
            "/api/management-server/jobs/{key}",
            get(get_job::<S, T, Tb>).fallback(method_not_allowed),
        )
        .with_state(api.clone())
}
