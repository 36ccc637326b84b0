//! The appliance's job dialects over loopback with a real HTTP client (reqwest): idempotency
//! keys on its mutating calls (R-IDEMPOTENT), and the same jobs read in each dialect.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use appliance::cli::{Storage, Users};
use serde_json::{json, Value};
use support::{assert_envelope, job_of, options, start, Running, TempDir, ADMIN};

/// The same key for the same request answers the same job and adds nothing; for another
/// request it is a 409 naming the job, and nothing changes; a malformed key is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_idempotent_idempotency_key_same_request_same_job_other_request_409() {
    let s = start(options(5), None).await;
    let create = |name: &str, key: &str| {
        s.req("POST", "/api/lb/backend-sets")
            .header("Idempotency-Key", key)
            .json(&json!({"name": name}))
    };
    let first = s.send(create("web", "k-1")).await;
    assert_eq!(first.status, 202, "{}", first.text);
    let job = job_of(&first);
    let engine = s.app.api().engine();
    let (jobs, revision) = (engine.list().len(), engine.revision());
    let again = s.send(create("web", "k-1")).await;
    assert_eq!(again.status, 202, "{}", again.text);
    assert_eq!(job_of(&again), job, "the same job");
    assert_eq!(engine.list().len(), jobs, "nothing added");

    let other = s.send(create("api", "k-1")).await;
    assert_envelope(&other, 409);
    assert_eq!(other.body["error"]["code"], "460781");
    assert_eq!(other.body["job"]["uuid"], job.as_str());
    assert!(!s.app.lb().snapshot().sets.contains_key("api"));
    // The same key on another call (a deletion) is another request too.
    let r = s
        .send(
            s.req("DELETE", "/api/lb/backend-sets/web")
                .header("Idempotency-Key", "k-1"),
        )
        .await;
    assert_envelope(&r, 409);
    for bad in ["", &"x".repeat(65), "sp ace"] {
        let r = s.send(create("api", bad)).await;
        assert_envelope(&r, 400);
        assert_eq!(r.body["error"]["target"], "Idempotency-Key");
    }
    assert!(engine.revision() >= revision);
    assert_eq!(engine.list().len(), jobs, "no refusal added a job");
    // Once its job ended the key still answers it (within the retention).
    s.ended(&job).await;
    let again = s.send(create("web", "k-1")).await;
    assert_eq!(job_of(&again), job);
}

/// Keys are kept with the table: after a restart on the same data directory the same key
/// answers the same job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_idempotent_keys_survive_a_restart_of_the_appliance() {
    let dir = TempDir::new("keys");
    let mut o = options(5);
    o.storage = Storage::Dir(dir.0.join("data"));
    let s = start(o.clone(), None).await;
    let create = |s: &support::Running| {
        s.req("POST", "/api/lb/backend-sets?return_timeout=30")
            .header("Idempotency-Key", "restart-key")
            .json(&json!({"name": "kept"}))
    };
    let r = s.send(create(&s)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let job = job_of(&r);
    s.stop().await;

    let s = start(o, None).await;
    let r = s.send(create(&s)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(job_of(&r), job, "the key survived the restart");
    let other = s
        .send(
            s.req("POST", "/api/lb/backend-sets")
                .header("Idempotency-Key", "restart-key")
                .json(&json!({"name": "other"})),
        )
        .await;
    assert_envelope(&other, 409);
    let _: Value = other.body;
}

/// OCI's `opc-retry-token` is the same key (R-IDEMPOTENT): a repeated create answers the same
/// work request; a different change under it is a 409 in OCI's shape; a malformed token a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_idempotent_opc_retry_token_answers_the_same_work_request() {
    let s = start(options(5), None).await;
    let sets = format!(
        "/20200501/networkLoadBalancers/{}/backendSets",
        appliance::oci::NLB_ID
    );
    let create = |name: &str, token: &str| {
        s.req("POST", &sets)
            .header("opc-retry-token", token)
            .json(&json!({"name": name, "healthChecker": {"protocol": "TCP", "port": 80}}))
    };
    let first = s.send(create("edge", "t-1")).await;
    assert_eq!(first.status, 202, "{}", first.text);
    let wr = first.headers["opc-work-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let jobs = s.app.api().engine().list().len();
    let again = s.send(create("edge", "t-1")).await;
    assert_eq!(again.status, 202);
    assert_eq!(again.headers["opc-work-request-id"], wr.as_str());
    assert_eq!(s.app.api().engine().list().len(), jobs, "nothing added");
    let other = s.send(create("core", "t-1")).await;
    assert_eq!(other.status, 409, "{}", other.text);
    assert_eq!(other.body["code"], "Conflict");
    assert!(other.headers.contains_key("opc-request-id"));
    let bad = s.send(create("core", "")).await;
    assert_eq!(
        (bad.status, bad.body["code"].as_str()),
        (400, Some("InvalidParameter"))
    );
    // The work request, as OCI reads it, once it ended; the ONTAP job is the same job.
    let job = s.ended(&wr).await;
    assert_eq!(job["state"], "success");
    let w = s
        .call("GET", &format!("/20200501/workRequests/{wr}"))
        .await
        .body;
    assert_eq!(w["status"], "SUCCEEDED");
    assert_eq!(w["operationType"], "CREATE_BACKENDSET");
    assert_eq!(w["compartmentId"], appliance::oci::COMPARTMENT);
    assert_eq!(w["resources"][0]["identifier"], "edge");
    assert_eq!(w["resources"][0]["actionType"], "CREATED");
    // A body the NLB API does not take: OCI's 400.
    let r = s
        .send(
            s.req("POST", &sets)
                .json(&json!({"name": "x", "colour": 1})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (400, Some("InvalidParameter"))
    );
    // A field present must hold a value: `null` is no policy.
    let r = s
        .send(
            s.req("POST", &sets)
                .json(&json!({"name": "x", "policy": null, "healthChecker": {"protocol": "TCP"}})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (400, Some("InvalidParameter"))
    );
    let r = s
        .send(
            s.req("POST", &sets)
                .json(&json!({"name": "dual", "ipVersion": "IPV4_AND_IPV6",
            "policy": "TWO_TUPLE", "healthChecker": {"protocol": "HTTP", "urlPath": "/"}})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    // Another load balancer: 404.
    let r = s
        .send(
            s.req("POST", "/20200501/networkLoadBalancers/other/backendSets")
                .json(&json!({"name": "x", "healthChecker": {"protocol": "TCP"}})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (404, Some("NotAuthorizedOrNotFound"))
    );
}

/// A replayed key (R-IDEMPOTENT) — `Idempotency-Key` or OCI's `opc-retry-token` — submits
/// nothing, and `/metrics` counts it as a replay, not as a submit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_idempotent_a_replay_is_counted_as_a_replay_not_a_submit() {
    let s = start(options(5), None).await;
    let sets = format!(
        "/20200501/networkLoadBalancers/{}/backendSets",
        appliance::oci::NLB_ID
    );
    for _ in 0..3 {
        let r = s
            .send(
                s.req("POST", "/api/lb/backend-sets")
                    .header("Idempotency-Key", "m-1")
                    .json(&json!({"name": "web"})),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.text);
        let r = s
            .send(
                s.req("POST", &sets).header("opc-retry-token", "m-2").json(
                    &json!({"name": "edge", "healthChecker": {"protocol": "TCP", "port": 80}}),
                ),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.text);
    }
    let text = s.call("GET", "/metrics").await.text;
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
    assert_eq!(value("appliance_job_submits_total"), 2.0, "{text}");
    assert_eq!(value("appliance_job_replays_total"), 4.0, "{text}");
}

/// Idempotency keys are scoped to the authenticated user and keyed with the appliance's secret
/// (R-IDEMPOTENT): two users sending the same token are two requests — each gets its own job,
/// and one user's token never answers the other user's job — and each user's key still
/// answers its job after a restart (the secret is kept in the data directory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_idempotent_keys_are_scoped_to_the_user_and_survive_a_restart() {
    const OPS: (&str, &str) = ("ops", "0ps-pw");
    let dir = TempDir::new("scoped-keys");
    let mut o = options(5);
    o.storage = Storage::Dir(dir.0.join("data"));
    o.users = Users::Env(format!(
        "{}:admin:{}\n{}:admin:{}\n",
        ADMIN.0, ADMIN.1, OPS.0, OPS.1
    ));
    let create = |s: &Running, user: (&str, &str), name: &str| {
        s.client
            .post(s.url("/api/lb/backend-sets"))
            .basic_auth(user.0, Some(user.1))
            .header("Idempotency-Key", "shared-token")
            .json(&json!({"name": name}))
    };
    let s = start(o.clone(), None).await;
    let a = s.send(create(&s, ADMIN, "web")).await;
    assert_eq!(a.status, 202, "{}", a.text);
    let job_a = job_of(&a);
    // Another user, the same token, another change: a job of its own, not a conflict.
    let b = s.send(create(&s, OPS, "api")).await;
    assert_eq!(b.status, 202, "{}", b.text);
    let job_b = job_of(&b);
    assert_ne!(job_a, job_b);
    // The second user asks for the first user's change under the same token: the token is
    // that user's own key, naming that user's job — never the first user's.
    let c = s.send(create(&s, OPS, "web")).await;
    assert_envelope(&c, 409);
    assert_eq!(c.body["error"]["code"], "460781", "{}", c.text);
    assert_eq!(c.body["job"]["uuid"], job_b.as_str());
    // The same user and token: the same job.
    let again = s.send(create(&s, ADMIN, "web")).await;
    assert_eq!(job_of(&again), job_a);
    s.ended(&job_a).await;
    s.ended(&job_b).await;
    s.stop().await;

    let s = start(o, None).await;
    let again = s.send(create(&s, ADMIN, "web")).await;
    assert_eq!(again.status, 202, "{}", again.text);
    assert_eq!(job_of(&again), job_a, "the key survived the restart");
    let again = s.send(create(&s, OPS, "api")).await;
    assert_eq!(job_of(&again), job_b, "the other user's too");
    s.stop().await;
}

/// OCI's `CreateBackendDetails` beyond what the appliance does is refused with OCI's 400
/// `InvalidParameter`, never accepted and ignored: a `name` other than `ip:port`, a weight
/// other than 1, `isDrain` / `isBackup` / `isOffline` true; and `if-match` on any NLB call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_create_backend_refuses_what_it_would_ignore() {
    let s = start(options(5), None).await;
    let sets = format!(
        "/20200501/networkLoadBalancers/{}/backendSets",
        appliance::oci::NLB_ID
    );
    let r = s
        .send(
            s.req("POST", &sets)
                .json(&json!({"name": "web", "healthChecker": {"protocol": "TCP"}})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let backends = format!("{sets}/web/backends");
    let jobs = s.app.api().engine().list().len();
    for (body, target) in [
        (
            json!({"ipAddress": "10.0.0.5", "port": 80, "name": "frontend"}),
            "name",
        ),
        (
            json!({"ipAddress": "10.0.0.5", "port": 80, "name": "10.0.0.5:81"}),
            "name",
        ),
        (
            json!({"ipAddress": "10.0.0.5", "port": 80, "weight": 5}),
            "weight",
        ),
        (
            json!({"ipAddress": "10.0.0.5", "port": 80, "isDrain": true}),
            "isDrain",
        ),
        (
            json!({"ipAddress": "10.0.0.5", "port": 80, "isBackup": true}),
            "isBackup",
        ),
        (
            json!({"ipAddress": "10.0.0.5", "port": 80, "isOffline": true}),
            "isOffline",
        ),
    ] {
        let r = s.send(s.req("POST", &backends).json(&body)).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.body["code"], "InvalidParameter", "{body}");
        assert!(
            r.body["message"].as_str().unwrap().contains(target),
            "{}",
            r.text
        );
        assert!(r.headers.contains_key("opc-request-id"));
    }
    for (method, path) in [
        ("POST", backends.clone()),
        ("POST", sets.clone()),
        ("DELETE", format!("{sets}/web")),
        ("DELETE", format!("{backends}/10.0.0.5:80")),
    ] {
        let req = s.req(method, &path).header("if-match", "\"etag\"");
        let req = if method == "POST" {
            req.json(&json!({"name": "api", "ipAddress": "10.0.0.5", "port": 80}))
        } else {
            req
        };
        let r = s.send(req).await;
        assert_eq!(r.status, 400, "{method} {path}: {}", r.text);
        assert_eq!(r.body["code"], "InvalidParameter");
        assert!(r.body["message"].as_str().unwrap().contains("if-match"));
    }
    assert_eq!(
        s.app.api().engine().list().len(),
        jobs,
        "no refusal added a job"
    );
    // What it does do: the name it gives, the weight it has, the flags false.
    let r = s
        .send(s.req("POST", &backends).json(&json!({
            "ipAddress": "10.0.0.5", "port": 80, "name": "10.0.0.5:80", "weight": 1,
            "isDrain": false, "isBackup": false, "isOffline": false})))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
}
