//! Long-polls and job actions, shared by the dialects: how a request waits for a job (and is
//! counted, observed and ended by [`JobsApi::close_polls`]), and how a client's pause, resume
//! or cancel is made and refused ([`control_refusal`], the one mapping of the core's refusals).

use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use jobstate::{Condition, Job, JobError, JobId, LookupError, Request, Revision, State, Table};
use serde_json::Value;

use super::error::{ApiError, ErrorCode};
use super::observe::PollEnd;
use super::rfc3339;
use super::view::JobView;
use super::JobsApi;
use crate::engine::EngineTable;
use crate::snapshot::Snapshot;
use crate::store::{Refusal, StoreError};

/// What "changed" means for the ONTAP dialect's long-poll (`last_modified`, `revision`), as the
/// condition to wait for — or `None` when the job has changed already, or ended (a terminal
/// job never changes again), so the poll answers at once.
///
/// `revision` is exact; `last_modified` is compared as printed (whole microseconds), so a
/// client that echoes the job's own `last_modified` back is never answered early by a remainder
/// the printed form dropped; a job not modified after it has not changed since its current
/// revision. With both, the job has changed when either says so. With neither, the poll waits
/// for the job's next change.
pub(crate) fn change_after<S, const T: usize>(
    now: &Snapshot<S, T>,
    last_modified: Option<SystemTime>,
    revision: Option<u64>,
) -> Option<Condition> {
    let changed = revision.is_some_and(|r| now.revision().get() > r)
        || last_modified.is_some_and(|t| rfc3339::truncate(now.modified_at()) > t);
    if changed || now.is_terminal() {
        return None;
    }
    let since = match revision {
        Some(r) => Revision::new(r),
        None => now.revision(),
    };
    Some(Condition::ChangedSince(since))
}

/// What "changed" means for ONTAP Select Deploy's long-poll: the job's **state** changed after
/// `last_modified` (progress and messages do not count) — as the condition to wait for
/// ([`Condition::StateChangedSince`] from the job's current state revision), or `None` when
/// the state has changed already, or the job ended, so the poll answers at once.
///
/// The core records when a job started and ended, not when its state last changed, so a
/// change after `last_modified` is seen by those times (compared as printed, like
/// [`change_after`]): a start after it, or an end. A state change the job has no time for —
/// a pause, a resume (Deploy reads both as `running`), a retry's return to `queued` — that
/// happened after `last_modified` but before the poll arrived is not seen: the poll waits for
/// the next state change. Without `last_modified` the poll waits for the next state change.
pub(crate) fn state_change_after<S, const T: usize>(
    now: &Snapshot<S, T>,
    last_modified: Option<SystemTime>,
) -> Option<Condition> {
    let started_after = last_modified.is_some_and(|t| {
        now.started_at()
            .is_some_and(|started| rfc3339::truncate(started) > t)
    });
    if started_after || now.is_terminal() {
        return None;
    }
    Some(Condition::StateChangedSince(now.state_revision()))
}

/// What a `GET` of one job does: answer the job as it is, or long-poll it.
// A return value, matched at once: its size is never held across the wait.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Plan<S, const T: usize> {
    /// Answer this at once.
    Now(Result<Snapshot<S, T>, LookupError>),
    /// Wait up to the timeout for the condition.
    Poll(Condition, Duration),
}

/// The job as it is, and whether the request waits: with a `poll` timeout, for the condition
/// `decide` finds on the job (none: answer at once). Its own future (boxed by the caller), so
/// that the job's copy takes no room in the handler's future, which a held long-poll keeps for
/// its whole wait.
pub(crate) async fn plan<S, const T: usize, Tb>(
    api: &JobsApi<Tb>,
    key: &str,
    id: JobId,
    poll: Option<Duration>,
    decide: impl FnOnce(&Snapshot<S, T>) -> Option<Condition>,
) -> Result<Plan<S, T>, ApiError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    let now = api.lookup(key, id).await?;
    if let (Some(timeout), Ok(snapshot)) = (poll, &now) {
        if let Some(condition) = decide(snapshot) {
            return Ok(Plan::Poll(condition, timeout));
        }
    }
    Ok(Plan::Now(now))
}

/// Wait up to `timeout` for `condition` on job `id` (R-LONGPOLL), counted in
/// [`JobsApi::long_polls`] and reported to the observer; [`JobsApi::close_polls`] ends it
/// with the job as it is. Answers the job when the wait ended (a timeout is not an error);
/// a store that could not answer is the 503 envelope (`key` names the job as the client wrote
/// it).
pub(crate) async fn long_poll<S, const T: usize, Tb>(
    api: &JobsApi<Tb>,
    key: &str,
    id: JobId,
    condition: Condition,
    timeout: Duration,
) -> Result<Result<Snapshot<S, T>, LookupError>, ApiError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    // The lookups are boxed: this future is held for the whole wait, their states are not.
    if api.is_closing() {
        return Box::pin(api.lookup(key, id)).await;
    }
    let _in_flight = api.poll_guard();
    let wait = api.store().wait(id, condition, timeout);
    // Not a `match` on the wait's outcome with the closing lookup awaited in an arm: the
    // outcome (a job's snapshot, ~500 bytes) would then take room in this future for the
    // whole wait.
    let Some(outcome) = api.unless_closing(wait).await else {
        let found = Box::pin(api.lookup(key, id)).await;
        api.observe(|o| o.long_poll_ended(PollEnd::Closed));
        return found;
    };
    let (waited, end) = match outcome {
        Ok(w) if w.timed_out => (Ok(Ok(w.job)), PollEnd::TimedOut),
        Ok(w) => {
            let latency = SystemTime::now()
                .duration_since(w.job.modified_at())
                .unwrap_or_default();
            (Ok(Ok(w.job)), PollEnd::Woken { latency })
        }
        Err(e) => (
            api.found(key, Err(e)),
            PollEnd::Woken {
                latency: Duration::ZERO,
            },
        ),
    };
    api.observe(|o| o.long_poll_ended(end));
    waited
}

/// A client's request on a job (R-CONTROL).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Action {
    /// Pause at the worker's next checkpoint.
    Pause,
    /// Resume a paused job (or withdraw a pause not yet acted on).
    Resume,
    /// Cancel: a queued job fails at once, a running or paused one at its next checkpoint.
    Cancel,
}

/// Make a client's request on job `id` and, with a `wait`, wait up to it for the request to
/// take effect (paused, or ended for a cancel); answers the job as it is then. A refusal is
/// [`control_refusal`]'s envelope and changes nothing.
pub(crate) async fn act<S, const T: usize, Tb>(
    api: &JobsApi<Tb>,
    uuid: &str,
    id: JobId,
    action: Action,
    wait: Duration,
) -> Result<Result<Snapshot<S, T>, LookupError>, ApiError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    let request = match action {
        Action::Pause => Request::Pause,
        Action::Resume => Request::Resume,
        Action::Cancel => Request::Cancel,
    };
    // The store answers the state revision the request was made at, taken with the request: a
    // worker that acts on the request right after cannot make the wait below miss that state
    // change. A refusal describes the job as the request left it — the request itself may
    // have ended it (its deadline had passed) or queued it again (a lost lease with retries
    // left).
    let at = match api.store().request(id, request).await {
        Ok(r) => r.state_revision,
        Err(Refusal {
            error: StoreError::Job(e),
            state,
        }) => return Err(control_refusal(api, uuid, e, state)),
        Err(Refusal {
            error: StoreError::Lookup(e),
            state,
        }) => return Err(control_refusal(api, uuid, JobError::Lookup(e), state)),
        Err(Refusal { error, .. }) => return Err(api.store_error(uuid, error)),
    };
    let condition = match action {
        Action::Pause => Condition::StateChangedSince(at),
        Action::Cancel => Condition::Terminal,
        Action::Resume => return api.lookup(uuid, id).await,
    };
    if wait.is_zero() {
        return api.lookup(uuid, id).await;
    }
    match api
        .unless_closing(api.store().wait(id, condition, wait))
        .await
    {
        Some(w) => api.found(uuid, w.map(|w| w.job)),
        None => api.lookup(uuid, id).await,
    }
}

/// The envelope of a refused job action (pause, resume, cancel), for every dialect: the
/// core's typed [`JobError`], with the job's state as the refused request left it, mapped to a
/// status and ONTAP's codes — in this one place.
///
/// | refusal | status | code |
/// | --- | --- | --- |
/// | `AlreadyTerminal`, or the job's record expired (its tombstone kept) | 409 | `458762` |
/// | `NotPaused` while the job is running (resume of a running job) | 409 | `458771` |
/// | `NotRunning` (pause of a job not running), `NotPaused` otherwise (resume of a queued job) | 409 | `458776` |
/// | `NotPausable` | 409 | `458783` |
/// | `NotCancelable` | 409 | `458784` |
/// | any other state refusal | 409 | `460769` |
/// | the id leads to nothing | 404 | `4` |
pub(crate) fn control_refusal<S, const T: usize, Tb>(
    api: &JobsApi<Tb>,
    uuid: &str,
    e: JobError,
    state: Option<State>,
) -> ApiError
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    let conflict = |code, message: String| ApiError::new(StatusCode::CONFLICT, code, message);
    match e {
        JobError::Lookup(LookupError::Expired(Some(t))) => conflict(
            ErrorCode::AlreadyTerminal,
            format!("the job already ended ({})", t.state()),
        ),
        JobError::Lookup(l) => api.lookup_error(uuid, l),
        JobError::AlreadyTerminal => conflict(
            ErrorCode::AlreadyTerminal,
            format!(
                "the job already ended ({})",
                state.map_or("ended", |s| s.as_str())
            ),
        ),
        JobError::NotPaused if state == Some(State::Running) => {
            conflict(ErrorCode::JobRunning, "the job is running".to_owned())
        }
        JobError::NotPaused | JobError::NotRunning => conflict(
            ErrorCode::JobNotRunning,
            format!(
                "the job is not running ({})",
                state.map_or("not running", |s| s.as_str())
            ),
        ),
        JobError::NotPausable => conflict(ErrorCode::PauseNotSupported, e.to_string()),
        JobError::NotCancelable => conflict(ErrorCode::CancelNotSupported, e.to_string()),
        _ => conflict(ErrorCode::InvalidState, e.to_string()),
    }
    .with_target(uuid)
}

/// A job's answer in a dialect that prints a [`JobView`] as JSON: `render` prints the job (from
/// its snapshot, or its tombstone once removed) and the answer leaves once what it reports is on
/// disk (R-DURABLE); a job that is not there is the lookup error, naming `key` as the client
/// wrote it.
pub(crate) async fn view_answer<S, const T: usize, Tb>(
    api: &JobsApi<Tb>,
    key: &str,
    id: JobId,
    found: Result<Snapshot<S, T>, LookupError>,
    render: fn(&JobView<'_>) -> Value,
) -> Result<Response, ApiError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    match found {
        Ok(s) => {
            api.acknowledge(s.revision()).await?;
            Ok(Json(render(&JobView::from_snapshot(&s, api.uuids()))).into_response())
        }
        Err(LookupError::Expired(Some(t))) => {
            let clock = api.store().clock();
            let v = JobView::from_tombstone(&t, api.uuid_of(id), |i| clock.to_system_time(i));
            Ok(Json(render(&v)).into_response())
        }
        Err(e) => Err(api.lookup_error(key, e)),
    }
}
