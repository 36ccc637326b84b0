//! jobstate's demo appliance: a simulated network load balancer whose configuration changes
//! run as jobs, served in ONTAP's job dialect — as a production service: TLS, basic
//! authentication with two roles, connection hygiene, `/metrics`, a graceful shutdown.
//!
//! ```text
//! cargo run --release -p appliance -- --listen 127.0.0.1:8080
//! ```
//!
//! * [`cli`] — options; [`model`] — the configuration and its rules; [`routes`] — the HTTP
//!   surface and its OpenAPI document; [`worker`] — what the jobs do; [`server`] — hyper,
//!   TLS, connection cap; [`auth`] — users and roles; [`metrics`] — `/metrics`.
//!
//! ## Shutdown
//!
//! On SIGTERM or SIGINT ([`Appliance::shutdown`]): stop accepting connections; answer every
//! open long-poll and `return_timeout` wait at once with the job as it is; close idle
//! connections and let requests in flight finish; keep the workers from starting queued jobs
//! (each idle worker is given an urgent "hold" job) and give running jobs up to
//! `--shutdown-grace` to end; then stop the workers — a job still running fails
//! `Interrupted` ("interrupted: the appliance shut down") at its next checkpoint, within one
//! step — and return, so the process exits 0.

pub mod auth;
pub mod cli;
pub mod keys;
pub mod metrics;
pub mod model;
pub mod oci;
pub mod routes;
pub mod server;
pub mod storage;
pub mod worker;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobstate::{JobOptions, NewJob, Priority, State};
use jobstate_std::http::{ApiConfig, JobsApi};
use jobstate_std::{Engine, EngineConfig, WorkerPool};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::cli::{Options, Storage, Users as UsersFrom};
use crate::metrics::Metrics;
use crate::model::{Jobs, Lb, Op};
use crate::routes::{App, Limits};
use crate::server::ServerConfig;
use crate::worker::Gate;

/// The jobs binding over the appliance's table.
pub type Api = JobsApi<Jobs>;

/// A running appliance.
pub struct Appliance {
    addr: SocketAddr,
    api: Api,
    lb: Lb,
    metrics: Arc<Metrics>,
    trigger: watch::Sender<Option<&'static str>>,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl std::fmt::Debug for Appliance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appliance")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn load_users(from: &UsersFrom) -> io::Result<Option<auth::Users>> {
    let text = match from {
        UsersFrom::None => return Ok(None),
        UsersFrom::Env(text) => text.clone(),
        UsersFrom::File(path) => std::fs::read_to_string(path)
            .map_err(|e| io::Error::new(e.kind(), format!("--users {}: {e}", path.display())))?,
    };
    auth::Users::parse(&text)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

impl Appliance {
    /// Bind, start the workers and serve. Logs `load balancer appliance listening` with the
    /// address once it accepts connections.
    pub async fn start(opts: Options) -> io::Result<Appliance> {
        let fds = server::raise_fd_limit();
        // Keep room for the table's files, logs and the listener.
        let cap = usize::try_from(fds.saturating_sub(64))
            .unwrap_or(usize::MAX)
            .max(1);
        let max_connections = if opts.max_connections > cap {
            warn!(
                asked = opts.max_connections,
                cap, "--max-connections lowered to fit the open-file limit"
            );
            cap
        } else {
            opts.max_connections
        };
        let users = load_users(&opts.users)?;
        let tls = match &opts.tls {
            Some(t) => Some(server::tls_acceptor(&t.cert, &t.key)?),
            None => None,
        };
        if users.is_none() && !opts.listen.ip().is_loopback() {
            warn!(addr = %opts.listen, "serving without authentication on a non-loopback address");
        }

        // The job table. Durable storage (see `cli::Storage`) opens or restores it here.
        let engine_config = EngineConfig {
            table: jobstate::Config {
                retention: jobstate::Duration::from_millis(
                    u64::try_from(opts.retention.as_millis()).unwrap_or(u64::MAX),
                ),
            },
            ..EngineConfig::default()
        };
        let (engine, stored): (Engine<Jobs>, Option<storage::Opened>) = match &opts.storage {
            Storage::Memory => (Engine::try_new(engine_config)?, None),
            Storage::Dir(dir) => {
                let opened = storage::open(dir, engine_config)?;
                (opened.engine.clone(), Some(opened))
            }
        };
        let metrics = Arc::new(Metrics::new());
        let mut api = JobsApi::new(engine.clone())
            .with_config(ApiConfig::default())
            .with_observer(metrics.clone());
        if let Some(s) = &stored {
            api = api
                .with_uuids(s.uuids)
                .with_durability(s.durability.clone());
        }
        let api = api
            .with_work_requests(oci::COMPARTMENT, oci::describe)
            .with_openapi(&routes::document(users.is_some()));
        let key_secret = match &stored {
            Some(s) => s.key_secret.clone(),
            None => keys::KeySecret::random()?,
        };
        let mut lb = Lb::new(engine.clone(), api.uuids());
        let durability = stored.as_ref().map(|s| s.durability.clone());
        if let Some(s) = stored {
            let file = s.config_file.clone();
            lb = lb.with_config(s.config).on_change(move |c| file.save(c));
            lb.reconcile();
        }

        let gate = Gate::new();
        let pool = WorkerPool::start(
            engine.clone(),
            opts.workers,
            worker::handler(gate.clone(), opts.step, api.uuids()),
        )?;
        let limits = Limits {
            max_body: opts.max_body,
            ..Limits::default()
        };
        let app = App {
            api: api.clone(),
            lb: lb.clone(),
            keys: key_secret,
        };
        let router = routes::router(app, metrics.clone(), users, limits);

        let listener = server::bind(opts.listen)?;
        let addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let server_config = ServerConfig {
            header_timeout: opts.header_timeout,
            max_connections,
            tls,
            ..ServerConfig::default()
        };
        let server = tokio::spawn(server::serve(
            listener,
            router,
            server_config,
            metrics.clone(),
            stop_rx,
        ));
        let reconciler = tokio::spawn(reconcile(lb.clone()));
        info!(
            %addr,
            tls = opts.tls.is_some(),
            auth = !matches!(opts.users, UsersFrom::None),
            workers = opts.workers,
            step_ms = u64::try_from(opts.step.as_millis()).unwrap_or(u64::MAX),
            max_connections,
            "load balancer appliance listening"
        );

        let (trigger, mut triggered) = watch::channel(None);
        let run = Run {
            _release: Release(gate.clone()),
            api: api.clone(),
            lb: lb.clone(),
            engine,
            pool,
            gate,
            workers: opts.workers,
            grace: opts.shutdown_grace,
            stop: stop_tx,
            server,
            reconciler,
            durability,
        };
        let task = tokio::spawn(async move {
            let why = triggered
                .wait_for(Option::is_some)
                .await
                .map(|why| why.unwrap_or("shutdown"));
            match why {
                Ok(why) => run.shutdown(why).await,
                // The handle was dropped without a shutdown (a test, a failed start): stop
                // without the graceful sequence; dropping `run` releases and joins the workers.
                Err(_) => Ok(()),
            }
        });
        Ok(Appliance {
            addr,
            api,
            lb,
            metrics,
            trigger,
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The jobs binding.
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// The configuration.
    pub fn lb(&self) -> &Lb {
        &self.lb
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Begin the shutdown (`why` names the cause in the log), as a signal does.
    pub fn shutdown(&self, why: &'static str) {
        self.trigger.send_replace(Some(why));
    }

    /// Wait until the shutdown is complete.
    pub async fn wait(self) -> io::Result<()> {
        self.task.await.map_err(io::Error::other)?
    }
}

/// Settle the configuration after every change of the table, so objects follow their jobs
/// however those end (and barriers are released as soon as their jobs end).
async fn reconcile(lb: Lb) {
    let mut seen = lb.engine().revision();
    loop {
        lb.reconcile();
        let waited = lb
            .engine()
            .wait_table_async(seen, jobstate_std::DEFAULT_MAX_WAIT)
            .await;
        seen = waited.revision;
    }
}

/// How long stopped workers get to return from their handlers (a step's sleep is cut short
/// at once; a handler that does not check in by then is detached, its job interrupted).
const POOL_STOP: Duration = Duration::from_secs(5);

/// What the shutdown needs.
struct Run {
    /// First, so it is dropped before the pool: releases held workers and sleeping steps, so
    /// the pool's drop (which joins its threads) never waits on them.
    _release: Release,
    api: Api,
    lb: Lb,
    engine: Engine<Jobs>,
    pool: WorkerPool,
    gate: Arc<Gate>,
    workers: usize,
    grace: Duration,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<hyper_util::server::graceful::GracefulShutdown>,
    reconciler: tokio::task::JoinHandle<()>,
    /// The table's group commit, with `--data-dir`.
    durability: Option<Arc<jobstate_std::persist::Durability>>,
}

/// Stops the workers' gate when dropped.
struct Release(Arc<Gate>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Jobs that workers run and that are still running (not a hold).
fn running(engine: &Engine<Jobs>) -> usize {
    engine.with_table(|t| {
        jobstate::Table::iter(t)
            .filter(|j| {
                j.state() == State::Running && !matches!(j.spec(), Op::Hold | Op::Barrier { .. })
            })
            .count()
    })
}

impl Run {
    async fn shutdown(self, why: &'static str) -> io::Result<()> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.grace;
        info!(
            signal = why,
            grace_s = self.grace.as_secs_f64(),
            "shutting down: no new connections, answering open waits"
        );
        // 1. Stop accepting; answer every open long-poll and return_timeout wait now.
        self.stop.send_replace(true);
        self.api.close_polls();
        // 2. Keep idle workers from starting queued jobs: an urgent hold job for each.
        let holds: Vec<_> = (0..self.workers)
            .filter_map(|_| {
                let options = JobOptions {
                    pausable: false,
                    ..JobOptions::DEFAULT
                };
                let job = NewJob::new(Op::Hold)
                    .description("hold a worker during shutdown")
                    .options(options)
                    .priority(Priority::Urgent);
                self.engine.submit(job).ok()
            })
            .collect();
        // 3. Let connections finish their requests (bounded by the grace).
        let graceful = self.server.await.map_err(io::Error::other)?;
        let open = graceful.count();
        let drained = tokio::spawn(graceful.shutdown());
        // 4. The grace: until no worker runs a job, or the deadline.
        let mut seen = self.engine.revision();
        loop {
            let left = running(&self.engine);
            if left == 0 {
                break;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                warn!(running = left, "grace over: interrupting running jobs");
                break;
            }
            seen = self
                .engine
                .wait_table_async(seen, deadline - now)
                .await
                .revision;
        }
        // 5. The hard stop: wake sleeping steps and held workers, fail the barriers, stop the
        //    pool (a job still running fails Interrupted at its next checkpoint).
        self.gate.stop();
        self.reconciler.abort();
        self.lb.interrupt_barriers();
        let pool = self.pool;
        let report = tokio::task::spawn_blocking(move || pool.shutdown_within(POOL_STOP))
            .await
            .map_err(io::Error::other)?;
        if report.abandoned > 0 {
            warn!(
                ?report,
                "workers did not stop in time; their jobs were failed as interrupted"
            );
        }
        for h in holds {
            // Holds no worker took: end them (a restart must not find them queued).
            let _ = self.engine.request_cancel(h);
        }
        self.lb.reconcile();
        // Durable storage saves the table one last time.
        if let Some(d) = &self.durability {
            if let Err(e) = d.wait(self.engine.revision(), Duration::from_secs(5)) {
                warn!(error = %e, "last save of the job table failed");
            }
        }
        let closed = tokio::time::timeout(Duration::from_secs(1), drained)
            .await
            .is_ok();
        info!(
            connections_at_stop = open,
            connections_closed = closed,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "shut down cleanly"
        );
        Ok(())
    }
}
