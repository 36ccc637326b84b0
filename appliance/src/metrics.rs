//! `/metrics`: the appliance's figures in the Prometheus (OpenMetrics) text format, with the
//! `prometheus-client` crate.
//!
//! | metric | type | what |
//! | --- | --- | --- |
//! | `appliance_jobs{state}` | gauge | jobs in the table by state (read at scrape) |
//! | `appliance_job_submits_total` | counter | jobs accepted through the API |
//! | `appliance_job_replays_total` | counter | requests whose idempotency key named an earlier request's job (answered with it; nothing submitted) |
//! | `appliance_job_refusals_total{status}` | counter | submits refused (`400`, `503` table full) |
//! | `appliance_long_polls` | gauge | long-polls held open right now |
//! | `appliance_long_poll_ends_total{end}` | counter | long-polls ended: `woken`, `timed_out`, `closed` |
//! | `appliance_wake_latency_seconds` | histogram | a job's change (as the table recorded it, to the ms) → its long-poll's answer |
//! | `appliance_http_requests_total{method,status}` | counter | requests answered |
//! | `appliance_connections` | gauge | connections open |
//! | `appliance_connections_total{outcome}` | counter | connections ended: `closed`, `header_timeout`, `error`, `over_cap` |
//! | `appliance_persistence_lag` | gauge | table changes not yet on disk — only once persistence is configured ([`Metrics::with_persistence_lag`]) |

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use jobstate::State as JobState;
use jobstate_std::http::{ApiError, ApiObserver, PollEnd};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::Api;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabel {
    end: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabel {
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionEnd {
    /// The client or the server closed it normally.
    Closed,
    /// It sent no complete request head in time (or idled past it).
    HeaderTimeout,
    /// An I/O or protocol error (including a failed TLS handshake).
    Error,
    /// Refused at the connection cap.
    OverCap,
}

impl ConnectionEnd {
    fn as_str(self) -> &'static str {
        match self {
            ConnectionEnd::Closed => "closed",
            ConnectionEnd::HeaderTimeout => "header_timeout",
            ConnectionEnd::Error => "error",
            ConnectionEnd::OverCap => "over_cap",
        }
    }
}

/// Reads the persistence lag (table changes not yet durable).
pub type LagProbe = Box<dyn Fn() -> u64 + Send + Sync>;

/// The appliance's metrics. Cheap to share (`Arc`).
pub struct Metrics {
    registry: Registry,
    jobs: Family<StateLabel, Gauge>,
    submits: Counter,
    replays: Counter,
    refusals: Family<StatusLabel, Counter>,
    long_polls: Gauge,
    poll_ends: Family<EndLabel, Counter>,
    wake: Histogram,
    requests: Family<RequestLabel, Counter>,
    connections: Gauge<i64, AtomicI64>,
    connection_ends: Family<OutcomeLabel, Counter>,
    persistence_lag: Option<(Gauge<u64, AtomicU64>, LagProbe)>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric but the persistence lag.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("appliance");
        let jobs = Family::<StateLabel, Gauge>::default();
        registry.register("jobs", "Jobs in the table by state", jobs.clone());
        let submits = Counter::default();
        registry.register(
            "job_submits",
            "Jobs accepted through the API",
            submits.clone(),
        );
        let replays = Counter::default();
        registry.register(
            "job_replays",
            "Requests whose idempotency key (Idempotency-Key, opc-retry-token) named a job an earlier request submitted: answered with that job, nothing submitted",
            replays.clone(),
        );
        let refusals = Family::<StatusLabel, Counter>::default();
        registry.register(
            "job_refusals",
            "Submits refused, by HTTP status (503: table full)",
            refusals.clone(),
        );
        let long_polls = Gauge::default();
        registry.register("long_polls", "Long-polls held open", long_polls.clone());
        let poll_ends = Family::<EndLabel, Counter>::default();
        registry.register(
            "long_poll_ends",
            "Long-polls ended: woken by a change, timed out, closed at shutdown",
            poll_ends.clone(),
        );
        // 0.5 ms to ~4 s.
        let wake = Histogram::new([
            0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 4.0,
        ]);
        registry.register_with_unit(
            "wake_latency",
            "A job's change (as the table recorded it, to the millisecond) to its long-poll's answer",
            prometheus_client::registry::Unit::Seconds,
            wake.clone(),
        );
        let requests = Family::<RequestLabel, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        let connections = Gauge::<i64, AtomicI64>::default();
        registry.register("connections", "Connections open", connections.clone());
        let connection_ends = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "connections_ended",
            "Connections ended: closed, header_timeout, error, over_cap",
            connection_ends.clone(),
        );
        Self {
            registry,
            jobs,
            submits,
            replays,
            refusals,
            long_polls,
            poll_ends,
            wake,
            requests,
            connections,
            connection_ends,
            persistence_lag: None,
        }
    }

    /// Publish `appliance_persistence_lag` (table changes not yet durable), read by `probe`
    /// at each scrape — the hook for durable storage; without it the metric is absent.
    pub fn with_persistence_lag(mut self, probe: LagProbe) -> Self {
        let gauge = Gauge::<u64, AtomicU64>::default();
        self.registry.register(
            "persistence_lag",
            "Table changes not yet on disk",
            gauge.clone(),
        );
        self.persistence_lag = Some((gauge, probe));
        self
    }

    /// A connection opened.
    pub fn connection_opened(&self) {
        self.connections.inc();
    }

    /// A connection ended (`opened`: it had been counted open).
    pub fn connection_ended(&self, end: ConnectionEnd, opened: bool) {
        if opened {
            self.connections.dec();
        }
        self.connection_ends
            .get_or_create(&OutcomeLabel {
                outcome: end.as_str(),
            })
            .inc();
    }

    /// Connections ended this way so far.
    pub fn connections_ended(&self, end: ConnectionEnd) -> u64 {
        self.connection_ends
            .get_or_create(&OutcomeLabel {
                outcome: end.as_str(),
            })
            .get()
    }

    /// An answer to a request.
    pub fn count_request(&self, method: &axum::http::Method, status: axum::http::StatusCode) {
        use axum::http::Method;
        let method = match *method {
            Method::GET => "GET",
            Method::HEAD => "HEAD",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
            Method::OPTIONS => "OPTIONS",
            _ => "other",
        };
        self.requests
            .get_or_create(&RequestLabel {
                method,
                status: status.as_u16(),
            })
            .inc();
    }

    /// Connections open now.
    pub fn connections_open(&self) -> i64 {
        self.connections.get()
    }

    /// The text of a scrape, with the gauges read from `api` now.
    pub fn render(&self, api: &Api) -> String {
        let mut counts = [0i64; 5];
        api.engine().with_table(|t| {
            for j in jobstate::Table::iter(t) {
                counts[state_index(j.state())] += 1;
            }
        });
        for (k, name) in ["queued", "running", "paused", "success", "failure"]
            .into_iter()
            .enumerate()
        {
            self.jobs
                .get_or_create(&StateLabel { state: name })
                .set(counts[k]);
        }
        self.long_polls
            .set(i64::try_from(api.long_polls()).unwrap_or(i64::MAX));
        if let Some((gauge, probe)) = &self.persistence_lag {
            gauge.set(probe());
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn state_index(s: JobState) -> usize {
    match s {
        JobState::Queued => 0,
        JobState::Running => 1,
        JobState::Paused => 2,
        JobState::Succeeded => 3,
        _ => 4,
    }
}

/// The binding's observer: submits, refusals and long-polls.
impl ApiObserver for Metrics {
    fn submitted(&self) {
        self.submits.inc();
    }

    fn replayed(&self) {
        self.replays.inc();
    }

    fn refused(&self, error: &ApiError) {
        self.refusals
            .get_or_create(&StatusLabel {
                status: error.status().as_u16(),
            })
            .inc();
    }

    fn long_poll_ended(&self, end: PollEnd) {
        let name = match end {
            PollEnd::Woken { latency } => {
                self.wake.observe(latency.as_secs_f64());
                "woken"
            }
            PollEnd::TimedOut => "timed_out",
            _ => "closed",
        };
        self.poll_ends.get_or_create(&EndLabel { end: name }).inc();
    }
}

/// `GET /metrics`.
pub async fn scrape(
    State((metrics, api)): State<(Arc<Metrics>, Api)>,
    _: jobstate_std::http::NoQuery,
) -> Response {
    let started = Instant::now();
    let body = metrics.render(&api);
    tracing::debug!(
        ms = started.elapsed().as_secs_f64() * 1e3,
        "metrics rendered"
    );
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
