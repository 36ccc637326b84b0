//! The appliance as a service, over loopback: error envelopes and strict parameters on every
//! route, limits, TLS with basic authentication and its two roles, `/metrics`, connection
//! hygiene, the graceful shutdown, the deletion barrier and the OpenAPI document.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use appliance::metrics::ConnectionEnd;
use jobstate::State;
use serde_json::{json, Value};
use support::{assert_envelope, job_of, options, secure, start, Running, TempDir, ADMIN, VIEWER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_the_envelope_and_every_route_refuses_unknown_parameters() {
    let s = start(options(5), None).await;
    let r = s
        .post(
            "/api/lb/backend-sets?return_timeout=30",
            json!({"name": "web"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let job = job_of(&r);
    let cases: Vec<(&str, String, u16, Option<&str>)> = vec![
        // 405 on every route, the appliance's own and `/` included.
        ("PUT", "/".into(), 405, None),
        ("DELETE", "/api/lb/backend-sets".into(), 405, None),
        ("PATCH", "/api/lb/backend-sets/web".into(), 405, None),
        ("GET", "/api/lb/backend-sets/web/backends".into(), 405, None),
        (
            "PUT",
            "/api/lb/backend-sets/web/backends/1.2.3.4:80".into(),
            405,
            None,
        ),
        ("POST", "/metrics".into(), 405, None),
        ("PUT", "/api/openapi.json".into(), 405, None),
        ("POST", "/api/cluster/jobs".into(), 405, None),
        ("DELETE", format!("/api/cluster/jobs/{job}"), 405, None),
        // 404 for paths nobody serves.
        ("GET", "/nowhere".into(), 404, None),
        ("GET", "/api/lb/backend-sets/web/nothing".into(), 404, None),
        // Unknown or mistyped parameters, on every route.
        (
            "DELETE",
            "/api/lb/backend-sets/web?bogus=1".into(),
            400,
            Some("bogus"),
        ),
        (
            "DELETE",
            "/api/lb/backend-sets/web/backends/1.2.3.4:80?x=".into(),
            400,
            Some("x"),
        ),
        (
            "GET",
            "/api/lb/backend-sets?verbose=true".into(),
            400,
            Some("verbose"),
        ),
        (
            "GET",
            "/api/lb/backend-sets/web?fields=name".into(),
            400,
            Some("fields"),
        ),
        ("GET", "/metrics?name=x".into(), 400, Some("name")),
        ("GET", "/?a=b".into(), 400, Some("a")),
        ("GET", "/api/openapi.json?v=2".into(), 400, Some("v")),
        (
            "GET",
            format!("/api/cluster/jobs/{job}?pol_timeout=5"),
            400,
            Some("pol_timeout"),
        ),
        (
            "PATCH",
            format!("/api/cluster/jobs/{job}?action=cancel&retrun_timeout=5"),
            400,
            Some("retrun_timeout"),
        ),
        (
            "DELETE",
            "/api/lb/backend-sets/web?return_timeout=121".into(),
            400,
            Some("return_timeout"),
        ),
        // Values.
        (
            "GET",
            "/api/lb/backend-sets/Web_1".into(),
            400,
            Some("name"),
        ),
        (
            "DELETE",
            "/api/lb/backend-sets/nosuch".into(),
            404,
            Some("nosuch"),
        ),
        (
            "DELETE",
            "/api/lb/backend-sets/web/backends/1.2.3.4:80".into(),
            404,
            None,
        ),
    ];
    for (method, path, status, target) in &cases {
        let r = s.call(method, path).await;
        assert_envelope(&r, *status);
        if *status == 405 {
            assert!(r.headers.contains_key("allow"), "{method} {path}: no Allow");
        }
        if let Some(t) = target {
            assert_eq!(r.body["error"]["target"], *t, "{method} {path}: {}", r.text);
        }
    }
    // A misspelt return_timeout on a POST is refused before anything is submitted.
    let before = s.app.api().engine().list().len();
    let r = s
        .post(
            "/api/lb/backend-sets?retrun_timeout=10",
            json!({"name": "api"}),
        )
        .await;
    assert_envelope(&r, 400);
    assert_eq!(r.body["error"]["target"], "retrun_timeout");
    assert_eq!(s.app.api().engine().list().len(), before);

    // Bodies.
    for (body, ctype, status) in [
        ("{\"name\": ", "application/json", 400),
        ("{\"name\": \"x\", \"colour\": 1}", "application/json", 422),
        ("{\"name\": 5}", "application/json", 422),
        (
            "{\"name\": \"x\", \"policy\": \"random\"}",
            "application/json",
            422,
        ),
        ("{\"name\": \"x\"}", "text/plain", 415),
        ("{\"name\": \"Not OK\"}", "application/json", 400),
    ] {
        let r = s
            .send(
                s.req("POST", "/api/lb/backend-sets")
                    .header("content-type", ctype)
                    .body(body),
            )
            .await;
        assert_envelope(&r, status);
    }
    for body in [
        json!({"ip": "10.0.0.1", "port": 0}),
        json!({"ip": "10.0.0.300", "port": 80}),
        json!({"ip": "10.0.0.1"}),
        json!({"ip": "0.0.0.0", "port": 80}),
    ] {
        let r = s.post("/api/lb/backend-sets/web/backends", body).await;
        assert_envelope(&r, 422);
    }

    // Limits: 413 by Content-Length, 414, 431 (many fields; one big field).
    let big = "x".repeat(100 * 1024);
    let r = s
        .send(
            s.req("POST", "/api/lb/backend-sets")
                .header("content-type", "application/json")
                .body(big),
        )
        .await;
    assert_envelope(&r, 413);
    assert_eq!(r.body["error"]["code"], "460777");
    let r = s
        .call("GET", &format!("/api/lb/backend-sets?{}", "a".repeat(9000)))
        .await;
    assert_envelope(&r, 414);
    let mut many = s.req("GET", "/api/lb/backend-sets");
    for k in 0..70 {
        many = many.header(format!("x-h{k}"), "v");
    }
    assert_envelope(&s.send(many).await, 431);
    let r = s
        .send(
            s.req("GET", "/api/lb/backend-sets")
                .header("x-big", "v".repeat(20 * 1024)),
        )
        .await;
    assert_envelope(&r, 431);
    assert_eq!(r.body["error"]["code"], "460779");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_basic_auth_with_two_roles() {
    let dir = TempDir::new("auth");
    let (o, der) = secure(options(5), &dir);
    let mut s = start(o, Some(&der)).await;
    assert!(s.base.starts_with("https://"));

    // Admin: everything.
    let r = s
        .post(
            "/api/lb/backend-sets?return_timeout=30",
            json!({"name": "web"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // No credentials, wrong ones, an unknown user, another scheme: 401 with the envelope and
    // WWW-Authenticate, on every path (known or not).
    s.auth = None;
    for (path, auth) in [
        ("/api/lb/backend-sets", None),
        ("/nowhere", None),
        ("/metrics", Some((ADMIN.0, "wrong"))),
        ("/api/cluster/jobs", Some(("nobody", VIEWER.1))),
    ] {
        let mut req = s.req("GET", path);
        if let Some((u, p)) = auth {
            req = req.basic_auth(u, Some(p));
        }
        let r = s.send(req).await;
        assert_envelope(&r, 401);
        assert_eq!(r.body["error"]["code"], "460775");
        let challenge = r.headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Basic realm="), "{challenge}");
    }
    let r = s
        .send(
            s.req("GET", "/api/lb/backend-sets")
                .header("authorization", "Bearer abc"),
        )
        .await;
    assert_envelope(&r, 401);

    // Read-only: GETs (long-polls included) yes, anything else 403.
    s.auth = Some(VIEWER);
    for path in [
        "/api/lb/backend-sets",
        "/api/lb/backend-sets/web",
        "/api/cluster/jobs",
        "/metrics",
        "/api/openapi.json",
        "/",
    ] {
        assert_eq!(s.call("GET", path).await.status, 200, "{path}");
    }
    let r = s.post("/api/lb/backend-sets", json!({"name": "api"})).await;
    assert_envelope(&r, 403);
    assert_eq!(r.body["error"]["code"], "460776");
    for (m, p) in [
        ("DELETE", "/api/lb/backend-sets/web"),
        (
            "PATCH",
            "/api/cluster/jobs/00000000-0000-8000-8000-000000000000?action=cancel",
        ),
    ] {
        assert_envelope(&s.call(m, p).await, 403);
    }
    assert!(s.app.lb().snapshot().sets.contains_key("web"));
    assert!(!s.app.lb().snapshot().sets.contains_key("api"));

    // The document declares it.
    let doc = s.call("GET", "/api/openapi.json").await.body;
    assert_eq!(
        doc["components"]["securitySchemes"]["basic"]["scheme"],
        "basic"
    );
    assert!(doc["paths"]["/api/lb/backend-sets"]["post"]["responses"]["403"].is_object());
    assert!(doc["paths"]["/api/lb/backend-sets"]["get"]["responses"]["401"].is_object());

    // Plain HTTP to the TLS port is not served.
    let plain = support::client(None)
        .get(format!("http://127.0.0.1:{}/", s.app.addr().port()))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_jobs_submits_long_polls_and_wakes() {
    let s = start(options(200), None).await;
    let r = s.post("/api/lb/backend-sets", json!({"name": "web"})).await;
    let job = job_of(&r);
    let first = s
        .call("GET", &format!("/api/cluster/jobs/{job}"))
        .await
        .body;
    // One long-poll woken by the job's next step.
    let rev = first["revision"].as_u64().unwrap();
    let woken = s
        .call(
            "GET",
            &format!("/api/cluster/jobs/{job}?poll_timeout=30&revision={rev}"),
        )
        .await;
    assert!(woken.body["revision"].as_u64().unwrap() > rev);
    s.ended(&job).await;
    let m = s.call("GET", "/metrics").await;
    assert_eq!(m.status, 200);
    assert!(m.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = m.text;
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(value("appliance_job_submits_total"), 1.0);
    assert_eq!(value("appliance_jobs{state=\"success\"}"), 1.0);
    assert_eq!(value("appliance_jobs{state=\"running\"}"), 0.0);
    assert_eq!(value("appliance_long_polls"), 0.0);
    assert!(value("appliance_long_poll_ends_total{end=\"woken\"}") >= 1.0);
    assert!(value("appliance_wake_latency_seconds_count") >= 1.0);
    assert!(value("appliance_http_requests_total{method=\"POST\",status=\"202\"}") >= 1.0);
    assert!(value("appliance_connections") >= 1.0);
    // No persistence configured: no persistence lag.
    assert!(!text.contains("persistence_lag"), "{text}");
    // A refused submit is counted by status.
    let r = s.post("/api/lb/backend-sets", json!({"name": "web"})).await;
    assert_envelope(&r, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_waits_at_once_and_interrupts_running_jobs_after_the_grace() {
    let mut o = options(60_000);
    o.workers = 1;
    o.shutdown_grace = Duration::from_millis(300);
    let s = start(o, None).await;
    let running = job_of(&s.post("/api/lb/backend-sets", json!({"name": "a"})).await);
    s.until(&running, |j| j["state"] == "running").await;
    let queued = job_of(&s.post("/api/lb/backend-sets", json!({"name": "b"})).await);
    // A long-poll that would wait 120 s, and a submit waiting up to 120 s for its job.
    let poll = {
        let req = s.req(
            "GET",
            &format!("/api/cluster/jobs/{running}?poll_timeout=120&revision=999999999"),
        );
        tokio::spawn(async move { req.send().await.unwrap().json::<Value>().await.unwrap() })
    };
    let submit = {
        let req = s
            .req("POST", "/api/lb/backend-sets?return_timeout=120")
            .json(&json!({"name": "c"}));
        tokio::spawn(async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    // Both are held before the shutdown begins (nothing signals a wait's registration: give
    // the server's tasks turns until they are there, bounded).
    let engine = s.app.api().engine().clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(s.app.api().long_polls() == 1 && engine.list().len() == 3 && engine.waiting() >= 2) {
        assert!(Instant::now() < deadline, "the waits never registered");
        tokio::task::yield_now().await;
    }
    let began = Instant::now();
    s.app.shutdown("test");
    let polled = poll.await.unwrap();
    let (status, waited) = submit.await.unwrap();
    let answered = began.elapsed();
    assert!(
        answered < Duration::from_millis(300),
        "answered after {answered:?}"
    );
    assert_eq!(polled["uuid"], running);
    assert_eq!(polled["state"], "running");
    assert_eq!(status, 202, "{waited}");
    let waiting = waited["job"]["uuid"].as_str().unwrap().to_owned();

    let api = s.app.api().clone();
    s.app.wait().await.unwrap();
    assert!(began.elapsed() >= Duration::from_millis(300), "no grace");
    let state = |uuid: &str| api.engine().get(api.job_id(uuid).unwrap()).unwrap();
    let a = state(&running);
    assert_eq!(a.state(), State::Failed);
    assert_eq!(a.message(), appliance::worker::INTERRUPTED);
    assert_eq!(
        a.outcome().unwrap().code(),
        jobstate::FailReason::Interrupted.default_code()
    );
    // Queued jobs were not started.
    assert_eq!(state(&queued).state(), State::Queued);
    assert_eq!(state(&waiting).state(), State::Queued);
}

/// Read until the server closes the connection; answers what it sent.
async fn read_to_close(c: &mut tokio::net::TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(limit, c.read_to_end(&mut out)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_after_the_header_timeout() {
    let mut o = options(5);
    o.header_timeout = Duration::from_secs(1);
    let s = start(o, None).await;
    let addr = s.app.addr();
    let began = Instant::now();
    // Silent, dribbling a request head, and idle after an answered request.
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    // Meanwhile the service answers others.
    for _ in 0..20 {
        assert_eq!(s.call("GET", "/api/lb/backend-sets").await.status, 200);
    }
    for c in [&mut silent, &mut slow, &mut idle] {
        read_to_close(c, Duration::from_secs(10))
            .await
            .expect("closed by the server");
    }
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // The server counts a connection's end after closing its socket: the client can see the
    // close first. Wait (bounded) for the count rather than read it once.
    let m = s.app.metrics();
    let counted = tokio::time::timeout(Duration::from_secs(5), async {
        while m.connections_ended(ConnectionEnd::HeaderTimeout) < 3 {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        counted.is_ok(),
        "header timeouts counted: {}",
        m.connections_ended(ConnectionEnd::HeaderTimeout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_cap_gets_one_503_with_the_envelope() {
    let mut o = options(5);
    o.max_connections = 2;
    let s = start(o, None).await;
    let addr = s.app.addr();
    // Two connections, each held open after one answered request.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut status = [0u8; 12];
        tokio::time::timeout(Duration::from_secs(30), c.read_exact(&mut status))
            .await
            .expect("answered")
            .unwrap();
        assert_eq!(&status, b"HTTP/1.1 200");
        held.push(c);
    }
    let m = s.app.metrics().clone();
    assert_eq!(m.connections_open(), 2);
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut c, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    assert!(answer.contains("\"code\":\"460780\""), "{answer}");
    assert_eq!(m.connections_ended(ConnectionEnd::OverCap), 1);
}

/// The barrier: a deletion waits for every pending job of its set to end — more than a job's
/// limit of dependencies, and whatever their outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_waits_for_every_pending_job_of_its_set() {
    let s = start(options(100), None).await;
    let create = job_of(&s.post("/api/lb/backend-sets", json!({"name": "web"})).await);
    let mut adds = Vec::new();
    for k in 0..12 {
        // One of them fails its health check.
        let ip = if k == 5 {
            "192.0.2.7".to_owned()
        } else {
            format!("10.0.0.{k}")
        };
        let r = s
            .post(
                "/api/lb/backend-sets/web/backends",
                json!({"ip": ip, "port": 80}),
            )
            .await;
        adds.push(job_of(&r));
    }
    assert!(adds.len() > jobstate::MAX_DEPENDENCIES);
    let r = s
        .call("DELETE", "/api/lb/backend-sets/web?return_timeout=120")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let deleted = &r.body["job"];
    assert_eq!(deleted["state"], "success");
    let started = deleted["start_time"].as_str().unwrap().to_owned();
    for j in adds.iter().chain([&create]) {
        let job = s.ended(j).await;
        assert!(
            job["end_time"].as_str().unwrap() <= started.as_str(),
            "{job} ended after the deletion started"
        );
    }
    assert_envelope(&s.call("GET", "/api/lb/backend-sets/web").await, 404);
    // The barrier job is in the list and names the set.
    let list = s
        .call("GET", "/api/cluster/jobs?fields=description,state,message")
        .await
        .body;
    let barrier = list["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["description"]
                .as_str()
                .unwrap()
                .ends_with("pending jobs of backend set web")
        })
        .unwrap_or_else(|| panic!("no barrier in {list}"));
    assert_eq!(barrier["state"], "success");
    let waited: usize = barrier["description"]
        .as_str()
        .unwrap()
        .split(' ')
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert!(waited > jobstate::MAX_DEPENDENCIES, "{barrier}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_and_failed_dependencies_leave_nothing_creating_or_deleting() {
    let s = start(options(200), None).await;
    // A canceled creation fails the additions waiting for it; the set and its backends go.
    let create = job_of(&s.post("/api/lb/backend-sets", json!({"name": "a"})).await);
    let add = job_of(
        &s.post(
            "/api/lb/backend-sets/a/backends",
            json!({"ip": "10.0.0.1", "port": 80}),
        )
        .await,
    );
    let r = s
        .call(
            "PATCH",
            &format!("/api/cluster/jobs/{create}?action=cancel&return_timeout=30"),
        )
        .await;
    assert_eq!(r.body["state"], "failure", "{}", r.text);
    let added = s.ended(&add).await;
    assert_eq!(added["state"], "failure");
    assert!(
        added["message"].as_str().unwrap().contains(&create),
        "the message names the dependency: {added}"
    );
    assert_envelope(&s.call("GET", "/api/lb/backend-sets/a").await, 404);

    // A canceled barrier cancels the deletion behind it: the set stays, active once its jobs end.
    let r = s
        .post(
            "/api/lb/backend-sets?return_timeout=60",
            json!({"name": "b"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let add = job_of(
        &s.post(
            "/api/lb/backend-sets/b/backends",
            json!({"ip": "10.0.0.2", "port": 80}),
        )
        .await,
    );
    let del = job_of(&s.call("DELETE", "/api/lb/backend-sets/b").await);
    // Gone for reads at once (naming the deletion job); listed as deleting.
    let r = s.call("GET", "/api/lb/backend-sets/b").await;
    assert_envelope(&r, 404);
    assert_eq!(r.body["job"]["uuid"], del);
    let listed = s.call("GET", "/api/lb/backend-sets").await.body;
    let b = listed["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "b")
        .unwrap();
    assert_eq!(b["lifecycle"], "deleting");
    assert_eq!(b["job"]["uuid"], del);
    // A second deletion is refused, naming the job that holds the set.
    let again = s.call("DELETE", "/api/lb/backend-sets/b").await;
    assert_envelope(&again, 409);
    assert!(
        again.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&del),
        "{}",
        again.text
    );
    let list = s
        .call("GET", "/api/cluster/jobs?fields=description&state=running")
        .await
        .body;
    let barrier = list["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["description"]
                .as_str()
                .unwrap()
                .contains("pending jobs of backend set b")
        })
        .map(|r| r["uuid"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no running barrier in {list}"));
    let r = s
        .call(
            "PATCH",
            &format!("/api/cluster/jobs/{barrier}?action=pause"),
        )
        .await;
    assert_envelope(&r, 409);
    let r = s
        .call(
            "PATCH",
            &format!("/api/cluster/jobs/{barrier}?action=cancel&return_timeout=30"),
        )
        .await;
    assert_eq!(r.body["state"], "failure", "{}", r.text);
    let deletion = s.ended(&del).await;
    assert_eq!(deletion["state"], "failure");
    assert!(
        deletion["message"].as_str().unwrap().contains(&barrier),
        "{deletion}"
    );
    s.ended(&add).await;
    s.app.lb().reconcile();
    let set = s.call("GET", "/api/lb/backend-sets/b").await.body;
    assert_eq!(set["lifecycle"], "active", "{set}");
    assert_eq!(
        set["backends"]["10.0.0.2:80"]["lifecycle"], "active",
        "{set}"
    );

    // A deletion after a failed addition goes ahead (the barrier waits for the end, not for
    // success); the failed backend never shows as creating once its job ended.
    let bad = job_of(
        &s.post(
            "/api/lb/backend-sets/b/backends",
            json!({"ip": "192.0.2.8", "port": 81}),
        )
        .await,
    );
    let r = s
        .call("DELETE", "/api/lb/backend-sets/b?return_timeout=60")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.ended(&bad).await["code"], 1001);
    assert_eq!(
        s.call("GET", "/api/lb/backend-sets").await.body["num_records"],
        0
    );
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Every `(method, path)` the appliance serves.
const ROUTES: [(&str, &str); 25] = [
    ("get", "/"),
    ("get", "/api/cluster/jobs"),
    ("get", "/api/cluster/jobs/{uuid}"),
    ("patch", "/api/cluster/jobs/{uuid}"),
    ("get", "/api/lb/backend-sets"),
    ("post", "/api/lb/backend-sets"),
    ("delete", "/api/lb/backend-sets/{name}"),
    ("get", "/api/lb/backend-sets/{name}"),
    ("post", "/api/lb/backend-sets/{name}/backends"),
    ("delete", "/api/lb/backend-sets/{name}/backends/{backend}"),
    ("get", "/api/openapi.json"),
    ("get", "/metrics"),
    ("get", "/20200501/workRequests"),
    ("get", "/20200501/workRequests/{workRequestId}"),
    ("delete", "/20200501/workRequests/{workRequestId}"),
    ("get", "/20200501/workRequests/{workRequestId}/errors"),
    ("get", "/20200501/workRequests/{workRequestId}/logs"),
    ("post", "/20200501/networkLoadBalancers/{networkLoadBalancerId}/backendSets"),
    ("delete", "/20200501/networkLoadBalancers/{networkLoadBalancerId}/backendSets/{backendSetName}"),
    ("post", "/20200501/networkLoadBalancers/{networkLoadBalancerId}/backendSets/{backendSetName}/backends"),
    ("delete", "/20200501/networkLoadBalancers/{networkLoadBalancerId}/backendSets/{backendSetName}/backends/{backendName}"),
    ("get", "/api/management-server/jobs"),
    ("get", "/api/management-server/jobs/{key}"),
    ("get", "/api/v3/jobs"),
    ("get", "/api/v3/jobs/{job_id}"),
];

fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

async fn document_matches(s: &Running) {
    let doc = s.call("GET", "/api/openapi.json").await.body;
    let mut ops = jobstate_std::http::openapi::operations(&doc);
    ops.sort();
    let mut routes: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    routes.sort();
    assert_eq!(ops, routes);
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling {r}"
        );
    }
    // max_records as enforced.
    let params = doc["paths"]["/api/cluster/jobs"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let max = params.iter().find(|p| p["name"] == "max_records").unwrap();
    assert_eq!(max["schema"]["maximum"], 10_000);
    assert_eq!(
        s.call("GET", "/api/cluster/jobs?max_records=10000")
            .await
            .status,
        200
    );
    assert_eq!(
        s.call("GET", "/api/cluster/jobs?max_records=10001")
            .await
            .status,
        400
    );

    // Every documented operation answers with a status it documents; every other method on
    // a documented path is a 405.
    let create = s
        .post(
            "/api/lb/backend-sets?return_timeout=30",
            json!({"name": "doc"}),
        )
        .await;
    let uuid = job_of(&create);
    let fill = |p: &str| {
        ["{uuid}", "{workRequestId}", "{key}", "{job_id}"]
            .iter()
            .fold(p.to_owned(), |p, k| p.replace(k, &uuid))
            .replace("{networkLoadBalancerId}", appliance::oci::NLB_ID)
            .replace("{name}", "doc")
            .replace("{backendSetName}", "doc")
            .replace("{backend}", "10.9.9.9:80")
            .replace("{backendName}", "10.9.9.8:80")
    };
    for (method, path) in &ops {
        let op = &doc["paths"][path][method];
        let oci = path.starts_with("/20200501/");
        let url = match (method.as_str(), path.as_str()) {
            ("patch", _) => format!("{}?action=resume", fill(path)),
            ("get", p)
                if oci
                    && !p.contains("networkLoadBalancers")
                    && p != "/20200501/workRequests/{workRequestId}" =>
            {
                format!(
                    "{}?compartmentId={}",
                    fill(path),
                    appliance::oci::COMPARTMENT
                )
            }
            _ => fill(path),
        };
        let mut req = s.req(&method.to_uppercase(), &url);
        if path.ends_with("/backends") && oci {
            req = req.json(&json!({"ipAddress": "10.9.9.8", "port": 80}));
        } else if path.ends_with("/backends") {
            req = req.json(&json!({"ip": "10.9.9.9", "port": 80}));
        } else if method == "post" && oci {
            req = req.json(&json!({"name": "doc3", "healthChecker": {"protocol": "TCP"}}));
        } else if method == "post" {
            req = req.json(&json!({"name": "doc2"}));
        }
        let r = s.send(req).await;
        assert!(
            op["responses"][r.status.to_string()].is_object(),
            "{method} {url} answered {} ({})",
            r.status,
            r.text
        );
    }
    for path in doc["paths"].as_object().unwrap().keys() {
        for method in METHODS {
            if doc["paths"][path][method].is_object() {
                continue;
            }
            let r = s.call(&method.to_uppercase(), &fill(path)).await;
            if path.starts_with("/20200501/") {
                assert_eq!(r.status, 405, "{method} {path}");
                assert_eq!(r.body["code"], "MethodNotAllowed", "{method} {path}");
            } else {
                assert_envelope(&r, 405);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_service() {
    let s = start(options(5), None).await;
    document_matches(&s).await;
    // One service at a time: the plain one ends before the secure one starts.
    drop(s);
    let dir = TempDir::new("doc");
    let (o, der) = secure(options(5), &dir);
    let s = start(o, Some(&der)).await;
    document_matches(&s).await;
}
