//! A simulated network load balancer whose configuration changes run as jobs.
//!
//! ```text
//! cargo run --release -p jobstate-std --features http --example appliance -- --listen 127.0.0.1:8080
//! ```
//!
//! * `POST   /api/lb/backend-sets` `{"name": "web", "policy": "round_robin"}` — create a
//!   backend set (a job of a few seconds);
//! * `POST   /api/lb/backend-sets/{name}/backends` `{"ip": "10.0.0.5", "port": 8080}` — add a
//!   backend; the job depends on the set's creation job (Oracle's walk-through: it waits
//!   for the set, and fails with `DependencyFailed` if the set's creation fails);
//! * `DELETE /api/lb/backend-sets/{name}` and `DELETE /api/lb/backend-sets/{name}/backends/{backend}`;
//! * `GET    /api/lb/backend-sets` and `GET /api/lb/backend-sets/{name}` — the configuration;
//! * the jobs at `/api/cluster/jobs…` (list, long-poll, pause/resume/cancel) and the OpenAPI
//!   document at `/api/openapi.json`.
//!
//! Each asynchronous request answers 202 with the job link (or 200 with `return_timeout`
//! when the job ends in time). A worker pool runs the jobs step by step with progress
//! messages, checking in between steps, so pause, resume and cancel act within one step.
//! A backend at IP `0.0.0.0` is "unreachable": its job fails with code 1001. Ctrl-C stops
//! taking requests, ends open long-polls, lets running jobs reach a checkpoint, and exits.
//!
//! Options: `--listen ADDR` (default `127.0.0.1:8080`), `--workers N` (default 4),
//! `--step-ms MS` (length of one job step, default 600).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use jobstate::{JobId, NewJob, State as JobState};
use jobstate_std::http::{
    fallback, openapi, ApiError, ErrorCode, JobsApi, JsonBody, PathParams, ReturnTimeout,
};
use jobstate_std::{Engine, EngineConfig, Failure, JobContext, Success, WorkerPool};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{info, warn};

/// Jobs kept in the table (live and recently ended).
const CAPACITY: usize = 1024;

/// What a job does.
#[derive(Clone, Debug)]
enum Op {
    CreateSet { name: String, policy: String },
    DeleteSet { name: String },
    AddBackend { set: String, ip: String, port: u16 },
    RemoveBackend { set: String, backend: String },
}

/// The job table: its capacities, named once.
type Jobs = jobstate::JobTable<Op, CAPACITY>;
type Lb = Engine<Jobs>;
type Api = JobsApi<Jobs>;
type Ctx<'a> = JobContext<'a, Jobs>;

/// Where a configured object is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Lifecycle {
    Creating,
    Active,
    Deleting,
}

#[derive(Clone, Debug, Serialize)]
struct Backend {
    ip: String,
    port: u16,
    lifecycle: Lifecycle,
    #[serde(skip)]
    job: JobId,
}

#[derive(Clone, Debug, Serialize)]
struct BackendSet {
    name: String,
    policy: String,
    lifecycle: Lifecycle,
    backends: BTreeMap<String, Backend>,
    #[serde(skip)]
    job: JobId,
}

/// The load balancer's configuration.
#[derive(Default)]
struct Config {
    sets: BTreeMap<String, BackendSet>,
}

#[derive(Clone)]
struct App {
    api: Api,
    config: Arc<Mutex<Config>>,
}

impl App {
    fn engine(&self) -> &Lb {
        self.api.engine()
    }

    fn config(&self) -> MutexGuard<'_, Config> {
        self.config.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forget objects whose creation job failed (a failed or canceled creation, or a
    /// dependency that failed before the worker ever saw the job).
    fn prune(&self, config: &mut Config) {
        let failed = |id: JobId| match self.engine().get(id) {
            Ok(s) => s.state() == JobState::Failed,
            Err(jobstate::LookupError::Expired(Some(t))) => t.state() == JobState::Failed,
            Err(_) => false,
        };
        config
            .sets
            .retain(|_, s| s.lifecycle != Lifecycle::Creating || !failed(s.job));
        for set in config.sets.values_mut() {
            set.backends
                .retain(|_, b| b.lifecycle != Lifecycle::Creating || !failed(b.job));
        }
    }

    /// A dependency on `job` if it is still running or queued (a finished one needs none).
    fn pending(&self, job: JobId) -> Option<JobId> {
        self.engine()
            .get(job)
            .ok()
            .filter(|s| !s.is_terminal())
            .map(|_| job)
    }
}

// ----- requests -----------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSet {
    name: String,
    #[serde(default = "round_robin")]
    policy: String,
}

fn round_robin() -> String {
    "round_robin".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBackend {
    ip: std::net::IpAddr,
    port: u16,
}

fn bad(target: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(target, message)
}

fn conflict(target: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::CONFLICT,
        ErrorCode::InvalidState,
        message,
    )
    .with_target(target)
}

fn no_set(name: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        format!("no backend set \"{name}\""),
    )
    .with_target(name)
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(bad("name", "a name is 1–32 characters of a-z, 0-9 and '-'"))
    }
}

async fn create_set(
    State(app): State<App>,
    ReturnTimeout(wait): ReturnTimeout,
    JsonBody(body): JsonBody<CreateSet>,
) -> Result<Response, ApiError> {
    check_name(&body.name)?;
    if !["round_robin", "five_tuple", "three_tuple", "two_tuple"].contains(&body.policy.as_str()) {
        return Err(bad(
            "policy",
            "policy is round_robin, five_tuple, three_tuple or two_tuple",
        ));
    }
    let id = {
        let mut config = app.config();
        app.prune(&mut config);
        if config.sets.contains_key(&body.name) {
            return Err(conflict(
                "name",
                format!("backend set \"{}\" exists", body.name),
            ));
        }
        let description = format!("create backend set {}", body.name);
        let op = Op::CreateSet {
            name: body.name.clone(),
            policy: body.policy.clone(),
        };
        let id = app
            .engine()
            .submit(NewJob::new(op).description(&description))
            .map_err(|e| app.api.refused(e))?;
        config.sets.insert(
            body.name.clone(),
            BackendSet {
                name: body.name.clone(),
                policy: body.policy,
                lifecycle: Lifecycle::Creating,
                backends: BTreeMap::new(),
                job: id,
            },
        );
        id
    };
    info!(set = %body.name, job = %app.api.uuid_of(id), "backend set creation accepted");
    app.api.respond(id, wait).await
}

async fn delete_set(
    State(app): State<App>,
    PathParams(name): PathParams<String>,
    ReturnTimeout(wait): ReturnTimeout,
) -> Result<Response, ApiError> {
    let id = {
        let mut config = app.config();
        app.prune(&mut config);
        let Some(set) = config.sets.get_mut(&name) else {
            return Err(no_set(&name));
        };
        if set.lifecycle == Lifecycle::Deleting {
            return Err(conflict(
                &name,
                format!("backend set \"{name}\" is being deleted"),
            ));
        }
        let mut deps: Vec<JobId> = app.pending(set.job).into_iter().collect();
        deps.extend(set.backends.values().filter_map(|b| app.pending(b.job)));
        deps.truncate(4);
        let description = format!("delete backend set {name}");
        let id = app
            .engine()
            .submit(
                NewJob::new(Op::DeleteSet { name: name.clone() })
                    .description(&description)
                    .depends_on(&deps),
            )
            .map_err(|e| app.api.refused(e))?;
        set.lifecycle = Lifecycle::Deleting;
        id
    };
    info!(set = %name, job = %app.api.uuid_of(id), "backend set deletion accepted");
    app.api.respond(id, wait).await
}

async fn add_backend(
    State(app): State<App>,
    PathParams(set_name): PathParams<String>,
    ReturnTimeout(wait): ReturnTimeout,
    JsonBody(body): JsonBody<AddBackend>,
) -> Result<Response, ApiError> {
    let backend = SocketAddr::new(body.ip, body.port).to_string();
    let id = {
        let mut config = app.config();
        app.prune(&mut config);
        let Some(set) = config.sets.get_mut(&set_name) else {
            return Err(no_set(&set_name));
        };
        if set.lifecycle == Lifecycle::Deleting {
            return Err(conflict(&set_name, "the backend set is being deleted"));
        }
        if set.backends.contains_key(&backend) {
            return Err(conflict("ip", format!("backend {backend} exists")));
        }
        // Oracle's rule: adding a backend needs its set; the job waits for the set's
        // creation job, and fails with DependencyFailed if that fails.
        let deps: Vec<JobId> = app.pending(set.job).into_iter().collect();
        let description = format!("add backend {backend} to {set_name}");
        let op = Op::AddBackend {
            set: set_name.clone(),
            ip: body.ip.to_string(),
            port: body.port,
        };
        let id = app
            .engine()
            .submit(NewJob::new(op).description(&description).depends_on(&deps))
            .map_err(|e| app.api.refused(e))?;
        set.backends.insert(
            backend.clone(),
            Backend {
                ip: body.ip.to_string(),
                port: body.port,
                lifecycle: Lifecycle::Creating,
                job: id,
            },
        );
        id
    };
    info!(set = %set_name, %backend, job = %app.api.uuid_of(id), "backend addition accepted");
    app.api.respond(id, wait).await
}

async fn remove_backend(
    State(app): State<App>,
    PathParams((set_name, backend)): PathParams<(String, String)>,
    ReturnTimeout(wait): ReturnTimeout,
) -> Result<Response, ApiError> {
    let id = {
        let mut config = app.config();
        app.prune(&mut config);
        let Some(set) = config.sets.get_mut(&set_name) else {
            return Err(no_set(&set_name));
        };
        let Some(b) = set.backends.get_mut(&backend) else {
            return Err(ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                format!("no backend \"{backend}\" in \"{set_name}\""),
            )
            .with_target(&backend));
        };
        if b.lifecycle == Lifecycle::Deleting {
            return Err(conflict(&backend, "the backend is being removed"));
        }
        let deps: Vec<JobId> = app.pending(b.job).into_iter().collect();
        let description = format!("remove backend {backend} from {set_name}");
        let op = Op::RemoveBackend {
            set: set_name.clone(),
            backend: backend.clone(),
        };
        let id = app
            .engine()
            .submit(NewJob::new(op).description(&description).depends_on(&deps))
            .map_err(|e| app.api.refused(e))?;
        b.lifecycle = Lifecycle::Deleting;
        id
    };
    info!(set = %set_name, %backend, job = %app.api.uuid_of(id), "backend removal accepted");
    app.api.respond(id, wait).await
}

async fn list_sets(State(app): State<App>) -> Response {
    let mut config = app.config();
    app.prune(&mut config);
    let records: Vec<&BackendSet> = config.sets.values().collect();
    Json(json!({"records": records, "num_records": records.len()})).into_response()
}

async fn get_set(
    State(app): State<App>,
    PathParams(name): PathParams<String>,
) -> Result<Response, ApiError> {
    let mut config = app.config();
    app.prune(&mut config);
    match config.sets.get(&name) {
        Some(set) => Ok(Json(set).into_response()),
        None => Err(no_set(&name)),
    }
}

// ----- the worker ---------------------------------------------------------------------------

/// Run `steps` with a progress message each, checking in between them.
fn steps(ctx: &mut Ctx<'_>, step: Duration, steps: &[&str]) -> Result<(), Failure> {
    for (k, what) in steps.iter().enumerate() {
        ctx.checkpoint()?;
        let done = u8::try_from(k * 100 / steps.len().max(1)).unwrap_or(100);
        ctx.progress(done, what)?;
        ctx.log(what)?;
        std::thread::sleep(step);
    }
    ctx.checkpoint()?;
    Ok(())
}

fn run(ctx: &mut Ctx<'_>, config: &Mutex<Config>, step: Duration) -> Result<Success, Failure> {
    let op = ctx.spec().clone();
    let lock = || config.lock().unwrap_or_else(|e| e.into_inner());
    match op {
        Op::CreateSet { name, policy } => {
            steps(
                ctx,
                step,
                &[
                    "validating policy",
                    "allocating listener capacity",
                    "programming data plane",
                    "syncing health checks",
                ],
            )?;
            if let Some(s) = lock().sets.get_mut(&name) {
                s.lifecycle = Lifecycle::Active;
            }
            Ok(Success::normal(format!(
                "backend set {name} ({policy}) created"
            )))
        }
        Op::AddBackend { set, ip, port } => {
            steps(
                ctx,
                step,
                &[
                    "resolving backend",
                    "opening health check",
                    "adding to rotation",
                ],
            )?;
            if ip == "0.0.0.0" {
                return Err(Failure::new(
                    1001,
                    format!("health check of {ip}:{port} failed: unreachable"),
                ));
            }
            let key = SocketAddr::new(ip.parse().map_err(|_| Failure::new(1002, "bad ip"))?, port)
                .to_string();
            if let Some(b) = lock()
                .sets
                .get_mut(&set)
                .and_then(|s| s.backends.get_mut(&key))
            {
                b.lifecycle = Lifecycle::Active;
            }
            Ok(Success::normal(format!("backend {key} added to {set}")))
        }
        Op::RemoveBackend { set, backend } => {
            steps(
                ctx,
                step,
                &["draining connections", "removing from rotation"],
            )?;
            if let Some(s) = lock().sets.get_mut(&set) {
                s.backends.remove(&backend);
            }
            Ok(Success::normal(format!(
                "backend {backend} removed from {set}"
            )))
        }
        Op::DeleteSet { name } => {
            steps(
                ctx,
                step,
                &["draining backends", "releasing listener capacity"],
            )?;
            lock().sets.remove(&name);
            Ok(Success::normal(format!("backend set {name} deleted")))
        }
    }
}

/// Put a backend set or backend whose deletion failed or was canceled back to active.
fn restore(config: &Mutex<Config>, op: &Op) {
    let mut c = config.lock().unwrap_or_else(|e| e.into_inner());
    match op {
        Op::DeleteSet { name } => {
            if let Some(s) = c.sets.get_mut(name) {
                s.lifecycle = Lifecycle::Active;
            }
        }
        Op::RemoveBackend { set, backend } => {
            if let Some(b) = c
                .sets
                .get_mut(set)
                .and_then(|s| s.backends.get_mut(backend))
            {
                b.lifecycle = Lifecycle::Active;
            }
        }
        Op::CreateSet { .. } | Op::AddBackend { .. } => {}
    }
}

// ----- the service --------------------------------------------------------------------------

async fn log_requests(req: Request, next: Next) -> Response {
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status();
    let ms = started.elapsed().as_secs_f64() * 1e3;
    if status.is_server_error() {
        warn!(%method, %uri, status = status.as_u16(), ms, "request");
    } else {
        info!(%method, %uri, status = status.as_u16(), ms, "request");
    }
    response
}

fn document() -> serde_json::Value {
    let mut doc = openapi::document();
    let err = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/error_response"}}}});
    let name =
        json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}});
    let backend = json!({"name": "backend", "in": "path", "required": true, "schema": {"type": "string"}, "description": "ip:port"});
    let mut asynchronous = |path: &str,
                            method: &str,
                            summary: &str,
                            params: Vec<serde_json::Value>,
                            body: Option<serde_json::Value>| {
        let mut responses = openapi::async_responses();
        responses["404"] = err("No such backend set or backend.");
        responses["409"] = err("It exists already, or is being deleted.");
        let mut parameters = params;
        parameters.push(openapi::return_timeout_param());
        let mut op = json!({"summary": summary, "parameters": parameters, "responses": responses});
        if let Some(schema) = body {
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": schema}}});
        }
        openapi::add_operation(&mut doc, path, method, op);
    };
    asynchronous(
        "/api/lb/backend-sets",
        "post",
        "Create a backend set (asynchronous).",
        vec![],
        Some(
            json!({"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9-]{1,32}$"},
            "policy": {"type": "string", "enum": ["round_robin", "five_tuple", "three_tuple", "two_tuple"]}}}),
        ),
    );
    asynchronous(
        "/api/lb/backend-sets/{name}",
        "delete",
        "Delete a backend set (asynchronous).",
        vec![name.clone()],
        None,
    );
    asynchronous(
        "/api/lb/backend-sets/{name}/backends",
        "post",
        "Add a backend to a set (asynchronous; waits for the set's creation).",
        vec![name.clone()],
        Some(
            json!({"type": "object", "required": ["ip", "port"], "properties": {
            "ip": {"type": "string"}, "port": {"type": "integer", "minimum": 0, "maximum": 65535}}}),
        ),
    );
    asynchronous(
        "/api/lb/backend-sets/{name}/backends/{backend}",
        "delete",
        "Remove a backend (asynchronous).",
        vec![name.clone(), backend],
        None,
    );
    let ok = json!({"description": "The configuration.", "content": {"application/json": {"schema": {"type": "object"}}}});
    openapi::add_operation(
        &mut doc,
        "/api/lb/backend-sets",
        "get",
        json!({"summary": "List backend sets.", "responses": {"200": ok.clone()}}),
    );
    openapi::add_operation(
        &mut doc,
        "/api/lb/backend-sets/{name}",
        "get",
        json!({"summary": "One backend set.", "parameters": [name], "responses": {"200": ok, "404": err("No such backend set.")}}),
    );
    doc
}

struct Options {
    listen: SocketAddr,
    workers: usize,
    step: Duration,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        workers: 4,
        step: Duration::from_millis(600),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--listen" => o.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--workers" => o.workers = value()?.parse().map_err(|e| format!("--workers: {e}"))?,
            "--step-ms" => {
                o.step =
                    Duration::from_millis(value()?.parse().map_err(|e| format!("--step-ms: {e}"))?)
            }
            "-h" | "--help" => {
                return Err("usage: appliance [--listen ADDR] [--workers N] [--step-ms MS]".into())
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };

    let engine: Lb = Engine::new(EngineConfig::default());
    let config = Arc::new(Mutex::new(Config::default()));
    let api = JobsApi::new(engine.clone()).with_openapi(&document());
    let pool = {
        let (config, step, uuids) = (config.clone(), opts.step, api.uuids());
        WorkerPool::start(engine.clone(), opts.workers, move |ctx| {
            let op = ctx.spec().clone();
            let uuid = uuids.encode(ctx.id());
            info!(job = %uuid, ?op, "job started");
            let result = run(ctx, &config, step);
            match &result {
                Ok(s) => info!(job = %uuid, message = %s.message, "job succeeded"),
                Err(f) => {
                    restore(&config, &op);
                    warn!(job = %uuid, code = f.code, message = %f.message, "job failed");
                }
            }
            result
        })?
    };
    let app = App {
        api: api.clone(),
        config,
    };
    let router: Router = Router::new()
        .route("/api/lb/backend-sets", post(create_set).get(list_sets))
        .route(
            "/api/lb/backend-sets/{name}",
            delete(delete_set).get(get_set),
        )
        .route("/api/lb/backend-sets/{name}/backends", post(add_backend))
        .route(
            "/api/lb/backend-sets/{name}/backends/{backend}",
            delete(remove_backend),
        )
        .with_state(app)
        .merge(api.router())
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/api/openapi.json") }),
        )
        .fallback(fallback)
        .layer(middleware::from_fn(log_requests));

    let listener = tokio::net::TcpListener::bind(opts.listen).await?;
    info!(
        addr = %listener.local_addr()?,
        workers = opts.workers,
        step_ms = opts.step.as_millis() as u64,
        "load balancer appliance listening"
    );
    let closing = api.clone();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            info!("shutting down: no new requests, ending open long-polls");
            closing.close_polls();
        })
        .await?;
    info!("stopping workers (running jobs end at their next checkpoint)");
    tokio::task::spawn_blocking(move || pool.shutdown())
        .await
        .map_err(std::io::Error::other)?;
    info!("shut down cleanly");
    Ok(())
}
