//! The waiter registry: who waits for what, and whom a change wakes (R-LONGPOLL).
//!
//! Plain data, kept under the engine's lock next to the table, so "check the condition, then
//! register" and "change the table, then notify" can never interleave: no wake-up is lost.
//!
//! * A **job waiter** waits for one job and one [`Condition`]; it sits in an intrusive,
//!   doubly linked list of that job's table slot (indices into one slab, so registration and
//!   removal are O(1) however many wait on the job). When the journal says the job changed,
//!   the notifier evaluates the waiter's condition with the core's [`Condition::holds`] and
//!   settles it only if it now holds — or if the job is gone.
//! * **Lazy answers.** A waiter settled on a live, non-terminal job gets no copy of it: it
//!   reads the job itself when it collects (conditions only ever go from false to true while
//!   the job exists, so it still holds then). Such a waiter stays in its job's list until it
//!   collects, so that if the job ends first its copy is taken then, before the job can be
//!   removed; a waiter settled on a terminal job gets its copy at once.
//! * A **table watcher** waits for the table revision to pass a value; any change wakes it.
//! * **Waking happens after the lock is released.** A settled waiter's `Waker` (or condition
//!   variable) is taken out of its entry into a [`WakeList`], which wakes them once the
//!   caller has dropped the engine lock (tokio's `WakeList` way): a waker may call back into
//!   the engine, and a woken task never finds the lock still held by its notifier. A waker is
//!   woken at most once per registration; one taken out just before its wait was dropped may
//!   still be woken once afterwards (a harmless spurious wake for an executor).

use std::task::Waker;

use jobstate::{Condition, JobId, LookupError, Revision};
use slab::Slab;

use crate::sync::{self, Arc, Condvar};

/// The end of a list.
const NIL: u32 = u32::MAX;

/// How to wake a waiter.
pub(crate) enum Wake {
    /// A blocked thread, waiting on its own condition variable (paired with the engine lock).
    Thread(Arc<Condvar>),
    /// An async task.
    Task(Waker),
}

impl Wake {
    fn wake(self) {
        match self {
            Wake::Thread(cv) => cv.notify_one(),
            Wake::Task(w) => w.wake(),
        }
    }

    /// Whether waking `self` reaches whoever `other` reaches.
    fn same(&self, other: WakeRef<'_>) -> bool {
        match (self, other) {
            (Wake::Thread(a), WakeRef::Thread(b)) => Arc::ptr_eq(a, b),
            (Wake::Task(a), WakeRef::Task(b)) => a.will_wake(b),
            _ => false,
        }
    }
}

/// Whom a waiter wants woken, borrowed (a task's `Waker` is only cloned outside the lock).
#[derive(Clone, Copy)]
pub(crate) enum WakeRef<'w> {
    /// A blocked thread's condition variable.
    Thread(&'w Arc<Condvar>),
    /// An async task's waker.
    Task(&'w Waker),
}

impl WakeRef<'_> {
    /// An owned wake, if making one runs no user code (a thread's condition variable: an
    /// `Arc` clone; a task's waker must be cloned outside the lock).
    pub(crate) fn cheap_owned(self) -> Option<Wake> {
        match self {
            WakeRef::Thread(cv) => Some(Wake::Thread(cv.clone())),
            WakeRef::Task(_) => None,
        }
    }
}

/// Wakers to wake, and wakers (and answers) to drop, once the engine lock is released.
///
/// Declare it *before* the lock guard in a scope: locals drop in reverse order, so even on an
/// unwind the guard is released first and the list wakes everyone after. Every waker call is
/// contained (`catch_unwind`): a panicking waker costs nobody else their wake-up and never
/// stops the thread that wakes (timer thread, worker, client).
pub(crate) struct WakeList<'a> {
    inline: [Option<Wake>; 4],
    more: Vec<Wake>,
    /// Replaced or deregistered wakers: only dropped.
    trash: Vec<Wake>,
    /// Condition variables of the engine to notify (idle workers, timer thread).
    condvars: [Option<&'a Condvar>; 2],
}

impl<'a> WakeList<'a> {
    pub(crate) fn new() -> Self {
        Self {
            inline: [None, None, None, None],
            more: Vec::new(),
            trash: Vec::new(),
            condvars: [None, None],
        }
    }

    /// Wake `w` later.
    pub(crate) fn push(&mut self, w: Wake) {
        match self.inline.iter_mut().find(|s| s.is_none()) {
            Some(slot) => *slot = Some(w),
            None => self.more.push(w),
        }
    }

    /// Drop `w` later (not under the lock: a waker's `drop` is user code).
    pub(crate) fn discard(&mut self, w: Wake) {
        self.trash.push(w);
    }

    /// Notify this engine condition variable later (once).
    pub(crate) fn notify(&mut self, cv: &'a Condvar) {
        if self
            .condvars
            .iter()
            .any(|c| c.is_some_and(|c| std::ptr::eq(c, cv)))
        {
            return;
        }
        if let Some(slot) = self.condvars.iter_mut().find(|c| c.is_none()) {
            *slot = Some(cv);
        } else {
            cv.notify_one();
        }
    }

    /// How many wakers are waiting to be woken.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inline
            .iter()
            .filter(|w| w.is_some())
            .count()
            .saturating_add(self.more.len())
    }

    /// Wake everyone collected and drop what is to be dropped. Call with the lock released.
    pub(crate) fn wake_all(&mut self) {
        for cv in self.condvars.iter_mut().filter_map(Option::take) {
            cv.notify_one();
        }
        for w in self.inline.iter_mut().filter_map(Option::take) {
            sync::contain(|| w.wake());
        }
        for w in self.more.drain(..) {
            sync::contain(|| w.wake());
        }
        for w in self.trash.drain(..) {
            sync::contain(|| drop(w));
        }
    }
}

impl Drop for WakeList<'_> {
    fn drop(&mut self) {
        self.wake_all();
    }
}

/// What a waiter waits for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Watch {
    /// This job, until this condition holds (or the job is gone).
    Job(JobId, Condition),
    /// Any change after this table revision.
    Table(Revision),
}

/// A settled waiter's answer.
#[derive(Debug)]
pub(crate) enum Ready<P> {
    /// The job as it was when it was copied, or why it is gone.
    Job(Result<P, LookupError>),
    /// The condition held for the job, which was live: the waiter reads the job itself.
    Holds,
    /// The table revision that passed the watched one.
    Table(Revision),
}

/// Where a waiter is.
enum Status<P> {
    /// Not settled yet: in its list.
    Waiting,
    /// Settled with this answer. A [`Ready::Holds`] answer stays in its job's list until
    /// collected (so a later end of the job can replace it with a copy).
    Settled(Ready<P>),
    /// Its deadline passed first.
    TimedOut,
}

/// What [`Registry::deregister`] found.
pub(crate) enum Found<P> {
    /// Still waiting.
    Waiting,
    /// Settled with this answer.
    Ready(Ready<P>),
    /// The deadline passed first.
    TimedOut,
}

/// A deregistered waiter.
pub(crate) struct Removed<P> {
    pub(crate) found: Found<P>,
    pub(crate) wake: Option<Wake>,
    pub(crate) timed: bool,
}

struct Entry<P> {
    watch: Watch,
    wake: Option<Wake>,
    status: Status<P>,
    /// Unique for the registry's life (slab keys are reused): names this wait in the timer
    /// heap.
    token: u64,
    prev: u32,
    next: u32,
    linked: bool,
    /// Its deadline is in the engine's timer heap.
    timed: bool,
}

/// A doubly linked list of entries (slab keys).
#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
    };
}

/// Which list a watch lives in.
#[derive(Clone, Copy)]
enum Which {
    Slot(usize),
    Table,
}

/// How a changed job stands, for [`Registry::notify_job`].
pub(crate) enum JobNow {
    /// In the table; `terminal` when it has ended (and may be removed by a later change).
    Live { terminal: bool },
    /// No longer in the table.
    Gone(LookupError),
}

/// All registered waiters. `P` is the job copy handed to a settled waiter.
pub(crate) struct Registry<P> {
    entries: Slab<Entry<P>>,
    /// Job waiters (not collected yet), by the job's table slot.
    slots: Vec<List>,
    /// Table watchers not settled yet.
    table: List,
    next_token: u64,
}

fn key32(key: usize) -> u32 {
    u32::try_from(key).unwrap_or(NIL)
}

fn key_of(k: u32) -> Option<usize> {
    (k != NIL).then_some(k as usize)
}

impl<P> Registry<P> {
    /// An empty registry for a table of `slots` slots.
    pub(crate) fn new(slots: usize) -> Self {
        Self {
            entries: Slab::new(),
            slots: vec![List::EMPTY; slots],
            table: List::EMPTY,
            next_token: 0,
        }
    }

    /// Registered waiters, settled or not.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nobody waits for anything.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn which(watch: Watch) -> Which {
        match watch {
            Watch::Job(id, _) => Which::Slot(usize::from(id.index())),
            Watch::Table(_) => Which::Table,
        }
    }

    fn list_mut(&mut self, which: Which) -> Option<&mut List> {
        match which {
            Which::Slot(s) => {
                if self.slots.len() <= s {
                    self.slots.resize(s.saturating_add(1), List::EMPTY);
                }
                self.slots.get_mut(s)
            }
            Which::Table => Some(&mut self.table),
        }
    }

    #[cfg(test)]
    fn list(&self, which: Which) -> List {
        match which {
            Which::Slot(s) => self.slots.get(s).copied().unwrap_or(List::EMPTY),
            Which::Table => self.table,
        }
    }

    /// Append `key` to its list. O(1).
    fn link(&mut self, key: usize) {
        let Some(watch) = self.entries.get(key).map(|e| e.watch) else {
            return;
        };
        let which = Self::which(watch);
        let k = key32(key);
        let Some(list) = self.list_mut(which) else {
            return;
        };
        let tail = list.tail;
        list.tail = k;
        if tail == NIL {
            list.head = k;
        }
        if let Some(t) = key_of(tail).and_then(|t| self.entries.get_mut(t)) {
            t.next = k;
        }
        if let Some(e) = self.entries.get_mut(key) {
            e.prev = tail;
            e.next = NIL;
            e.linked = true;
        }
    }

    /// Take `key` out of its list. O(1).
    fn unlink(&mut self, key: usize) {
        let Some((watch, prev, next, linked)) = self
            .entries
            .get(key)
            .map(|e| (e.watch, e.prev, e.next, e.linked))
        else {
            return;
        };
        if !linked {
            return;
        }
        match key_of(prev).and_then(|p| self.entries.get_mut(p)) {
            Some(p) => p.next = next,
            None => {
                if let Some(l) = self.list_mut(Self::which(watch)) {
                    l.head = next;
                }
            }
        }
        match key_of(next).and_then(|n| self.entries.get_mut(n)) {
            Some(n) => n.prev = prev,
            None => {
                if let Some(l) = self.list_mut(Self::which(watch)) {
                    l.tail = prev;
                }
            }
        }
        if let Some(e) = self.entries.get_mut(key) {
            e.prev = NIL;
            e.next = NIL;
            e.linked = false;
        }
    }

    /// Add a waiter; answers its key (valid until [`Registry::deregister`]) and its token.
    /// `timed`: its deadline goes into the engine's timer heap. O(1).
    pub(crate) fn register(&mut self, watch: Watch, wake: Wake, timed: bool) -> (usize, u64) {
        self.next_token = self.next_token.wrapping_add(1);
        let token = self.next_token;
        let key = self.entries.insert(Entry {
            watch,
            wake: Some(wake),
            status: Status::Waiting,
            token,
            prev: NIL,
            next: NIL,
            linked: false,
            timed,
        });
        self.link(key);
        (key, token)
    }

    /// Whether the waiter is settled (answered or timed out).
    pub(crate) fn is_settled(&self, key: usize) -> bool {
        self.entries
            .get(key)
            .is_some_and(|e| !matches!(e.status, Status::Waiting))
    }

    /// Whether the waiter's wake reaches `wake` already (then it need not be replaced).
    pub(crate) fn wakes(&self, key: usize, wake: WakeRef<'_>) -> bool {
        self.entries
            .get(key)
            .and_then(|e| e.wake.as_ref())
            .is_some_and(|w| w.same(wake))
    }

    /// Install the waiter's wake; the one it replaces goes to `wl`'s trash (dropped after
    /// the lock, as a waker's `drop` is user code).
    pub(crate) fn set_wake(&mut self, key: usize, wake: Wake, wl: &mut WakeList<'_>) {
        match self.entries.get_mut(key) {
            Some(e) => {
                if let Some(old) = e.wake.replace(wake) {
                    wl.discard(old);
                }
            }
            None => wl.discard(wake),
        }
    }

    /// Whether `key` still names the wait `token` named.
    pub(crate) fn is_live(&self, key: usize, token: u64) -> bool {
        self.entries.get(key).is_some_and(|e| e.token == token)
    }

    /// The wait's deadline passed (its heap entry was popped): if it is still waiting,
    /// settle it as timed out and wake it. Returns whether the wait was still registered.
    pub(crate) fn expire(&mut self, key: usize, token: u64, wl: &mut WakeList<'_>) -> bool {
        let waiting = match self.entries.get_mut(key) {
            Some(e) if e.token == token => {
                e.timed = false;
                matches!(e.status, Status::Waiting)
            }
            _ => return false,
        };
        if waiting {
            self.unlink(key);
            if let Some(e) = self.entries.get_mut(key) {
                e.status = Status::TimedOut;
                if let Some(w) = e.wake.take() {
                    wl.push(w);
                }
            }
        }
        true
    }

    /// Remove a waiter: what it had found, its wake (to be dropped after the lock), and
    /// whether its deadline is still in the timer heap (stale now). After this, no
    /// notification reaches it. O(1).
    pub(crate) fn deregister(&mut self, key: usize) -> Removed<P> {
        self.unlink(key);
        match self.entries.try_remove(key) {
            Some(e) => Removed {
                found: match e.status {
                    Status::Waiting => Found::Waiting,
                    Status::Settled(r) => Found::Ready(r),
                    Status::TimedOut => Found::TimedOut,
                },
                wake: e.wake,
                timed: e.timed,
            },
            None => Removed {
                found: Found::Waiting,
                wake: None,
                timed: false,
            },
        }
    }

    /// `job` changed. For each of its waiters: a waiting one whose condition `holds` now
    /// is settled and woken — with [`Ready::Holds`] while the job is live and not terminal
    /// (it stays in the list), with a copy made by `copy` once the job is terminal (it
    /// leaves the list); a waiter settled with `Holds` earlier gets its copy once the job is
    /// terminal; once the job is gone every waiter is settled with the lookup error. A copy
    /// that fails (`copy` answers `None`: the spec's `Clone` panicked) leaves the waiter to
    /// read the job itself. Answers how many were woken.
    pub(crate) fn notify_job(
        &mut self,
        job: JobId,
        now: &JobNow,
        holds: impl Fn(Condition) -> bool,
        mut copy: impl FnMut() -> Option<P>,
        wl: &mut WakeList<'_>,
    ) -> usize {
        let Some(list) = self.slots.get(usize::from(job.index())).copied() else {
            return 0;
        };
        let mut woken = 0usize;
        let mut at = list.head;
        while let Some(key) = key_of(at) {
            let Some(e) = self.entries.get_mut(key) else {
                break;
            };
            at = e.next;
            let Watch::Job(id, condition) = e.watch else {
                continue;
            };
            if id != job {
                // Another job of the same slot (an older generation): its waiters are
                // settled by the change that removed it.
                continue;
            }
            let waiting = matches!(e.status, Status::Waiting);
            let (answer, leave) = match now {
                JobNow::Gone(err) => (Some(Ready::Job(Err(*err))), true),
                JobNow::Live { terminal: true } if waiting && !holds(condition) => (None, false),
                JobNow::Live { terminal: true } => match copy() {
                    Some(p) => (Some(Ready::Job(Ok(p))), true),
                    None => (Some(Ready::Holds), true),
                },
                JobNow::Live { terminal: false } if waiting && holds(condition) => {
                    (Some(Ready::Holds), false)
                }
                JobNow::Live { terminal: false } => (None, false),
            };
            let Some(answer) = answer else {
                continue;
            };
            if let Some(e) = self.entries.get_mut(key) {
                e.status = Status::Settled(answer);
                if waiting {
                    if let Some(w) = e.wake.take() {
                        wl.push(w);
                        woken = woken.saturating_add(1);
                    }
                }
            }
            if leave {
                self.unlink(key);
            }
        }
        woken
    }

    /// The table moved to `revision`: settle and wake every table watcher that watched an
    /// older one.
    pub(crate) fn notify_table(&mut self, revision: Revision, wl: &mut WakeList<'_>) -> usize {
        let mut woken = 0usize;
        let mut at = self.table.head;
        while let Some(key) = key_of(at) {
            let Some(e) = self.entries.get_mut(key) else {
                break;
            };
            at = e.next;
            match e.watch {
                Watch::Table(after) if revision > after => {
                    e.status = Status::Settled(Ready::Table(revision));
                    if let Some(w) = e.wake.take() {
                        wl.push(w);
                        woken = woken.saturating_add(1);
                    }
                    self.unlink(key);
                }
                _ => {}
            }
        }
        woken
    }

    /// The jobs with waiters in their lists (for a re-check after the journal was
    /// compacted).
    pub(crate) fn watched_jobs(&self) -> Vec<JobId> {
        let mut jobs: Vec<JobId> = Vec::new();
        for list in &self.slots {
            let mut at = list.head;
            while let Some(e) = key_of(at).and_then(|k| self.entries.get(k)) {
                if let Watch::Job(id, _) = e.watch {
                    jobs.push(id);
                }
                at = e.next;
            }
        }
        jobs.sort_unstable();
        jobs.dedup();
        jobs
    }

    /// The entries of one list, head to tail (tests).
    #[cfg(test)]
    fn keys(&self, which: Which) -> Vec<usize> {
        let mut out = Vec::new();
        let mut at = self.list(which).head;
        let mut prev = NIL;
        while let Some(k) = key_of(at) {
            let Some(e) = self.entries.get(k) else {
                break;
            };
            assert_eq!(e.prev, prev, "back link of {k}");
            assert!(e.linked);
            out.push(k);
            prev = at;
            at = e.next;
        }
        assert_eq!(self.list(which).tail, prev, "tail");
        out
    }
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use jobstate::{JobTable, NewJob};

    fn wake() -> Wake {
        Wake::Thread(Arc::new(Condvar::new()))
    }

    #[test]
    fn lists_stay_consistent_under_removal_anywhere() {
        let mut t: JobTable<u8, 4> = JobTable::new(jobstate::Config::DEFAULT);
        let now = jobstate::Instant::from_ticks(0);
        let id = t.submit(NewJob::new(1), now).ok().unwrap();
        let mut r: Registry<u8> = Registry::new(4);
        let keys: Vec<usize> = (0..200)
            .map(|_| {
                r.register(Watch::Job(id, Condition::Terminal), wake(), false)
                    .0
            })
            .collect();
        let slot = Which::Slot(usize::from(id.index()));
        assert_eq!(r.keys(slot), keys);
        // Remove head, tail and middles in a scattered order.
        let mut left = keys.clone();
        let mut x = 7usize;
        while !left.is_empty() {
            x = (x * 31 + 17) % left.len().max(1);
            let k = left.remove(x % left.len());
            let _ = r.deregister(k);
            assert_eq!(r.keys(slot), left);
        }
        assert!(r.is_empty());
        assert_eq!(r.list(slot).head, NIL);
    }

    #[test]
    fn notify_settles_only_holding_waiters_and_keeps_lazy_ones_until_the_end() {
        let mut t: JobTable<u8, 4> = JobTable::new(jobstate::Config::DEFAULT);
        let now = jobstate::Instant::from_ticks(0);
        let id = t.submit(NewJob::new(1), now).ok().unwrap();
        let mut r: Registry<u8> = Registry::new(4);
        let (changed, _) = r.register(
            Watch::Job(id, Condition::ChangedSince(t.revision())),
            wake(),
            false,
        );
        let (end, _) = r.register(Watch::Job(id, Condition::Terminal), wake(), false);
        let slot = Which::Slot(usize::from(id.index()));
        let mut wl = WakeList::new();
        let live = JobNow::Live { terminal: false };
        let woken = r.notify_job(
            id,
            &live,
            |c| matches!(c, Condition::ChangedSince(_)),
            || Some(9),
            &mut wl,
        );
        assert_eq!(woken, 1);
        assert_eq!(wl.len(), 1);
        assert!(r.is_settled(changed) && !r.is_settled(end));
        assert_eq!(
            r.keys(slot),
            vec![changed, end],
            "the lazy answer stays listed"
        );
        let ended = JobNow::Live { terminal: true };
        let woken = r.notify_job(id, &ended, |_| true, || Some(9), &mut wl);
        assert_eq!(woken, 1, "only the terminal waiter is woken again");
        assert!(r.keys(slot).is_empty());
        assert!(matches!(
            r.deregister(changed).found,
            Found::Ready(Ready::Job(Ok(9)))
        ));
        assert!(matches!(
            r.deregister(end).found,
            Found::Ready(Ready::Job(Ok(9)))
        ));
        wl.wake_all();
    }
}
