//! Model-based property test of the appliance's configuration rules: random sequences of the
//! demo's requests (create and delete sets, add and remove backends), cancels of any job,
//! and a worker that starts and finishes jobs in any order. After every step the
//! configuration must equal a reference model that folds each object's accepted requests
//! over their jobs' outcomes; every request must be accepted exactly when the model says so;
//! a deletion must never start before every earlier job of its set ended; and once all jobs
//! ended, nothing may be `creating` or `deleting`.
//!
//! `JOBSTATE_APPLIANCE_CASES` sets the number of cases (default 300).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use appliance::model::{Config, Jobs, Lb, Lifecycle, Op, Policy, Refusal};
use jobstate::{Directive, JobId, Severity, State};
use jobstate_std::http::JobUuids;
use jobstate_std::{Engine, EngineConfig};
use proptest::prelude::*;

const SETS: [&str; 3] = ["a", "b", "c"];
const IPS: [&str; 3] = ["10.0.0.1", "10.0.0.2", "192.0.2.1"];

#[derive(Clone, Debug)]
enum Act {
    Create(usize),
    Delete(usize),
    Add(usize, usize),
    Remove(usize, usize),
    Start,
    Finish(usize),
    Cancel(usize),
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        2 => (0..SETS.len()).prop_map(Act::Create),
        1 => (0..SETS.len()).prop_map(Act::Delete),
        3 => (0..SETS.len(), 0..IPS.len()).prop_map(|(s, i)| Act::Add(s, i)),
        1 => (0..SETS.len(), 0..IPS.len()).prop_map(|(s, i)| Act::Remove(s, i)),
        4 => Just(Act::Start),
        4 => (0..64usize).prop_map(Act::Finish),
        2 => (0..64usize).prop_map(Act::Cancel),
    ]
}

fn addr(ip: usize) -> SocketAddr {
    SocketAddr::new(IPS[ip].parse().unwrap(), 80)
}

/// An accepted request, in the order they were accepted (per set name).
#[derive(Clone, Debug)]
enum Req {
    Create(JobId),
    Delete(JobId),
    Add(String, JobId),
    Remove(String, JobId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Live,
    Ok,
    Failed,
}

/// What the model expects of one set: `None` when it does not exist.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Expect {
    lifecycle: Lifecycle,
    backends: BTreeMap<String, Lifecycle>,
}

/// Fold a set's accepted requests over their jobs' outcomes.
fn expect(reqs: &[Req], outcome: impl Fn(JobId) -> Outcome) -> Option<Expect> {
    let mut set: Option<Expect> = None;
    // The last creation failed: a deletion asked for before it failed keeps the name
    // `deleting` while it runs.
    let mut failed_create = false;
    for r in reqs {
        match r {
            Req::Create(j) => {
                failed_create = outcome(*j) == Outcome::Failed;
                set = match outcome(*j) {
                    Outcome::Failed => None,
                    Outcome::Live => Some(Expect {
                        lifecycle: Lifecycle::Creating,
                        backends: BTreeMap::new(),
                    }),
                    Outcome::Ok => Some(Expect {
                        lifecycle: Lifecycle::Active,
                        backends: BTreeMap::new(),
                    }),
                };
            }
            Req::Delete(j) => match outcome(*j) {
                Outcome::Ok => set = None,
                Outcome::Failed => {}
                Outcome::Live => match &mut set {
                    Some(s) => s.lifecycle = Lifecycle::Deleting,
                    None if failed_create => {
                        set = Some(Expect {
                            lifecycle: Lifecycle::Deleting,
                            backends: BTreeMap::new(),
                        })
                    }
                    None => {}
                },
            },
            Req::Add(key, j) => {
                if let Some(s) = &mut set {
                    match outcome(*j) {
                        Outcome::Failed => {
                            s.backends.remove(key);
                        }
                        Outcome::Live => {
                            s.backends.insert(key.clone(), Lifecycle::Creating);
                        }
                        Outcome::Ok => {
                            s.backends.insert(key.clone(), Lifecycle::Active);
                        }
                    }
                }
            }
            Req::Remove(key, j) => {
                if let Some(s) = &mut set {
                    match outcome(*j) {
                        Outcome::Ok => {
                            s.backends.remove(key);
                        }
                        Outcome::Failed => {}
                        Outcome::Live => {
                            if let Some(b) = s.backends.get_mut(key) {
                                *b = Lifecycle::Deleting;
                            }
                        }
                    }
                }
            }
        }
    }
    set
}

struct World {
    lb: Lb,
    engine: Engine<Jobs>,
    reqs: BTreeMap<&'static str, Vec<Req>>,
    jobs: Vec<JobId>,
    running: Vec<JobId>,
}

impl World {
    fn outcome(&self, j: JobId) -> Outcome {
        match self.engine.get(j).map(|s| s.state()) {
            Ok(State::Succeeded) => Outcome::Ok,
            Ok(State::Failed) => Outcome::Failed,
            Ok(_) => Outcome::Live,
            Err(e) => panic!("job gone: {e:?}"),
        }
    }

    fn expected(&self, name: &str) -> Option<Expect> {
        expect(self.reqs.get(name).map_or(&[][..], |r| &r[..]), |j| {
            self.outcome(j)
        })
    }

    fn actual(config: &Config, name: &str) -> Option<Expect> {
        config.sets.get(name).map(|s| Expect {
            lifecycle: s.lifecycle(),
            backends: s
                .backends
                .iter()
                .map(|(k, b)| (k.clone(), b.lifecycle()))
                .collect(),
        })
    }

    /// The jobs of `name`'s current requests submitted before `job`.
    fn earlier_jobs(&self, name: &str, job: JobId) -> Vec<JobId> {
        let mut out = Vec::new();
        for r in self.reqs.get(name).into_iter().flatten() {
            let j = match r {
                Req::Create(j) | Req::Delete(j) | Req::Add(_, j) | Req::Remove(_, j) => *j,
            };
            if j == job {
                break;
            }
            out.push(j);
        }
        out
    }

    fn record(
        &mut self,
        name: &'static str,
        req: Req,
        result: Result<JobId, Refusal>,
        accept: bool,
    ) -> Result<(), TestCaseError> {
        match result {
            Ok(id) => {
                prop_assert!(accept, "{name}: {req:?} accepted against the model");
                let req = match req {
                    Req::Create(_) => Req::Create(id),
                    Req::Delete(_) => Req::Delete(id),
                    Req::Add(k, _) => Req::Add(k, id),
                    Req::Remove(k, _) => Req::Remove(k, id),
                };
                self.reqs.entry(name).or_default().push(req);
                self.jobs.push(id);
            }
            Err(Refusal::Submit(e)) => prop_assert!(false, "submit refused: {e:?}"),
            Err(r) => prop_assert!(!accept, "{name}: {req:?} refused ({r:?}) against the model"),
        }
        Ok(())
    }

    fn step(&mut self, a: &Act) -> Result<(), TestCaseError> {
        let placeholder = JobId::from_bytes([0; JobId::BYTES]);
        match *a {
            Act::Create(s) => {
                let name = SETS[s];
                let accept = self.expected(name).is_none();
                let r = self.lb.create_set(name, Policy::RoundRobin);
                self.record(name, Req::Create(placeholder), r, accept)?;
            }
            Act::Delete(s) => {
                let name = SETS[s];
                let accept = self
                    .expected(name)
                    .is_some_and(|e| e.lifecycle != Lifecycle::Deleting);
                let r = self.lb.delete_set(name);
                self.record(name, Req::Delete(placeholder), r, accept)?;
                // The barrier (if any) is a job too: cancels may hit it.
                for b in self.lb.barriers() {
                    if !self.jobs.contains(&b) {
                        self.jobs.push(b);
                    }
                }
            }
            Act::Add(s, i) => {
                let name = SETS[s];
                let key = addr(i).to_string();
                let accept = self.expected(name).is_some_and(|e| {
                    e.lifecycle != Lifecycle::Deleting && !e.backends.contains_key(&key)
                });
                let r = self.lb.add_backend(name, addr(i));
                self.record(name, Req::Add(key, placeholder), r, accept)?;
            }
            Act::Remove(s, i) => {
                let name = SETS[s];
                let key = addr(i).to_string();
                let accept = self.expected(name).is_some_and(|e| {
                    e.lifecycle != Lifecycle::Deleting
                        && e.backends
                            .get(&key)
                            .is_some_and(|b| *b != Lifecycle::Deleting)
                });
                let r = self.lb.remove_backend(name, &key);
                self.record(name, Req::Remove(key, placeholder), r, accept)?;
            }
            Act::Start => {
                if let Some(id) = self.engine.start_next() {
                    let spec = self.engine.get(id).unwrap().job.spec().clone();
                    prop_assert!(
                        !matches!(spec, Op::Barrier { .. } | Op::Hold),
                        "{spec:?} reached a worker"
                    );
                    if let Op::DeleteSet { name } = &spec {
                        for j in self.earlier_jobs(name, id) {
                            prop_assert!(
                                self.outcome(j) != Outcome::Live,
                                "deletion of {name} started before {j:?} ended"
                            );
                        }
                    }
                    self.running.push(id);
                }
            }
            Act::Finish(k) => {
                if !self.running.is_empty() {
                    let id = self.running.remove(k % self.running.len());
                    self.finish(id);
                }
            }
            Act::Cancel(k) => {
                if !self.jobs.is_empty() {
                    let id = self.jobs[k % self.jobs.len()];
                    let _ = self.engine.request_cancel(id);
                }
            }
        }
        // The service settles the configuration after every change of the table.
        self.lb.reconcile();
        self.check()
    }

    /// Play the worker for a started job.
    fn finish(&self, id: JobId) {
        match self.engine.checkpoint(id) {
            Ok(Directive::Continue) => {}
            // Canceled (now failed) or ended meanwhile.
            _ => return,
        }
        let spec = self.engine.get(id).unwrap().job.spec().clone();
        match spec {
            Op::AddBackend { addr, .. } if appliance::model::unreachable(addr.ip()) => {
                self.engine.fail(id, 1001, "unreachable").unwrap();
            }
            _ => self.engine.succeed(id, Severity::Normal, "done").unwrap(),
        }
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let config = self.lb.snapshot();
        for name in SETS {
            let want = self.expected(name);
            let have = Self::actual(&config, name);
            prop_assert_eq!(&have, &want, "set {}", name);
        }
        prop_assert!(config.sets.keys().all(|k| SETS.contains(&k.as_str())));
        // A live barrier waits for at least one live job; none outlives its jobs.
        for b in &config.barriers {
            prop_assert_eq!(self.outcome(b.job), Outcome::Live);
            prop_assert!(b.waits.iter().any(|w| self.outcome(*w) == Outcome::Live));
        }
        Ok(())
    }

    /// Run every job to its end; then nothing is creating or deleting.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..10_000 {
            if let Some(id) = self.running.pop() {
                self.finish(id);
            } else if let Some(id) = self.engine.start_next() {
                self.running.push(id);
            } else {
                break;
            }
            self.lb.reconcile();
            self.check()?;
        }
        prop_assert!(
            self.engine.list().iter().all(|j| j.is_terminal()),
            "live jobs left"
        );
        let config = self.lb.snapshot();
        for set in config.sets.values() {
            prop_assert_eq!(set.lifecycle(), Lifecycle::Active, "{:?}", set);
            for b in set.backends.values() {
                prop_assert_eq!(b.lifecycle(), Lifecycle::Active, "{:?}", b);
            }
        }
        Ok(())
    }
}

fn cases() -> u32 {
    std::env::var("JOBSTATE_APPLIANCE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn configuration_follows_the_jobs(acts in proptest::collection::vec(act(), 1..80)) {
        let engine: Engine<Jobs> = Engine::new(EngineConfig { timer_thread: false, ..EngineConfig::default() });
        let lb = Lb::new(engine.clone(), JobUuids::with_tag(7));
        let mut w = World { lb, engine, reqs: BTreeMap::new(), jobs: Vec::new(), running: Vec::new() };
        for a in &acts {
            w.step(a)?;
        }
        w.drain()?;
    }
}

/// Every job the table holds can carry an idempotency key: a table full of keyed creates (as
/// Oracle's SDK sends them, a fresh `opc-retry-token` each) is accepted whole, refused only once
/// the table is full (keys are asked first, so a full table of keyed jobs answers `KeysFull`;
/// both are 503 with Retry-After over HTTP), and a key asked again answers its job.
#[test]
fn r_idempotent_every_job_the_table_holds_can_carry_a_key() {
    let engine: Engine<Jobs> = Engine::new(EngineConfig {
        timer_thread: false,
        ..EngineConfig::default()
    });
    let lb = Lb::new(engine.clone(), JobUuids::with_tag(7));
    let capacity = appliance::model::CAPACITY;
    let mut first = None;
    for k in 0..capacity {
        let key = format!("token-{k:05}");
        let id = lb
            .create_set_keyed(&format!("s{k}"), Policy::RoundRobin, Some(key.as_bytes()))
            .unwrap_or_else(|e| panic!("create {k} of {capacity}: {e:?}"));
        assert!(!id.replayed);
        first.get_or_insert(id.job);
    }
    assert_eq!(engine.list().len(), capacity);
    let again = lb.create_set_keyed("s0", Policy::RoundRobin, Some(b"token-00000"));
    assert_eq!(
        again.as_ref().map(|a| a.job).ok(),
        first,
        "a key asked again answers its job"
    );
    assert!(again.is_ok_and(|a| a.replayed), "and says it is a replay");
    let over = lb.create_set_keyed("over", Policy::RoundRobin, Some(b"token-over"));
    assert!(
        matches!(
            over,
            Err(Refusal::Submit(
                jobstate::SubmitError::TableFull | jobstate::SubmitError::KeysFull
            ))
        ),
        "{over:?}"
    );
}
