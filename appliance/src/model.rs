//! The load balancer's configuration and its rules: what a request may change, which jobs a
//! change waits for, and how the configuration follows the jobs' outcomes.
//!
//! The configuration never stores a lifecycle of its own: an object records the jobs that
//! change it, and its lifecycle is read from them. A backend set is `creating` while its
//! creation job is live, `deleting` while its deletion (or the barrier the deletion waits
//! behind) is live, `active` otherwise. [`Lb::reconcile`] settles the configuration with the
//! jobs' outcomes — however a job ended: its worker, a cancel, a failed dependency, a deadline,
//! a shutdown — so no object stays `creating` or `deleting` once its jobs have ended.
//!
//! * A creation that failed removes the object; one that succeeded makes it active.
//! * A deletion that succeeded removes the object; one that failed leaves it active.
//! * Adding a backend depends on its set's creation job (the core's dependency: if the set's
//!   creation fails, the addition fails with `DependencyFailed`); removing one depends on its
//!   addition.
//! * Deleting a set waits for every pending job of the set to **end**, whatever their
//!   outcome, behind one barrier job: the appliance starts the barrier itself at once (no
//!   worker runs it), succeeds it when the last job it waits for ends, and the deletion
//!   depends on it. The barrier tracks any number of jobs, so the core's limit of
//!   [`jobstate::MAX_DEPENDENCIES`] per job does not bound it; canceling the barrier cancels the
//!   deletion (it fails with `DependencyFailed`, and the set stays active).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use jobstate::{
    Directive, FailReason, JobId, JobOptions, LookupError, NewJob, Severity, State, SubmitError,
};
use jobstate_std::http::JobUuids;
use jobstate_std::Engine;
use serde::{Deserialize, Serialize};

/// Jobs kept in the table (live and recently ended).
pub const CAPACITY: usize = 1024;
/// Bytes of a job's description and message: room for a name, an IPv6 backend and a UUID.
pub const TEXT: usize = 128;

/// Journal events kept (the source of OCI's work-request logs and errors; 16 bytes each).
pub const JOURNAL: usize = 4096;
/// Bytes of logged lines kept with the journal.
pub const LOG_BYTES: usize = 64 * 1024;
/// Idempotency keys (`Idempotency-Key`, OCI's `opc-retry-token`; 24 bytes each, persisted).
/// One per job the table holds: a key lives as long as its job, and Oracle's SDK sends a fresh
/// `opc-retry-token` with every create, so fewer keys than jobs would refuse keyed creates
/// (`KeysFull`) while the table still has room.
pub const KEYS: usize = CAPACITY;

/// The job table.
pub type Jobs =
    jobstate::JobTable<Op, CAPACITY, TEXT, JOURNAL, LOG_BYTES, CAPACITY, CAPACITY, KEYS>;

/// What a job does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Create a backend set.
    CreateSet {
        /// Its name.
        name: String,
        /// Its load-balancing policy.
        policy: Policy,
    },
    /// Delete a backend set (after its barrier, if it has one).
    DeleteSet {
        /// Its name.
        name: String,
    },
    /// Add a backend to a set.
    AddBackend {
        /// The set.
        set: String,
        /// The backend's address.
        addr: SocketAddr,
    },
    /// Remove a backend from a set.
    RemoveBackend {
        /// The set.
        set: String,
        /// The backend (`ip:port`).
        backend: String,
    },
    /// Wait for jobs of a set to end, whatever their outcome; run by the appliance itself,
    /// never by a worker.
    Barrier {
        /// The set.
        set: String,
        /// The jobs waited for.
        waits: Vec<JobId>,
    },
    /// Shutdown: occupies a worker so that it starts no queued job during the grace.
    Hold,
}

/// A backend set's load-balancing policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Round robin.
    RoundRobin,
    /// Hash of the 5-tuple.
    FiveTuple,
    /// Hash of the 3-tuple.
    ThreeTuple,
    /// Hash of the 2-tuple.
    TwoTuple,
}

impl Policy {
    /// Every policy, as the API names them.
    pub const NAMES: [&'static str; 4] = ["round_robin", "five_tuple", "three_tuple", "two_tuple"];

    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::RoundRobin => "round_robin",
            Policy::FiveTuple => "five_tuple",
            Policy::ThreeTuple => "three_tuple",
            Policy::TwoTuple => "two_tuple",
        }
    }
}

/// Where a configured object is in its life (read from its jobs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Its creation job is live.
    Creating,
    /// Created, and nothing pending against it.
    Active,
    /// Its deletion job (or the barrier before it) is live.
    Deleting,
}

/// A backend of a set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    /// Its address.
    pub addr: SocketAddr,
    /// The job adding it, while live.
    pub add: Option<JobId>,
    /// The job removing it, while live.
    pub remove: Option<JobId>,
}

impl Backend {
    /// Its lifecycle: `deleting` once its removal is asked for (even while its addition is
    /// still pending), else `creating` while it is being added.
    pub fn lifecycle(&self) -> Lifecycle {
        match (self.add, self.remove) {
            (_, Some(_)) => Lifecycle::Deleting,
            (Some(_), None) => Lifecycle::Creating,
            (None, None) => Lifecycle::Active,
        }
    }

    /// The live job that changes it last, if any: its removal, else its addition.
    pub fn job(&self) -> Option<JobId> {
        self.remove.or(self.add)
    }
}

/// A set's deletion: the job, and the barrier it waits behind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    /// The deletion job.
    pub job: JobId,
    /// The barrier it depends on, if it had pending jobs to wait for.
    pub barrier: Option<JobId>,
}

/// A live barrier: the appliance succeeds it once every job it waits for ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Barrier {
    /// The barrier job.
    pub job: JobId,
    /// The jobs it waits for.
    pub waits: Vec<JobId>,
}

/// A backend set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendSet {
    /// Its name.
    pub name: String,
    /// Its policy.
    pub policy: Policy,
    /// The job creating it, while live.
    pub create: Option<JobId>,
    /// Its deletion, while live.
    pub delete: Option<Deletion>,
    /// Its backends, by `ip:port`.
    pub backends: BTreeMap<String, Backend>,
}

impl BackendSet {
    /// Its lifecycle: `deleting` once its deletion is asked for (even while its creation is
    /// still pending), else `creating` while it is being created.
    pub fn lifecycle(&self) -> Lifecycle {
        match (&self.create, &self.delete) {
            (_, Some(_)) => Lifecycle::Deleting,
            (Some(_), None) => Lifecycle::Creating,
            (None, None) => Lifecycle::Active,
        }
    }

    /// The live job that changes the set itself last, if any: its deletion, else its creation.
    pub fn job(&self) -> Option<JobId> {
        self.delete.as_ref().map(|d| d.job).or(self.create)
    }

    /// Every live job of the set: its creation, and its backends' additions and removals.
    pub fn pending(&self) -> Vec<JobId> {
        let mut jobs: Vec<JobId> = self.create.into_iter().collect();
        for b in self.backends.values() {
            jobs.extend(b.add);
            jobs.extend(b.remove);
        }
        jobs
    }
}

/// How a job ended, as far as the configuration cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Still queued, running or paused.
    Live,
    /// Succeeded.
    Succeeded,
    /// Failed, however (or its record is gone without a kept outcome: counted as failed).
    Failed,
}

/// The configuration: backend sets by name, and the live barriers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// The sets.
    pub sets: BTreeMap<String, BackendSet>,
    /// Live barriers (kept apart from the sets: a barrier outlives a set whose creation
    /// failed under it, until its jobs have ended).
    pub barriers: Vec<Barrier>,
}

impl Config {
    /// Settle every object with the outcome of its jobs (see the module docs). Answers the
    /// barriers whose jobs have all ended, to be succeeded.
    pub fn reconcile(&mut self, end: impl Fn(JobId) -> End) -> Vec<JobId> {
        let mut released = Vec::new();
        self.barriers.retain(|b| match end(b.job) {
            End::Live => {
                if b.waits.iter().all(|w| end(*w) != End::Live) {
                    released.push(b.job);
                }
                true
            }
            End::Succeeded | End::Failed => false,
        });
        self.sets.retain(|_, set| {
            if let Some(job) = set.create {
                match end(job) {
                    End::Live => {}
                    End::Succeeded => set.create = None,
                    // A set whose creation failed is gone — once a deletion asked for meanwhile
                    // has ended too: until then the name stays `deleting`, so no new set of
                    // that name is created while the old deletion still runs.
                    End::Failed => {
                        let deleting = set.delete.as_ref().is_some_and(|d| end(d.job) == End::Live);
                        if !deleting {
                            return false;
                        }
                    }
                }
            }
            set.backends.retain(|_, b| {
                if let Some(job) = b.add {
                    match end(job) {
                        End::Live => {}
                        End::Succeeded => b.add = None,
                        End::Failed => return false,
                    }
                }
                if let Some(job) = b.remove {
                    match end(job) {
                        End::Live => {}
                        End::Succeeded => return false,
                        End::Failed => b.remove = None,
                    }
                }
                true
            });
            if let Some(d) = &set.delete {
                match end(d.job) {
                    End::Live => {}
                    End::Succeeded => return false,
                    End::Failed => set.delete = None,
                }
            }
            true
        });
        released
    }
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A name that is not one (1–32 characters of a-z, 0-9 and '-').
    BadName(String),
    /// No such backend set.
    NoSet(String),
    /// No such backend in the set.
    NoBackend {
        /// The set.
        set: String,
        /// The backend asked for.
        backend: String,
    },
    /// The object's state refuses the request (`target` is the object at fault).
    Conflict {
        /// The object at fault.
        target: String,
        /// Why, naming the job that holds it.
        message: String,
    },
    /// The job table refused the job (an idempotency key naming another request's job:
    /// [`SubmitError::KeyConflict`]).
    Submit(SubmitError),
}

/// A request's idempotency key (R-IDEMPOTENT): the same key for the same change answers the
/// job it started; for another change it is refused. The request's fingerprint is the job's
/// [`Op`], so the same change asked in any dialect (ONTAP's `Idempotency-Key`, OCI's
/// `opc-retry-token`) is the same request.
pub type Key<'a> = Option<&'a [u8]>;

/// A keyed request's answer: the job, and whether its key named a job an earlier request
/// submitted (a replay: nothing was added).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Accepted {
    /// The job.
    pub job: JobId,
    /// The key named this job already; no job was submitted.
    pub replayed: bool,
}

impl Accepted {
    fn new(job: JobId) -> Self {
        Accepted {
            job,
            replayed: false,
        }
    }
}

fn fingerprint(op: &Op) -> u64 {
    jobstate::key_hash(&serde_json::to_vec(op).unwrap_or_default())
}

/// Whether `name` is a backend set name: 1–32 characters of a-z, 0-9 and '-'.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// What [`Lb::on_change`] calls.
type OnChange = dyn Fn(&Config) + Send + Sync;

/// The load balancer: its configuration over the engine that runs its jobs. Cheap to clone.
#[derive(Clone)]
pub struct Lb {
    engine: Engine<Jobs>,
    uuids: JobUuids,
    config: Arc<Mutex<Config>>,
    /// Told the settled configuration after every reconcile (to keep it on disk).
    on_change: Option<Arc<OnChange>>,
}

impl Lb {
    /// An empty configuration over `engine`; `uuids` names jobs in messages.
    pub fn new(engine: Engine<Jobs>, uuids: JobUuids) -> Self {
        Self {
            engine,
            uuids,
            config: Arc::new(Mutex::new(Config::default())),
            on_change: None,
        }
    }

    /// Start from a configuration kept from an earlier run (its jobs are in the restored
    /// table; the first reconcile settles it with their outcomes).
    pub fn with_config(self, config: Config) -> Self {
        *self.lock() = config;
        self
    }

    /// Call `f` with the settled configuration after every reconcile.
    pub fn on_change(mut self, f: impl Fn(&Config) + Send + Sync + 'static) -> Self {
        self.on_change = Some(Arc::new(f));
        self
    }

    /// The engine.
    pub fn engine(&self) -> &Engine<Jobs> {
        &self.engine
    }

    fn lock(&self) -> MutexGuard<'_, Config> {
        self.config.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn uuid(&self, id: JobId) -> String {
        self.uuids.encode(id).hyphenated().to_string()
    }

    /// How `job` ended, from the table (or its tombstone).
    pub fn end_of(&self, job: JobId) -> End {
        let state = match self.engine.get(job) {
            Ok(s) => s.state(),
            Err(LookupError::Expired(Some(t))) => t.state(),
            Err(_) => return End::Failed,
        };
        match state {
            State::Succeeded => End::Succeeded,
            State::Failed => End::Failed,
            _ => End::Live,
        }
    }

    /// The configuration, settled with the jobs' outcomes (see [`Config::reconcile`]); runs
    /// the barriers' checkpoints (a canceled barrier fails) and succeeds those whose jobs all
    /// ended.
    fn settled(&self) -> MutexGuard<'_, Config> {
        let mut config = self.lock();
        loop {
            let released = config.reconcile(|j| self.end_of(j));
            let mut changed = false;
            for barrier in released {
                changed |= self.release(barrier);
            }
            changed |= self.barrier_requests(&config);
            if !changed {
                return config;
            }
        }
    }

    /// Act on client requests to live barriers: a cancel fails it (the core's checkpoint).
    fn barrier_requests(&self, config: &Config) -> bool {
        let mut changed = false;
        for b in &config.barriers {
            let asked = self
                .engine
                .get(b.job)
                .is_ok_and(|s| s.state() == State::Running && s.cancel_requested());
            if asked {
                let directive = self.engine.checkpoint(b.job);
                changed |= matches!(directive, Ok(Directive::Canceled));
            }
        }
        changed
    }

    /// Succeed a barrier whose jobs all ended.
    fn release(&self, barrier: JobId) -> bool {
        let message = match self.engine.get(barrier).map(|s| s.job.spec().clone()) {
            Ok(Op::Barrier { set, waits }) => {
                format!(
                    "the {} pending jobs of backend set {set} ended",
                    waits.len()
                )
            }
            _ => "the pending jobs ended".to_owned(),
        };
        self.engine
            .succeed(barrier, Severity::Normal, &message)
            .is_ok()
    }

    /// Settle the configuration now (the service runs this after every change of the table).
    pub fn reconcile(&self) {
        let config = self.settled();
        if let Some(f) = &self.on_change {
            f(&config);
        }
    }

    /// A copy of the configuration, settled.
    pub fn snapshot(&self) -> Config {
        self.settled().clone()
    }

    /// Every live barrier (the service fails them as interrupted at shutdown).
    pub fn barriers(&self) -> Vec<JobId> {
        self.settled().barriers.iter().map(|b| b.job).collect()
    }

    /// Fail every live barrier as interrupted (shutdown): the deletions behind them fail, and
    /// their sets stay.
    pub fn interrupt_barriers(&self) {
        for b in self.barriers() {
            let _ = self.engine.fail_with(
                b,
                FailReason::Interrupted,
                None,
                "interrupted: the appliance shut down",
            );
        }
        self.reconcile();
    }

    fn submit(&self, job: NewJob<'_, Op>, key: Key<'_>) -> Result<JobId, Refusal> {
        match key {
            None => self
                .engine
                .submit(job)
                .map_err(|r| Refusal::Submit(r.error)),
            Some(key) => {
                let fp = fingerprint(job.spec());
                self.engine.update(|t, now| {
                    t.submit_idempotent(job, key, fp, now)
                        .map(|i| i.id())
                        .map_err(|r| Refusal::Submit(r.error))
                })
            }
        }
    }

    /// A request whose key already names a job: that job if it is the same change, else the
    /// refusal ([`SubmitError::KeyConflict`]); `None` when the key names no job (or there is
    /// no key). Nothing changes either way.
    fn replay(&self, key: Key<'_>, op: &Op) -> Option<Result<Accepted, Refusal>> {
        let key = key?;
        self.engine.update(|t, now| {
            t.key_job(key)?;
            let job = NewJob::new(op.clone());
            Some(
                t.submit_idempotent(job, key, fingerprint(op), now)
                    .map(|i| Accepted {
                        job: i.id(),
                        replayed: true,
                    })
                    .map_err(|r| Refusal::Submit(r.error)),
            )
        })
    }

    fn conflict(&self, target: &str, what: &str, job: Option<JobId>) -> Refusal {
        let message = match job {
            Some(j) => format!("{what} (job {})", self.uuid(j)),
            None => what.to_owned(),
        };
        Refusal::Conflict {
            target: target.to_owned(),
            message,
        }
    }

    /// `POST /api/lb/backend-sets`: create a set.
    pub fn create_set(&self, name: &str, policy: Policy) -> Result<JobId, Refusal> {
        self.create_set_keyed(name, policy, None).map(|a| a.job)
    }

    /// [`Lb::create_set`] under an idempotency key.
    pub fn create_set_keyed(
        &self,
        name: &str,
        policy: Policy,
        key: Key<'_>,
    ) -> Result<Accepted, Refusal> {
        if !valid_name(name) {
            return Err(Refusal::BadName(name.to_owned()));
        }
        let mut config = self.settled();
        let op = Op::CreateSet {
            name: name.to_owned(),
            policy,
        };
        if let Some(r) = self.replay(key, &op) {
            return r;
        }
        if let Some(set) = config.sets.get(name) {
            let what = match set.lifecycle() {
                Lifecycle::Creating => format!("backend set {name} is being created"),
                Lifecycle::Deleting => format!("backend set {name} is being deleted"),
                Lifecycle::Active => format!("backend set {name} exists"),
            };
            return Err(self.conflict("name", &what, set.job()));
        }
        let description = format!("create backend set {name} ({})", policy.as_str());
        let id = self.submit(NewJob::new(op).description(&description), key)?;
        config.sets.insert(
            name.to_owned(),
            BackendSet {
                name: name.to_owned(),
                policy,
                create: Some(id),
                delete: None,
                backends: BTreeMap::new(),
            },
        );
        Ok(Accepted::new(id))
    }

    /// The set `name`, ready for a change: 400 for a bad name, 404 when absent, 409 when it
    /// is being deleted.
    fn changeable<'c>(
        &self,
        config: &'c mut Config,
        name: &str,
    ) -> Result<&'c mut BackendSet, Refusal> {
        if !valid_name(name) {
            return Err(Refusal::BadName(name.to_owned()));
        }
        let Some(set) = config.sets.get_mut(name) else {
            return Err(Refusal::NoSet(name.to_owned()));
        };
        if let Some(d) = &set.delete {
            let what = format!("backend set {name} is being deleted");
            return Err(self.conflict(name, &what, Some(d.job)));
        }
        Ok(set)
    }

    /// `DELETE /api/lb/backend-sets/{name}`: delete a set once every pending job of it ended.
    pub fn delete_set(&self, name: &str) -> Result<JobId, Refusal> {
        self.delete_set_keyed(name, None).map(|a| a.job)
    }

    /// [`Lb::delete_set`] under an idempotency key.
    pub fn delete_set_keyed(&self, name: &str, key: Key<'_>) -> Result<Accepted, Refusal> {
        let mut config = self.settled();
        let op = Op::DeleteSet {
            name: name.to_owned(),
        };
        if let Some(r) = self.replay(key, &op) {
            return r;
        }
        let set = self.changeable(&mut config, name)?;
        let waits = set.pending();
        let barrier = if waits.is_empty() {
            None
        } else {
            let description = format!(
                "wait for the {} pending jobs of backend set {name}",
                waits.len()
            );
            let op = Op::Barrier {
                set: name.to_owned(),
                waits: waits.clone(),
            };
            let options = JobOptions {
                pausable: false,
                ..JobOptions::DEFAULT
            };
            let first = waits.first().map(|w| self.uuid(*w)).unwrap_or_default();
            let message = format!("waiting for job {first}");
            // Submitted and started under one lock of the table, so no worker takes it.
            let id = self.engine.update(|t, now| {
                let job = NewJob::new(op).description(&description).options(options);
                let id = t.submit(job, now).map_err(|r| Refusal::Submit(r.error))?;
                let _ = t.start(id, now);
                let _ = t.progress(id, 0, &message, now);
                Ok::<_, Refusal>(id)
            })?;
            Some(Barrier { job: id, waits })
        };
        let deps: Vec<JobId> = barrier.iter().map(|b| b.job).collect();
        let description = format!("delete backend set {name}");
        let job = NewJob::new(op).description(&description).depends_on(&deps);
        let id = match self.submit(job, key) {
            Ok(id) => id,
            Err(e) => {
                if let Some(b) = barrier {
                    let _ = self
                        .engine
                        .fail(b.job, 3, "the deletion it was for was refused");
                }
                return Err(e);
            }
        };
        set.delete = Some(Deletion {
            job: id,
            barrier: barrier.as_ref().map(|b| b.job),
        });
        config.barriers.extend(barrier);
        Ok(Accepted::new(id))
    }

    /// `POST /api/lb/backend-sets/{name}/backends`: add a backend; the job depends on the
    /// set's creation job while that is live.
    pub fn add_backend(&self, set_name: &str, addr: SocketAddr) -> Result<JobId, Refusal> {
        self.add_backend_keyed(set_name, addr, None).map(|a| a.job)
    }

    /// [`Lb::add_backend`] under an idempotency key.
    pub fn add_backend_keyed(
        &self,
        set_name: &str,
        addr: SocketAddr,
        key: Key<'_>,
    ) -> Result<Accepted, Refusal> {
        let mut config = self.settled();
        let op = Op::AddBackend {
            set: set_name.to_owned(),
            addr,
        };
        if let Some(r) = self.replay(key, &op) {
            return r;
        }
        let set = self.changeable(&mut config, set_name)?;
        let name = addr.to_string();
        if let Some(b) = set.backends.get(&name) {
            let what = match b.lifecycle() {
                Lifecycle::Creating => format!("backend {name} is being added to {set_name}"),
                Lifecycle::Deleting => format!("backend {name} is being removed from {set_name}"),
                Lifecycle::Active => format!("backend {name} exists in {set_name}"),
            };
            return Err(self.conflict("ip", &what, b.job()));
        }
        let deps: Vec<JobId> = set.create.into_iter().collect();
        let description = format!("add backend {name} to {set_name}");
        let job = NewJob::new(op).description(&description).depends_on(&deps);
        let id = self.submit(job, key)?;
        set.backends.insert(
            name,
            Backend {
                addr,
                add: Some(id),
                remove: None,
            },
        );
        Ok(Accepted::new(id))
    }

    /// `DELETE /api/lb/backend-sets/{name}/backends/{backend}`: remove a backend; the job
    /// depends on the backend's addition while that is live.
    pub fn remove_backend(&self, set_name: &str, backend: &str) -> Result<JobId, Refusal> {
        self.remove_backend_keyed(set_name, backend, None)
            .map(|a| a.job)
    }

    /// [`Lb::remove_backend`] under an idempotency key.
    pub fn remove_backend_keyed(
        &self,
        set_name: &str,
        backend: &str,
        key: Key<'_>,
    ) -> Result<Accepted, Refusal> {
        let mut config = self.settled();
        let op = Op::RemoveBackend {
            set: set_name.to_owned(),
            backend: backend.to_owned(),
        };
        if let Some(r) = self.replay(key, &op) {
            return r;
        }
        let set = self.changeable(&mut config, set_name)?;
        let Some(b) = set.backends.get_mut(backend) else {
            return Err(Refusal::NoBackend {
                set: set_name.to_owned(),
                backend: backend.to_owned(),
            });
        };
        if let Some(r) = b.remove {
            let what = format!("backend {backend} is being removed from {set_name}");
            return Err(self.conflict(backend, &what, Some(r)));
        }
        let deps: Vec<JobId> = b.add.into_iter().collect();
        let description = format!("remove backend {backend} from {set_name}");
        let job = NewJob::new(op).description(&description).depends_on(&deps);
        let id = self.submit(job, key)?;
        b.remove = Some(id);
        Ok(Accepted::new(id))
    }
}

/// Whether a simulated health check never reaches `ip`: the documentation range TEST-NET-1
/// (192.0.2.0/24, RFC 5737) — adding such a backend fails with code 1001.
pub fn unreachable(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.octets()[..3] == [192, 0, 2])
}

/// Whether `ip` can be a backend at all: not the unspecified IPv4 address 0.0.0.0.
pub fn backend_address(ip: IpAddr) -> bool {
    ip != IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
}
