//! The four job dialects over real loopback HTTP (reqwest): ONTAP's, OCI's work requests,
//! Active IQ Unified Manager's and ONTAP Select Deploy's — one job, one view, each dialect's
//! names and state table; their long-polls; OCI's errors and logs from the journal, paging
//! and cancel; bad input refused with a typed error and no change (R-INPUT).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_support;

use std::time::Duration;

use http_support::{assert_envelope, config, serve, Spec};
use jobstate::{NewJob, Severity};
use serde_json::Value;

const KEEP: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_reads_the_same_in_every_dialect() {
    let s = serve(config(KEEP), false).await;
    let id = s
        .engine
        .submit(NewJob::new(Spec::Hold).description("reboot"))
        .unwrap();
    let uuid = s.api.uuid_of(id).to_string();
    let c = s.api.compartment().to_owned();
    let server = &s;
    let read = |path: String| async move { server.get(&path).await.body };

    // Queued.
    let ontap = read(format!("/api/cluster/jobs/{uuid}")).await;
    let oci = read(format!("/20200501/workRequests/{uuid}")).await;
    let aiqum = read(format!("/api/management-server/jobs/{uuid}")).await;
    let deploy = read(format!("/api/v3/jobs/{uuid}")).await;
    assert_eq!(ontap["state"], "queued");
    assert_eq!(oci["status"], "ACCEPTED");
    assert_eq!(oci["id"], uuid.as_str());
    assert_eq!(oci["compartmentId"], c.as_str());
    assert_eq!(oci["operationType"], "JOB");
    assert_eq!(oci["timeAccepted"], ontap["create_time"]);
    assert!(oci.get("timeStarted").is_none());
    assert_eq!(aiqum["key"], uuid.as_str());
    assert_eq!(aiqum["status"], "QUEUED");
    assert!(
        aiqum.get("state").is_none(),
        "no outcome while live: {aiqum}"
    );
    assert_eq!(aiqum["name"], "reboot");
    assert_eq!(
        aiqum["_links"]["self"]["href"],
        format!("/api/management-server/jobs/{uuid}")
    );
    assert_eq!(deploy["id"], uuid.as_str());
    assert_eq!(deploy["state"], "queued");
    assert_eq!(
        deploy["_links"]["self"]["href"],
        format!("/api/v3/jobs/{uuid}")
    );

    // Running, with progress; paused reads as running in Deploy.
    s.engine.start(id).unwrap();
    s.engine.progress(id, 40, "halfway").unwrap();
    let oci = read(format!("/20200501/workRequests/{uuid}")).await;
    assert_eq!(oci["status"], "IN_PROGRESS");
    assert_eq!(oci["percentComplete"], 40.0);
    assert!(oci["timeStarted"].is_string());
    s.engine.request_pause(id).unwrap();
    s.engine.checkpoint(id).unwrap();
    assert_eq!(
        read(format!("/api/cluster/jobs/{uuid}")).await["state"],
        "paused"
    );
    assert_eq!(
        read(format!("/api/v3/jobs/{uuid}")).await["state"],
        "running"
    );
    assert_eq!(
        read(format!("/api/management-server/jobs/{uuid}")).await["status"],
        "PAUSED"
    );
    assert_eq!(
        read(format!("/20200501/workRequests/{uuid}")).await["status"],
        "IN_PROGRESS"
    );
    s.engine.request_resume(id).unwrap();

    // Succeeded with a warning: AIQUM's WARNING, everybody else's success.
    s.engine
        .succeed(id, Severity::Warning, "done, with a warning")
        .unwrap();
    let aiqum = read(format!("/api/management-server/jobs/{uuid}")).await;
    assert_eq!(aiqum["state"], "WARNING");
    assert_eq!(aiqum["status"], "COMPLETED");
    assert_eq!(aiqum["progress_percentage"], 100);
    assert!(aiqum["completion_time"].is_string());
    let oci = read(format!("/20200501/workRequests/{uuid}")).await;
    assert_eq!(oci["status"], "SUCCEEDED");
    assert_eq!(
        oci["timeFinished"],
        read(format!("/api/cluster/jobs/{uuid}")).await["end_time"]
    );
    assert_eq!(
        read(format!("/api/v3/jobs/{uuid}")).await["state"],
        "success"
    );

    // Partial failure and error.
    for (severity, want) in [
        (Severity::PartialFailure, "PARTIAL_FAILURES"),
        (Severity::Normal, "NORMAL"),
    ] {
        let j = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
        s.engine.start(j).unwrap();
        s.engine.succeed(j, severity, "").unwrap();
        let v = read(format!("/api/management-server/jobs/{}", s.api.uuid_of(j))).await;
        assert_eq!(v["state"], want);
    }
    let j = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    s.engine.start(j).unwrap();
    s.engine.fail(j, 42, "boom").unwrap();
    let u = s.api.uuid_of(j);
    assert_eq!(
        read(format!("/api/management-server/jobs/{u}")).await["state"],
        "ERROR"
    );
    assert_eq!(
        read(format!("/20200501/workRequests/{u}")).await["status"],
        "FAILED"
    );
    let d = read(format!("/api/v3/jobs/{u}")).await;
    assert_eq!(
        (
            d["state"].as_str(),
            d["code"].as_i64(),
            d["message"].as_str()
        ),
        (Some("failure"), Some(42), Some("boom"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_errors_and_logs_come_from_the_journal_and_page() {
    let s = serve(config(KEEP), false).await;
    let c = s.api.compartment().to_owned();
    let id = s
        .engine
        .submit(NewJob::new(Spec::Hold).description("resize"))
        .unwrap();
    let uuid = s.api.uuid_of(id);
    s.engine.start(id).unwrap();
    for line in ["one", "two", "three"] {
        s.engine.log(id, line).unwrap();
    }
    let logs = s
        .get(&format!(
            "/20200501/workRequests/{uuid}/logs?compartmentId={c}"
        ))
        .await;
    assert_eq!(logs.status, 200);
    let messages: Vec<&str> = logs.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "accepted: resize",
            "queued -> running",
            "one",
            "two",
            "three"
        ]
    );
    assert!(logs.body["items"][0]["timestamp"].is_string());
    assert!(logs.headers.get("opc-request-id").is_some());
    // Pages of two, by opc-next-page.
    let mut got = Vec::new();
    let mut page = String::new();
    loop {
        let r = s
            .get(&format!(
                "/20200501/workRequests/{uuid}/logs?compartmentId={c}&limit=2{page}"
            ))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        got.extend(
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["message"].as_str().unwrap().to_owned()),
        );
        match r.headers.get("opc-next-page") {
            Some(n) => page = format!("&page={}", n.to_str().unwrap()),
            None => break,
        }
    }
    assert_eq!(got, messages);
    // No errors until it fails; then its code and message.
    let errors = format!("/20200501/workRequests/{uuid}/errors?compartmentId={c}");
    assert_eq!(s.get(&errors).await.body["items"], serde_json::json!([]));
    s.engine.fail(id, 7, "disk full").unwrap();
    let e = s.get(&errors).await.body["items"].clone();
    assert_eq!(e[0]["code"], "7");
    assert_eq!(e[0]["message"], "disk full");
    assert_eq!(e.as_array().unwrap().len(), 1);
    // Another compartment does not hold it.
    let r = s
        .get(&format!(
            "/20200501/workRequests/{uuid}/errors?compartmentId=other"
        ))
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (404, Some("NotAuthorizedOrNotFound"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_list_newest_first_by_pages_and_cancel_shows_canceling_then_canceled() {
    let s = serve(config(KEEP), false).await;
    let c = s.api.compartment().to_owned();
    let ids: Vec<_> = (0..5)
        .map(|_| s.engine.submit(NewJob::new(Spec::Hold)).unwrap())
        .collect();
    let mut got = Vec::new();
    let mut page = String::new();
    loop {
        let r = s
            .get(&format!(
                "/20200501/workRequests?compartmentId={c}&limit=2{page}"
            ))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        got.extend(
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["id"].as_str().unwrap().to_owned()),
        );
        match r.headers.get("opc-next-page") {
            Some(n) => page = format!("&page={}", n.to_str().unwrap()),
            None => break,
        }
    }
    let want: Vec<String> = ids
        .iter()
        .rev()
        .map(|i| s.api.uuid_of(*i).to_string())
        .collect();
    assert_eq!(got, want, "newest first, each once");
    let r = s
        .get("/20200501/workRequests?compartmentId=elsewhere")
        .await;
    assert_eq!(r.body["items"], serde_json::json!([]));

    // Cancel a running one: CANCELING until its worker's checkpoint, then CANCELED.
    let id = ids[0];
    let uuid = s.api.uuid_of(id);
    s.engine.start(id).unwrap();
    let r = s
        .send(
            s.client
                .delete(s.url(&format!("/20200501/workRequests/{uuid}"))),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let path = format!("/20200501/workRequests/{uuid}");
    assert_eq!(s.get(&path).await.body["status"], "CANCELING");
    s.engine.checkpoint(id).unwrap();
    assert_eq!(s.get(&path).await.body["status"], "CANCELED");
    // Again: it already ended, a 409 in OCI's shape, and nothing changes.
    let revision = s.engine.revision();
    let r = s
        .send(
            s.client
                .delete(s.url(&format!("/20200501/workRequests/{uuid}"))),
        )
        .await;
    assert_eq!((r.status, r.body["code"].as_str()), (409, Some("Conflict")));
    assert_eq!(s.engine.revision(), revision);
    // A queued one is CANCELED at once.
    let q = s.api.uuid_of(ids[1]);
    s.send(
        s.client
            .delete(s.url(&format!("/20200501/workRequests/{q}"))),
    )
    .await;
    assert_eq!(
        s.get(&format!("/20200501/workRequests/{q}")).await.body["status"],
        "CANCELED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiqum_lists_the_most_recent_first_and_long_polls_until_the_end() {
    let s = serve(config(KEEP), false).await;
    let ids: Vec<_> = (0..3)
        .map(|_| s.engine.submit(NewJob::new(Spec::Hold)).unwrap())
        .collect();
    let r = s.get("/api/management-server/jobs").await;
    assert_eq!(r.status, 200);
    let keys: Vec<&str> = r.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["key"].as_str().unwrap())
        .collect();
    let want: Vec<String> = ids
        .iter()
        .rev()
        .map(|i| s.api.uuid_of(*i).to_string())
        .collect();
    assert_eq!(keys, want, "the most recent first");
    assert_eq!(r.body["total_records"], 3);
    let r = s.get("/api/management-server/jobs?max_records=2").await;
    assert_eq!(r.body["num_records"], 2);
    let next = r.body["_links"]["next"]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    let r2 = s.get(&next).await;
    assert_eq!(r2.body["records"][0]["key"], want[2].as_str());
    assert!(r2.body["_links"]["next"].is_null());

    // Long-poll: progress does not answer it; the end does.
    let id = ids[0];
    let key = s.api.uuid_of(id);
    s.engine.start(id).unwrap();
    let poll = {
        let (client, url) = (
            s.client.clone(),
            s.url(&format!(
                "/api/management-server/jobs/{key}?poll_timeout=120"
            )),
        );
        tokio::spawn(async move {
            client
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    s.until_polls(1).await;
    s.engine.progress(id, 50, "half").unwrap();
    s.engine
        .succeed(id, Severity::PartialFailure, "some failed")
        .unwrap();
    let v = poll.await.unwrap();
    assert_eq!(v["state"], "PARTIAL_FAILURES");
    assert_eq!(v["message"], "some failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_long_poll_answers_on_a_change_after_last_modified() {
    let s = serve(config(KEEP), false).await;
    let id = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    let uuid = s.api.uuid_of(id);
    let now = s.get(&format!("/api/v3/jobs/{uuid}")).await.body;
    let lm = now["last_modified"].as_str().unwrap().to_owned();
    // Echoing the job's own last_modified is no change: the poll waits for the next one.
    let poll = {
        let (client, url) = (
            s.client.clone(),
            s.url(&format!(
                "/api/v3/jobs/{uuid}?poll_timeout=120&last_modified={lm}"
            )),
        );
        tokio::spawn(async move {
            client
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    s.until_polls(1).await;
    s.engine.start(id).unwrap();
    let v = poll.await.unwrap();
    assert_eq!(v["state"], "running");
    // An older last_modified answers at once.
    let r = s
        .get(&format!(
            "/api/v3/jobs/{uuid}?poll_timeout=120&last_modified=2000-01-01T00:00:00Z"
        ))
        .await;
    assert_eq!(r.body["state"], "running");
    let r = s.get("/api/v3/jobs").await;
    assert_eq!(r.body["num_records"], 1);
    assert_eq!(r.body["records"][0]["id"], uuid.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_input_every_dialect_refuses_bad_input_with_a_typed_error_and_no_change() {
    let s = serve(config(KEEP), false).await;
    let id = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    let uuid = s.api.uuid_of(id);
    let c = s.api.compartment().to_owned();
    let revision = s.engine.revision();
    let gone = "00000000-0000-4000-8000-000000000000";
    // (method, path, status, ONTAP-envelope or OCI body)
    let cases: Vec<(&str, String, u16, bool)> = vec![
        (
            "GET",
            format!("/api/v3/jobs/{uuid}?poll_timeout=0"),
            400,
            false,
        ),
        (
            "GET",
            format!("/api/v3/jobs/{uuid}?last_modified=yesterday"),
            400,
            false,
        ),
        (
            "GET",
            format!("/api/v3/jobs/{uuid}?fields=state"),
            400,
            false,
        ),
        ("GET", "/api/v3/jobs/not-a-uuid".into(), 400, false),
        ("GET", format!("/api/v3/jobs/{gone}"), 404, false),
        ("DELETE", format!("/api/v3/jobs/{uuid}"), 405, false),
        ("GET", "/api/v3/jobs?state=running".into(), 400, false),
        (
            "GET",
            format!("/api/management-server/jobs/{uuid}?poll_timeout=121"),
            400,
            false,
        ),
        (
            "GET",
            format!("/api/management-server/jobs/{gone}"),
            404,
            false,
        ),
        (
            "GET",
            "/api/management-server/jobs?max_records=0".into(),
            400,
            false,
        ),
        (
            "GET",
            "/api/management-server/jobs?start=zz".into(),
            400,
            false,
        ),
        (
            "PATCH",
            format!("/api/management-server/jobs/{uuid}"),
            405,
            false,
        ),
        ("GET", "/20200501/workRequests".into(), 400, true),
        (
            "GET",
            format!("/20200501/workRequests?compartmentId={c}&limit=1001"),
            400,
            true,
        ),
        (
            "GET",
            format!("/20200501/workRequests?compartmentId={c}&page=nope"),
            400,
            true,
        ),
        (
            "GET",
            format!("/20200501/workRequests?compartmentId={c}&sortBy=x"),
            400,
            true,
        ),
        ("GET", format!("/20200501/workRequests/{gone}"), 404, true),
        ("GET", "/20200501/workRequests/xyz".into(), 400, true),
        (
            "GET",
            format!("/20200501/workRequests/{uuid}/logs"),
            400,
            true,
        ),
        (
            "GET",
            format!("/20200501/workRequests/{uuid}/logs?compartmentId={c}&page=x"),
            400,
            true,
        ),
        (
            "DELETE",
            format!("/20200501/workRequests/{gone}"),
            404,
            true,
        ),
        ("POST", format!("/20200501/workRequests/{uuid}"), 405, true),
    ];
    for (method, path, status, oci) in &cases {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = s.send(s.client.request(m, s.url(path))).await;
        if *oci {
            assert_eq!(r.status, *status, "{method} {path}: {:?}", r.body);
            assert!(
                r.body["code"].is_string() && r.body["message"].is_string(),
                "{method} {path}: {:?}",
                r.body
            );
            assert!(r.headers.get("opc-request-id").is_some());
        } else {
            assert_envelope(&r, *status);
        }
    }
    assert_eq!(
        s.engine.revision(),
        revision,
        "no refusal changed the table"
    );
    // An opc-request-id is echoed back.
    let r = s
        .send(
            s.client
                .get(s.url(&format!("/20200501/workRequests/{uuid}")))
                .header("opc-request-id", "abc/123"),
        )
        .await;
    assert_eq!(r.headers["opc-request-id"], "abc/123");
}

/// Deploy's long-poll answers when the job's *state* changed after `last_modified`: progress
/// made after it does not answer the poll (the ONTAP dialect's would, at once); the job's end
/// does. A job that started after `last_modified` answers at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_long_poll_answers_on_a_state_change_not_on_progress() {
    let s = serve(config(KEEP), false).await;
    let id = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    let uuid = s.api.uuid_of(id);
    let queued = s.get(&format!("/api/v3/jobs/{uuid}")).await.body;
    let lm_queued = queued["last_modified"].as_str().unwrap().to_owned();
    s.engine.start(id).unwrap();
    // Started after last_modified: a state change already, answered at once.
    let r = s
        .get(&format!(
            "/api/v3/jobs/{uuid}?poll_timeout=120&last_modified={lm_queued}"
        ))
        .await;
    assert_eq!(r.body["state"], "running");

    let running = s.get(&format!("/api/v3/jobs/{uuid}")).await.body;
    let lm = running["last_modified"].as_str().unwrap().to_owned();
    // Progress after last_modified: a change, but not of the state.
    s.engine.progress(id, 50, "half way").unwrap();
    let mut poll = {
        let (client, url) = (
            s.client.clone(),
            s.url(&format!(
                "/api/v3/jobs/{uuid}?poll_timeout=120&last_modified={lm}"
            )),
        );
        tokio::spawn(async move {
            client
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::select! {
        v = &mut poll => panic!("answered on progress alone: {:?}", v.unwrap()),
        () = s.until_polls(1) => {}
    }
    // More progress while it waits: still no answer.
    s.engine.progress(id, 60, "further").unwrap();
    s.engine.succeed(id, Severity::Normal, "done").unwrap();
    let v = poll.await.unwrap();
    assert_eq!(v["state"], "success", "{v:?}");
    assert_eq!(s.api.long_polls(), 0);
}
