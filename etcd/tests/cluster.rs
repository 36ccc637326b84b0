//! The etcd store against a real 3-member etcd cluster on loopback (Debian's `etcd-server`).
//! Run by scripts/ci/57-etcd.sh (`--include-ignored`); ignored in a plain `cargo test`, which
//! does not assume an etcd binary.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use jobstate::{Condition, FailReason, JobOptions, NewJob, Outcome, Request, Severity, State};
use jobstate_etcd::{EtcdConfig, EtcdStore};
use jobstate_std::StoreError;
use support::Cluster;

type Store = EtcdStore<String>;

fn config(cluster: &Cluster) -> EtcdConfig {
    let mut c = EtcdConfig::new(cluster.endpoints());
    c.lease_ttl = Duration::from_secs(1);
    c.request_timeout = Duration::from_secs(3);
    c
}

async fn replica(cluster: &Cluster) -> Store {
    EtcdStore::connect(config(cluster)).await.unwrap()
}

fn job(name: &str) -> NewJob<'_, String> {
    NewJob::new(name.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd on PATH: scripts/ci/57-etcd.sh"]
async fn r_id_and_r_version_ids_and_revisions_never_repeat_across_replica_restarts() {
    let cluster = Cluster::start(3);
    let mut ids = HashSet::new();
    let mut last = jobstate::Revision::ZERO;
    for _restart in 0..4 {
        let a = replica(&cluster).await;
        for _ in 0..3 {
            let id = a.submit(job("x")).await.unwrap();
            assert!(ids.insert(id), "id {id:?} issued twice");
            let rev = a.get(id).await.unwrap().revision();
            assert!(rev > last, "revision {rev} after {last}");
            last = rev;
        }
        drop(a);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd on PATH: scripts/ci/57-etcd.sh"]
async fn r_longpoll_a_wait_on_replica_b_wakes_on_a_change_through_replica_a_and_only_its_own() {
    let cluster = Cluster::start(3);
    let a = replica(&cluster).await;
    let b = replica(&cluster).await;
    let watched = a.submit(job("watched")).await.unwrap();
    let other = a.submit(job("other")).await.unwrap();
    let seen = b.get(watched).await.unwrap().revision();
    let other_seen = b.get(other).await.unwrap().revision();

    let waiting = {
        let b = b.clone();
        tokio::spawn(async move {
            b.wait(
                watched,
                Condition::ChangedSince(seen),
                Duration::from_secs(20),
            )
            .await
        })
    };
    let bystander = {
        let b = b.clone();
        tokio::spawn(async move {
            b.wait(
                other,
                Condition::ChangedSince(other_seen),
                Duration::from_millis(1500),
            )
            .await
        })
    };
    // Change the watched job through replica A.
    a.request(watched, Request::Cancel).await.unwrap();
    let woken = waiting.await.unwrap().unwrap();
    assert!(!woken.timed_out);
    assert_eq!(woken.job.state(), State::Failed);
    assert!(woken.job.revision() > seen);
    // The other job's waiter was not woken by it: it times out.
    let quiet = bystander.await.unwrap().unwrap();
    assert!(quiet.timed_out);
    assert_eq!(quiet.job.revision(), other_seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd on PATH: scripts/ci/57-etcd.sh"]
async fn r_trans_a_runnable_job_is_claimed_by_exactly_one_worker_across_replicas() {
    let cluster = Cluster::start(3);
    let replicas = [
        replica(&cluster).await,
        replica(&cluster).await,
        replica(&cluster).await,
    ];
    let mut submitted = HashSet::new();
    for i in 0..30 {
        let id = replicas[i % 3].submit(job("work")).await.unwrap();
        submitted.insert(id);
    }
    let mut tasks = Vec::new();
    for r in &replicas {
        for _ in 0..2 {
            let r = r.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    match tokio::time::timeout(Duration::from_secs(3), r.claim_next()).await {
                        Ok(Ok(c)) => {
                            c.succeed(Severity::Normal, "done").await.unwrap();
                            mine.push(c.id());
                        }
                        Ok(Err(e)) => panic!("{e}"),
                        Err(_) => return mine,
                    }
                }
            }));
        }
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = claimed.iter().copied().collect();
    assert_eq!(unique.len(), claimed.len(), "a job was claimed twice");
    assert_eq!(unique, submitted);
    for id in submitted {
        assert_eq!(replicas[0].get(id).await.unwrap().state(), State::Succeeded);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd on PATH: scripts/ci/57-etcd.sh"]
async fn r_cluster_a_replica_that_dies_mid_job_releases_its_jobs_when_its_lease_ends() {
    let cluster = Cluster::start(3);
    let a = replica(&cluster).await;
    let plain = a.submit(job("plain")).await.unwrap();
    let restartable = a
        .submit(job("restartable").options(JobOptions {
            restartable: true,
            ..JobOptions::DEFAULT
        }))
        .await
        .unwrap();
    {
        // Replica C claims both, then dies without a word (its lease is not revoked).
        let c = replica(&cluster).await;
        let first = c.claim_next().await.unwrap();
        let second = c.claim_next().await.unwrap();
        first.progress(10, "working").await.unwrap();
        second.progress(10, "working").await.unwrap();
        assert_eq!(a.get(plain).await.unwrap().state(), State::Running);
        drop((first, second, c));
    }
    let ended = a
        .wait(plain, Condition::Terminal, Duration::from_secs(15))
        .await
        .unwrap();
    assert!(!ended.timed_out, "the dead replica's job was not released");
    assert!(matches!(
        ended.job.outcome(),
        Some(Outcome::Failed {
            reason: FailReason::TimedOut,
            ..
        })
    ));
    assert_eq!(ended.job.detail(), Some(jobstate::Detail::Lease));
    let again = a.get(restartable).await.unwrap();
    let again = if again.state() == State::Queued {
        again
    } else {
        a.wait(
            restartable,
            Condition::StateChangedSince(again.state_revision()),
            Duration::from_secs(15),
        )
        .await
        .unwrap()
        .job
    };
    assert_eq!(
        again.state(),
        State::Queued,
        "restartable job not queued again"
    );
    // And another replica's worker runs it.
    let b = replica(&cluster).await;
    let claimed = b.claim_next().await.unwrap();
    assert_eq!(claimed.id(), restartable);
    claimed
        .succeed(Severity::Normal, "ran again")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd on PATH: scripts/ci/57-etcd.sh"]
async fn r_full_and_r_retain_the_capacity_is_cluster_wide_frees_after_retention_and_a_tombstone_stays(
) {
    let cluster = Cluster::start(3);
    let mut c = config(&cluster);
    c.capacity = 3;
    c.table.retention = jobstate::Duration::from_millis(300);
    let a: Store = EtcdStore::connect(c.clone()).await.unwrap();
    let b: Store = EtcdStore::connect(c).await.unwrap();
    let first = a.submit(job("1")).await.unwrap();
    b.submit(job("2")).await.unwrap();
    a.submit(job("3")).await.unwrap();
    assert!(matches!(
        b.submit(job("4")).await,
        Err(StoreError::Submit(jobstate::SubmitError::TableFull))
    ));
    assert_eq!(b.free_in().await, None);
    // End one; after its retention the sweep removes it and a submit finds room.
    a.request(first, Request::Cancel).await.unwrap();
    let gone = a
        .wait(
            first,
            Condition::ChangedSince(jobstate::Revision::MAX),
            Duration::from_secs(10),
        )
        .await;
    assert!(
        matches!(
            gone,
            Err(StoreError::Lookup(jobstate::LookupError::Expired(_)))
        ),
        "{gone:?}"
    );
    b.submit(job("4")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd on PATH: scripts/ci/57-etcd.sh"]
async fn r_deadline_a_run_timeout_fails_the_job_timed_out_through_the_sweep() {
    let cluster = Cluster::start(3);
    let a = replica(&cluster).await;
    let id = a
        .submit(job("slow").options(JobOptions {
            run_timeout: Some(jobstate::Duration::from_millis(400)),
            ..JobOptions::DEFAULT
        }))
        .await
        .unwrap();
    let claimed = a.claim_next().await.unwrap();
    let ended = a
        .wait(id, Condition::Terminal, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(!ended.timed_out);
    assert!(matches!(
        ended.job.outcome(),
        Some(Outcome::Failed {
            reason: FailReason::TimedOut,
            ..
        })
    ));
    // The worker's late answer is refused; the outcome stays.
    assert!(claimed.succeed(Severity::Normal, "late").await.is_err());
    // The claim ended with the job (in the sweep's own commit): nothing holds it.
    let mut raw = etcd_client::Client::connect(cluster.endpoints(), None)
        .await
        .unwrap();
    let hex: String = id.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let claim = raw
        .get(format!("/jobstate/claims/{hex}"), None)
        .await
        .unwrap();
    assert!(claim.kvs().is_empty(), "the claim outlived the job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd on PATH: scripts/ci/57-etcd.sh"]
async fn r_control_pause_resume_cancel_reach_a_worker_on_another_replica() {
    let cluster = Cluster::start(3);
    let a = replica(&cluster).await;
    let c = replica(&cluster).await;
    let id = a
        .submit(job("pausable").options(JobOptions {
            pausable: true,
            ..JobOptions::DEFAULT
        }))
        .await
        .unwrap();
    let claimed = c.claim_next().await.unwrap();
    let requested = a.request(id, Request::Pause).await.unwrap();
    assert_eq!(requested.state, State::Running);
    assert_eq!(
        claimed.checkpoint().await.unwrap(),
        jobstate::Directive::Pause
    );
    assert_eq!(a.get(id).await.unwrap().state(), State::Paused);
    let parked = {
        let claimed = claimed.clone();
        tokio::spawn(async move { claimed.proceed().await })
    };
    a.request(id, Request::Resume).await.unwrap();
    parked.await.unwrap().unwrap();
    assert_eq!(a.get(id).await.unwrap().state(), State::Running);
    a.request(id, Request::Cancel).await.unwrap();
    assert!(claimed.proceed().await.is_err());
    let job = a.get(id).await.unwrap();
    assert!(matches!(
        job.outcome(),
        Some(Outcome::Failed {
            reason: FailReason::Canceled,
            ..
        })
    ));
    // A refused request commits nothing and says why.
    let refused = a.request(id, Request::Pause).await.unwrap_err();
    assert_eq!(
        refused.error,
        StoreError::Job(jobstate::JobError::AlreadyTerminal)
    );
    assert_eq!(a.get(id).await.unwrap().revision(), job.revision());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd on PATH: scripts/ci/57-etcd.sh"]
async fn quorum_holds_with_one_member_killed_and_nothing_acknowledged_is_lost() {
    let mut cluster = Cluster::start(3);
    let a = replica(&cluster).await;
    let mut acked = Vec::new();
    for _ in 0..5 {
        acked.push(a.submit(job("before")).await.unwrap());
    }
    cluster.kill_member(0);
    for _ in 0..5 {
        acked.push(a.submit(job("during")).await.unwrap());
    }
    // Every member down, then back: the data is on their disks.
    drop(a);
    for i in 1..3 {
        cluster.kill_member(i);
    }
    for i in 0..3 {
        cluster.start_member(i);
    }
    cluster.wait_healthy();
    let b = replica(&cluster).await;
    for id in acked {
        assert_eq!(b.get(id).await.unwrap().state(), State::Queued);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd on PATH: scripts/ci/57-etcd.sh"]
async fn r_journal_changes_since_a_revision_and_compacted_once_etcd_compacted_it() {
    let cluster = Cluster::start(3);
    let a = replica(&cluster).await;
    let b = replica(&cluster).await;
    let first = a.submit(job("1")).await.unwrap();
    let before = a.revision().await.unwrap();
    let second = a.submit(job("2")).await.unwrap();
    a.request(first, Request::Cancel).await.unwrap();
    // Both changes since `before`, each job once, read through another replica.
    let changes = b
        .changes_since(before, Duration::from_secs(5))
        .await
        .unwrap();
    let mut seen = changes.jobs.clone();
    seen.sort();
    let mut want = vec![first, second];
    want.sort();
    assert_eq!(seen, want);
    // Nothing after the newest: the wait times out with no jobs.
    let now = b.revision().await.unwrap();
    let quiet = b
        .changes_since(now, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(quiet.jobs.is_empty());
    // etcd compacts its history: a read from before the compaction is told so.
    let mut client = etcd_client::Client::connect(cluster.endpoints(), None)
        .await
        .unwrap();
    client
        .compact(i64::try_from(now.get()).unwrap(), None)
        .await
        .unwrap();
    let compacted = b.changes_since(before, Duration::from_secs(5)).await;
    assert_eq!(
        compacted,
        Err(StoreError::Compacted(jobstate::Compacted { oldest: now }))
    );
    // Waits on jobs are unaffected.
    let waited = b
        .wait(first, Condition::Terminal, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(!waited.timed_out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd on PATH: scripts/ci/57-etcd.sh"]
async fn a_worker_whose_claim_is_no_longer_its_own_is_refused_and_commits_nothing() {
    let cluster = Cluster::start(3);
    let a = replica(&cluster).await;
    let c = replica(&cluster).await;
    let id = a.submit(job("taken")).await.unwrap();
    let claimed = c.claim_next().await.unwrap();
    let before = a.get(id).await.unwrap();
    // The claim key now belongs to another lease (as after C's lease ran out and another
    // holder took the job): C's worker must not change the job any more.
    let mut raw = etcd_client::Client::connect(cluster.endpoints(), None)
        .await
        .unwrap();
    let other = raw.lease_grant(60, None).await.unwrap().id();
    let hex: String = id.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    raw.put(
        format!("/jobstate/claims/{hex}"),
        "someone else",
        Some(etcd_client::PutOptions::new().with_lease(other)),
    )
    .await
    .unwrap();
    assert_eq!(
        claimed.progress(50, "still mine?").await,
        Err(StoreError::Job(jobstate::JobError::NotRunning))
    );
    assert!(claimed.succeed(Severity::Normal, "done").await.is_err());
    let after = a.get(id).await.unwrap();
    assert_eq!(after.state(), State::Running);
    assert_eq!(after.revision(), before.revision());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd on PATH: scripts/ci/57-etcd.sh"]
async fn r_cluster_a_replica_whose_lease_expired_takes_a_new_one_and_goes_on_working() {
    let cluster = Cluster::start(3);
    let a = replica(&cluster).await;
    let c = replica(&cluster).await;
    let held = a.submit(job("held")).await.unwrap();
    let claimed = c.claim_next().await.unwrap();
    assert_eq!(claimed.id(), held);
    // C's lease ends (as after a partition longer than its TTL).
    let old = c.lease_id();
    let mut raw = etcd_client::Client::connect(cluster.endpoints(), None)
        .await
        .unwrap();
    raw.lease_revoke(old).await.unwrap();
    let released = a
        .wait(held, Condition::Terminal, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(!released.timed_out);
    assert_eq!(released.job.detail(), Some(jobstate::Detail::Lease));
    assert!(claimed.progress(10, "too late").await.is_err());
    // C takes a new lease and claims and runs new work.
    let next = a.submit(job("next")).await.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(15), c.claim_next())
        .await
        .expect("no claim after the lease expired")
        .unwrap();
    assert_eq!(again.id(), next);
    assert_ne!(c.lease_id(), old);
    again.succeed(Severity::Normal, "done").await.unwrap();
    assert_eq!(a.get(next).await.unwrap().state(), State::Succeeded);
}

#[path = "../../std-adapter/tests/seam/scenario.rs"]
mod scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd on PATH: scripts/ci/57-etcd.sh"]
async fn the_etcd_store_answers_the_shared_scenario_through_the_seam() {
    let cluster = Cluster::start(3);
    let a = replica(&cluster).await;
    scenario::run(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd on PATH: scripts/ci/57-etcd.sh"]
async fn a_panicking_handler_fails_its_job_and_the_worker_goes_on() {
    let cluster = Cluster::start(3);
    let a = replica(&cluster).await;
    let workers = a.work(1, |job: jobstate_etcd::Claimed<String>| async move {
        if job.spec() == "panic" {
            panic!("the handler's own bug");
        }
        Ok(jobstate_std::Success::normal("done"))
    });
    let bad = a.submit(job("panic")).await.unwrap();
    let good = a.submit(job("fine")).await.unwrap();
    let ended = a
        .wait(bad, Condition::Terminal, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        ended.job.outcome(),
        Some(Outcome::Failed {
            reason: FailReason::Error,
            code: 5
        })
    );
    let after = a
        .wait(good, Condition::Terminal, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(after.job.state(), State::Succeeded);
    for w in workers {
        w.abort();
    }
}
