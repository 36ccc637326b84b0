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
    let (result, at, state) = engine.update(|t, now| {
        let state = t.get(id).map(|j| j.state()).ok();
        let result = act(t, id, now);
        (result, t.get(id).map(|j| j.state_revision()), state)
    });
    result.map_err(|e| control_refusal(&api, &uuid, e, state))?;
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

/// The envelope of a refused job action (pause, resume, cancel), for every dialect: the
/// core's typed [`JobError`], with the job's state when the refusal was made, mapped to a
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
    state: Option<jobstate::State>,
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
        JobError::NotPaused if state == Some(jobstate::State::Running) => {
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

/// Paging position: just after the job created at `created` with id `id`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct Key {
    created: u64,
    id: [u8; JobId::BYTES],
}

impl Key {
    pub(crate) fn of<S, const T: usize>(s: &Snapshot<S, T>) -> Self {
        Key {
            created: s.created().as_ticks(),
            id: s.id().to_bytes(),
        }
    }

    pub(crate) fn token(self) -> String {
        let mut out = format!("{:016x}", self.created);
        for b in self.id {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    pub(crate) fn parse(token: &str) -> Option<Key> {
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

/// A field's value as the list sorts it (`order_by`): absent values first.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum SortValue {
    Absent,
    Num(i128),
    Text(Vec<u8>),
}

impl SortValue {
    fn token(&self) -> String {
        match self {
            SortValue::Absent => "z".to_owned(),
            SortValue::Num(n) => format!("n{:x}", (*n as u128) ^ (1u128 << 127)),
            SortValue::Text(t) => {
                let mut out = String::from("t");
                for b in t {
                    out.push_str(&format!("{b:02x}"));
                }
                out
            }
        }
    }

    fn parse(token: &str) -> Option<SortValue> {
        let (kind, rest) = (token.get(..1)?, token.get(1..)?);
        match kind {
            "z" if rest.is_empty() => Some(SortValue::Absent),
            "n" if !rest.is_empty() && rest.len() <= 32 => {
                let v = u128::from_str_radix(rest, 16).ok()?;
                Some(SortValue::Num((v ^ (1u128 << 127)) as i128))
            }
            "t" if rest.len() % 2 == 0 => {
                let bytes = (0..rest.len() / 2)
                    .map(|k| u8::from_str_radix(rest.get(2 * k..2 * k + 2)?, 16).ok())
                    .collect::<Option<Vec<u8>>>()?;
                Some(SortValue::Text(bytes))
            }
            _ => None,
        }
    }
}

/// `order_by=<field> [asc|desc]` of the job list: one field, ties broken by submit order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct OrderBy {
    field: &'static str,
    desc: bool,
}

/// The fields the list sorts by.
pub(crate) const ORDER_FIELDS: [&str; 12] = [
    "uuid",
    "description",
    "state",
    "message",
    "code",
    "start_time",
    "end_time",
    "create_time",
    "last_modified",
    "progress",
    "priority",
    "attempt",
];

impl OrderBy {
    pub(crate) fn parse(text: &str) -> Result<OrderBy, ApiError> {
        let mut words = text.split(' ').filter(|w| !w.is_empty());
        let bad = || {
            ApiError::invalid(
                "order_by",
                format!(
                    "\"order_by\" must be one of {} followed by asc or desc; got \"{text}\"",
                    ORDER_FIELDS.join(", ")
                ),
            )
        };
        let name = words.next().ok_or_else(bad)?;
        let field = ORDER_FIELDS
            .into_iter()
            .find(|f| *f == name)
            .ok_or_else(bad)?;
        let desc = match words.next() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => return Err(bad()),
        };
        if words.next().is_some() {
            return Err(bad());
        }
        Ok(OrderBy { field, desc })
    }

    fn value<S, const T: usize>(self, s: &Snapshot<S, T>, uuids: super::JobUuids) -> SortValue {
        let micros = |t: std::time::SystemTime| {
            SortValue::Num(
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i128::try_from(d.as_micros()).unwrap_or(i128::MAX)),
            )
        };
        let opt = |t: Option<std::time::SystemTime>| t.map_or(SortValue::Absent, micros);
        match self.field {
            "uuid" => SortValue::Text(uuids.encode(s.id()).hyphenated().to_string().into_bytes()),
            "description" => SortValue::Text(s.description().as_bytes().to_vec()),
            "state" => SortValue::Text(s.state().as_str().as_bytes().to_vec()),
            "message" => SortValue::Text(
                Record::from_snapshot(s, uuids, Fields::KEYS)
                    .message
                    .into_owned()
                    .into_bytes(),
            ),
            "code" => s
                .outcome()
                .map_or(SortValue::Absent, |o| SortValue::Num(o.code().into())),
            "start_time" => opt(s.started_at()),
            "end_time" => opt(s.ended_at()),
            "create_time" => micros(s.created_at()),
            "last_modified" => micros(s.modified_at()),
            "progress" => SortValue::Num(s.progress().into()),
            "priority" => SortValue::Num(s.priority() as i128),
            _ => SortValue::Num(s.attempt().into()),
        }
    }
}

/// Where a page starts: after the record at this position (`start=`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct Position {
    value: SortValue,
    key: Key,
}

impl Position {
    fn token(&self, ordered: bool) -> String {
        if ordered {
            format!("{}.{}", self.key.token(), self.value.token())
        } else {
            self.key.token()
        }
    }

    /// A cursor: the key, then (for an ordered list) the sort value. A value on a cursor of
    /// the default order is ignored, and a cursor without one on an ordered list starts
    /// after the records without the field.
    fn parse(token: &str, ordered: bool) -> Option<Position> {
        let (key, value) = match token.split_once('.') {
            Some((k, v)) => (k, SortValue::parse(v)?),
            None => (token, SortValue::Absent),
        };
        let value = if ordered { value } else { SortValue::Absent };
        Some(Position {
            value,
            key: Key::parse(key)?,
        })
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
    let order_text = args.take("order_by")?;
    let order = order_text.as_deref().map(OrderBy::parse).transpose()?;
    let start = match args.take("start")? {
        Some(t) => Some(Position::parse(&t, order.is_some()).ok_or_else(|| {
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
    let uuids = api.uuids();
    let mut keyed: Vec<(Position, Snapshot<S, T>)> = jobs
        .into_iter()
        .map(|s| {
            let value = order.map_or(SortValue::Absent, |o| o.value(&s, uuids));
            let key = Key::of(&s);
            (Position { value, key }, s)
        })
        .collect();
    let desc = order.is_some_and(|o| o.desc);
    let cmp = |a: &Position, b: &Position| if desc { b.cmp(a) } else { a.cmp(b) };
    keyed.sort_by(|a, b| cmp(&a.0, &b.0));
    let from = start.as_ref().map_or(0, |c| {
        keyed.partition_point(|(p, _)| cmp(p, c) != std::cmp::Ordering::Greater)
    });
    let rest = keyed.get(from..).unwrap_or_default();
    let take = max.map_or(rest.len(), |m| {
        usize::try_from(m).unwrap_or(usize::MAX).min(rest.len())
    });
    let page = rest.get(..take).unwrap_or_default();
    let href = |start: Option<&Position>| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(f) = &fields_text {
            q.append_pair("fields", f);
        }
        if let Some(s) = &state_text {
            q.append_pair("state", s);
        }
        if let Some(o) = &order_text {
            q.append_pair("order_by", o);
        }
        if let Some(m) = max {
            q.append_pair("max_records", &m.to_string());
        }
        if !return_records {
            q.append_pair("return_records", "false");
        }
        if let Some(p) = start {
            q.append_pair("start", &p.token(order.is_some()));
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
        .then(|| page.last().map(|(p, _)| href(Some(p))))
        .flatten();
    let records = if return_records {
        page.iter()
            .map(|(_, s)| Record::from_snapshot(s, uuids, fields))
            .collect()
    } else {
        Vec::new()
    };
    let body = Page {
        records,
        num_records: page.len(),
        links: PageLinks {
            self_: href(start.as_ref()),
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
