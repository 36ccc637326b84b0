//! The HTTP binding over a [`JobStore`] of its own (`JobsApi::with_store`): every dialect reads
//! and changes jobs through the store — never through the engine `JobsApi::new` got — and a
//! store that cannot answer is a 503 with the error envelope and `Retry-After`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, Request as HttpRequest};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use jobstate::{Condition, JobId, NewJob, Request, Revision, Waited};
use jobstate_std::http::{ApiError, JobsApi};
use jobstate_std::store::{History, Pending, Refusal, Requested};
use jobstate_std::{Clock, Engine, EngineConfig, JobStore, Snapshot, StoreError};
use serde_json::Value;
use tower::ServiceExt;

const T: usize = 64;
type Jobs = jobstate::JobTable<String, 8>;
type Api = JobsApi<Jobs>;

/// A store that hands every call to an engine, counting the calls by name.
struct Counting {
    inner: Engine<Jobs>,
    calls: Mutex<BTreeMap<&'static str, usize>>,
}

impl Counting {
    fn count(&self, name: &'static str) {
        *self.calls.lock().unwrap().entry(name).or_default() += 1;
    }

    fn calls(&self, name: &str) -> usize {
        self.calls.lock().unwrap().get(name).copied().unwrap_or(0)
    }

    fn store(&self) -> &dyn JobStore<String, T> {
        &self.inner
    }
}

impl JobStore<String, T> for Counting {
    fn clock(&self) -> Clock {
        self.count("clock");
        self.store().clock()
    }

    fn submit<'a>(&'a self, job: NewJob<'a, String>) -> Pending<'a, Result<JobId, StoreError>>
    where
        String: 'a,
    {
        self.count("submit");
        self.store().submit(job)
    }

    fn get(&self, id: JobId) -> Pending<'_, Result<Snapshot<String, T>, StoreError>> {
        self.count("get");
        self.store().get(id)
    }

    fn list(&self) -> Pending<'_, Result<Vec<Snapshot<String, T>>, StoreError>> {
        self.count("list");
        self.store().list()
    }

    fn wait(
        &self,
        id: JobId,
        condition: Condition,
        timeout: Duration,
    ) -> Pending<'_, Result<Waited<Snapshot<String, T>>, StoreError>> {
        self.count("wait");
        self.store().wait(id, condition, timeout)
    }

    fn request(&self, id: JobId, request: Request) -> Pending<'_, Result<Requested, Refusal>> {
        self.count("request");
        self.store().request(id, request)
    }

    fn revision(&self) -> Pending<'_, Result<Revision, StoreError>> {
        self.count("revision");
        self.store().revision()
    }

    fn free_in(&self) -> Pending<'_, Option<Duration>> {
        self.count("free_in");
        self.store().free_in()
    }

    fn history(&self, id: JobId) -> Pending<'_, Result<History, StoreError>> {
        self.count("history");
        self.store().history(id)
    }

    fn claim(&self) -> Pending<'_, Result<Option<Snapshot<String, T>>, StoreError>> {
        self.count("claim");
        self.store().claim()
    }

    fn progress<'a>(
        &'a self,
        id: JobId,
        percent: u8,
        message: &'a str,
    ) -> Pending<'a, Result<(), StoreError>> {
        self.count("progress");
        self.store().progress(id, percent, message)
    }

    fn heartbeat(&self, id: JobId) -> Pending<'_, Result<(), StoreError>> {
        self.count("heartbeat");
        self.store().heartbeat(id)
    }

    fn checkpoint(&self, id: JobId) -> Pending<'_, Result<jobstate::Directive, StoreError>> {
        self.count("checkpoint");
        self.store().checkpoint(id)
    }

    fn succeed<'a>(
        &'a self,
        id: JobId,
        severity: jobstate::Severity,
        message: &'a str,
    ) -> Pending<'a, Result<(), StoreError>> {
        self.count("succeed");
        self.store().succeed(id, severity, message)
    }

    fn fail<'a>(
        &'a self,
        id: JobId,
        code: i32,
        message: &'a str,
    ) -> Pending<'a, Result<(), StoreError>> {
        self.count("fail");
        self.store().fail(id, code, message)
    }

    fn expire(&self) -> Pending<'_, Result<jobstate::Expired, StoreError>> {
        self.count("expire");
        self.store().expire()
    }
}

/// A store that cannot be reached.
struct Down;

fn down<R: Send + 'static>() -> Pending<'static, Result<R, StoreError>> {
    Box::pin(std::future::ready(Err(StoreError::Unavailable(
        "etcd: connection refused".into(),
    ))))
}

impl JobStore<String, T> for Down {
    fn clock(&self) -> Clock {
        Clock::unix()
    }

    fn submit<'a>(&'a self, _: NewJob<'a, String>) -> Pending<'a, Result<JobId, StoreError>>
    where
        String: 'a,
    {
        down()
    }

    fn get(&self, _: JobId) -> Pending<'_, Result<Snapshot<String, T>, StoreError>> {
        down()
    }

    fn list(&self) -> Pending<'_, Result<Vec<Snapshot<String, T>>, StoreError>> {
        down()
    }

    fn wait(
        &self,
        _: JobId,
        _: Condition,
        _: Duration,
    ) -> Pending<'_, Result<Waited<Snapshot<String, T>>, StoreError>> {
        down()
    }

    fn request(&self, _: JobId, _: Request) -> Pending<'_, Result<Requested, Refusal>> {
        Box::pin(std::future::ready(Err(Refusal {
            error: StoreError::Unavailable("etcd: connection refused".into()),
            state: None,
        })))
    }

    fn revision(&self) -> Pending<'_, Result<Revision, StoreError>> {
        down()
    }

    fn free_in(&self) -> Pending<'_, Option<Duration>> {
        Box::pin(std::future::ready(None))
    }

    fn history(&self, _: JobId) -> Pending<'_, Result<History, StoreError>> {
        down()
    }

    fn claim(&self) -> Pending<'_, Result<Option<Snapshot<String, T>>, StoreError>> {
        down()
    }

    fn progress<'a>(&'a self, _: JobId, _: u8, _: &'a str) -> Pending<'a, Result<(), StoreError>> {
        down()
    }

    fn heartbeat(&self, _: JobId) -> Pending<'_, Result<(), StoreError>> {
        down()
    }

    fn checkpoint(&self, _: JobId) -> Pending<'_, Result<jobstate::Directive, StoreError>> {
        down()
    }

    fn succeed<'a>(
        &'a self,
        _: JobId,
        _: jobstate::Severity,
        _: &'a str,
    ) -> Pending<'a, Result<(), StoreError>> {
        down()
    }

    fn fail<'a>(&'a self, _: JobId, _: i32, _: &'a str) -> Pending<'a, Result<(), StoreError>> {
        down()
    }

    fn expire(&self) -> Pending<'_, Result<jobstate::Expired, StoreError>> {
        down()
    }
}

/// The service's own asynchronous endpoint: submits through the binding.
async fn create(State(api): State<Api>) -> Result<Response, ApiError> {
    api.submit(
        NewJob::new("made".to_owned()).description("made over HTTP"),
        Duration::ZERO,
    )
    .await
}

fn app(api: &Api) -> Router {
    Router::new()
        .route("/api/test/jobs", post(create))
        .with_state(api.clone())
        .merge(api.router())
}

struct Reply {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

async fn call(app: &Router, method: Method, uri: &str) -> Reply {
    let request = HttpRequest::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let r = app.clone().oneshot(request).await.unwrap();
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Reply {
        status,
        retry_after,
        body,
    }
}

async fn get(app: &Router, uri: &str) -> Reply {
    call(app, Method::GET, uri).await
}

/// A binding whose engine (from `JobsApi::new`) is empty and stays so, over a counting store
/// around another engine, which holds the jobs.
fn over_counting() -> (Api, Arc<Counting>, Engine<Jobs>) {
    let decoy: Engine<Jobs> = Engine::new(EngineConfig::default());
    let real: Engine<Jobs> = Engine::new(EngineConfig::default());
    let store = Arc::new(Counting {
        inner: real.clone(),
        calls: Mutex::new(BTreeMap::new()),
    });
    let api = JobsApi::new(decoy).with_store(store.clone());
    (api, store, real)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dialect_answers_through_the_store() {
    let (api, store, real) = over_counting();
    let app = app(&api);
    let id = real
        .submit(NewJob::new("x".to_owned()).description("held"))
        .unwrap();
    let uuid = api.uuid_of(id).hyphenated().to_string();

    // ONTAP: one job, and the list.
    let r = get(&app, &format!("/api/cluster/jobs/{uuid}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["description"], "held");
    assert_eq!(r.body["state"], "queued");
    let r = get(&app, "/api/cluster/jobs").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["num_records"], 1, "{:?}", r.body);
    assert!(store.calls("get") >= 1 && store.calls("list") >= 1);

    // ONTAP long-poll: woken by a change made in the store's engine.
    let revision = real.get(id).unwrap().revision().get();
    let waker = {
        let real = real.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            real.start(id).unwrap();
        })
    };
    let r = get(
        &app,
        &format!("/api/cluster/jobs/{uuid}?poll_timeout=10&revision={revision}"),
    )
    .await;
    waker.await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "running");
    assert_eq!(store.calls("wait"), 1);

    // OCI: the work request, and its log (the history, through the store).
    let r = get(&app, &format!("/20200501/workRequests/{uuid}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "IN_PROGRESS");
    let compartment = api.compartment().to_owned();
    let r = get(
        &app,
        &format!("/20200501/workRequests/{uuid}/logs?compartmentId={compartment}"),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let items = r.body["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|i| i["message"].as_str() == Some("queued -> running")),
        "{items:?}"
    );
    assert_eq!(store.calls("history"), 1);
    let r = get(
        &app,
        &format!("/20200501/workRequests?compartmentId={compartment}"),
    )
    .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1, "{:?}", r.body);

    // Unified Manager and Deploy.
    let r = get(&app, &format!("/api/management-server/jobs/{uuid}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "RUNNING");
    let r = get(&app, "/api/management-server/jobs").await;
    assert_eq!(r.body["num_records"], 1, "{:?}", r.body);
    let r = get(&app, &format!("/api/v3/jobs/{uuid}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "running");
    let r = get(&app, "/api/v3/jobs").await;
    assert_eq!(r.body["num_records"], 1, "{:?}", r.body);

    // PATCH cancel: the request goes to the store; the running job ends at its checkpoint.
    let r = call(
        &app,
        Method::PATCH,
        &format!("/api/cluster/jobs/{uuid}?action=cancel"),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(store.calls("request"), 1);
    assert!(real.get(id).unwrap().cancel_requested());

    // A submit through the binding lands in the store.
    let r = call(&app, Method::POST, "/api/test/jobs").await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(store.calls("submit"), 1);
    assert_eq!(real.list().len(), 2);
    let made = r.body["job"]["uuid"].as_str().unwrap().to_owned();
    let r = get(&app, &format!("/api/cluster/jobs/{made}")).await;
    assert_eq!(r.body["description"], "made over HTTP");

    // The engine the binding was built with was never used.
    assert!(api.engine().list().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_read_on_the_stores_clock() {
    let decoy: Engine<Jobs> = Engine::new(EngineConfig::default());
    let real: Engine<Jobs> = Engine::new(EngineConfig {
        table: jobstate::Config {
            retention: jobstate::Duration::from_micros(0),
        },
        timer_thread: false,
        ..EngineConfig::default()
    });
    let store = Arc::new(Counting {
        inner: real.clone(),
        calls: Mutex::new(BTreeMap::new()),
    });
    let api = JobsApi::new(decoy).with_store(store.clone());
    let app = app(&api);
    let id = real.submit(NewJob::new("x".to_owned())).unwrap();
    let r = call(
        &app,
        Method::PATCH,
        &format!("/api/cluster/jobs/{}?action=cancel", api.uuid_of(id)),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "failure");
    // Past its retention the job answers with its tombstone.
    assert_eq!(real.run_timers().removed, 1);
    assert!(real.get(id).is_err(), "the record is gone");
    let r = get(&app, &format!("/api/cluster/jobs/{}", api.uuid_of(id))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "failure");
    assert!(r.body["end_time"].is_string(), "{:?}", r.body);
    assert!(store.calls("clock") >= 1);
}

fn assert_unavailable(r: &Reply) {
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!(r.retry_after.as_deref(), Some("1"));
    let e = &r.body["error"];
    assert_eq!(e["code"], "460780", "{:?}", r.body);
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("unavailable")),
        "{:?}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_store_is_503_with_retry_after() {
    let engine: Engine<Jobs> = Engine::new(EngineConfig::default());
    let id = engine.submit(NewJob::new("x".to_owned())).unwrap();
    let api = JobsApi::new(engine).with_store(Arc::new(Down));
    let app = app(&api);
    let uuid = api.uuid_of(id).hyphenated().to_string();

    for uri in [
        format!("/api/cluster/jobs/{uuid}"),
        format!("/api/cluster/jobs/{uuid}?poll_timeout=5"),
        "/api/cluster/jobs".to_owned(),
        format!("/api/management-server/jobs/{uuid}"),
        "/api/management-server/jobs".to_owned(),
        format!("/api/v3/jobs/{uuid}"),
        "/api/v3/jobs".to_owned(),
    ] {
        assert_unavailable(&get(&app, &uri).await);
    }
    assert_unavailable(
        &call(
            &app,
            Method::PATCH,
            &format!("/api/cluster/jobs/{uuid}?action=cancel"),
        )
        .await,
    );
    assert_unavailable(&call(&app, Method::POST, "/api/test/jobs").await);

    // OCI answers in its own shape, with the same status and Retry-After.
    let r = get(&app, &format!("/20200501/workRequests/{uuid}")).await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!(r.body["code"], "ServiceUnavailable");
    assert_eq!(r.retry_after.as_deref(), Some("1"));
    let r = call(
        &app,
        Method::DELETE,
        &format!("/20200501/workRequests/{uuid}"),
    )
    .await;
    assert_eq!(r.status, 503, "{:?}", r.body);
}
