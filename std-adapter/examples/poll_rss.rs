//! Resident memory per held HTTP long-poll (issue 11: goal ≤ 10 KiB a poll, measured at 10,000
//! and 100,000 held polls).
//!
//! ```text
//! cargo run --release -p jobstate-std --features http --example poll_rss
//! cargo run --release -p jobstate-std --features http --example poll_rss -- --polls 10000,100000 --jobs 1000
//! cargo run --release -p jobstate-std --features http --example poll_rss -- --mem --polls 10000,100000
//! cargo run --release -p jobstate-std --features http --example poll_rss -- --serve axum
//! ```
//!
//! Two transports:
//!
//! * **TCP** (default). For each count `N` the server runs in a child process of its own (this
//!   binary with `--server`), so its resident set holds the server alone. A count the open-file
//!   limit cannot hold (the server needs `N` descriptors, and the client as many) is skipped
//!   with a note: an unprivileged process, or root without `CAP_SYS_RESOURCE`, cannot raise its
//!   hard limit.
//! * **In memory** (`--mem`): the same router and server in this process over
//!   `tokio::io::duplex` pipes handed to it by a listener of our own, so no descriptor is used
//!   and any `N` fits. The client halves are made and their requests written first, and the
//!   reading before the server accepts them is the baseline: the figure is the server's own
//!   growth (hyper connection, handler, engine waiter), as over TCP.
//!
//! The server: the binding's router (`JobsApi::router`) on hyper's HTTP/1 connection builder
//! (`hyper::server::conn::http1`, defaults), one task per connection — as the appliance
//! serves it; `--serve axum` serves it with `axum::serve` instead, for comparison.
//!
//! Over TCP the server is the HTTP binding over an engine with `--jobs` running jobs (default
//! 1,000; polls spread over them round-robin), on a listener with a 4096-deep accept queue. The
//! parent holds the client side with raw tokio `TcpStream`s, from source addresses
//! `127.0.0.2`, `127.0.0.3`, … (25,000 connections each, inside the ephemeral port range). Both
//! raise their open-file limit to what `N` needs, as far as the hard limit allows (past it with
//! `CAP_SYS_RESOURCE`).
//!
//! Three readings of the child's `VmRSS` (`/proc/self/status`): after start-up and 64 plain
//! GETs (warm-up); with `N` connections open and accepted but idle; with a long-poll
//! (`GET /api/cluster/jobs/{uuid}?poll_timeout=120&fields=state`) sent on each of them and every
//! one registered as a waiter. Figures: bytes per idle connection, bytes per poll on top of
//! it, and bytes per held poll in all (connection + poll). Socket buffers are kernel memory
//! and are not in the resident set. A counting global allocator in the child gives the live
//! heap bytes behind those figures, and which allocation sizes grew by about one per
//! connection or per poll (what the memory is made of).

#[cfg(not(feature = "http"))]
fn main() {
    eprintln!(
        "poll_rss needs the http feature: cargo run --release -p jobstate-std --features http --example poll_rss"
    );
}

#[cfg(feature = "http")]
fn main() {
    imp::main();
}

#[cfg(feature = "http")]
#[global_allocator]
static ALLOC: imp::Counting = imp::Counting;

#[cfg(feature = "http")]
mod imp {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::io::{BufRead, Write};
    use std::net::{Ipv4Addr, SocketAddr};
    use std::process::Stdio;
    use std::sync::atomic::{AtomicBool, AtomicIsize};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use axum::serve::ListenerExt;
    use axum::Router;
    use jobstate::NewJob;
    use jobstate_std::http::JobsApi;
    use jobstate_std::{Engine, EngineConfig};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpSocket, TcpStream};

    type Jobs = Engine<jobstate::JobTable<u32, 1024>>;

    /// The system allocator, counting live bytes and live allocations by size class
    /// (class `k`: sizes `2^(k-1) + 1 ..= 2^k`).
    pub struct Counting;

    const CLASSES: usize = 33;
    static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
    static LIVE: [AtomicIsize; CLASSES] = [const { AtomicIsize::new(0) }; CLASSES];

    fn class(size: usize) -> usize {
        (usize::BITS - size.saturating_sub(1).leading_zeros()).min(CLASSES as u32 - 1) as usize
    }

    fn count(size: usize, by: isize) {
        LIVE_BYTES.fetch_add(by * size as isize, Ordering::Relaxed);
        LIVE[class(size)].fetch_add(by, Ordering::Relaxed);
    }

    // SAFETY: every call is passed on to the system allocator unchanged; the counters are
    // plain atomics and allocate nothing.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count(layout.size(), 1);
            // SAFETY: the caller's contract, passed on.
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            count(layout.size(), 1);
            // SAFETY: the caller's contract, passed on.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            count(layout.size(), -1);
            // SAFETY: the caller's contract, passed on.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count(layout.size(), -1);
            count(new_size, 1);
            // SAFETY: the caller's contract, passed on.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    /// Live heap bytes, then live allocations per size class, as one line of numbers.
    fn heap() -> String {
        let mut line = LIVE_BYTES.load(Ordering::Relaxed).to_string();
        for c in &LIVE {
            line.push(' ');
            line.push_str(&c.load(Ordering::Relaxed).to_string());
        }
        line
    }

    /// Connections per source address (the ephemeral range is 28,232 ports wide by default).
    const PER_SOURCE: usize = 25_000;

    /// Raise the open-file limit to `want` (past the hard limit when allowed, as root), or as
    /// far as the hard limit goes. Answers the soft limit in force.
    fn raise_fd_limit(want: u64) -> u64 {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer, which
        // lives on this stack frame for the duration of each call.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return 0;
            }
            if lim.rlim_cur < want {
                let wanted = libc::rlimit {
                    rlim_cur: want,
                    rlim_max: lim.rlim_max.max(want),
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                    let hard = libc::rlimit {
                        rlim_cur: lim.rlim_max,
                        rlim_max: lim.rlim_max,
                    };
                    libc::setrlimit(libc::RLIMIT_NOFILE, &hard);
                }
            }
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
        lim.rlim_cur
    }

    /// `(VmRSS, RssAnon)` of this process in bytes.
    fn rss() -> (u64, u64) {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024)
        };
        (field("VmRSS:"), field("RssAnon:"))
    }

    /// The child: the HTTP binding over `jobs` running jobs. Prints `port <p>` and the jobs'
    /// UUIDs, then answers `s` with `s <VmRSS> <RssAnon> <accepted> <long-polls> <waiters>
    /// <live heap bytes> <live allocations per size class …>` until `q` or the end of its input.
    fn server(n: usize, jobs: usize) {
        raise_fd_limit(n as u64 + 4_096);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let engine: Jobs = Engine::new(EngineConfig::default());
        let api = JobsApi::new(engine.clone());
        let ids: Vec<_> = (0..jobs)
            .map(|i| {
                let id = engine.submit(NewJob::new(i as u32)).expect("submit");
                engine.start(id).expect("start");
                id
            })
            .collect();
        let app: Router = api.router();
        let accepted = Arc::new(AtomicUsize::new(0));
        let listener = rt
            .block_on(async {
                let socket = TcpSocket::new_v4()?;
                socket.set_reuseaddr(true)?;
                socket.bind("127.0.0.1:0".parse().expect("addr"))?;
                socket.listen(4096)
            })
            .expect("listen");
        let port = listener.local_addr().expect("addr").port();
        let count = accepted.clone();
        let listener = listener.tap_io(move |_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        rt.spawn(serve(listener, app));
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        writeln!(out, "port {port}").expect("stdout");
        for id in &ids {
            writeln!(out, "{}", api.uuid_of(*id)).expect("stdout");
        }
        out.flush().expect("flush");
        for line in std::io::stdin().lock().lines() {
            match line.expect("stdin").trim() {
                "s" => {
                    let (rss, anon) = rss();
                    writeln!(
                        out,
                        "s {rss} {anon} {} {} {} {}",
                        accepted.load(Ordering::Relaxed),
                        api.long_polls(),
                        engine.waiting(),
                        heap()
                    )
                    .expect("stdout");
                    out.flush().expect("flush");
                }
                _ => break,
            }
        }
        drop(rt);
    }

    /// One reading of the child.
    #[derive(Clone, Debug)]
    struct Reading {
        rss: u64,
        anon: u64,
        accepted: usize,
        polls: usize,
        waiters: usize,
        heap: i64,
        classes: Vec<i64>,
    }

    struct Child {
        process: tokio::process::Child,
        to: tokio::process::ChildStdin,
        from: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    }

    impl Child {
        async fn read(&mut self) -> Reading {
            self.to.write_all(b"s\n").await.expect("write");
            self.to.flush().await.expect("flush");
            let line = self.from.next_line().await.expect("read").expect("answer");
            let v: Vec<i64> = line
                .split_whitespace()
                .skip(1)
                .map(|w| w.parse().expect("number"))
                .collect();
            Reading {
                rss: v[0] as u64,
                anon: v[1] as u64,
                accepted: v[2] as usize,
                polls: v[3] as usize,
                waiters: v[4] as usize,
                heap: v[5],
                classes: v[6..].to_vec(),
            }
        }

        /// Read until `done` holds (the server has caught up with the client), at most 60 s.
        async fn until(&mut self, what: &str, done: impl Fn(&Reading) -> bool) -> Reading {
            let started = Instant::now();
            loop {
                let r = self.read().await;
                if done(&r) {
                    return r;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the server did not reach {what}: {r:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// A plain GET on a fresh connection, answered and closed (warm-up).
    async fn get_once(addr: SocketAddr, path: &str) {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut body = Vec::new();
        s.read_to_end(&mut body).await.expect("read");
        assert!(body.starts_with(b"HTTP/1.1 200"), "warm-up GET answered");
    }

    fn mib(b: u64) -> f64 {
        b as f64 / (1024.0 * 1024.0)
    }

    fn per(total_before: u64, total_after: u64, n: usize) -> f64 {
        (total_after as f64 - total_before as f64) / n as f64
    }

    /// Live heap bytes per item between two readings, and the size classes that grew by at
    /// least half an allocation per item, as `count × size range`.
    fn heap_growth(before: &Reading, after: &Reading, n: usize) -> String {
        let bytes = (after.heap - before.heap) as f64 / n as f64;
        let mut parts = Vec::new();
        for (k, (a, b)) in after.classes.iter().zip(&before.classes).enumerate() {
            let grew = (a - b) as f64 / n as f64;
            if grew >= 0.5 {
                let hi = 1u64 << k;
                let lo = if k == 0 { 0 } else { (1u64 << (k - 1)) + 1 };
                parts.push(format!("{grew:.2} x {lo}-{hi} B"));
            }
        }
        format!("live heap {bytes:.0} B: {}", parts.join(", "))
    }

    async fn measure(n: usize, jobs: usize) {
        let exe = std::env::current_exe().expect("exe");
        let mut process = tokio::process::Command::new(exe)
            .args(["--server", &n.to_string(), "--jobs", &jobs.to_string()])
            .args(if SERVE_AXUM.load(Ordering::Relaxed) {
                &["--serve", "axum"][..]
            } else {
                &[][..]
            })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("child");
        let to = process.stdin.take().expect("stdin");
        let mut from = BufReader::new(process.stdout.take().expect("stdout")).lines();
        let first = from.next_line().await.expect("read").expect("port");
        let port: u16 = first
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .expect("port");
        let mut uuids = Vec::with_capacity(jobs);
        for _ in 0..jobs {
            uuids.push(from.next_line().await.expect("read").expect("uuid"));
        }
        let mut child = Child { process, to, from };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));

        // Warm-up: the request path once through on every runtime thread.
        let warm = 64;
        for uuid in uuids.iter().cycle().take(warm) {
            get_once(addr, &format!("/api/cluster/jobs/{uuid}")).await;
        }
        let base = child.until("the warm-up", |r| r.accepted == warm).await;

        // N connections, accepted, idle.
        let opened = Instant::now();
        let mut streams = Vec::with_capacity(n);
        for i in 0..n {
            let source = Ipv4Addr::new(127, 0, 0, 2 + (i / PER_SOURCE) as u8);
            let socket = TcpSocket::new_v4().expect("socket");
            socket
                .bind(SocketAddr::from((source, 0)))
                .expect("bind a source address");
            streams.push(socket.connect(addr).await.expect("connect"));
        }
        let idle = child
            .until("every connection accepted", |r| r.accepted == warm + n)
            .await;
        let open_took = opened.elapsed();

        // A long-poll on each.
        let sent = Instant::now();
        for (i, s) in streams.iter_mut().enumerate() {
            let uuid = &uuids[i % uuids.len()];
            let req = format!(
                "GET /api/cluster/jobs/{uuid}?poll_timeout=120&fields=state HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            );
            s.write_all(req.as_bytes()).await.expect("write");
        }
        let held = child
            .until("every poll registered", |r| r.polls == n && r.waiters >= n)
            .await;
        let poll_took = sent.elapsed();
        // Nothing answered early: every poll is still waiting.
        let mut probe = [0u8; 1];
        for s in streams.iter().step_by((n / 100).max(1)) {
            assert!(
                matches!(s.try_read(&mut probe), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock),
                "a poll answered before its job changed"
            );
        }

        let conn_heap = heap_growth(&base, &idle, n);
        let poll_heap = heap_growth(&idle, &held, n);
        let conn = per(base.rss, idle.rss, n);
        let poll = per(idle.rss, held.rss, n);
        let total = per(base.rss, held.rss, n);
        let total_anon = per(base.anon, held.anon, n);
        let verdict = if total <= 10.0 * 1024.0 {
            "goal met".to_string()
        } else {
            format!("goal missed by {:.1}x", total / (10.0 * 1024.0))
        };
        println!(
            "{n} held long-polls on {jobs} jobs: server VmRSS {:.1} MiB after warm-up, {:.1} MiB with {n} idle connections (opened in {open_took:.2?}), {:.1} MiB with a poll on each (registered in {poll_took:.2?})",
            mib(base.rss),
            mib(idle.rss),
            mib(held.rss)
        );
        println!(
            "    per connection {conn:.0} B, per poll on top {poll:.0} B; per held poll in all {total:.0} B = {:.2} KiB (anonymous memory {total_anon:.0} B); goal <= 10 KiB: {verdict}",
            total / 1024.0
        );
        println!("    a connection: {conn_heap}");
        println!("    a poll on it: {poll_heap}");
        child.to.write_all(b"q\n").await.ok();
        drop(streams);
        let _ = child.process.wait().await;
    }

    /// How the server serves: hyper's HTTP/1 connection builder, one task per connection (the
    /// default), or `axum::serve` (`--serve axum`: hyper-util's auto builder, HTTP/1 or 2 by
    /// the connection's preface, with upgrades — about 31 KiB a held poll against 11–13).
    static SERVE_AXUM: AtomicBool = AtomicBool::new(false);

    /// Serve `app` on `listener` until the runtime ends.
    async fn serve<L>(mut listener: L, app: Router)
    where
        L: axum::serve::Listener,
        L::Addr: std::fmt::Debug,
        L::Io: Unpin,
    {
        if SERVE_AXUM.load(Ordering::Relaxed) {
            let _ = axum::serve(listener, app).await;
            return;
        }
        // hyper's defaults: `max_buf_size(8192)` (its floor) and `writev(false)` were measured
        // to change nothing here (the read buffer is 8 KiB either way, the write buffer's 8 KiB
        // are reserved, not written, while a poll is held).
        let http1 = hyper::server::conn::http1::Builder::new();
        loop {
            let (io, _) = listener.accept().await;
            let conn = http1.serve_connection(
                hyper_util::rt::TokioIo::new(io),
                hyper_util::service::TowerToHyperService::new(app.clone()),
            );
            tokio::spawn(conn);
        }
    }

    /// A listener that hands the server the server halves of in-memory pipes.
    struct Pipes {
        rx: tokio::sync::mpsc::UnboundedReceiver<tokio::io::DuplexStream>,
    }

    impl axum::serve::Listener for Pipes {
        type Io = tokio::io::DuplexStream;
        type Addr = SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            match self.rx.recv().await {
                Some(io) => (io, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
                None => std::future::pending().await,
            }
        }

        fn local_addr(&self) -> std::io::Result<Self::Addr> {
            Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        }
    }

    fn reading(
        api: &JobsApi<jobstate::JobTable<u32, 1024>>,
        engine: &Jobs,
        accepted: usize,
    ) -> Reading {
        let (rss, anon) = rss();
        let v: Vec<i64> = heap()
            .split_whitespace()
            .map(|w| w.parse().expect("number"))
            .collect();
        Reading {
            rss,
            anon,
            accepted,
            polls: api.long_polls(),
            waiters: engine.waiting(),
            heap: v[0],
            classes: v[1..].to_vec(),
        }
    }

    /// `N` held polls over in-memory pipes, in this process.
    async fn measure_mem(n: usize, jobs: usize) {
        let engine: Jobs = Engine::new(EngineConfig::default());
        let api = JobsApi::new(engine.clone());
        let ids: Vec<_> = (0..jobs)
            .map(|i| {
                let id = engine.submit(NewJob::new(i as u32)).expect("submit");
                engine.start(id).expect("start");
                api.uuid_of(id).to_string()
            })
            .collect();
        let app: Router = api.router();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let server = tokio::spawn(serve(Pipes { rx }, app));

        // Warm-up: 64 plain GETs answered.
        for uuid in ids.iter().cycle().take(64) {
            let (mut client, io) = tokio::io::duplex(4096);
            tx.send(io).expect("server");
            let req = format!(
                "GET /api/cluster/jobs/{uuid} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            client.write_all(req.as_bytes()).await.expect("write");
            let mut body = Vec::new();
            client.read_to_end(&mut body).await.expect("read");
            assert!(body.starts_with(b"HTTP/1.1 200"), "warm-up GET answered");
        }

        // The client halves, with their requests written; the server has not seen them yet.
        let mut clients = Vec::with_capacity(n);
        let mut servers = Vec::with_capacity(n);
        for i in 0..n {
            let (mut client, io) = tokio::io::duplex(4096);
            let uuid = &ids[i % ids.len()];
            let req = format!(
                "GET /api/cluster/jobs/{uuid}?poll_timeout=120&fields=state HTTP/1.1\r\nHost: x\r\n\r\n"
            );
            client.write_all(req.as_bytes()).await.expect("write");
            clients.push(client);
            servers.push(io);
        }
        let base = reading(&api, &engine, 0);
        let started = Instant::now();
        for io in servers.drain(..) {
            tx.send(io).expect("server");
        }
        drop(servers);
        let held = loop {
            let r = reading(&api, &engine, n);
            if r.polls == n && r.waiters >= n {
                break r;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the server did not register every poll: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let took = started.elapsed();
        let mut probe = [0u8; 1];
        for c in clients.iter_mut().step_by((n / 100).max(1)) {
            let answered = tokio::time::timeout(Duration::from_millis(1), c.read(&mut probe)).await;
            assert!(answered.is_err(), "a poll answered before its job changed");
        }
        let total = per(base.rss, held.rss, n);
        let verdict = if total <= 10.0 * 1024.0 {
            "goal met".to_string()
        } else {
            format!("goal missed by {:.1}x", total / (10.0 * 1024.0))
        };
        println!(
            "{n} held long-polls on {jobs} jobs, in-memory pipes: VmRSS {:.1} MiB with the client halves written, {:.1} MiB with every poll held (accepted and registered in {took:.2?})",
            mib(base.rss),
            mib(held.rss)
        );
        println!(
            "    per held poll (server side: connection + poll) {total:.0} B = {:.2} KiB (anonymous memory {:.0} B); goal <= 10 KiB: {verdict}",
            total / 1024.0,
            per(base.anon, held.anon, n)
        );
        println!("    {}", heap_growth(&base, &held, n));
        drop(clients);
        server.abort();
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let value = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|k| args.get(k + 1))
                .cloned()
        };
        let jobs: usize = value("--jobs")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000)
            .clamp(1, 1024);
        if value("--serve").as_deref() == Some("axum") {
            SERVE_AXUM.store(true, Ordering::Relaxed);
        }
        if let Some(n) = value("--server") {
            server(n.parse().expect("--server N"), jobs);
            return;
        }
        let counts: Vec<usize> = value("--polls")
            .unwrap_or_else(|| "10000,100000".into())
            .split(',')
            .map(|c| c.trim().parse().expect("--polls N,M"))
            .collect();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        if args.iter().any(|a| a == "--mem") {
            for n in counts {
                rt.block_on(measure_mem(n, jobs));
            }
            return;
        }
        let most = counts.iter().copied().max().unwrap_or(0);
        let limit = raise_fd_limit(most as u64 + 4_096);
        println!("open-file limit {limit}");
        for n in counts {
            // The server holds n sockets, the client as many, each process apart.
            if n as u64 + 1_024 > limit {
                println!(
                    "{n} held long-polls over TCP: skipped, the open-file limit ({limit}) cannot hold them (no CAP_SYS_RESOURCE to raise the hard limit); see --mem"
                );
                continue;
            }
            rt.block_on(measure(n, jobs));
        }
    }
}
