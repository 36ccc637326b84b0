//! ONTAP Select Deploy's job dialect (`/api/v3/jobs`): the job object and Deploy's long-poll
//! (`poll_timeout` 1–120 s with `last_modified`).
//!
//! | route | what |
//! | --- | --- |
//! | `GET /api/v3/jobs` | every job, oldest first: `{"records": […], "num_records": n}` |
//! | `GET /api/v3/jobs/{job_id}` | one job; long-poll with `poll_timeout` and `last_modified` |
//!
//! The job object is the shared [`JobView`] renamed; its state is a mapping table
//! ([`state`]). A long-poll answers as Deploy's does: when the job's **state** changed after
//! `last_modified` (at once if it has, or has ended) — progress and messages do not wake it —
//! or after `poll_timeout` with the job as it is. The condition is the core's
//! [`jobstate::Condition::StateChangedSince`] (`poll::state_change_after`); the wait is the
//! shared `poll::long_poll`.

pub mod doc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jobstate::{Job, State as JobState, Table};
use serde_json::{json, Map, Value};

use super::error::{method_not_allowed, ApiError};
use super::extract::UuidSegment;
use super::params::{Args, MAX_TIMEOUT_SECS};
use super::poll::{self, Plan};
use super::view::{put_times_and_link, JobView};
use super::JobsApi;
use crate::engine::EngineTable;

/// Where the dialect serves its jobs.
pub const JOBS: &str = "/api/v3/jobs";

/// Deploy's state of a job: the mapping table of this dialect (Deploy has no paused state).
///
/// | core | `state` |
/// | --- | --- |
/// | `Queued` | `queued` |
/// | `Running`, `Paused` | `running` |
/// | `Succeeded` | `success` |
/// | `Failed` | `failure` |
pub fn state(v: &JobView<'_>) -> &'static str {
    match v.state {
        JobState::Queued => "queued",
        JobState::Running | JobState::Paused => "running",
        JobState::Succeeded => "success",
        _ => "failure",
    }
}

/// Every `state` value.
pub const STATES: [&str; 4] = ["queued", "running", "success", "failure"];

/// The job object.
pub fn job(v: &JobView<'_>) -> Value {
    let mut m = Map::new();
    let uuid = v.uuid.hyphenated().to_string();
    m.insert("id".into(), json!(uuid));
    if let Some(d) = v.description {
        m.insert("description".into(), json!(d));
    }
    m.insert("state".into(), json!(state(v)));
    m.insert("message".into(), json!(v.message));
    if let Some(c) = v.code() {
        m.insert("code".into(), json!(c));
    }
    if let Some(p) = v.progress {
        m.insert("percent_complete".into(), json!(p));
    }
    put_times_and_link(
        &mut m,
        &[
            ("create_time", v.create_time),
            ("start_time", v.start_time),
            ("end_time", v.end_time),
            ("last_modified", v.last_modified),
        ],
        format!("{JOBS}/{uuid}"),
    );
    Value::Object(m)
}

type Api<Tb> = State<JobsApi<Tb>>;

/// `GET /api/v3/jobs/{job_id}`: at once, or a long-poll.
async fn get_job<S, const T: usize, Tb>(
    State(api): Api<Tb>,
    UuidSegment(uuid): UuidSegment,
    mut args: Args,
) -> Result<Response, ApiError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    let poll = args.seconds("poll_timeout", 1..=MAX_TIMEOUT_SECS)?;
    let last_modified = args.time("last_modified")?;
    args.finish()?;
    let id = api.job_id(&uuid)?;
    // As ONTAP's `GET`: little held across the wait (see `poll::plan`).
    let decide =
        |now: &crate::snapshot::Snapshot<S, T>| poll::state_change_after(now, last_modified);
    let (condition, timeout) = match Box::pin(poll::plan(&api, &uuid, id, poll, decide)).await? {
        Plan::Now(now) => return Box::pin(poll::view_answer(&api, &uuid, id, now, job)).await,
        Plan::Poll(condition, timeout) => (condition, timeout),
    };
    let found = poll::long_poll(&api, &uuid, id, condition, timeout).await?;
    Box::pin(poll::view_answer(&api, &uuid, id, found, job)).await
}

/// `GET /api/v3/jobs`: every job, oldest first.
async fn list<S, const T: usize, Tb>(State(api): Api<Tb>, args: Args) -> Result<Response, ApiError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    args.finish()?;
    let jobs = api.list_jobs().await?;
    let newest = jobs.iter().map(|j| j.revision()).max().unwrap_or_default();
    api.acknowledge(newest).await?;
    let records: Vec<Value> = jobs
        .iter()
        .map(|s| job(&JobView::from_snapshot(s, api.uuids())))
        .collect();
    Ok(Json(json!({"num_records": records.len(), "records": records})).into_response())
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
            "/api/v3/jobs/{job_id}",
            get(get_job::<S, T, Tb>).fallback(method_not_allowed),
        )
        .with_state(api.clone())
}
