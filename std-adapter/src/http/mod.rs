//! The HTTP binding: jobs in ONTAP's REST dialect, with ONTAP Select Deploy's long-poll
//! parameters (feature `http`) — and the same jobs as Oracle Cloud work requests ([`oci`]),
//! Active IQ Unified Manager jobs ([`aiqum`]) and ONTAP Select Deploy job objects ([`deploy`]).
//! Each dialect is one module over one shared job view ([`view::JobView`]) and shared
//! long-poll, paging and error plumbing; a dialect only renames fields and maps states.
//!
//! Existing clients of those appliances poll jobs like this: an asynchronous request answers
//! `202 Accepted` with `{"job":{"uuid":…,"_links":{"self":{"href":"/api/cluster/jobs/<uuid>"}}}}`
//! (or `200` with the finished job when `return_timeout` let it end in time); the client then
//! reads `GET /api/cluster/jobs/<uuid>` — long-polling with `poll_timeout` and `last_modified` —
//! until `state` is `success` or `failure`. [`JobsApi`] serves exactly that over a job store
//! (an [`Engine`], or another [`JobStore`]), as an `axum` [`Router`] to merge into the
//! service's own:
//!
//! | route | what |
//! | --- | --- |
//! | `GET /api/cluster/jobs` | list, oldest first: `state=` filter (`running`, `queued\|running`, `!success`), `max_records` + `_links.next` paging, `fields=` |
//! | `GET /api/cluster/jobs/{uuid}` | one job; `fields=`; long-poll with `poll_timeout` (1 s to [`jobstate::MAX_WAIT`]) and `last_modified` (or `revision`) |
//! | `PATCH /api/cluster/jobs/{uuid}?action=pause\|resume\|cancel` | client requests (R-CONTROL); `return_timeout` waits for them to take effect |
//! | `GET /api/openapi.json` | the OpenAPI 3 document ([`openapi`]) |
//! | `/20200501/workRequests…` | OCI work requests ([`oci`]) |
//! | `/api/management-server/jobs…` | Unified Manager jobs ([`aiqum`]) |
//! | `/api/v3/jobs…` | Deploy jobs ([`deploy`]) |
//!
//! The service's own asynchronous endpoints answer through [`JobsApi::submit`], which
//! submits the job and turns [`Submitted`] into `202` or `200` (R-RETURN).
//!
//! ## The store
//!
//! The binding reads and changes jobs only through a [`JobStore`] ([`JobsApi::store`]):
//! [`JobsApi::new`] serves the engine's jobs, and [`JobsApi::with_store`] serves another
//! store's — one shared by several replicas — the same way: every dialect's reads, lists and
//! long-polls, the job actions, submits and their answers. A store that cannot answer
//! ([`StoreError::Unavailable`]) is a 503 with the error envelope and `Retry-After: 1`.
//! Durable acknowledgements (`JobsApi::with_durability`, feature `persist`) are the engine's.
//!
//! ## The job record
//!
//! `uuid`, `description`, `state` (`queued`, `running`, `paused`, `success`, `failure`),
//! `message`, `code` (once ended; 0 for success), `start_time`, `end_time`, `error`
//! (`{code, message}`, failed jobs), `create_time`, `last_modified`, `progress` (0–100),
//! `revision` and `_links`. Times are RFC 3339 in UTC with microseconds (the table keeps them
//! to the millisecond). `fields=` selects fields (`uuid` and `_links` always come; a failed job
//! always carries its `message`, which is never empty: when the table itself ended the job, it
//! says why — `canceled`, `deadline passed`, `heartbeat lease expired`, `interrupted`,
//! `dependency <uuid> failed`). A single job prints every field by default, the list only
//! `uuid` and `_links`, as ONTAP does.
//!
//! ## Long-poll
//!
//! `GET …/{uuid}?poll_timeout=30&last_modified=<the job's last_modified>` answers as soon as
//! the job has changed after that time, or after 30 s with the job as it is (Deploy's
//! semantics; a timeout is a normal 200). A terminal job answers at once. Without
//! `last_modified` the answer waits for the job's next change. `revision=<the job's revision>`
//! is the exact form: two changes within one millisecond are still told apart (R-VERSION).
//! Waking is targeted: a change to job A wakes only the requests polling A (R-LONGPOLL).
//!
//! ## Ids
//!
//! Job ids travel as version-8 UUIDs that encode the [`jobstate::JobId`] and a per-engine
//! instance tag ([`JobUuids`]); a UUID of another engine is a 404. A job removed after its
//! retention still answers with the outcome its tombstone kept (`state`, `code`, `end_time`;
//! R-RETAIN); with no tombstone left, 404.
//!
//! ## Errors
//!
//! Every refusal is `{"error":{"code":"…","message":"…","target":"…"}}` ([`ApiError`],
//! codes in [`ErrorCode`]): 400 for a malformed or unknown parameter, 404 for no such job,
//! 409 when the job's state or options refuse an action, 503 with `Retry-After` when the
//! table is full or the job store cannot be reached. A caller's mistake is never a 5xx (R-INPUT).
//!
//! ## Example
//!
//! ```no_run
//! use axum::routing::post;
//! use axum::{extract::State, response::Response, Router};
//! use jobstate::NewJob;
//! use jobstate_std::http::{ApiError, JobsApi, ReturnTimeout};
//! use jobstate_std::{Engine, EngineConfig};
//!
//! type Jobs = jobstate::JobTable<String, 256>;
//! type Api = JobsApi<Jobs>;
//!
//! async fn reboot(State(api): State<Api>, ReturnTimeout(wait): ReturnTimeout)
//!     -> Result<Response, ApiError> {
//!     let job = NewJob::new("reboot".to_string()).description("reboot the appliance");
//!     api.submit(job, wait).await
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let engine: Engine<Jobs> = Engine::new(EngineConfig::default());
//! let api = JobsApi::new(engine);
//! let app: Router = Router::new()
//!     .route("/api/reboot", post(reboot))
//!     .with_state(api.clone())
//!     .merge(api.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

pub mod aiqum;
pub mod deploy;
mod error;
mod extract;
mod ids;
mod observe;
pub mod oci;
mod ontap;
pub mod openapi;
mod paging;
mod params;
mod poll;
mod rfc3339;
pub mod view;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use jobstate::{Job, JobId, LookupError, NewJob, SubmitError, Submitted, Table};
use uuid::Uuid;

use crate::engine::{Engine, EngineTable};
use crate::error::SubmitWaitError;
use crate::snapshot::Snapshot;
use crate::store::{JobStore, StoreError};

pub use error::{fallback, method_not_allowed, ApiError, ErrorCode};
pub use extract::{
    IdempotencyKey, JsonBody, NoQuery, PathParams, QueryArgs, RetryToken, ReturnTimeout,
    MAX_KEY_LEN,
};
pub use ids::JobUuids;
pub use observe::{ApiObserver, PollEnd};
pub use ontap::wire::{Field, Fields, Href, JobLink, Record, SelfLink};
pub use params::MAX_TIMEOUT_SECS;
pub use rfc3339::{format as format_time, parse as parse_time, BadTime};
pub use view::JobView;

/// Settings of the binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiConfig {
    /// `Retry-After` of a 503 when no terminal job's retention is about to pass (every slot
    /// holds a live job). Default 5 s.
    pub retry_after: Duration,
    /// The largest `max_records` (default 10 000).
    pub max_records: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            retry_after: Duration::from_secs(5),
            max_records: 10_000,
        }
    }
}

/// The tables a binding serves, and the store it holds for one: `dyn JobStore<S, T>` for a
/// table of `Job<S, T>`. Implemented for every such table; there is nothing to implement.
pub trait ApiTable: Table {
    /// The store of the table's jobs, as the binding holds it.
    type Store: ?Sized + Send + Sync + 'static;
}

impl<S, const T: usize, Tb> ApiTable for Tb
where
    Tb: Table<Spec = S, Job = Job<S, T>>,
    S: 'static,
{
    type Store = dyn JobStore<S, T>;
}

/// The binding over one job store: its router, its UUID codec and the helpers of the service's
/// own endpoints. Cheap to clone; use it as (part of) the router state.
pub struct JobsApi<Tb: ApiTable> {
    /// Shared by every clone: a clone is one reference count, and a held long-poll's future
    /// keeps a pointer, not the whole binding, for each copy it holds.
    inner: Arc<ApiState<Tb>>,
}

/// What a [`JobsApi`] holds.
pub(crate) struct ApiState<Tb: ApiTable> {
    engine: Engine<Tb>,
    store: Arc<Tb::Store>,
    uuids: JobUuids,
    config: ApiConfig,
    openapi: Bytes,
    polls: Arc<AtomicUsize>,
    closing: tokio::sync::watch::Sender<bool>,
    observer: Option<Arc<dyn ApiObserver>>,
    /// How jobs read as OCI work requests.
    pub(crate) work_requests: oci::WorkRequests<Tb::Spec>,
    /// With a store: answers leave only once their change is on disk (R-DURABLE).
    #[cfg(feature = "persist")]
    durability: Option<Arc<crate::persist::Durability>>,
}

impl<Tb: ApiTable> Clone for JobsApi<Tb> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<Tb: ApiTable> Clone for ApiState<Tb> {
    fn clone(&self) -> Self {
        Self {
            engine: self.engine.clone(),
            store: self.store.clone(),
            uuids: self.uuids,
            config: self.config,
            openapi: self.openapi.clone(),
            polls: self.polls.clone(),
            closing: self.closing.clone(),
            observer: self.observer.clone(),
            work_requests: self.work_requests.clone(),
            #[cfg(feature = "persist")]
            durability: self.durability.clone(),
        }
    }
}

impl<Tb: ApiTable> std::fmt::Debug for JobsApi<Tb> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobsApi")
            .field("uuids", &self.inner.uuids)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Counts a long-poll in flight for as long as it lives.
pub(crate) struct PollGuard(Arc<AtomicUsize>);

impl Drop for PollGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S, const T: usize, Tb> JobsApi<Tb>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
    S: Clone + Send + Sync + 'static,
{
    /// The binding over `engine` (its store, too), with a random instance tag
    /// ([`JobUuids::random`]) and the default settings.
    pub fn new(engine: Engine<Tb>) -> Self {
        let store: Arc<dyn JobStore<S, T>> = Arc::new(engine.clone());
        let inner = ApiState {
            store,
            engine,
            uuids: JobUuids::random(),
            config: ApiConfig::default(),
            openapi: Bytes::from(openapi::document().to_string()),
            polls: Arc::new(AtomicUsize::new(0)),
            closing: tokio::sync::watch::Sender::new(false),
            observer: None,
            work_requests: oci::WorkRequests::default(),
            #[cfg(feature = "persist")]
            durability: None,
        };
        Self {
            inner: Arc::new(inner),
        }
    }
}

impl<S, const T: usize, Tb> JobsApi<Tb>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    /// Say what each job is as an OCI work request (`operationType`, `resources[]`) and the
    /// compartment the work requests belong to (`compartmentId`; a list of another
    /// compartment is empty). Without it every job reads as operation `JOB` with no
    /// resources, in [`oci::DEFAULT_COMPARTMENT`].
    pub fn with_work_requests(
        mut self,
        compartment: impl Into<String>,
        describe: impl Fn(&S) -> oci::Operation + Send + Sync + 'static,
    ) -> Self {
        Arc::make_mut(&mut self.inner).work_requests = oci::WorkRequests {
            compartment: compartment.into(),
            describe: Arc::new(describe),
        };
        self
    }

    /// The compartment of the OCI work requests.
    pub fn compartment(&self) -> &str {
        &self.inner.work_requests.compartment
    }

    /// Acknowledge only what is on disk (R-DURABLE, feature `persist`): a submit's 202 or 200,
    /// and the service's answers that go through [`JobsApi::acknowledge`], leave once the
    /// change they report is durable; a change that cannot be saved answers 503 with the error
    /// envelope instead — never an acknowledgement the service cannot keep.
    #[cfg(feature = "persist")]
    pub fn with_durability(mut self, durability: Arc<crate::persist::Durability>) -> Self {
        Arc::make_mut(&mut self.inner).durability = Some(durability);
        self
    }

    /// Wait until every change up to `revision` is on disk (at once without a store); a save
    /// that failed answers 503 (`Retry-After: 1`).
    pub async fn acknowledge(&self, revision: jobstate::Revision) -> Result<(), ApiError> {
        #[cfg(feature = "persist")]
        if let Some(d) = &self.inner.durability {
            return d.wait_async(revision).await.map_err(|e| {
                ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    format!("the change could not be saved: {}", e.message),
                )
                .with_retry_after(1)
            });
        }
        let _ = revision;
        Ok(())
    }

    /// Serve the jobs of `store` instead of the engine's (a store shared by several replicas):
    /// every route, submit and answer of the binding reads and changes jobs through it.
    pub fn with_store(mut self, store: Arc<dyn JobStore<S, T>>) -> Self {
        Arc::make_mut(&mut self.inner).store = store;
        self
    }

    /// The store the binding serves.
    pub fn store(&self) -> &Arc<dyn JobStore<S, T>> {
        &self.inner.store
    }

    /// Use this UUID codec (fix the instance tag when the table outlives the process).
    pub fn with_uuids(mut self, uuids: JobUuids) -> Self {
        Arc::make_mut(&mut self.inner).uuids = uuids;
        self
    }

    /// Use these settings (the served OpenAPI document's `max_records` maximum follows).
    pub fn with_config(mut self, config: ApiConfig) -> Self {
        Arc::make_mut(&mut self.inner).config = config;
        if let Ok(mut doc) = serde_json::from_slice::<serde_json::Value>(&self.inner.openapi) {
            openapi::set_max_records(&mut doc, config.max_records);
            Arc::make_mut(&mut self.inner).openapi = Bytes::from(doc.to_string());
        }
        self
    }

    /// Serve this OpenAPI document at `/api/openapi.json` (the binding's own
    /// [`openapi::document`], extended with the service's endpoints). Its `max_records`
    /// maximum is set to the binding's.
    pub fn with_openapi(mut self, doc: &serde_json::Value) -> Self {
        let mut doc = doc.clone();
        openapi::set_max_records(&mut doc, self.inner.config.max_records);
        Arc::make_mut(&mut self.inner).openapi = Bytes::from(doc.to_string());
        self
    }

    /// Tell `observer` about submits, refusals and long-polls (for metrics).
    pub fn with_observer(mut self, observer: Arc<dyn ApiObserver>) -> Self {
        Arc::make_mut(&mut self.inner).observer = Some(observer);
        self
    }

    /// The OpenAPI document served at `/api/openapi.json`.
    pub fn openapi_document(&self) -> serde_json::Value {
        serde_json::from_slice(&self.inner.openapi).unwrap_or_default()
    }

    pub(crate) fn observe(&self, f: impl FnOnce(&dyn ApiObserver)) {
        if let Some(o) = &self.inner.observer {
            f(&**o);
        }
    }

    /// The in-process engine, for the service's own use; with another store
    /// ([`JobsApi::with_store`]) the binding does not use it.
    pub fn engine(&self) -> &Engine<Tb> {
        &self.inner.engine
    }

    /// The UUID codec.
    pub fn uuids(&self) -> JobUuids {
        self.inner.uuids
    }

    /// The settings.
    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    /// The UUID of a job.
    pub fn uuid_of(&self, id: JobId) -> Uuid {
        self.inner.uuids.encode(id)
    }

    /// The job a UUID string names: 400 when it is not a UUID, 404 when it is not one of
    /// this engine's.
    pub fn job_id(&self, uuid: &str) -> Result<JobId, ApiError> {
        match self.inner.uuids.parse(uuid) {
            Ok(Some(id)) => Ok(id),
            Ok(None) => Err(ApiError::not_found(uuid, "no such job")),
            Err(_) => Err(ApiError::invalid(
                "uuid",
                format!("\"{uuid}\" is not a UUID"),
            )),
        }
    }

    /// Long-polls (`GET …/{uuid}?poll_timeout=…`) in flight right now.
    pub fn long_polls(&self) -> usize {
        self.inner.polls.load(Ordering::Relaxed)
    }

    /// End every wait in flight now — long-polls and `return_timeout` waits of submits and
    /// PATCH actions; each answers with the job as it is, as at its timeout — and answer later
    /// ones at once: call it when the service shuts down, so a graceful shutdown does not wait
    /// up to `poll_timeout` or `return_timeout` for them.
    pub fn close_polls(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Whether [`JobsApi::close_polls`] was called.
    pub fn is_closing(&self) -> bool {
        *self.inner.closing.borrow()
    }

    /// A receiver that sees [`JobsApi::close_polls`].
    pub(crate) fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    /// `fut`'s output, or `None` once [`JobsApi::close_polls`] was called (at once if it
    /// was called before).
    pub(crate) async fn unless_closing<F: std::future::Future>(&self, fut: F) -> Option<F::Output> {
        let mut closing = self.closing();
        if *closing.borrow_and_update() {
            return None;
        }
        tokio::select! {
            v = fut => Some(v),
            _ = closing.changed() => None,
        }
    }

    pub(crate) fn poll_guard(&self) -> PollGuard {
        self.inner.polls.fetch_add(1, Ordering::Relaxed);
        PollGuard(self.inner.polls.clone())
    }

    /// The routes of the binding, to merge into the service's router (at the root: the
    /// links the binding prints are absolute paths). Add [`fallback`] to the service's router
    /// for enveloped 404s on unknown paths.
    ///
    /// Every dialect is served: `/api/cluster/jobs…` and `/api/openapi.json` (ONTAP),
    /// `/20200501/workRequests…` (OCI), `/api/management-server/jobs…` (Unified Manager) and
    /// `/api/v3/jobs…` (Deploy). A service router with a route of its own on one of those
    /// paths makes `Router::merge` panic (axum refuses overlapping routes).
    pub fn router<St: Clone + Send + Sync + 'static>(&self) -> Router<St> {
        let m = || error::method_not_allowed;
        Router::new()
            .route(
                "/api/cluster/jobs",
                get(ontap::list::<S, T, Tb>).fallback(m()),
            )
            .route(
                "/api/cluster/jobs/{uuid}",
                get(ontap::get_job::<S, T, Tb>)
                    .patch(ontap::patch_job::<S, T, Tb>)
                    .fallback(m()),
            )
            .route(
                "/api/openapi.json",
                get(ontap::openapi::<S, T, Tb>).fallback(m()),
            )
            .with_state(self.clone())
            .merge(oci::router::<S, T, Tb, St>(self))
            .merge(aiqum::router::<S, T, Tb, St>(self))
            .merge(deploy::router::<S, T, Tb, St>(self))
    }

    /// The record of a snapshot, with every field.
    pub fn record<'a>(&self, snapshot: &'a Snapshot<S, T>) -> Record<'a> {
        Record::from_snapshot(snapshot, self.inner.uuids, Fields::ALL)
    }

    /// `202 Accepted` with the job link, for a job already submitted.
    pub fn accepted(&self, id: JobId) -> Response {
        let body = ontap::wire::Accepted {
            job: JobLink::new(&self.uuid_of(id)),
        };
        (axum::http::StatusCode::ACCEPTED, axum::Json(body)).into_response()
    }

    /// Submit a job for one of the service's own asynchronous endpoints and answer as ONTAP
    /// does (R-RETURN): `202` with the job link, or — when the job ended within
    /// `return_timeout` — `200` with `{"job": <record>}` if it succeeded, or the error
    /// envelope (400, the job's code and message, and the job link) if it failed. A refused
    /// submit answers 400, or 503 with `Retry-After` when the table is full (R-FULL) or the
    /// store cannot be reached.
    /// [`JobsApi::close_polls`] ends the wait at once (202, or the job as it is).
    pub async fn submit(
        &self,
        job: NewJob<'_, S>,
        return_timeout: Duration,
    ) -> Result<Response, ApiError> {
        if return_timeout > Duration::from_secs(MAX_TIMEOUT_SECS) {
            return Err(self
                .submit_error(SubmitWaitError::ReturnTimeoutOutOfRange)
                .await);
        }
        let id = match self.inner.store.submit(job).await {
            Ok(id) => id,
            Err(StoreError::Submit(e)) => return Err(self.refused(e).await),
            Err(e) => return Err(self.store_error("", e)),
        };
        self.respond(id, return_timeout).await
    }

    /// Answer for a job the service submitted itself (for example under its own lock, with
    /// [`Engine::submit`]): wait up to `return_timeout` for it to end, then answer as
    /// [`JobsApi::submit`] does. [`JobsApi::close_polls`] ends the wait at once.
    pub async fn respond(&self, id: JobId, return_timeout: Duration) -> Result<Response, ApiError> {
        self.observe(|o| o.submitted());
        self.answer_for(id, return_timeout).await
    }

    /// Answer a request whose idempotency key named job `id`, submitted by an earlier request
    /// (R-IDEMPOTENT): as [`JobsApi::respond`] does, but reported to the observer as a replay
    /// ([`ApiObserver::replayed`]), not as a submit.
    pub async fn respond_again(
        &self,
        id: JobId,
        return_timeout: Duration,
    ) -> Result<Response, ApiError> {
        self.observe(|o| o.replayed());
        self.answer_for(id, return_timeout).await
    }

    async fn answer_for(&self, id: JobId, return_timeout: Duration) -> Result<Response, ApiError> {
        let uuid = self.uuid_of(id).to_string();
        let waited = if return_timeout.is_zero() {
            None
        } else {
            let wait = self
                .inner
                .store
                .wait(id, jobstate::Condition::Terminal, return_timeout);
            self.unless_closing(wait).await
        };
        let submitted = match waited {
            None => self.inner.store.get(id).await.map(Submitted::Accepted),
            Some(w) => w.map(|w| {
                if w.timed_out {
                    Submitted::Accepted(w.job)
                } else {
                    Submitted::Completed(w.job)
                }
            }),
        };
        let submitted = self.found(&uuid, submitted)?;
        // The submit, and whatever the answer reports, is on disk before it leaves.
        let reported = match &submitted {
            Ok(Submitted::Accepted(s) | Submitted::Completed(s)) => s.revision(),
            _ => self
                .inner
                .store
                .revision()
                .await
                .map_err(|e| self.store_error(&uuid, e))?,
        };
        self.acknowledge(reported).await?;
        match submitted {
            Ok(s) => Ok(self.submitted(&s)),
            Err(LookupError::Expired(Some(_))) => Ok(self.accepted(id)),
            Err(e) => Err(self.lookup_error(&uuid, e)),
        }
    }

    /// The answer to a [`Submitted`]: 202, 200, or 400 for a job that failed in time. A job
    /// already removed answers 202 with its link (which answers with its tombstone, R-RETAIN).
    pub fn submitted(&self, submitted: &Submitted<Snapshot<S, T>>) -> Response {
        match submitted {
            Submitted::Accepted(s) => self.accepted(s.id()),
            Submitted::Removed(id, _) => self.accepted(*id),
            Submitted::Completed(s) if s.state() == jobstate::State::Succeeded => {
                let body = ontap::wire::Completed {
                    job: self.record(s),
                };
                (axum::http::StatusCode::OK, axum::Json(body)).into_response()
            }
            Submitted::Completed(s) => {
                let record = self.record(s);
                ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    ErrorCode::SubmitRefused,
                    record.message.clone().into_owned(),
                )
                .with_code(s.outcome().map_or(0, |o| o.code()).to_string())
                .with_job(JobLink::new(&record.uuid))
                .into_response()
            }
        }
    }

    /// The envelope of a refused submit-and-wait.
    pub async fn submit_error(&self, e: SubmitWaitError) -> ApiError {
        match e {
            SubmitWaitError::Submit(e) => self.refused(e).await,
            SubmitWaitError::ReturnTimeoutOutOfRange => ApiError::invalid(
                "return_timeout",
                format!("\"return_timeout\" must be from 0 to {MAX_TIMEOUT_SECS} seconds"),
            ),
        }
    }

    /// The envelope of a refused submit: 503 with `Retry-After` when the table (or its
    /// dependency pool) is full, else 400 naming the input at fault.
    ///
    /// Takes the core's [`SubmitError`] or a whole [`jobstate::Refused`].
    pub async fn refused(&self, e: impl Into<SubmitError>) -> ApiError {
        let e = e.into();
        let error = self.refusal_of(e).await;
        self.observe(|o| o.refused(&error));
        error
    }

    async fn refusal_of(&self, e: SubmitError) -> ApiError {
        use axum::http::StatusCode;
        let retry_after = match e {
            SubmitError::TableFull | SubmitError::DependenciesFull | SubmitError::KeysFull => {
                self.retry_after_secs().await
            }
            _ => 1,
        };
        let bad = |target: &str| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::SubmitRefused,
                e.to_string(),
            )
            .with_target(target)
        };
        match e {
            SubmitError::TableFull => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::TableFull,
                "the job table is full; retry later",
            )
            .with_retry_after(retry_after),
            SubmitError::DependenciesFull => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::TableFull,
                "the job table has no room for more dependencies; retry later",
            )
            .with_retry_after(retry_after),
            SubmitError::TextTooLong { field, .. } => bad(field.as_str()),
            SubmitError::TooManyDependencies
            | SubmitError::DuplicateDependency(_)
            | SubmitError::UnknownDependency { .. } => bad("depends_on"),
            SubmitError::DurationTooLong => bad("options"),
            SubmitError::KeyConflict(id) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::KeyConflict,
                format!(
                    "the idempotency key names job {} of another request",
                    self.uuid_of(id).hyphenated()
                ),
            )
            .with_job(JobLink::new(&self.uuid_of(id))),
            SubmitError::KeysFull => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::KeysFull,
                "no room for another idempotency key; retry later",
            )
            .with_retry_after(retry_after),
            _ => ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::SubmitRefused,
                e.to_string(),
            ),
        }
    }

    /// Seconds until a submit can find a slot ([`JobStore::free_in`]: the end of the oldest
    /// terminal job's retention), or the configured default while every slot holds a live
    /// job.
    async fn retry_after_secs(&self) -> u64 {
        match self.inner.store.free_in().await {
            Some(wait) if !wait.is_zero() => {
                u64::try_from(wait.as_millis().div_ceil(1_000).max(1)).unwrap_or(u64::MAX)
            }
            Some(_) => 1,
            None => self.inner.config.retry_after.as_secs().max(1),
        }
    }

    /// Job `id` from the store: the job, or why the id leads to nothing (a tombstone's outcome
    /// among them); a store that could not answer is the 503 envelope.
    pub(crate) async fn lookup(
        &self,
        key: &str,
        id: JobId,
    ) -> Result<Result<Snapshot<S, T>, LookupError>, ApiError> {
        self.found(key, self.inner.store.get(id).await)
    }

    /// Every job, oldest first, from the store; a store that could not answer is the 503
    /// envelope.
    pub(crate) async fn list_jobs(&self) -> Result<Vec<Snapshot<S, T>>, ApiError> {
        self.inner
            .store
            .list()
            .await
            .map_err(|e| self.store_error("", e))
    }

    /// A store's answer about one job, with the lookup errors kept apart for the dialect to
    /// answer (404, or a tombstone); any other error is its envelope.
    pub(crate) fn found<V>(
        &self,
        key: &str,
        r: Result<V, StoreError>,
    ) -> Result<Result<V, LookupError>, ApiError> {
        match r {
            Ok(v) => Ok(Ok(v)),
            Err(StoreError::Lookup(e)) => Ok(Err(e)),
            Err(e) => Err(self.store_error(key, e)),
        }
    }

    /// The envelope of a store's error: 503 (`Retry-After: 1`) for a store that could not
    /// answer, 404 for an id that leads to nothing, 409 for a refused change, 400 for a
    /// refused submit.
    pub(crate) fn store_error(&self, key: &str, e: StoreError) -> ApiError {
        use axum::http::StatusCode;
        match e {
            StoreError::Lookup(e) => self.lookup_error(key, e),
            StoreError::Unavailable(why) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                format!("the job store is unavailable: {why}; retry later"),
            )
            .with_retry_after(1),
            StoreError::Job(e) => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::InvalidState, e.to_string())
                    .with_target(key)
            }
            StoreError::Compacted(c) => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::InvalidState, c.to_string())
                    .with_target(key)
            }
            StoreError::Submit(e) => ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::SubmitRefused,
                e.to_string(),
            ),
        }
    }

    /// The envelope for a job id that leads to nothing.
    pub(crate) fn lookup_error(&self, uuid: &str, e: LookupError) -> ApiError {
        let message = match e {
            LookupError::Expired(_) => "the job ended and its record is no longer kept",
            LookupError::Stale => "the job id is from before a restart",
            _ => "no such job",
        };
        ApiError::not_found(uuid, message)
    }
}
