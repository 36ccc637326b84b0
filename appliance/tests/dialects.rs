//! The appliance's job dialects over loopback with a real HTTP client (reqwest): idempotency
//! keys on its mutating calls (R-IDEMPOTENT), and the same jobs read in each dialect.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use appliance::cli::Storage;
use serde_json::{json, Value};
use support::{assert_envelope, job_of, options, start, TempDir};

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
