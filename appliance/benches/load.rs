//! The appliance under load, on loopback, each figure against a baseline of the same run.
//!
//! ```text
//! cargo bench -p appliance --bench load [-- --seconds S --slow N --quick]
//! ```
//!
//! (a) **Job GET over TLS with authentication and metrics** — `GET /api/cluster/jobs/{uuid}`
//!     on the whole appliance (rustls, basic auth, the metrics and limit layers, the request
//!     log layer with no subscriber) versus a plain axum handler answering the same bytes as
//!     constant JSON behind the same TLS server (the appliance's own accept loop, hyper
//!     builder and rustls acceptor, no other layer). The same client (reqwest on rustls, 32
//!     keep-alive connections, each request with the same `Authorization` header), six
//!     alternating rounds; the figure is the median ratio of adjacent rounds. Goal ≥ 0.8×.
//! (b) **Slow connections** — N (default 5,000) connections that send part of a request head
//!     and stall, held open at once against a server with a 5 s header timeout, while a
//!     client times GET requests one after another on a keep-alive connection: p50, p99
//!     (goal p99 ≤ 10 ms); then every slow connection must be closed by the server between
//!     the timeout and the timeout plus 2 s after it opened. The soft open-file limit is
//!     raised to the hard one (both ends of 5,000 connections live in this process).
//!
//! Exits non-zero when a goal is missed (`--quick`: shorter rounds, 1,000 slow connections).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use appliance::cli::{Options, Tls, Users};
use appliance::metrics::Metrics;
use appliance::server::{self, ServerConfig};
use appliance::Appliance;
use axum::http::header;
use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USER: &str = "admin";
const PASSWORD: &str = "bench-pw";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime")
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("appliance-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

async fn hammer(client: &reqwest::Client, url: &str, conns: usize, secs: f64) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (client, url, count) = (client.clone(), url.to_owned(), count.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let r = client
                    .get(&url)
                    .basic_auth(USER, Some(PASSWORD))
                    .send()
                    .await
                    .expect("request");
                assert!(r.status().is_success(), "{}", r.status());
                let _ = r.bytes().await.expect("body");
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    count.load(Ordering::Relaxed) as f64 / secs
}

/// Rounds of each side in (a).
const ROUNDS: usize = 6;

/// (a): answers whether the goal held.
fn tls_throughput(secs: f64) -> bool {
    let dir = temp_dir();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).expect("write");
    std::fs::write(&key, ck.key_pair.serialize_pem()).expect("write");
    let server_rt = runtime(2);
    let opts = Options {
        listen: "127.0.0.1:0".parse().expect("addr"),
        workers: 2,
        step: Duration::from_millis(1),
        tls: Some(Tls {
            cert: cert.clone(),
            key: key.clone(),
        }),
        users: Users::Env(format!("{USER}:admin:{PASSWORD}\nviewer:readonly:x\n")),
        ..Options::default()
    };
    let app = server_rt
        .block_on(Appliance::start(opts))
        .expect("appliance");
    let port = app.addr().port();

    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(
            ck.cert.der().to_vec(),
        ))
        .expect("root");
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conns = 32;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .pool_max_idle_per_host(conns)
        .build()
        .expect("client");
    let client_rt = runtime(2);

    // A job that ended: its record no longer changes.
    let base = format!("https://localhost:{port}");
    let job = client_rt.block_on(async {
        let r = client
            .post(format!("{base}/api/lb/backend-sets?return_timeout=30"))
            .basic_auth(USER, Some(PASSWORD))
            .json(&serde_json::json!({"name": "web"}))
            .send()
            .await
            .expect("create");
        let v: serde_json::Value = r.json().await.expect("json");
        v["job"]["uuid"].as_str().expect("uuid").to_owned()
    });
    let job_url = format!("{base}/api/cluster/jobs/{job}");
    let body: &'static str = client_rt.block_on(async {
        let text = client
            .get(&job_url)
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("text");
        Box::leak(text.into_boxed_str())
    });

    // The baseline: the same bytes from a plain handler behind the same TLS server.
    let plain: Router = Router::new().route(
        "/constant",
        get(move || async move { ([(header::CONTENT_TYPE, "application/json")], body) }),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let listener = server_rt
        .block_on(async { server::bind("127.0.0.1:0".parse().expect("addr")) })
        .expect("bind");
    let plain_port = listener.local_addr().expect("addr").port();
    let config = ServerConfig {
        tls: Some(server::tls_acceptor(&cert, &key).expect("tls")),
        ..ServerConfig::default()
    };
    server_rt.spawn(server::serve(
        listener,
        plain,
        config,
        Arc::new(Metrics::new()),
        stop_rx,
    ));
    let const_url = format!("https://localhost:{plain_port}/constant");

    let (mut baseline, mut appliance) = (Vec::new(), Vec::new());
    client_rt.block_on(async {
        hammer(&client, &const_url, conns, 0.5).await;
        hammer(&client, &job_url, conns, 0.5).await;
        for _ in 0..ROUNDS {
            baseline.push(hammer(&client, &const_url, conns, secs).await);
            appliance.push(hammer(&client, &job_url, conns, secs).await);
        }
    });
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let mut pairs: Vec<f64> = baseline
        .iter()
        .zip(&appliance)
        .map(|(b, j)| j / b)
        .collect();
    pairs.sort_by(|a, b| a.total_cmp(b));
    let (b, j) = (mean(&baseline), mean(&appliance));
    let ratio = percentile(&pairs, 0.5);
    println!(
        "(a) GET over TLS, {conns} keep-alive connections, body {} bytes, {ROUNDS} alternating rounds of {secs} s",
        body.len()
    );
    println!(
        "    plain axum handler, same TLS server (baseline): {b:>9.0} req/s  rounds {baseline:.0?}"
    );
    println!("    appliance job GET (TLS + auth + metrics):        {j:>9.0} req/s  rounds {appliance:.0?}");
    println!(
        "    ratio appliance/baseline: median of pairs {ratio:.2}x (min {:.2}x, max {:.2}x), of means {:.2}x (goal >= 0.8x)",
        percentile(&pairs, 0.0),
        percentile(&pairs, 1.0),
        j / b
    );
    stop_tx.send_replace(true);
    app.shutdown("bench");
    server_rt.block_on(app.wait()).expect("shutdown");
    let _ = std::fs::remove_dir_all(&dir);
    ratio >= 0.8
}

/// (b): answers (whether the latency goal held, whether every slow connection was closed by the
/// server within its window — a correctness property, not a figure).
fn slow_connections(n: usize) -> (bool, bool) {
    let limit = server::raise_fd_limit();
    let timeout = Duration::from_secs(5);
    let server_rt = runtime(2);
    let opts = Options {
        listen: "127.0.0.1:0".parse().expect("addr"),
        workers: 2,
        header_timeout: timeout,
        ..Options::default()
    };
    let app = server_rt
        .block_on(Appliance::start(opts))
        .expect("appliance");
    let addr = app.addr();
    let client_rt = runtime(1);
    let ok = client_rt.block_on(async move {
        // Open the slow connections in batches, each sending part of a request head.
        let opened = Instant::now();
        let mut slow = Vec::with_capacity(n);
        let batch = 500;
        let mut k = 0;
        while k < n {
            let mut tasks = Vec::new();
            for _ in k..(k + batch).min(n) {
                tasks.push(tokio::spawn(async move {
                    let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
                    c.write_all(b"GET /api/lb/backend-sets HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                        .await
                        .expect("write");
                    (Instant::now(), c)
                }));
            }
            for t in tasks {
                slow.push(t.await.expect("task"));
            }
            k += batch;
        }
        let setup = opened.elapsed();
        let held = app.metrics().connections_open();
        println!(
            "(b) {n} slow connections (open-file limit {limit}), opened in {setup:.2?}; server holds {held}"
        );
        // Their closes, watched from now on.
        let watchers: Vec<_> = slow
            .into_iter()
            .map(|(at, mut c)| {
                tokio::spawn(async move {
                    let mut buf = [0u8; 256];
                    loop {
                        match c.read(&mut buf).await {
                            Ok(0) | Err(_) => return at.elapsed(),
                            Ok(_) => {}
                        }
                    }
                })
            })
            .collect();

        // GET latency meanwhile, one request after another on a keep-alive connection.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .expect("client");
        let url = format!("http://{addr}/api/lb/backend-sets");
        let _ = client.get(&url).send().await.expect("warm").bytes().await;
        let mut lat = Vec::new();
        let measuring = Instant::now();
        while measuring.elapsed() < Duration::from_secs(2) && lat.len() < 20_000 {
            let t = Instant::now();
            let r = client.get(&url).send().await.expect("get");
            assert_eq!(r.status(), 200);
            let _ = r.bytes().await.expect("body");
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let still = app.metrics().connections_open();
        lat.sort_by(|a, b| a.total_cmp(b));
        let p99 = percentile(&lat, 0.99);
        println!(
            "    GET latency with them held ({} requests, {still} connections open): p50 {:.3} ms, p90 {:.3} ms, p99 {p99:.3} ms, max {:.3} ms (goal p99 <= 10 ms)",
            lat.len(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.9),
            percentile(&lat, 1.0)
        );
        let mut closed = Vec::with_capacity(n);
        for w in watchers {
            closed.push(w.await.expect("watch").as_secs_f64());
        }
        closed.sort_by(|a, b| a.total_cmp(b));
        let (first, last) = (closed[0], closed[closed.len() - 1]);
        let t = timeout.as_secs_f64();
        println!(
            "    all {} closed by the server {first:.2}–{last:.2} s after they opened (header timeout {t:.0} s; p50 {:.2} s); server counts {} header timeouts",
            closed.len(),
            percentile(&closed, 0.5),
            app.metrics()
                .connections_ended(appliance::metrics::ConnectionEnd::HeaderTimeout)
        );
        app.shutdown("bench");
        app.wait().await.expect("shutdown");
        (p99 <= 10.0, first >= t - 0.05 && last <= t + 2.0)
    });
    drop(server_rt);
    ok
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|k| args.get(k + 1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let quick = args.iter().any(|a| a == "--quick");
    let secs = value("--seconds").unwrap_or(if quick { 0.5 } else { 1.5 });
    let n = value("--slow").unwrap_or(if quick { 1000.0 } else { 5000.0 }) as usize;
    // Figures are reported, not gated (the machines are noisy); `--strict` makes a missed
    // goal fail too. A slow connection the server did not close in its window always fails.
    let strict = args.iter().any(|a| a == "--strict");
    let a = tls_throughput(secs);
    let (b, closed) = slow_connections(n);
    let word = |met: bool| if met { "met" } else { "MISSED" };
    println!(
        "goals: (a) {} (b) latency {}; slow connections closed in their window: {}",
        word(a),
        word(b),
        if closed { "yes" } else { "NO" }
    );
    if !closed || (strict && !(a && b)) {
        std::process::exit(1);
    }
}
