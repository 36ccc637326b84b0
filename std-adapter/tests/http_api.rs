//! The HTTP binding over real loopback HTTP (reqwest against the server on 127.0.0.1:0):
//! R-RETURN, R-LONGPOLL, R-RETAIN, R-CONTROL, R-FULL and R-INPUT as a client sees them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_support;

use std::time::{Duration, Instant};

use http_support::{assert_envelope, config, serve, Server, Spec, CAP};
use jobstate::{Condition, JobOptions, NewJob, Severity, State};
use serde_json::Value;

const KEEP: Duration = Duration::from_secs(300);
/// The longest `poll_timeout` / `return_timeout` (the core's `MAX_WAIT`).
const MAX: u64 = jobstate_std::http::MAX_TIMEOUT_SECS;

fn href(v: &Value) -> String {
    v["_links"]["self"]["href"].as_str().unwrap().to_owned()
}

// ----- R-RETURN --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_return_202_with_link_then_get_finds_job_at_once() {
    let s = serve(config(KEEP), false).await;
    let r = s.create("hold", "").await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let job = &r.body["job"];
    let uuid = job["uuid"].as_str().unwrap();
    assert_eq!(href(job), format!("/api/cluster/jobs/{uuid}"));
    assert_eq!(
        job.as_object().unwrap().len(),
        2,
        "only uuid and _links: {job}"
    );
    // No delay: the job is in the table before the 202 left.
    let g = s.get(&href(job)).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body["uuid"], uuid);
    assert_eq!(g.body["state"], "queued");
    assert_eq!(g.body["description"], "test hold");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_return_timeout_200_when_done_in_time_else_202() {
    let s = serve(config(KEEP), true).await;
    // Ends in time: 200 with the whole record.
    let r = s.create("instant", "?return_timeout=30").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["job"]["state"], "success");
    assert_eq!(r.body["job"]["code"], 0);
    assert_eq!(r.body["job"]["message"], "done");
    assert!(r.body["job"]["end_time"].is_string());
    // Default return_timeout is 0: 202 even for a job that ends at once.
    let r = s.create("instant", "").await;
    assert_eq!(r.status, 202);
    // Does not end in time: 202 after the timeout, and the job is still there.
    let started = Instant::now();
    let r = s.create("hold", "?return_timeout=1").await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert!(started.elapsed() >= Duration::from_secs(1));
    let g = s.get(&href(&r.body["job"])).await;
    assert_eq!(g.status, 200);
    assert!(matches!(
        g.body["state"].as_str(),
        Some("queued" | "running")
    ));
    // Fails in time: the error envelope with the job's code and message, and its link.
    let r = s.create("fail", "?return_timeout=30").await;
    assert_envelope(&r, 400);
    assert_eq!(r.body["error"]["code"], "42");
    assert_eq!(r.body["error"]["message"], "boom");
    let g = s.get(&href(&r.body["job"])).await;
    assert_eq!(g.body["state"], "failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_input_return_timeout_out_of_range_adds_nothing() {
    let s = serve(config(KEEP), false).await;
    for q in [
        format!("?return_timeout={}", MAX + 1),
        "?return_timeout=-1".into(),
        "?return_timeout=x".into(),
        "?return_timeout=".into(),
    ] {
        let r = s.create("hold", &q).await;
        assert_envelope(&r, 400);
        assert_eq!(r.body["error"]["target"], "return_timeout", "{q}");
    }
    assert_eq!(s.engine.list().len(), 0, "a refused request adds no job");
    assert_eq!(s.engine.revision().get(), 0);
}

// ----- R-LONGPOLL ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_longpoll_returns_early_on_change() {
    let s = serve(config(KEEP), false).await;
    let id = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    let path = format!("/api/cluster/jobs/{}", s.api.uuid_of(id));
    let started = Instant::now();
    let poll = {
        let (client, url) = (
            s.client.clone(),
            s.url(&format!("{path}?poll_timeout={MAX}")),
        );
        tokio::spawn(async move { client.get(url).send().await.unwrap().json::<Value>().await })
    };
    s.until_polls(1).await;
    s.engine.start(id).unwrap();
    let body = poll.await.unwrap().unwrap();
    assert_eq!(body["state"], "running");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "answered on the change"
    );
    assert_eq!(s.api.long_polls(), 0);
    assert_eq!(s.engine.waiting(), 0, "the wait deregistered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_longpoll_times_out_with_the_job_as_it_is() {
    let s = serve(config(KEEP), false).await;
    let id = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    let before = s
        .get(&format!("/api/cluster/jobs/{}", s.api.uuid_of(id)))
        .await;
    let started = Instant::now();
    let r = s
        .get(&format!(
            "/api/cluster/jobs/{}?poll_timeout=1",
            s.api.uuid_of(id)
        ))
        .await;
    let took = started.elapsed();
    assert_eq!(r.status, 200, "a timeout is not an error");
    assert_eq!(r.body, before.body, "unchanged job, unchanged record");
    assert!(
        took >= Duration::from_secs(1),
        "waited the timeout: {took:?}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_longpoll_terminal_job_answers_at_once() {
    let s = serve(config(KEEP), false).await;
    let id = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    s.engine.request_cancel(id).unwrap();
    let started = Instant::now();
    let r = s
        .get(&format!(
            "/api/cluster/jobs/{}?poll_timeout={MAX}",
            s.api.uuid_of(id)
        ))
        .await;
    assert_eq!(r.body["state"], "failure");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_longpoll_last_modified_semantics() {
    let s = serve(config(KEEP), false).await;
    let id = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    s.engine.start(id).unwrap();
    let path = format!("/api/cluster/jobs/{}", s.api.uuid_of(id));
    let first = s.get(&path).await.body;
    let lm = first["last_modified"].as_str().unwrap().to_owned();
    let t = jobstate_std::http::parse_time(&lm).unwrap();

    // Changed after an earlier time: answered at once.
    let earlier = jobstate_std::http::format_time(t - Duration::from_micros(1));
    let started = Instant::now();
    let r = s
        .get(&format!(
            "{path}?poll_timeout={MAX}&last_modified={earlier}"
        ))
        .await;
    assert_eq!(r.body["last_modified"], lm.as_str());
    assert!(started.elapsed() < Duration::from_secs(60));

    // Not changed after its own last_modified: waits for the next change.
    let poll = {
        let url = s.url(&format!("{path}?poll_timeout={MAX}&last_modified={lm}"));
        let client = s.client.clone();
        tokio::spawn(async move { client.get(url).send().await.unwrap().json::<Value>().await })
    };
    s.until_polls(1).await;
    s.engine.progress(id, 40, "copying").unwrap();
    let body = poll.await.unwrap().unwrap();
    assert_eq!(body["progress"], 40);
    assert_eq!(body["message"], "copying");
    let lm2 = jobstate_std::http::parse_time(body["last_modified"].as_str().unwrap()).unwrap();
    assert!(lm2 > t, "last_modified moved on");
    // The returned last_modified, echoed back, waits again (no change yet): times out.
    let lm2s = body["last_modified"].as_str().unwrap();
    let r = s
        .get(&format!("{path}?poll_timeout=1&last_modified={lm2s}"))
        .await;
    assert_eq!(r.body["revision"], body["revision"]);
    // Both markers: answered as soon as either says the job changed.
    let rev = body["revision"].as_u64().unwrap();
    let started = Instant::now();
    let r = s
        .get(&format!(
            "{path}?poll_timeout={MAX}&revision={rev}&last_modified={earlier}"
        ))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["revision"], rev);
    assert!(started.elapsed() < Duration::from_secs(60));
    // Offsets are accepted: the same instant written in +02:00.
    let r = s
        .get(&format!(
            "{path}?poll_timeout={MAX}&last_modified=1970-01-01T02:00:00%2B02:00"
        ))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_version_revision_long_poll_never_misses_a_change() {
    let s = serve(config(KEEP), false).await;
    let id = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    s.engine.start(id).unwrap();
    let path = format!("/api/cluster/jobs/{}", s.api.uuid_of(id));
    let rev = s.get(&path).await.body["revision"].as_u64().unwrap();
    // Two changes, possibly in the same microsecond: the revision tells them apart.
    s.engine.progress(id, 10, "a").unwrap();
    let r = s
        .get(&format!("{path}?poll_timeout={MAX}&revision={rev}"))
        .await;
    assert_eq!(r.body["progress"], 10);
    s.engine.progress(id, 20, "b").unwrap();
    let r2 = s
        .get(&format!(
            "{path}?poll_timeout={MAX}&revision={}",
            r.body["revision"]
        ))
        .await;
    assert_eq!(r2.body["progress"], 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_longpoll_wakes_only_the_polls_of_the_changed_job() {
    let s = serve(config(KEEP), false).await;
    let a = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    let b = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    let spawn_poll = |id| {
        let url = s.url(&format!(
            "/api/cluster/jobs/{}?poll_timeout={MAX}",
            s.api.uuid_of(id)
        ));
        let client = s.client.clone();
        tokio::spawn(async move { client.get(url).send().await.unwrap().json::<Value>().await })
    };
    let pa = spawn_poll(a);
    let pb = spawn_poll(b);
    s.until_polls(2).await;
    s.engine.start(a).unwrap();
    assert_eq!(pa.await.unwrap().unwrap()["state"], "running");
    s.until_polls(1).await;
    assert!(!pb.is_finished(), "the poll of b still waits");
    s.engine.request_cancel(b).unwrap();
    assert_eq!(pb.await.unwrap().unwrap()["state"], "failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_polls_answers_open_long_polls_for_shutdown() {
    let s = serve(config(KEEP), false).await;
    let id = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    let path = format!("/api/cluster/jobs/{}?poll_timeout={MAX}", s.api.uuid_of(id));
    let started = Instant::now();
    let poll = {
        let (client, url) = (s.client.clone(), s.url(&path));
        tokio::spawn(async move { client.get(url).send().await.unwrap().json::<Value>().await })
    };
    s.until_polls(1).await;
    s.api.close_polls();
    let body = poll.await.unwrap().unwrap();
    assert_eq!(body["state"], "queued", "the job as it is, as at a timeout");
    assert_eq!(s.engine.waiting(), 0, "the wait deregistered");
    // Later polls answer at once.
    let r = s.get(&path).await;
    assert_eq!(r.status, 200);
    assert!(started.elapsed() < Duration::from_secs(60));
}

// ----- records, fields, R-RETAIN ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_fields_times_and_failure_message() {
    let s = serve(config(KEEP), false).await;
    let id = s
        .engine
        .submit(NewJob::new(Spec::Hold).description("resize volume"))
        .unwrap();
    s.engine.start(id).unwrap();
    s.engine.succeed(id, Severity::Normal, "resized").unwrap();
    let path = format!("/api/cluster/jobs/{}", s.api.uuid_of(id));
    let r = s.get(&path).await.body;
    for f in [
        "uuid",
        "description",
        "state",
        "message",
        "code",
        "start_time",
        "end_time",
        "create_time",
        "last_modified",
        "progress",
        "revision",
        "_links",
    ] {
        assert!(r.get(f).is_some(), "missing {f}: {r}");
    }
    assert!(r.get("error").is_none(), "no error on success");
    let (start, end) = (
        r["start_time"].as_str().unwrap(),
        r["end_time"].as_str().unwrap(),
    );
    assert!(start.ends_with('Z') && start.len() == 27, "{start}");
    assert!(
        jobstate_std::http::parse_time(start).unwrap()
            <= jobstate_std::http::parse_time(end).unwrap()
    );

    // fields= selects; uuid and _links always come.
    let r = s.get(&format!("{path}?fields=state,code")).await.body;
    let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert_eq!(r["state"], "success");
    assert_eq!(r["code"], 0);

    // A failed job always carries a non-empty message, whatever fields= says.
    let f = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    s.engine.start(f).unwrap();
    s.engine.fail(f, 7, "").unwrap();
    let r = s
        .get(&format!(
            "/api/cluster/jobs/{}?fields=state",
            s.api.uuid_of(f)
        ))
        .await
        .body;
    assert_eq!(r["state"], "failure");
    assert_eq!(r["message"], "failed");
    let r = s
        .get(&format!("/api/cluster/jobs/{}", s.api.uuid_of(f)))
        .await
        .body;
    assert_eq!(r["code"], 7);
    assert_eq!(r["error"]["code"], "7");
    assert_eq!(r["error"]["message"], "failed");
}

/// The `message` of a failed job, asked for with `fields=state` (a failed job always carries
/// it).
async fn failure_message(s: &Server, id: jobstate::JobId) -> String {
    let path = format!("/api/cluster/jobs/{}?fields=state", s.api.uuid_of(id));
    let r = s.get(&path).await.body;
    assert_eq!(r["state"], "failure", "{r}");
    r["message"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_messages_say_why_the_table_ended_the_job() {
    let mut cfg = config(KEEP);
    cfg.timer_thread = false;
    let s = serve(cfg, false).await;
    let message = |id| failure_message(&s, id);
    // A dependency failed: its dependent names it by the UUID the binding gave it.
    let dep = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    let ids = [dep];
    let dependent = s
        .engine
        .submit(NewJob::new(Spec::Hold).depends_on(&ids))
        .unwrap();
    s.engine.start(dep).unwrap();
    s.engine.fail(dep, 9, "disk gone").unwrap();
    assert_eq!(message(dep).await, "disk gone", "a worker's own message");
    assert_eq!(
        message(dependent).await,
        format!("dependency {} failed", s.api.uuid_of(dep).hyphenated())
    );
    let r = s
        .get(&format!("/api/cluster/jobs/{}", s.api.uuid_of(dependent)))
        .await
        .body;
    assert_eq!(r["error"]["message"], r["message"]);
    assert_eq!(r["code"], 4);

    // Canceled while queued.
    let canceled = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    s.engine.request_cancel(canceled).unwrap();
    assert_eq!(message(canceled).await, "canceled");

    // Deadline and lease: the timer sweep at a `now` past them.
    let timed = |opts: JobOptions| {
        let id = s
            .engine
            .submit(NewJob::new(Spec::Hold).options(opts))
            .unwrap();
        s.engine.start(id).unwrap();
        id
    };
    let deadline = timed(JobOptions {
        run_timeout: Some(jobstate::Duration::from_millis(1)),
        ..JobOptions::DEFAULT
    });
    let lease = timed(JobOptions {
        lease: Some(jobstate::Duration::from_millis(1)),
        ..JobOptions::DEFAULT
    });
    s.engine.update(|t, now| {
        t.expire(now + jobstate::Duration::from_secs(1));
    });
    assert_eq!(message(deadline).await, "deadline passed");
    assert_eq!(message(lease).await, "heartbeat lease expired");

    // Interrupted (the adapter's own failure, with no message of its own).
    let cut = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    s.engine.start(cut).unwrap();
    s.engine
        .fail_with(cut, jobstate::FailReason::Interrupted, None, "")
        .unwrap();
    assert_eq!(message(cut).await, "interrupted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_modified_echoed_back_is_not_a_change() {
    let s = serve(config(KEEP), false).await;
    let id = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    s.engine.start(id).unwrap();
    let path = format!("/api/cluster/jobs/{}", s.api.uuid_of(id));
    for _ in 0..3 {
        let first = s.get(&path).await.body;
        let lm = first["last_modified"].as_str().unwrap().to_owned();
        // The printed time parses back to the instant the engine maps the job's own to.
        let printed = jobstate_std::http::parse_time(&lm).unwrap();
        let job = s.engine.get(id).unwrap();
        assert_eq!(s.engine.to_instant(printed), job.modified(), "{lm}");
        // Echoed back: no change since, so the poll runs to its timeout.
        let r = s
            .get(&format!("{path}?poll_timeout=1&last_modified={lm}"))
            .await
            .body;
        assert_eq!(r["revision"], first["revision"]);
        assert_eq!(r["last_modified"], first["last_modified"]);
        s.engine.progress(id, 10, "next").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_retain_gone_job_answers_with_its_tombstone() {
    let mut cfg = config(Duration::ZERO);
    cfg.timer_thread = false;
    let s = serve(cfg, false).await;
    let ok = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    let bad = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    s.engine.start(ok).unwrap();
    s.engine.succeed(ok, Severity::Normal, "done").unwrap();
    s.engine.request_cancel(bad).unwrap();
    assert_eq!(s.engine.run_timers().removed, 2);
    assert!(s.engine.get(ok).is_err(), "the record is gone");

    let r = s
        .get(&format!("/api/cluster/jobs/{}", s.api.uuid_of(ok)))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "success");
    assert_eq!(r.body["code"], 0);
    assert!(r.body["end_time"].is_string());
    let r = s
        .get(&format!("/api/cluster/jobs/{}", s.api.uuid_of(bad)))
        .await;
    assert_eq!(r.body["state"], "failure");
    assert_eq!(r.body["code"], 2);
    assert_eq!(r.body["error"]["code"], "2");
    assert!(r.body["message"].as_str().unwrap().contains("canceled"));
    // A long-poll on it answers at once too.
    let r = s
        .get(&format!(
            "/api/cluster/jobs/{}?poll_timeout={MAX}",
            s.api.uuid_of(bad)
        ))
        .await;
    assert_eq!(r.body["state"], "failure");
    // Actions on it: it already ended.
    let r = s
        .patch(&format!(
            "/api/cluster/jobs/{}?action=cancel",
            s.api.uuid_of(ok)
        ))
        .await;
    assert_envelope(&r, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_id_unknown_uuids_are_404_with_envelope() {
    let s = serve(config(KEEP), false).await;
    let other = jobstate_std::http::JobUuids::with_tag(s.api.uuids().tag() ^ 1);
    let id = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    for uuid in [
        other.encode(id).to_string(),
        "6f1c7ae2-4b7d-4c3a-9f0e-2d4b6a8c1e3f".to_owned(),
    ] {
        let r = s.get(&format!("/api/cluster/jobs/{uuid}")).await;
        assert_envelope(&r, 404);
        assert_eq!(r.body["error"]["code"], "4");
        assert_eq!(r.body["error"]["target"], uuid.as_str());
        let r = s
            .patch(&format!("/api/cluster/jobs/{uuid}?action=cancel"))
            .await;
        assert_envelope(&r, 404);
    }
    // A slot never used: this table never issued the id.
    let mut bytes = id.to_bytes();
    bytes[9] = 7;
    let never = s.api.uuid_of(jobstate::JobId::from_bytes(bytes));
    assert_envelope(&s.get(&format!("/api/cluster/jobs/{never}")).await, 404);
}

// ----- list ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_paging_filters_and_fields() {
    let s = serve(config(KEEP), false).await;
    let ids: Vec<_> = (0..5)
        .map(|_| s.engine.submit(NewJob::new(Spec::Hold)).unwrap())
        .collect();
    s.engine.start(ids[1]).unwrap();
    let want: Vec<String> = ids.iter().map(|i| s.api.uuid_of(*i).to_string()).collect();

    // Default: every job, oldest first, uuid and _links only.
    let r = s.get("/api/cluster/jobs").await.body;
    assert_eq!(r["num_records"], 5);
    assert_eq!(r["records"][0].as_object().unwrap().len(), 2, "{r}");
    assert!(r["_links"]["next"].is_null());

    // Paging: follow _links.next verbatim.
    let mut got = Vec::new();
    let mut next = Some("/api/cluster/jobs?max_records=2&fields=state".to_owned());
    let mut pages = 0;
    while let Some(path) = next {
        let r = s.get(&path).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        pages += 1;
        for rec in r.body["records"].as_array().unwrap() {
            assert!(rec["state"].is_string());
            got.push(rec["uuid"].as_str().unwrap().to_owned());
        }
        next = r.body["_links"]["next"]["href"].as_str().map(str::to_owned);
    }
    assert_eq!(pages, 3);
    assert_eq!(got, want, "every job once, oldest first");

    // A job submitted between pages is not lost nor repeated.
    let r = s.get("/api/cluster/jobs?max_records=3").await.body;
    let late = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    let r2 = s
        .get(r["_links"]["next"]["href"].as_str().unwrap())
        .await
        .body;
    let tail: Vec<&str> = r2["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(
        tail,
        [&*want[3], &*want[4], &*s.api.uuid_of(late).to_string()]
    );

    // Filters.
    let r = s.get("/api/cluster/jobs?state=running").await.body;
    assert_eq!(r["num_records"], 1);
    assert_eq!(r["records"][0]["uuid"], want[1].as_str());
    let r = s.get("/api/cluster/jobs?state=!running").await.body;
    assert_eq!(r["num_records"], 5);
    let r = s.get("/api/cluster/jobs?state=running%7Cqueued").await.body;
    assert_eq!(r["num_records"], 6);
    let r = s.get("/api/cluster/jobs?state=success").await.body;
    assert_eq!(r["num_records"], 0);
    let r = s.get("/api/cluster/jobs?return_records=false").await.body;
    assert_eq!(r["num_records"], 6);
    assert_eq!(r["records"].as_array().unwrap().len(), 0);
    let r = s.get("/api/cluster/jobs?fields=*&max_records=1").await.body;
    assert!(r["records"][0]["create_time"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_return_records_false_and_order_by() {
    let s = serve(config(KEEP), false).await;
    let ids: Vec<_> = (0..5)
        .map(|_| s.engine.submit(NewJob::new(Spec::Hold)).unwrap())
        .collect();
    // Progress 0, 40, 20, 80, 60; job 4 ended.
    for (k, p) in [(1, 40u8), (2, 20), (3, 80), (4, 60)] {
        s.engine.start(ids[k]).unwrap();
        s.engine.progress(ids[k], p, "step").unwrap();
    }
    s.engine.request_cancel(ids[0]).unwrap();
    let uuid = |k: usize| s.api.uuid_of(ids[k]).to_string();

    // return_records=false: the count, no records, the same links.
    let r = s
        .get("/api/cluster/jobs?return_records=false&state=running")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["num_records"], 4);
    assert_eq!(r.body["records"], serde_json::json!([]));

    // order_by a field, asc (default) and desc; paging follows the order.
    for (q, want) in [
        ("progress", [0, 2, 1, 4, 3]),
        ("progress%20asc", [0, 2, 1, 4, 3]),
        ("progress+desc", [3, 4, 1, 2, 0]),
        ("create_time desc", [4, 3, 2, 1, 0]),
        // Absent values first ascending: only job 0 ended.
        ("end_time desc", [0, 4, 3, 2, 1]),
    ] {
        let mut got = Vec::new();
        let mut next = Some(format!("/api/cluster/jobs?order_by={q}&max_records=2"));
        while let Some(path) = next {
            let r = s.get(&path).await;
            assert_eq!(r.status, 200, "{q}: {:?}", r.body);
            for rec in r.body["records"].as_array().unwrap() {
                got.push(rec["uuid"].as_str().unwrap().to_owned());
            }
            next = r.body["_links"]["next"]["href"].as_str().map(str::to_owned);
        }
        let want: Vec<String> = want.iter().map(|k| uuid(*k)).collect();
        assert_eq!(got, want, "order_by={q}");
    }
    let r = s
        .get("/api/cluster/jobs?order_by=state%20desc&fields=state")
        .await;
    let states: Vec<&str> = r.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["running", "running", "running", "running", "failure"]
    );

    // Bad orders are 400s naming order_by, and change nothing.
    let revision = s.engine.revision();
    for q in ["bogus", "progress%20up", "progress%20asc%20desc", "", "%20"] {
        let r = s.get(&format!("/api/cluster/jobs?order_by={q}")).await;
        assert_envelope(&r, 400);
        assert_eq!(r.body["error"]["target"], "order_by", "{q}");
    }
    assert_eq!(s.engine.revision(), revision);
}

// ----- R-CONTROL -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_control_patch_actions() {
    let s = serve(config(KEEP), false).await;
    let id = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    let path = format!("/api/cluster/jobs/{}", s.api.uuid_of(id));
    s.engine.start(id).unwrap();

    // pause: a request the worker acts on at its checkpoint.
    let r = s.patch(&format!("{path}?action=pause")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "running");
    assert!(s.engine.get(id).unwrap().pause_requested());
    s.engine.checkpoint(id).unwrap();
    assert_eq!(s.get(&path).await.body["state"], "paused");

    // resume.
    let r = s.patch(&format!("{path}?action=resume")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["state"], "running");

    // pause with return_timeout: answers once the worker has paused it.
    let poll = patch_in_background(&s, &format!("{path}?action=pause&return_timeout={MAX}"));
    checkpoint_once_requested(&s, id, |job| job.pause_requested()).await;
    assert_eq!(poll.await.unwrap().unwrap()["state"], "paused");

    // cancel a paused job: a flag the worker sees; with return_timeout, answered once ended.
    let poll = patch_in_background(&s, &format!("{path}?action=cancel&return_timeout={MAX}"));
    checkpoint_once_requested(&s, id, |job| job.cancel_requested()).await;
    let body = poll.await.unwrap().unwrap();
    assert_eq!(body["state"], "failure");
    assert_eq!(body["error"]["code"], "2");

    // cancel a queued job: it fails at once.
    let q = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    let r = s
        .patch(&format!(
            "/api/cluster/jobs/{}?action=cancel",
            s.api.uuid_of(q)
        ))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["state"], "failure");
    assert_eq!(r.body["message"], "canceled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_control_each_refusal_has_its_code_and_changes_nothing() {
    let s = serve(config(KEEP), false).await;
    let queued = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    let running = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    let fixed = s
        .engine
        .submit(NewJob::new(Spec::Hold).options(JobOptions {
            pausable: false,
            cancelable: false,
            ..JobOptions::DEFAULT
        }))
        .unwrap();
    let done = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    s.engine.start(running).unwrap();
    s.engine.start(fixed).unwrap();
    s.engine.request_cancel(done).unwrap();
    let revision = s.engine.revision();
    for (id, action, status, code) in [
        // ONTAP's codes, mapped from the core's typed refusals in one place.
        (queued, "pause", 409, "458776"),   // not running
        (queued, "resume", 409, "458776"),  // not running (nothing to resume)
        (running, "resume", 409, "458771"), // is running
        (fixed, "pause", 409, "458783"),    // pause not supported
        (fixed, "cancel", 409, "458784"),   // cancel not supported
        (done, "pause", 409, "458762"),     // already terminal
        (done, "resume", 409, "458762"),
        (done, "cancel", 409, "458762"),
        (running, "stop", 400, "262185"),
        (running, "", 400, "262185"),
    ] {
        let r = s
            .patch(&format!(
                "/api/cluster/jobs/{}?action={action}",
                s.api.uuid_of(id)
            ))
            .await;
        assert_envelope(&r, status);
        assert_eq!(r.body["error"]["code"], code, "{action}: {:?}", r.body);
    }
    let r = s
        .patch(&format!("/api/cluster/jobs/{}", s.api.uuid_of(running)))
        .await;
    assert_envelope(&r, 400);
    assert_eq!(r.body["error"]["target"], "action");
    assert_eq!(
        s.engine.revision(),
        revision,
        "no refusal changed the table"
    );
    assert_eq!(s.engine.get(queued).unwrap().state(), State::Queued);
}

// ----- R-FULL ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_full_503_with_retry_after() {
    let s = serve(config(KEEP), false).await;
    let ids: Vec<_> = (0..CAP)
        .map(|_| s.engine.submit(NewJob::new(Spec::Hold)).unwrap())
        .collect();
    // Every slot holds a live job: the configured default.
    let r = s.create("hold", "").await;
    assert_envelope(&r, 503);
    assert_eq!(r.body["error"]["code"], "460772");
    assert_eq!(r.headers["retry-after"], "5");
    assert_eq!(s.engine.list().len(), CAP, "nothing added");
    // One terminal job in its retention: retry when that passes.
    s.engine.request_cancel(ids[0]).unwrap();
    let r = s.create("hold", "?return_timeout=5").await;
    assert_envelope(&r, 503);
    let secs: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=300).contains(&secs) && secs > 250, "{secs}");
}

// ----- R-INPUT ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_input_every_malformed_parameter_is_4xx_with_envelope() {
    let s = serve(config(KEEP), false).await;
    let id = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    let job = format!("/api/cluster/jobs/{}", s.api.uuid_of(id));
    let before = s.engine.get(id).unwrap().job;
    let cases: Vec<(&str, String, u16, Option<&str>)> = vec![
        (
            "GET",
            "/api/cluster/jobs/not-a-uuid".into(),
            400,
            Some("uuid"),
        ),
        ("GET", "/api/cluster/jobs/%FF%FE".into(), 400, Some("uuid")),
        (
            "PATCH",
            "/api/cluster/jobs/12345?action=cancel".into(),
            400,
            Some("uuid"),
        ),
        (
            "GET",
            format!("{job}?poll_timeout=0"),
            400,
            Some("poll_timeout"),
        ),
        (
            "GET",
            format!("{job}?poll_timeout={}", MAX + 1),
            400,
            Some("poll_timeout"),
        ),
        (
            "GET",
            format!("{job}?poll_timeout=1.5"),
            400,
            Some("poll_timeout"),
        ),
        (
            "GET",
            format!("{job}?poll_timeout=-3"),
            400,
            Some("poll_timeout"),
        ),
        (
            "GET",
            format!("{job}?poll_timeout=99999999999999999999999"),
            400,
            Some("poll_timeout"),
        ),
        (
            "GET",
            format!("{job}?poll_timeout=1&poll_timeout=2"),
            400,
            Some("poll_timeout"),
        ),
        (
            "GET",
            format!("{job}?poll_timeout=5&last_modified=yesterday"),
            400,
            Some("last_modified"),
        ),
        (
            "GET",
            format!("{job}?last_modified=2026-02-30T00:00:00Z"),
            400,
            Some("last_modified"),
        ),
        ("GET", format!("{job}?revision=-1"), 400, Some("revision")),
        (
            "GET",
            format!("{job}?fields=state,colour"),
            400,
            Some("fields"),
        ),
        ("GET", format!("{job}?fields="), 400, Some("fields")),
        (
            "GET",
            format!("{job}?pol_timeout=5"),
            400,
            Some("pol_timeout"),
        ),
        (
            "GET",
            "/api/cluster/jobs?max_records=0".into(),
            400,
            Some("max_records"),
        ),
        (
            "GET",
            "/api/cluster/jobs?max_records=ten".into(),
            400,
            Some("max_records"),
        ),
        (
            "GET",
            "/api/cluster/jobs?max_records=10000000".into(),
            400,
            Some("max_records"),
        ),
        (
            "GET",
            "/api/cluster/jobs?start=zz".into(),
            400,
            Some("start"),
        ),
        (
            "GET",
            "/api/cluster/jobs?state=done".into(),
            400,
            Some("state"),
        ),
        ("GET", "/api/cluster/jobs?state=".into(), 400, Some("state")),
        (
            "GET",
            "/api/cluster/jobs?return_records=maybe".into(),
            400,
            Some("return_records"),
        ),
        (
            "GET",
            "/api/cluster/jobs?return_timeout=500".into(),
            400,
            Some("return_timeout"),
        ),
        (
            "GET",
            "/api/cluster/jobs?order_by=state%20sideways".into(),
            400,
            Some("order_by"),
        ),
        (
            "PATCH",
            format!("{job}?action=cancel&return_timeout=x"),
            400,
            Some("return_timeout"),
        ),
        (
            "PATCH",
            format!("{job}?action=cancel&action=pause"),
            400,
            Some("action"),
        ),
        (
            "PATCH",
            format!("{job}?action=cancel&force=true"),
            400,
            Some("force"),
        ),
        ("DELETE", job.clone(), 405, None),
        ("POST", "/api/cluster/jobs".into(), 405, None),
        ("GET", "/api/cluster/job".into(), 404, None),
        ("GET", "/api/nothing/here".into(), 404, None),
        ("GET", "/api/test/items/abc".into(), 400, Some("path")),
        (
            "GET",
            "/api/test/items/99999999999".into(),
            400,
            Some("path"),
        ),
    ];
    for (method, path, status, target) in &cases {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = s.send(s.client.request(m, s.url(path))).await;
        assert_envelope(&r, *status);
        if let Some(t) = target {
            assert_eq!(
                r.body["error"]["target"], *t,
                "{method} {path}: {:?}",
                r.body
            );
        }
    }
    // Bodies of the service's own endpoint.
    for (body, ctype, status) in [
        ("{\"spec\": ", "application/json", 400),
        ("{\"spec\": \"teleport\"}", "application/json", 422),
        ("{}", "application/json", 422),
        ("{\"spec\": \"hold\"}", "text/plain", 415),
        ("", "application/json", 400),
    ] {
        let r = s
            .send(
                s.client
                    .post(s.url("/api/test/jobs"))
                    .header("content-type", ctype)
                    .body(body),
            )
            .await;
        assert_envelope(&r, status);
        assert_eq!(r.body["error"]["target"], "body");
    }
    // A description over the text capacity is refused, not cut.
    let long = "x".repeat(65);
    let r = s
        .send(
            s.client
                .post(s.url("/api/test/jobs"))
                .json(&serde_json::json!({"spec": "hold", "description": long})),
        )
        .await;
    assert_envelope(&r, 400);
    assert_eq!(r.body["error"]["target"], "description");
    // None of it changed anything.
    assert_eq!(s.engine.get(id).unwrap().job, before);
    assert_eq!(s.engine.list().len(), 1);
}

/// A PATCH sent from another task: its answer arrives once the action took effect.
fn patch_in_background(
    s: &Server,
    path_and_query: &str,
) -> tokio::task::JoinHandle<reqwest::Result<Value>> {
    let url = s.url(path_and_query);
    let client = s.client.clone();
    tokio::spawn(async move { client.patch(url).send().await?.json::<Value>().await })
}

/// Play the worker: long-poll the job (no sleeping) until the client's request is recorded,
/// then run the checkpoint that acts on it.
async fn checkpoint_once_requested(
    s: &Server,
    id: jobstate::JobId,
    requested: fn(&jobstate::Job<Spec>) -> bool,
) {
    loop {
        let job = s.engine.get(id).unwrap();
        if requested(&job) {
            s.engine.checkpoint(id).unwrap();
            return;
        }
        let waited = s
            .engine
            .wait_async(
                id,
                Condition::ChangedSince(job.revision()),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert!(!waited.timed_out, "the request never reached the job");
    }
}

/// R-CONTROL: a refused action describes the job as the request left it. A pause that reaches
/// a running job past its deadline ends it (the core's deadline check comes first), and the
/// refusal says the job already ended as a `failure`, not that it was `running`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_control_a_refusal_describes_the_job_as_the_request_left_it() {
    let mut cfg = config(KEEP);
    cfg.timer_thread = false;
    let s = serve(cfg, false).await;
    let id = s
        .engine
        .submit(NewJob::new(Spec::Hold).options(JobOptions {
            run_timeout: Some(jobstate::Duration::from_millis(1)),
            ..JobOptions::DEFAULT
        }))
        .unwrap();
    s.engine.start(id).unwrap();
    // No sweep runs (no timer thread): the job stays running until a call reaches it after
    // its deadline. Wait on the engine's clock until the deadline has passed.
    let deadline = s.engine.now() + jobstate::Duration::from_millis(2);
    while s.engine.now() < deadline {
        std::hint::spin_loop();
    }
    assert_eq!(s.engine.get(id).unwrap().state(), State::Running);
    let r = s
        .patch(&format!(
            "/api/cluster/jobs/{}?action=pause",
            s.api.uuid_of(id)
        ))
        .await;
    assert_envelope(&r, 409);
    assert_eq!(r.body["error"]["code"], "458762", "{:?}", r.body);
    assert_eq!(
        r.body["error"]["message"], "the job already ended (failure)",
        "{:?}",
        r.body
    );
    assert_eq!(s.engine.get(id).unwrap().state(), State::Failed);
}

/// `order_by` a field that changes pages over a moving order (docs/http.md, Ordering): a job
/// whose value changes between two pages can cross the cursor — repeated when it moves from
/// before the cursor to after it, missed when it moves the other way — while every job whose
/// value did not change is listed exactly once. Over a field that never changes
/// (`create_time`) the same changes move nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_paging_by_a_changing_field_follows_the_moving_order() {
    let s = serve(config(KEEP), false).await;
    let ids: Vec<_> = (0..4)
        .map(|_| s.engine.submit(NewJob::new(Spec::Hold)).unwrap())
        .collect();
    for (k, p) in [(0, 10u8), (1, 20), (2, 30), (3, 40)] {
        s.engine.start(ids[k]).unwrap();
        s.engine.progress(ids[k], p, "step").unwrap();
    }
    let uuid = |k: usize| s.api.uuid_of(ids[k]).to_string();
    let uuids = |r: &http_support::Reply| -> Vec<String> {
        r.body["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["uuid"].as_str().unwrap().to_owned())
            .collect()
    };

    let first = s
        .get("/api/cluster/jobs?order_by=progress&max_records=2")
        .await;
    assert_eq!(uuids(&first), [uuid(0), uuid(1)]);
    let by_create = s
        .get("/api/cluster/jobs?order_by=create_time&max_records=2")
        .await;
    assert_eq!(uuids(&by_create), [uuid(0), uuid(1)]);

    // Between the pages: job 0 (before the cursor) moves after it, job 2 (after) before it.
    s.engine.progress(ids[0], 50, "step").unwrap();
    s.engine.progress(ids[2], 5, "step").unwrap();

    let next = |r: &http_support::Reply| {
        r.body["_links"]["next"]["href"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let second = s.get(&next(&first)).await;
    assert_eq!(second.status, 200, "{:?}", second.body);
    assert_eq!(
        uuids(&second),
        [uuid(3), uuid(0)],
        "job 0 is listed again, job 2 is missed, job 3 (unchanged) once"
    );
    let second = s.get(&next(&by_create)).await;
    assert_eq!(
        uuids(&second),
        [uuid(2), uuid(3)],
        "a field that never changes: every job exactly once"
    );
}

/// `JobsApi::router()` serves every dialect's paths (docs/http.md, Mounting it): a service
/// route of its own on one of them makes the merge panic, at start-up rather than at a
/// request; a route beside them merges.
#[test]
fn router_merge_with_a_route_on_a_dialect_path_panics() {
    let api: http_support::Api = jobstate_std::http::JobsApi::new(jobstate_std::Engine::new(
        jobstate_std::EngineConfig::default(),
    ));
    for path in [
        "/api/cluster/jobs",
        "/20200501/workRequests",
        "/api/management-server/jobs",
        "/api/v3/jobs",
    ] {
        let api = api.clone();
        let merged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            axum::Router::<()>::new()
                .route(path, axum::routing::get(|| async { "mine" }))
                .merge(api.router())
        }));
        assert!(merged.is_err(), "{path}: merged without a panic");
    }
    let _ok: axum::Router = axum::Router::new()
        .route("/api/mine", axum::routing::get(|| async { "mine" }))
        .merge(api.router());
}

/// R-CONTROL with R-RETRY: a resume that reaches a running job whose lease ran out, with
/// attempts left, queues it again (the core's lease check comes first); the refusal describes
/// the job as the request left it — `queued` — not as `running`.
#[cfg(feature = "retry")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_control_a_resume_that_finds_the_lease_lost_answers_queued() {
    let mut cfg = config(KEEP);
    cfg.timer_thread = false;
    let s = serve(cfg, false).await;
    let minute = jobstate::Duration::from_secs(60);
    let id = s
        .engine
        .submit(
            NewJob::new(Spec::Hold)
                .options(JobOptions {
                    lease: Some(jobstate::Duration::from_millis(1)),
                    ..JobOptions::DEFAULT
                })
                .retry(jobstate::RetryPolicy::exponential(3, minute, minute)),
        )
        .unwrap();
    s.engine.start(id).unwrap();
    // No sweep runs: wait on the engine's clock until the lease has run out.
    let deadline = s.engine.now() + jobstate::Duration::from_millis(2);
    while s.engine.now() < deadline {
        std::hint::spin_loop();
    }
    let r = s
        .patch(&format!(
            "/api/cluster/jobs/{}?action=resume",
            s.api.uuid_of(id)
        ))
        .await;
    assert_envelope(&r, 409);
    assert_eq!(r.body["error"]["code"], "458776", "{:?}", r.body);
    assert_eq!(
        r.body["error"]["message"], "the job is not running (queued)",
        "{:?}",
        r.body
    );
    let job = s.engine.get(id).unwrap();
    assert_eq!((job.state(), job.attempt()), (State::Queued, 2));
}
