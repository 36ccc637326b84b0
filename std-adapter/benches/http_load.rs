//! Load figures of the HTTP binding, on loopback, each against a baseline of the same run.
//!
//! ```text
//! cargo bench -p jobstate-std --features http --bench http_load
//! ```
//!
//! (a) **Job GET throughput** — `GET /api/cluster/jobs/{uuid}` versus a plain axum handler
//!     answering a constant JSON body of the same bytes, on the same server, with the same
//!     client (reqwest, 32 concurrent keep-alive connections), six alternating rounds; the
//!     figure is the median ratio of adjacent rounds. Goal ≥ 0.7×.
//! (b) **10,000 long-polls** — 10,000 `GET …?poll_timeout=<the longest>` held open at once, then the
//!     jobs completed one by one: time from a job's completion to its poll's response, p50 and
//!     p99. Goal p99 ≤ 10 ms. The server runs in a child process (this binary with
//!     `--lp-server`), so each process holds about 10,000 sockets and stays under the usual
//!     20,000 open-file hard limit; both raise their soft limit to it. Completion and response
//!     times are read from the same system clock.
//!
//! Options: `--seconds S` (per round of (a), default 1.5), `--polls N` (default 10000).

use std::io::{BufRead, Write};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::header;
use axum::routing::get;
use axum::Router;
use jobstate::{NewJob, Severity};
use jobstate_std::http::{JobsApi, MAX_TIMEOUT_SECS};
use jobstate_std::{Engine, EngineConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Raise the soft open-file limit to the hard one.
fn raise_fd_limit() -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer, which
    // lives on this stack frame for the duration of each call.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    lim.rlim_cur
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

// ----- (a) throughput ------------------------------------------------------------------------

async fn hammer(client: &reqwest::Client, url: &str, conns: usize, secs: f64) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (client, url, count) = (client.clone(), url.to_owned(), count.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let r = client.get(&url).send().await.expect("request");
                assert!(r.status().is_success());
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

fn throughput(secs: f64) {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let engine: Engine<jobstate::JobTable<u32, 64>> = Engine::new(EngineConfig::default());
    let api = JobsApi::new(engine.clone());
    let id = engine
        .submit(NewJob::new(7).description("create backend set web"))
        .expect("submit");
    engine.start(id).expect("start");
    engine
        .progress(id, 50, "programming data plane")
        .expect("progress");
    let path = format!("/api/cluster/jobs/{}", api.uuid_of(id));

    // The baseline answers the very bytes the job GET answers.
    let body: &'static str = {
        let app: Router = api.router();
        let listener = server_rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        server_rt.spawn(async move { axum::serve(listener, app).await });
        let url = format!("http://{addr}{path}");
        let text = server_rt
            .block_on(async { reqwest::get(&url).await?.text().await })
            .expect("job GET");
        Box::leak(text.into_boxed_str())
    };
    let app: Router = Router::new()
        .route(
            "/constant",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], body) }),
        )
        .merge(api.router());
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    server_rt.spawn(async move { axum::serve(listener, app).await });

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let conns = 32;
    let job_url = format!("http://{addr}{path}");
    let const_url = format!("http://{addr}/constant");
    let (mut base, mut job) = (Vec::new(), Vec::new());
    client_rt.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(conns)
            .build()
            .expect("client");
        // Warm up connections and caches.
        hammer(&client, &const_url, conns, 0.5).await;
        hammer(&client, &job_url, conns, 0.5).await;
        for _ in 0..ROUNDS {
            base.push(hammer(&client, &const_url, conns, secs).await);
            job.push(hammer(&client, &job_url, conns, secs).await);
        }
    });
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    // Other work on a shared machine moves whole rounds; the ratio of each adjacent pair of
    // rounds (baseline, then jobstate) cancels most of it.
    let mut pairs: Vec<f64> = base.iter().zip(&job).map(|(b, j)| j / b).collect();
    pairs.sort_by(|a, b| a.total_cmp(b));
    let (b, j) = (mean(&base), mean(&job));
    println!(
        "(a) GET throughput, {conns} keep-alive connections, body {} bytes, {ROUNDS} alternating rounds of {secs} s",
        body.len()
    );
    println!("    constant JSON handler (baseline): {b:>9.0} req/s  rounds {base:.0?}");
    println!("    GET /api/cluster/jobs/{{uuid}}:     {j:>9.0} req/s  rounds {job:.0?}");
    println!(
        "    ratio job/baseline: median of pairs {:.2}x (min {:.2}x, max {:.2}x), of means {:.2}x (goal >= 0.7x)",
        percentile(&pairs, 0.5),
        percentile(&pairs, 0.0),
        percentile(&pairs, 1.0),
        j / b
    );
    drop(client_rt);

    // Where the server's time goes: the same two routes called in process (no sockets, no
    // HTTP parsing), one request after another.
    let app: Router = Router::new()
        .route(
            "/constant",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], body) }),
        )
        .merge(api.router());
    let per_request = |uri: &str| {
        server_rt.block_on(async {
            let n = 200_000u32;
            let started = Instant::now();
            for _ in 0..n {
                let req = axum::http::Request::get(uri)
                    .body(axum::body::Body::empty())
                    .expect("request");
                let resp = tower::ServiceExt::oneshot(app.clone(), req)
                    .await
                    .expect("infallible");
                let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                    .await
                    .expect("body");
                assert_eq!(bytes.len(), body.len());
            }
            started.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        })
    };
    let c = per_request("/constant");
    let j = per_request(&path);
    println!(
        "    in process (router only, no sockets): constant {c:.2} us/request, job GET {j:.2} us/request"
    );
    drop(server_rt);
}

// ----- (b) 10,000 long-polls -------------------------------------------------------------------

type Big = Engine<jobstate::JobTable<u32, 10_240>>;

/// The child: an engine with `n` running jobs behind the binding; completes job `i` on
/// `c i` (answering `t i <unix nanos just before completing>`), reports `w` as
/// `w <long-polls in flight> <registered waits>`.
fn lp_server(n: usize) {
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let engine: Big = Engine::new(EngineConfig::default());
    let api = JobsApi::new(engine.clone());
    let ids: Vec<_> = (0..n)
        .map(|i| {
            let id = engine.submit(NewJob::new(i as u32)).expect("submit");
            engine.start(id).expect("start");
            id
        })
        .collect();
    let app: Router = api.router();
    let listener = rt
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.set_reuseaddr(true)?;
            socket.bind("127.0.0.1:0".parse().expect("addr"))?;
            socket.listen(4096)
        })
        .expect("listen");
    let port = listener.local_addr().expect("addr").port();
    rt.spawn(async move { axum::serve(listener, app).await });
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "port {port}").expect("stdout");
    for id in &ids {
        writeln!(out, "{}", api.uuid_of(*id)).expect("stdout");
    }
    out.flush().expect("flush");
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("w") => writeln!(out, "w {} {}", api.long_polls(), engine.waiting()),
            Some("c") => {
                let i: usize = words.next().and_then(|w| w.parse().ok()).expect("index");
                let t = unix_nanos();
                engine
                    .succeed(ids[i], Severity::Normal, "done")
                    .expect("succeed");
                writeln!(out, "t {i} {t}")
            }
            _ => break,
        }
        .expect("stdout");
        out.flush().expect("flush");
    }
}

fn long_polls(n: usize) {
    let limit = raise_fd_limit();
    let exe = std::env::current_exe().expect("exe");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut child = tokio::process::Command::new(exe)
            .args(["--lp-server", &n.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("child");
        let mut to_child = child.stdin.take().expect("stdin");
        let mut from_child = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = from_child.next_line().await.expect("read").expect("port");
        let port: u16 = first.strip_prefix("port ").and_then(|p| p.parse().ok()).expect("port");
        let mut uuids = Vec::with_capacity(n);
        for _ in 0..n {
            uuids.push(from_child.next_line().await.expect("read").expect("uuid"));
        }
        let mut ask = async |cmd: String| {
            to_child.write_all(cmd.as_bytes()).await.expect("write");
            to_child.flush().await.expect("flush");
            from_child.next_line().await.expect("read").expect("answer")
        };

        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, u128)>();
        let opened = Instant::now();
        let batch = 500;
        let mut polls = Vec::with_capacity(n);
        for (i, uuid) in uuids.iter().enumerate() {
            let url = format!("http://127.0.0.1:{port}/api/cluster/jobs/{uuid}?poll_timeout={MAX_TIMEOUT_SECS}&fields=state");
            let (client, tx) = (client.clone(), tx.clone());
            polls.push(tokio::spawn(async move {
                let r = client.get(&url).send().await.expect("long-poll");
                let body = r.bytes().await.expect("body");
                let t = unix_nanos();
                assert!(std::str::from_utf8(&body).expect("utf8").contains("success"));
                let _ = tx.send((i, t));
            }));
            if (i + 1) % batch == 0 || i + 1 == n {
                // Let this batch connect and register before opening the next.
                loop {
                    let w = ask("w\n".into()).await;
                    let held: usize = w.split_whitespace().nth(1).and_then(|x| x.parse().ok()).expect("w");
                    if held == i + 1 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
        let setup = opened.elapsed();
        let w = ask("w\n".into()).await;
        println!("(b) {n} long-polls held open at once (open-file limit {limit}); opened in {setup:.2?}; server reports `{w}` (polls, registered waits)");

        let mut lat = Vec::with_capacity(n);
        let started = Instant::now();
        for i in 0..n {
            let t = ask(format!("c {i}\n")).await;
            let done: u128 = t.split_whitespace().nth(2).and_then(|x| x.parse().ok()).expect("t");
            let (j, answered) = rx.recv().await.expect("answer");
            assert_eq!(j, i, "only the completed job's poll answers");
            lat.push(answered.saturating_sub(done) as f64 / 1e6);
        }
        let took = started.elapsed();
        for p in polls {
            p.await.expect("poll task");
        }
        lat.sort_by(|a, b| a.total_cmp(b));
        println!(
            "    completed one by one in {took:.2?}; completion -> response: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms (goal p99 <= 10 ms)",
            percentile(&lat, 0.5),
            percentile(&lat, 0.9),
            percentile(&lat, 0.99),
            percentile(&lat, 1.0)
        );
        to_child.shutdown().await.ok();
        let _ = child.kill().await;
    });
}

fn main() {
    // reqwest's rustls, when a workspace build turns it on, needs a crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|k| args.get(k + 1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    if let Some(n) = value("--lp-server") {
        lp_server(n as usize);
        return;
    }
    let secs = value("--seconds").unwrap_or(1.5);
    let n = value("--polls").unwrap_or(10_000.0) as usize;
    throughput(secs);
    long_polls(n);
}
