//! ONTAP's job dialect (`/api/cluster/jobs`): the record ([`wire::Record`]), the list with
//! `state=`, `fields=`, `order_by`, `max_records` paging and `return_records`, long-poll with
//! Deploy's `poll_timeout`/`last_modified` (or `revision`), and `PATCH ?action=`.

pub(crate) mod wire;

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use jobstate::{Job, JobId, LookupError, Table};

use super::error::ApiError;
use super::extract::{NoQuery, UuidSegment};
use super::paging::{self, OrderBy, Position};
use super::params::{parse_fields, parse_states, Args, MAX_TIMEOUT_SECS};
use super::poll::{self, Action, Plan};
use super::JobsApi;
use crate::engine::EngineTable;
use crate::snapshot::Snapshot;
use wire::{Fields, Href, Page, PageLinks, Record};

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
            let clock = api.store().clock();
            let record =
                Record::from_tombstone(&tomb, api.uuid_of(id), fields, |t| clock.to_system_time(t));
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
    // A held long-poll keeps this future (boxed by axum) for its whole wait: the job as it
    // was, the lookup's and the answer's futures are each in a state of their own (the
    // lookup's and the answer's boxed), so the wait's state holds little but the wait.
    let decide = |now: &Snapshot<S, T>| poll::change_after(now, last_modified, revision);
    let (condition, timeout) = match Box::pin(poll::plan(&api, &uuid, id, poll, decide)).await? {
        Plan::Now(now) => return Ok(Box::pin(answer(&api, &uuid, id, now, fields)).await),
        Plan::Poll(condition, timeout) => (condition, timeout),
    };
    let waited = poll::long_poll(&api, &uuid, id, condition, timeout).await?;
    Ok(Box::pin(answer(&api, &uuid, id, waited, fields)).await)
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
    let action = match action.as_deref() {
        Some("pause") => Action::Pause,
        Some("resume") => Action::Resume,
        Some("cancel") => Action::Cancel,
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
    let now = poll::act(&api, &uuid, id, action, wait).await?;
    Ok(answer(&api, &uuid, id, now, fields).await)
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

    let mut jobs = api.list_jobs().await?;
    // What the list reports is on disk before it leaves (R-DURABLE).
    let newest = jobs.iter().map(|j| j.revision()).max().unwrap_or_default();
    api.acknowledge(newest).await?;
    jobs.retain(|s| states.is_none_or(|f| f.admits(s.state())));
    let uuids = api.uuids();
    let desc = order.is_some_and(|o| o.desc);
    let max = max.map(|m| usize::try_from(m).unwrap_or(usize::MAX));
    let (page, last) = paging::page(jobs, uuids, order, desc, start.as_ref(), max);
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
    let next = last.as_ref().map(|p| href(Some(p)));
    let records = if return_records {
        page.iter()
            .map(|s| Record::from_snapshot(s, uuids, fields))
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
        api.inner.openapi.clone(),
    )
        .into_response()
}
