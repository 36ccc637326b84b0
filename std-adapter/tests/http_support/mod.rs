//! A test service on loopback: the binding over an engine, one asynchronous endpoint of
//! the service's own (`POST /api/test/jobs`), and a reqwest client.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use jobstate::{JobOptions, NewJob};
use jobstate_std::http::{fallback, ApiError, JobsApi, JsonBody, PathParams, ReturnTimeout};
use jobstate_std::{Engine, EngineConfig, Failure, Success, WorkerPool};
use serde::Deserialize;
use serde_json::Value;

/// What a test job does when a worker pool runs it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Spec {
    /// Succeed at once.
    Instant,
    /// Fail with code 42.
    Fail,
    /// Check in until the test opens the gate (or the job is canceled).
    Hold,
}

pub const CAP: usize = 8;
pub type Jobs = jobstate::JobTable<Spec, CAP>;
pub type Api = JobsApi<Jobs>;

#[derive(Deserialize)]
struct Create {
    spec: Spec,
    #[serde(default)]
    description: String,
    #[serde(default = "yes")]
    pausable: bool,
}

fn yes() -> bool {
    true
}

async fn create(
    State(api): State<Api>,
    ReturnTimeout(wait): ReturnTimeout,
    JsonBody(body): JsonBody<Create>,
) -> Result<Response, ApiError> {
    let job = NewJob::new(body.spec)
        .description(&body.description)
        .options(JobOptions {
            pausable: body.pausable,
            ..JobOptions::DEFAULT
        });
    api.submit(job, wait).await
}

pub struct Server {
    pub base: String,
    pub api: Api,
    pub engine: Engine<Jobs>,
    pub client: reqwest::Client,
    /// Opens the gate of `Hold` jobs (one message per job).
    pub gate: mpsc::Sender<()>,
    pool: Option<WorkerPool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Let held jobs end so the pool can join.
        for _ in 0..CAP {
            let _ = self.gate.send(());
        }
        if let Some(p) = self.pool.take() {
            p.shutdown();
        }
    }
}

pub fn config(retention: Duration) -> EngineConfig {
    EngineConfig {
        table: jobstate::Config {
            retention: jobstate::Duration::from_micros(retention.as_micros() as u64),
        },
        ..EngineConfig::default()
    }
}

/// A server over a new engine; with `workers`, a worker pool runs the jobs, otherwise the
/// test drives them through the engine.
pub async fn serve(config: EngineConfig, workers: bool) -> Server {
    let engine: Engine<Jobs> = Engine::new(config);
    let api = JobsApi::new(engine.clone());
    let (gate, gate_rx) = mpsc::channel::<()>();
    let gate_rx = Arc::new(Mutex::new(gate_rx));
    let pool = workers.then(|| {
        WorkerPool::start(engine.clone(), 2, move |ctx| match ctx.spec().clone() {
            Spec::Instant => Ok(Success::normal("done")),
            Spec::Fail => Err(Failure::new(42, "boom")),
            Spec::Hold => loop {
                ctx.checkpoint()?;
                let got = gate_rx
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_millis(5));
                if got.is_ok() {
                    return Ok(Success::normal("released"));
                }
            },
        })
        .unwrap()
    });
    let app: Router = Router::new()
        .route("/api/test/jobs", post(create))
        .route(
            "/api/test/items/{n}",
            axum::routing::get(|PathParams(n): PathParams<u32>| async move { n.to_string() }),
        )
        .with_state(api.clone())
        .merge(api.router())
        .fallback(fallback);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        base,
        api,
        engine,
        client: client(),
        gate,
        pool,
    }
}

/// A reqwest client. In a workspace build the appliance's tests turn on reqwest's rustls
/// (features are unified), which then needs a process-wide crypto provider: install ring's.
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text:?}"))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(self.url(path))).await
    }

    pub async fn patch(&self, path: &str) -> Reply {
        self.send(self.client.patch(self.url(path))).await
    }

    /// `POST /api/test/jobs` with this spec (and query).
    pub async fn create(&self, spec: &str, query: &str) -> Reply {
        let body = serde_json::json!({"spec": spec, "description": format!("test {spec}")});
        self.send(
            self.client
                .post(self.url(&format!("/api/test/jobs{query}")))
                .json(&body),
        )
        .await
    }

    /// Wait (bounded) until `n` long-polls are registered with the engine.
    pub async fn until_polls(&self, n: usize) {
        for _ in 0..10_000 {
            if self.api.long_polls() == n && self.engine.waiting() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("long-polls never reached {n}");
    }
}

/// Assert an error envelope: status, `error.code` and `error.message` present.
#[track_caller]
pub fn assert_envelope(r: &Reply, status: u16) {
    assert_eq!(r.status, status, "{:?}", r.body);
    let e = &r.body["error"];
    assert!(e["code"].is_string(), "no error.code: {:?}", r.body);
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no error.message: {:?}",
        r.body
    );
}
