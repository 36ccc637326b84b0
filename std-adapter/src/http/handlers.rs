//! The route handlers of the binding.

use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use jobstate::{Condition, Job, JobError, JobId, LookupError, Revision, Table};

use super::error::{ApiError, ErrorCode};
use super::extract::{NoQuery, UuidSegment};
use super::observe::PollEnd;
use super::params::{parse_fields, parse_states, Args, MAX_TIMEOUT_SECS};
use super::rfc3339;
use super::wire::{Fields, Href, Page, PageLinks, Record};
use super::JobsApi;
use crate::engine::EngineTable;
use crate::error::WaitError;
use crate::snapshot::Snapshot;

type Api<Tb> = State<JobsApi<Tb>>;

/// The answer for a job that exists or existed: its record, or its tombstone's.
/// The answer with the job (or its tombstone). With a store, it leaves only once the change it
/// reports is on disk (R-DURABLE): a client is never told about a state a crash could undo.
async fn answer<S, const T: usize, Tb>(
    api: &JobsApi<Tb>,
    uuid: &str,
    id: JobId,
    found: Result<Snapshot<S, T>, LookupError>,
    fields: Fields,
) -> Response
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    if let Ok(snapshot) = &found {
        if let Err(e) = api.acknowledge(snapshot.revision()).await {
            return e.into_response();
        }
    }
    match found {
        Ok(snapshot) => Json(Record::from_snapshot(&snapshot, api.uuids(), fields)).into_response(),
        Err(LookupError::Expired(Some(tomb))) => {
            let engine = api.engine();
            let record = Record::from_tombstone(&tomb, api.uuid_of(id), fields, |t| {
                engine.to_system_time(t)
            });
            Json(record).into_response()
        }
        Err(e) => api.lookup_error(uuid, e).into_response(),
    }
}

/// `GET /api/cluster/jobs/{uuid}`: the job, at once or after a long-poll.
pub(crate) async fn get_job<S, const T: usize, Tb>(
    State(api): Api<Tb>,
    UuidSegment(uuid): UuidSegment,
    mut args: Args,
) -> Result<Response, ApiError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    let fields = args.fields(Fields::ALL)?;
    let poll = args.seconds("poll_timeout", 1..=MAX_TIMEOUT_SECS)?;
    let last_modified = args.time("last_modified")?;
    let revision = args.number("revision", 0..=u64::MAX)?;
    args.finish()?;
    let id = api.job_id(&uuid)?;
    let engine = api.engine();
    let now = engine.get(id);
    let (Some(timeout), Ok(snapshot)) = (poll, &now) else {
        return Ok(answer(&api, &uuid, id, now, fields).await);
    };
    // What "changed" means for this poll, as a revision: exact for `revision`; for
    // `last_modified`, a job not modified after it has not changed since its current revision.
    // With both, the job has changed when either says so.
    let changed_now = revision.is_some_and(|r| snapshot.revision().get() > r)
        // Compared as printed (whole microseconds; the table keeps milliseconds), so a client
        // that echoes the job's own `last_modified` back is never answered early by a remainder
        // the printed form dropped.
        || last_modified.is_some_and(|t| rfc3339::truncate(snapshot.modified_at()) > t);
    if changed_now || snapshot.is_terminal() {
        return Ok(answer(&api, &uuid, id, now, fields).await);
    }
    let since = match revision {
        Some(r) => Revision::new(r),
        None => snapshot.revision(),
    };
    if api.is_closing() {
        return Ok(answer(&api, &uuid, id, now, fields).await);
    }
    let _in_flight = api.poll_guard();
    let wait = engine.wait_async(id, Condition::ChangedSince(since), timeout);
    let (waited, end) = match api.unless_closing(wait).await {
        Some(Ok(w)) if w.timed_out => (Ok(w.job), PollEnd::TimedOut),
        Some(Ok(w)) => {
            let latency = SystemTime::now()
                .duration_since(w.job.modified_at())
                .unwrap_or_default();
            (Ok(w.job), PollEnd::Woken { latency })
        }
        Some(Err(WaitError::Lookup(e))) => (
            Err(e),
            PollEnd::Woken {
                latency: Duration::ZERO,
            },
        ),
        None => (engine.get(id), PollEnd::Closed),
    };
    api.observe(|o| o.long_poll_ended(end));
    Ok(answer(&api, &uuid, id, waited, fields).await)
}

/// `PATCH /api/cluster/jobs/{uuid}?action=pause|resume|cancel`.
pub(crate) async fn patch_job<S, const T: usize, Tb>(
    State(api): Api<Tb>,
    UuidSegment(uuid): UuidSegment,
    mut args: Args,
) -> Result<Response, ApiError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    let action = args.take("action")?;
    let fields = args.fields(Fields::ALL)?;
    let wait = args
        .seconds("return_timeout", 0..=MAX_TIMEOUT_SECS)?
        .unwrap_or(Duration::ZERO);
    args.finish()?;
    let id = api.job_id(&uuid)?;
    let engine = api.engine();
    let (act, until): (Action<Tb>, _) = match action.as_deref() {
        Some("pause") => (Tb::request_pause, Some(Until::StateChange)),
        Some("resume") => (Tb::request_resume, None),
        Some("cancel") => (Tb::request_cancel, Some(Until::Terminal)),
        Some(other) => {
            return Err(ApiError::invalid(
                "action",
                format!("\"action\" must be pause, resume or cancel; got \"{other}\""),
            ))
        }
        None => {
            return Err(ApiError::invalid(
                "action",
                "\"action\" (pause, resume or cancel) is required",
            ))
        }
    };
    // The request and the state revision it was made at, under one lock: a worker that acts
    // on the request right after cannot make the wait below miss that state change.
    let (result, at) = engine.update(|t, now| {
        let result = act(t, id, now);
        (result, t.get(id).map(|j| j.state_revision()))
    });
    result.map_err(|e| refusal(&api, &uuid, e))?;
    let now = match (until, at, wait.is_zero()) {
        (Some(until), Ok(at), false) => {
            let condition = match until {
                Until::StateChange => Condition::StateChangedSince(at),
                Until::Terminal => Condition::Terminal,
            };
            match api
                .unless_closing(engine.wait_async(id, condition, wait))
                .await
            {
                Some(w) => w.map(|w| w.job).map_err(|WaitError::Lookup(e)| e),
                None => engine.get(id),
            }
        }
        _ => engine.get(id),
    };
    Ok(answer(&api, &uuid, id, now, fields).await)
}

/// A client request, as the core's table takes it.
type Action<Tb> = fn(&mut Tb, JobId, jobstate::Instant) -> Result<(), JobError>;

#[derive(Clone, Copy)]
enum Until {
    StateChange,
    Terminal,
}

/// The envelope of a refused request.
fn refusal<S, const T: usize, Tb>(api: &JobsApi<Tb>, uuid: &str, e: JobError) -> ApiError
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    let conflict = |code, message: String| ApiError::new(StatusCode::CONFLICT, code, message);
    match e {
        JobError::Lookup(LookupError::Expired(Some(t))) => conflict(
            ErrorCode::InvalidState,
            format!("the job already ended ({})", t.state()),
        ),
        JobError::Lookup(l) => api.lookup_error(uuid, l),
        JobError::NotPausable | JobError::NotCancelable => {
            conflict(ErrorCode::NotAllowed, e.to_string())
        }
        _ => conflict(ErrorCode::InvalidState, e.to_string()),
    }
    .with_target(uuid)
}

/// Paging position: just after the job created at `created` with id `id`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Key {
    created: u64,
    id: [u8; JobId::BYTES],
}

impl Key {
    fn of<S, const T: usize>(s: &Snapshot<S, T>) -> Self {
        Key {
            created: s.created().as_ticks(),
            id: s.id().to_bytes(),
        }
    }

    fn token(self) -> String {
        let mut out = format!("{:016x}", self.created);
        for b in self.id {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    fn parse(token: &str) -> Option<Key> {
        if token.len() != 16 + 2 * JobId::BYTES || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let created = u64::from_str_radix(token.get(..16)?, 16).ok()?;
        let mut id = [0u8; JobId::BYTES];
        for (k, b) in id.iter_mut().enumerate() {
            let at = 16 + 2 * k;
            *b = u8::from_str_radix(token.get(at..at + 2)?, 16).ok()?;
        }
        Some(Key { created, id })
    }
}

/// `GET /api/cluster/jobs`.
pub(crate) async fn list<S, const T: usize, Tb>(
    State(api): Api<Tb>,
    mut args: Args,
) -> Result<Response, ApiError>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    let fields_text = args.take("fields")?;
    let fields = fields_text
        .as_deref()
        .map_or(Ok(Fields::KEYS), parse_fields)?;
    let state_text = args.take("state")?;
    let states = state_text
        .as_deref()
        .map(|t| parse_states("state", t))
        .transpose()?;
    let max = args.number("max_records", 1..=api.config().max_records)?;
    let start = match args.take("start")? {
        Some(t) => Some(Key::parse(&t).ok_or_else(|| {
            ApiError::invalid(
                "start",
                "\"start\" is not a paging cursor; copy it from _links.next",
            )
        })?),
        None => None,
    };
    let return_records = args.boolean("return_records")?.unwrap_or(true);
    args.seconds("return_timeout", 0..=MAX_TIMEOUT_SECS)?;
    args.finish()?;

    let mut jobs = api.engine().list();
    // What the list reports is on disk before it leaves (R-DURABLE).
    let newest = jobs.iter().map(|j| j.revision()).max().unwrap_or_default();
    api.acknowledge(newest).await?;
    jobs.retain(|s| states.is_none_or(|f| f.admits(s.state())));
    let mut keyed: Vec<(Key, Snapshot<S, T>)> =
        jobs.into_iter().map(|s| (Key::of(&s), s)).collect();
    keyed.sort_by_key(|k| k.0);
    let from = start.map_or(0, |k| keyed.partition_point(|(key, _)| *key <= k));
    let rest = keyed.get(from..).unwrap_or_default();
    let take = max.map_or(rest.len(), |m| {
        usize::try_from(m).unwrap_or(usize::MAX).min(rest.len())
    });
    let page = rest.get(..take).unwrap_or_default();
    let href = |start: Option<Key>| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(f) = &fields_text {
            q.append_pair("fields", f);
        }
        if let Some(s) = &state_text {
            q.append_pair("state", s);
        }
        if let Some(m) = max {
            q.append_pair("max_records", &m.to_string());
        }
        if !return_records {
            q.append_pair("return_records", "false");
        }
        if let Some(k) = start {
            q.append_pair("start", &k.token());
        }
        let q = q.finish();
        Href {
            href: if q.is_empty() {
                "/api/cluster/jobs".to_owned()
            } else {
                format!("/api/cluster/jobs?{q}")
            },
        }
    };
    let next = (take < rest.len())
        .then(|| page.last().map(|(k, _)| href(Some(*k))))
        .flatten();
    let records = if return_records {
        page.iter()
            .map(|(_, s)| Record::from_snapshot(s, api.uuids(), fields))
            .collect()
    } else {
        Vec::new()
    };
    let body = Page {
        records,
        num_records: page.len(),
        links: PageLinks {
            self_: href(start),
            next,
        },
    };
    Ok(Json(body).into_response())
}

/// `GET /api/openapi.json`.
pub(crate) async fn openapi<S, const T: usize, Tb>(State(api): Api<Tb>, _: NoQuery) -> Response
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    (
        [(header::CONTENT_TYPE, "application/json")],
        api.openapi.clone(),
    )
        .into_response()
}
