//! One replica of a job service whose table lives in etcd: the std adapter's HTTP binding
//! (ONTAP, OCI, Unified Manager and Deploy dialects) over an [`EtcdStore`], a submit endpoint
//! and a few workers. Start several against the same etcd cluster: a job submitted through one
//! is read, long-polled, paused or canceled through any, and run by a worker of any.
//!
//! ```sh
//! cargo run -p jobstate-etcd --example replica -- \
//!     --etcd http://127.0.0.1:2379 --listen 127.0.0.1:8080 --workers 2
//! curl -s -X POST 'localhost:8080/api/work' -d '{"steps":5,"step_ms":200}' \
//!     -H 'content-type: application/json'
//! ```
//!
//! `POST /api/work` (body `{"steps": n, "step_ms": ms, "restartable": bool}`, optional
//! `?return_timeout=s`) answers `202` with the job link, as ONTAP's asynchronous endpoints do.
//! Each step checks in (pause parks the worker, cancel ends the job) and reports progress.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use jobstate::{JobOptions, NewJob};
use jobstate_etcd::{Claimed, EtcdConfig, EtcdStore};
use jobstate_std::http::{fallback, ApiError, JobUuids, JobsApi, JsonBody, ReturnTimeout};
use jobstate_std::{Engine, EngineConfig, Failure, Success};
use serde::{Deserialize, Serialize};

/// What a job does: `steps` steps of `step_ms` each.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Work {
    steps: u32,
    step_ms: u64,
    #[serde(default)]
    restartable: bool,
}

/// The binding's own engine type; with an etcd store the binding does not use the engine.
type Local = jobstate::JobTable<Work, 1>;
type Api = JobsApi<Local>;

async fn submit(
    State(api): State<Api>,
    ReturnTimeout(wait): ReturnTimeout,
    JsonBody(work): JsonBody<Work>,
) -> Result<Response, ApiError> {
    let options = JobOptions {
        pausable: true,
        cancelable: true,
        restartable: work.restartable,
        ..JobOptions::DEFAULT
    };
    let job = NewJob::new(work).description("work").options(options);
    api.submit(job, wait).await
}

async fn run(job: Claimed<Work>) -> Result<Success, Failure> {
    let work = job.spec().clone();
    for step in 0..work.steps {
        job.proceed().await?;
        let percent = u8::try_from(step * 100 / work.steps.max(1)).unwrap_or(100);
        job.progress(percent, &format!("step {} of {}", step + 1, work.steps))
            .await
            .map_err(|e| Failure::new(4, e.to_string()))?;
        tokio::time::sleep(Duration::from_millis(work.step_ms)).await;
    }
    job.proceed().await?;
    Ok(Success::normal(format!("{} steps done", work.steps)))
}

struct Args {
    etcd: Vec<String>,
    listen: SocketAddr,
    workers: usize,
    lease_ttl: Duration,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        etcd: vec!["http://127.0.0.1:2379".to_owned()],
        listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        workers: 2,
        lease_ttl: Duration::from_secs(5),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--etcd" => args.etcd = value.split(',').map(str::to_owned).collect(),
            "--listen" => args.listen = value.parse().map_err(|e| format!("--listen: {e}"))?,
            "--workers" => args.workers = value.parse().map_err(|e| format!("--workers: {e}"))?,
            "--lease-ttl-secs" => {
                args.lease_ttl = Duration::from_secs(
                    value
                        .parse()
                        .map_err(|e| format!("--lease-ttl-secs: {e}"))?,
                )
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_target(false).init();
    let args = args()?;
    let mut config = EtcdConfig::new(args.etcd.clone());
    config.lease_ttl = args.lease_ttl;
    let store: EtcdStore<Work> = EtcdStore::connect(config).await?;
    let engine: Engine<Local> = Engine::try_new(EngineConfig::default())?;
    let api = JobsApi::new(engine)
        .with_store(Arc::new(store.clone()))
        .with_uuids(JobUuids::with_tag(store.uuid_tag()));
    let _workers = store.work(args.workers, run);
    let app: Router = Router::new()
        .route("/api/work", post(submit))
        .with_state(api.clone())
        .merge(api.router())
        .fallback(fallback);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, epoch = store.epoch(), workers = args.workers, "replica listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
