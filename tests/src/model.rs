//! The reference model: the job table's rules written the plain way, with std collections.
//!
//! It knows nothing of the real table's internals (intrusive lists, edge arrays, the cascade
//! stack threaded through the slots). Where the real table must make a choice the
//! specification leaves open, the model writes the same choice down explicitly:
//!
//! * **slot reuse** — a new job takes the most recently freed slot, else the lowest slot never
//!   used, else the slot of the oldest terminal job whose retention has passed (which is
//!   removed, leaving a tombstone). The slot's generation grows by one (0 is skipped);
//! * **runnable order** — first come, first served by the moment a job became runnable; jobs
//!   released together by one success queue in submit order;
//! * **cascade order** — a failed job's queued dependents fail newest first, then the
//!   dependents of the last one failed, and so on (a depth-first walk with a stack); each
//!   failure takes its own revision;
//! * **time** — a `now` older than one seen before counts as the newest seen; a refused
//!   operation does not move the clock;
//! * **texts the table writes itself** ("canceled", "dependency 1.2.3 failed", …) are cut at a
//!   piece boundary when they do not fit the text capacity.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use jobstate::{
    Compacted, Condition, Directive, Duration, Expired, FailReason, Instant, JobError, JobId,
    JobOptions, LookupError, Outcome, Request, Revision, Severity, State, SubmitError, Tombstone,
};

use crate::snapshot::{EventView, JobView, JournalRead, KindView, Snapshot};

/// An id from its parts (ids are plain values; this goes through their wire form).
pub fn make_id(epoch: u32, index: u16, generation: u32) -> JobId {
    let mut b = [0u8; JobId::BYTES];
    b[0..4].copy_from_slice(&epoch.to_be_bytes());
    b[4..8].copy_from_slice(&generation.to_be_bytes());
    b[8..10].copy_from_slice(&index.to_be_bytes());
    JobId::from_bytes(b)
}

/// The limits of the table being modelled: `JobTable<S, N, T, D, J>` and its retention.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Capacity in jobs (`N`).
    pub jobs: usize,
    /// Text capacity in bytes (`T`).
    pub text: usize,
    /// Most dependencies per job (`D`).
    pub deps: usize,
    /// Journal capacity in events (`J`).
    pub journal: usize,
    /// Retention of terminal jobs.
    pub retention: Duration,
}

#[derive(Clone, Debug)]
struct Entry<S> {
    view: JobView<S>,
    /// Submit order.
    seq: u64,
    /// Dependencies that were live at submit and have not succeeded yet.
    waiting: BTreeSet<JobId>,
}

/// The reference model of a `JobTable`.
#[derive(Clone, Debug)]
pub struct Model<S> {
    limits: Limits,
    epoch: u32,
    now: Instant,
    revision: u64,
    generations: Vec<u32>,
    jobs: BTreeMap<u16, Entry<S>>,
    /// Freed slots, most recently freed last.
    free: Vec<u16>,
    /// Slots `fresh..` were never used.
    fresh: usize,
    runnable: VecDeque<JobId>,
    /// Running and paused jobs, in the order they started.
    active: Vec<JobId>,
    /// Terminal jobs, in the order they ended.
    retained: VecDeque<JobId>,
    journal: VecDeque<EventView>,
    /// Highest revision dropped from the journal (0: none).
    dropped: u64,
    tombstones: VecDeque<Tombstone>,
    issued: BTreeSet<JobId>,
    seq: u64,
}

fn add(at: Instant, d: Duration) -> Instant {
    Instant::from_ticks(at.as_ticks().saturating_add(d.as_ticks()))
}

impl<S: Clone> Model<S> {
    /// An empty table in epoch 1 at time zero.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            epoch: 1,
            now: Instant::from_ticks(0),
            revision: 0,
            generations: vec![0; limits.jobs],
            jobs: BTreeMap::new(),
            free: Vec::new(),
            fresh: 0,
            runnable: VecDeque::new(),
            active: Vec::new(),
            retained: VecDeque::new(),
            journal: VecDeque::new(),
            dropped: 0,
            tombstones: VecDeque::new(),
            issued: BTreeSet::new(),
            seq: 0,
        }
    }

    /// Every id this model has issued, oldest first by slot then generation.
    pub fn issued(&self) -> impl Iterator<Item = &JobId> {
        self.issued.iter()
    }

    // ----- reading --------------------------------------------------------------------------

    fn find(&self, id: JobId) -> Result<u16, LookupError> {
        if id.epoch() > self.epoch {
            return Err(LookupError::NotFound);
        }
        if self.jobs.get(&id.index()).is_some_and(|e| e.view.id == id) {
            return Ok(id.index());
        }
        let tomb = self.tombstones.iter().rev().find(|t| t.id == id).copied();
        if id.epoch() < self.epoch {
            return Err(match tomb {
                Some(t) => LookupError::Expired(Some(t)),
                None => LookupError::Stale,
            });
        }
        if self.issued.contains(&id) {
            Err(LookupError::Expired(tomb))
        } else {
            Err(LookupError::NotFound)
        }
    }

    fn entry(&self, id: JobId) -> Result<&Entry<S>, LookupError> {
        let i = self.find(id)?;
        self.jobs.get(&i).ok_or(LookupError::NotFound)
    }

    fn view_mut(&mut self, id: JobId) -> &mut JobView<S> {
        &mut self
            .jobs
            .get_mut(&id.index())
            .expect("model: live job")
            .view
    }

    /// `JobTable::get`.
    pub fn get(&self, id: JobId) -> Result<JobView<S>, LookupError> {
        self.entry(id).map(|e| e.view.clone())
    }

    /// `JobTable::check`.
    pub fn check(
        &self,
        id: JobId,
        condition: Condition,
    ) -> Result<Option<JobView<S>>, LookupError> {
        let job = &self.entry(id)?.view;
        let holds = match condition {
            Condition::ChangedSince(r) => job.revision > r,
            Condition::StateChangedSince(r) => job.state_revision > r,
            Condition::Terminal => matches!(job.state, State::Succeeded | State::Failed),
            Condition::ModifiedAfter(t) => job.modified > t,
        };
        Ok(holds.then(|| job.clone()))
    }

    /// `JobTable::peek_runnable`.
    pub fn peek_runnable(&self) -> Option<JobId> {
        self.runnable.front().copied()
    }

    /// `JobTable::revision`.
    pub fn revision(&self) -> Revision {
        Revision::new(self.revision)
    }

    /// `JobTable::journal`, collected.
    pub fn journal(&self, after: Revision) -> JournalRead {
        if self.dropped > 0 && after.get() < self.dropped {
            let oldest = self
                .journal
                .front()
                .map_or(self.revision.saturating_add(1), |e| e.revision.get());
            return Err(Compacted {
                oldest: Revision::new(oldest),
            });
        }
        Ok(self
            .journal
            .iter()
            .filter(|e| e.revision > after)
            .cloned()
            .collect())
    }

    /// `JobTable::next_timer`.
    pub fn next_timer(&self) -> Option<Instant> {
        let mut times = Vec::new();
        for id in &self.active {
            let job = &self.jobs[&id.index()].view;
            times.extend(job.deadline);
            if job.state == State::Running {
                times.extend(job.lease_until);
            }
        }
        if let Some(id) = self.retained.front() {
            let job = &self.jobs[&id.index()].view;
            times.extend(job.ended.map(|e| add(e, self.limits.retention)));
        }
        times.into_iter().min()
    }

    /// Everything observable, in the form [`Snapshot::of`] reads from a real table.
    pub fn snapshot(&self) -> Snapshot<S> {
        let journal_from_zero = self.journal(Revision::ZERO);
        let journal_kept = match journal_from_zero {
            Ok(ref e) => Ok(e.clone()),
            Err(Compacted { oldest }) => {
                self.journal(Revision::new(oldest.get().saturating_sub(1)))
            }
        };
        Snapshot {
            len: self.jobs.len(),
            revision: Revision::new(self.revision),
            epoch: self.epoch,
            now: self.now,
            jobs: self.jobs.values().map(|e| e.view.clone()).collect(),
            tombstones: self.tombstones.iter().copied().collect(),
            runnable: self.peek_runnable(),
            next_timer: self.next_timer(),
            journal_from_zero,
            journal_kept,
        }
    }

    // ----- helpers --------------------------------------------------------------------------

    fn fits(&self, s: &str) -> bool {
        s.len() <= self.limits.text
    }

    /// A text the table writes itself: whole pieces while they fit.
    fn text(&self, pieces: &[&str]) -> String {
        let mut out = String::new();
        for p in pieces {
            if out.len() + p.len() > self.limits.text {
                break;
            }
            out.push_str(p);
        }
        out
    }

    fn dependency_failed_text(&self, dep: JobId) -> String {
        let (e, i, g) = (
            dep.epoch().to_string(),
            dep.index().to_string(),
            dep.generation().to_string(),
        );
        self.text(&["dependency ", &e, ".", &i, ".", &g, " failed"])
    }

    fn clock(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    fn is_terminal(state: State) -> bool {
        matches!(state, State::Succeeded | State::Failed)
    }

    /// Take the next revision for an event.
    fn event(&mut self, job: JobId, kind: KindView) -> Revision {
        self.revision += 1;
        let revision = Revision::new(self.revision);
        if self.limits.journal == 0 {
            self.dropped = self.revision;
        } else {
            if self.journal.len() == self.limits.journal {
                let old = self.journal.pop_front().expect("model: full journal");
                self.dropped = old.revision.get();
            }
            self.journal.push_back(EventView {
                revision,
                job,
                kind,
            });
        }
        revision
    }

    /// An observable change of a job: new revision, version + 1, modified now.
    fn change(&mut self, id: JobId, kind: KindView, state_change: bool) {
        let revision = self.event(id, kind);
        let now = self.now;
        let job = self.view_mut(id);
        job.revision = revision;
        if state_change {
            job.state_revision = revision;
        }
        job.version += 1;
        job.modified = now;
    }

    fn renew_lease(&mut self, id: JobId) {
        let now = self.now;
        let job = self.view_mut(id);
        job.lease_until = job.options.lease.map(|d| add(now, d));
    }

    fn end(&mut self, id: JobId, outcome: Outcome, message: String) {
        let now = self.now;
        let entry = self.jobs.get_mut(&id.index()).expect("model: live job");
        entry.waiting.clear();
        let job = &mut entry.view;
        let from = job.state;
        let to = match outcome {
            Outcome::Succeeded { .. } => State::Succeeded,
            Outcome::Failed { .. } => State::Failed,
        };
        job.state = to;
        job.outcome = Some(outcome);
        job.ended = Some(now);
        job.message = message;
        job.pause_requested = false;
        job.cancel_requested = false;
        job.lease_until = None;
        if to == State::Succeeded {
            job.progress = 100;
        }
        self.runnable.retain(|j| *j != id);
        self.active.retain(|j| *j != id);
        self.retained.push_back(id);
        self.change(id, KindView::StateChanged { from, to }, true);
    }

    fn finish(&mut self, id: JobId, outcome: Outcome, message: String) {
        self.end(id, outcome, message);
        match outcome {
            Outcome::Succeeded { .. } => self.release(id),
            Outcome::Failed { .. } => self.cascade(id),
        }
    }

    /// Queued jobs still waiting for `id`, in submit order.
    fn dependents(&self, id: JobId) -> Vec<JobId> {
        let mut d: Vec<(u64, JobId)> = self
            .jobs
            .values()
            .filter(|e| e.waiting.contains(&id))
            .map(|e| (e.seq, e.view.id))
            .collect();
        d.sort();
        d.into_iter().map(|(_, id)| id).collect()
    }

    fn release(&mut self, id: JobId) {
        for d in self.dependents(id) {
            let entry = self.jobs.get_mut(&d.index()).expect("model: dependent");
            entry.waiting.remove(&id);
            if entry.waiting.is_empty() && entry.view.state == State::Queued {
                self.runnable.push_back(d);
            }
        }
    }

    fn cascade(&mut self, root: JobId) {
        let mut stack = vec![root];
        while let Some(x) = stack.pop() {
            for d in self.dependents(x).into_iter().rev() {
                let msg = self.dependency_failed_text(x);
                self.end(d, Self::failure(FailReason::DependencyFailed), msg);
                stack.push(d);
            }
        }
    }

    fn failure(reason: FailReason) -> Outcome {
        Outcome::Failed {
            reason,
            code: reason.default_code(),
        }
    }

    fn evictable(&self, id: JobId) -> bool {
        let job = &self.jobs[&id.index()].view;
        job.ended
            .is_some_and(|e| add(e, self.limits.retention) <= self.now)
    }

    fn remove(&mut self, id: JobId) {
        let entry = self.jobs.remove(&id.index()).expect("model: removed job");
        let job = entry.view;
        if self.limits.jobs > 0 {
            if self.tombstones.len() == self.limits.jobs {
                self.tombstones.pop_front();
            }
            self.tombstones.push_back(Tombstone {
                id,
                outcome: job.outcome.expect("model: terminal"),
                ended: job.ended.expect("model: terminal"),
            });
        }
        self.event(id, KindView::Removed);
        self.retained.retain(|j| *j != id);
        self.free.push(id.index());
    }

    fn allocate(&mut self) -> Option<u16> {
        if let Some(i) = self.free.pop() {
            return Some(i);
        }
        if self.fresh < self.limits.jobs {
            self.fresh += 1;
            return Some((self.fresh - 1) as u16);
        }
        let oldest = *self.retained.front()?;
        if self.evictable(oldest) {
            self.remove(oldest);
            return self.free.pop();
        }
        None
    }

    fn state_of(&self, id: JobId) -> Result<State, JobError> {
        Ok(self.entry(id)?.view.state)
    }

    fn live(&self, id: JobId) -> Result<State, JobError> {
        let state = self.state_of(id)?;
        if Self::is_terminal(state) {
            Err(JobError::AlreadyTerminal)
        } else {
            Ok(state)
        }
    }

    // ----- operations -----------------------------------------------------------------------

    /// `JobTable::submit`.
    pub fn submit(
        &mut self,
        spec: S,
        description: &str,
        depends_on: &[JobId],
        options: JobOptions,
        now: Instant,
    ) -> Result<JobId, SubmitError> {
        if !self.fits(description) {
            return Err(SubmitError::TextTooLong);
        }
        if depends_on.len() > self.limits.deps {
            return Err(SubmitError::TooManyDependencies);
        }
        let mut waiting = BTreeSet::new();
        let mut failed_dep = None;
        for (k, dep) in depends_on.iter().enumerate() {
            if depends_on[..k].contains(dep) {
                return Err(SubmitError::DuplicateDependency(*dep));
            }
            let state = self
                .entry(*dep)
                .map_err(|error| SubmitError::UnknownDependency { id: *dep, error })?
                .view
                .state;
            match state {
                State::Succeeded => {}
                State::Failed => failed_dep = failed_dep.or(Some(*dep)),
                _ => {
                    waiting.insert(*dep);
                }
            }
        }
        let before = self.now;
        let now = self.clock(now);
        let Some(i) = self.allocate() else {
            self.now = before;
            return Err(SubmitError::TableFull);
        };
        let generation = match self.generations[usize::from(i)].wrapping_add(1) {
            0 => 1,
            g => g,
        };
        self.generations[usize::from(i)] = generation;
        let id = make_id(self.epoch, i, generation);
        self.issued.insert(id);
        self.seq += 1;
        let view = JobView {
            id,
            spec,
            description: description.into(),
            state: State::Queued,
            progress: 0,
            message: String::new(),
            created: now,
            started: None,
            ended: None,
            modified: now,
            revision: Revision::ZERO,
            state_revision: Revision::ZERO,
            version: 0,
            outcome: None,
            depends_on: depends_on.to_vec(),
            options,
            pause_requested: false,
            cancel_requested: false,
            deadline: None,
            lease_until: None,
        };
        let no_wait = waiting.is_empty();
        self.jobs.insert(
            i,
            Entry {
                view,
                seq: self.seq,
                waiting,
            },
        );
        self.change(id, KindView::Submitted, true);
        if let Some(dep) = failed_dep {
            let msg = self.dependency_failed_text(dep);
            self.finish(id, Self::failure(FailReason::DependencyFailed), msg);
        } else if no_wait {
            self.runnable.push_back(id);
        }
        Ok(id)
    }

    /// `JobTable::start`.
    pub fn start(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        let entry = self.entry(id)?;
        let state = entry.view.state;
        if state != State::Queued {
            return Err(JobError::Transition {
                from: state,
                to: State::Running,
            });
        }
        if !entry.waiting.is_empty() {
            return Err(JobError::DependenciesPending);
        }
        let now = self.clock(now);
        self.runnable.retain(|j| *j != id);
        self.active.push(id);
        let job = self.view_mut(id);
        job.state = State::Running;
        job.started = Some(job.started.unwrap_or(now));
        job.deadline = job.options.run_timeout.map(|d| add(now, d));
        job.lease_until = job.options.lease.map(|d| add(now, d));
        self.change(
            id,
            KindView::StateChanged {
                from: State::Queued,
                to: State::Running,
            },
            true,
        );
        Ok(())
    }

    /// `JobTable::start_next`.
    pub fn start_next(&mut self, now: Instant) -> Option<JobId> {
        let id = self.peek_runnable()?;
        self.start(id, now).ok().map(|()| id)
    }

    /// `JobTable::progress`.
    pub fn progress(
        &mut self,
        id: JobId,
        percent: u8,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        if self.live(id)? != State::Running {
            return Err(JobError::NotRunning);
        }
        if percent > 100 {
            return Err(JobError::ProgressOutOfRange(percent));
        }
        if !self.fits(message) {
            return Err(JobError::TextTooLong);
        }
        self.clock(now);
        let job = self.view_mut(id);
        job.progress = percent;
        job.message = message.into();
        self.renew_lease(id);
        self.change(id, KindView::Progress { percent }, false);
        Ok(())
    }

    /// `JobTable::log`.
    pub fn log(&mut self, id: JobId, line: &str, now: Instant) -> Result<(), JobError> {
        self.live(id)?;
        if !self.fits(line) {
            return Err(JobError::TextTooLong);
        }
        self.clock(now);
        self.event(id, KindView::Log(line.into()));
        Ok(())
    }

    /// `JobTable::heartbeat`.
    pub fn heartbeat(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        if self.live(id)? != State::Running {
            return Err(JobError::NotRunning);
        }
        self.clock(now);
        self.renew_lease(id);
        Ok(())
    }

    /// `JobTable::checkpoint`.
    pub fn checkpoint(&mut self, id: JobId, now: Instant) -> Result<Directive, JobError> {
        let state = self.live(id)?;
        if state == State::Queued {
            return Err(JobError::NotRunning);
        }
        self.clock(now);
        if state == State::Running {
            self.renew_lease(id);
        }
        let job = self.view_mut(id);
        let (cancel, pause) = (job.cancel_requested, job.pause_requested);
        if cancel {
            let msg = self.text(&["canceled"]);
            self.finish(id, Self::failure(FailReason::Canceled), msg);
            return Ok(Directive::Canceled);
        }
        if state == State::Running && pause {
            let job = self.view_mut(id);
            job.pause_requested = false;
            job.state = State::Paused;
            self.change(
                id,
                KindView::StateChanged {
                    from: State::Running,
                    to: State::Paused,
                },
                true,
            );
            return Ok(Directive::Pause);
        }
        Ok(if state == State::Paused {
            Directive::Pause
        } else {
            Directive::Continue
        })
    }

    /// `JobTable::succeed`.
    pub fn succeed(
        &mut self,
        id: JobId,
        severity: Severity,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        let state = self.state_of(id)?;
        if state != State::Running {
            return Err(JobError::Transition {
                from: state,
                to: State::Succeeded,
            });
        }
        if !self.fits(message) {
            return Err(JobError::TextTooLong);
        }
        self.clock(now);
        self.finish(id, Outcome::Succeeded { severity }, message.into());
        Ok(())
    }

    /// `JobTable::fail`.
    pub fn fail(
        &mut self,
        id: JobId,
        code: i32,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        let state = self.state_of(id)?;
        if Self::is_terminal(state) {
            return Err(JobError::Transition {
                from: state,
                to: State::Failed,
            });
        }
        if !self.fits(message) {
            return Err(JobError::TextTooLong);
        }
        self.clock(now);
        let outcome = Outcome::Failed {
            reason: FailReason::Error,
            code,
        };
        self.finish(id, outcome, message.into());
        Ok(())
    }

    /// `JobTable::request_pause`.
    pub fn request_pause(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        let state = self.live(id)?;
        let job = &self.entry(id)?.view;
        if !job.options.pausable {
            return Err(JobError::NotPausable);
        }
        if state != State::Running {
            return Err(JobError::NotRunning);
        }
        if job.pause_requested {
            return Ok(());
        }
        self.clock(now);
        self.view_mut(id).pause_requested = true;
        self.change(id, KindView::Requested(Request::Pause), false);
        Ok(())
    }

    /// `JobTable::request_resume`.
    pub fn request_resume(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        let state = self.live(id)?;
        let pending = self.entry(id)?.view.pause_requested;
        match state {
            State::Paused => {
                self.clock(now);
                self.view_mut(id).state = State::Running;
                self.renew_lease(id);
                self.change(
                    id,
                    KindView::StateChanged {
                        from: State::Paused,
                        to: State::Running,
                    },
                    true,
                );
                Ok(())
            }
            State::Running if pending => {
                self.clock(now);
                self.view_mut(id).pause_requested = false;
                self.change(id, KindView::Requested(Request::Resume), false);
                Ok(())
            }
            _ => Err(JobError::NotPaused),
        }
    }

    /// `JobTable::request_cancel`.
    pub fn request_cancel(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        let state = self.live(id)?;
        let job = &self.entry(id)?.view;
        if !job.options.cancelable {
            return Err(JobError::NotCancelable);
        }
        if job.cancel_requested {
            return Ok(());
        }
        self.clock(now);
        if state == State::Queued {
            let msg = self.text(&["canceled"]);
            self.finish(id, Self::failure(FailReason::Canceled), msg);
        } else {
            self.view_mut(id).cancel_requested = true;
            self.change(id, KindView::Requested(Request::Cancel), false);
        }
        Ok(())
    }

    /// `JobTable::expire`.
    pub fn expire(&mut self, now: Instant) -> Expired {
        let now = self.clock(now);
        let mut report = Expired::default();
        for id in self.active.clone() {
            let job = &self.jobs[&id.index()].view;
            let deadline = job.deadline.is_some_and(|d| d <= now);
            let lease = job.state == State::Running && job.lease_until.is_some_and(|l| l <= now);
            if deadline || lease {
                let msg = if deadline {
                    self.text(&["deadline passed"])
                } else {
                    self.text(&["heartbeat lease expired"])
                };
                self.finish(id, Self::failure(FailReason::TimedOut), msg);
                report.timed_out += 1;
            }
        }
        while let Some(&oldest) = self.retained.front() {
            if !self.evictable(oldest) {
                break;
            }
            self.remove(oldest);
            report.removed += 1;
        }
        report
    }
}
