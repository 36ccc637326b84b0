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
//! * **Deadlines** sit in a hierarchical timing wheel (tokio's layout: 4 levels of 64 slots,
//!   1 ms to 262 s a slot), threaded through the same entries: O(1) to add, O(1) to remove
//!   when a wait ends first, amortised O(1) to expire. A new wait goes to the wheel's fresh
//!   list with its deadline as an instant; the timer thread places the fresh waits still
//!   waiting in their slots at its next round, then settles the waits whose deadline passed;
//!   a wait that ends first leaves nothing behind.
//! * **Waking happens after the lock is released.** A settled waiter's `Waker` (or condition
//!   variable) is taken out of its entry into a [`WakeList`], which wakes them once the
//!   caller has dropped the engine lock (tokio's `WakeList` way): a waker may call back into
//!   the engine, and a woken task never finds the lock still held by its notifier. A waker is
//!   woken at most once per registration; one taken out just before its wait was dropped may
//!   still be woken once afterwards (a harmless spurious wake for an executor).

use std::task::Waker;
use std::time::Instant as StdInstant;

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
    /// The first wake (most lists hold one at most).
    first: Option<Wake>,
    /// The first replaced or deregistered wake: only dropped.
    discarded: Option<Wake>,
    /// The others, on the heap only when there are any (an empty list costs nothing to drop).
    spill: Option<Box<Spill>>,
    /// Condition variables of the engine to notify (idle workers, timer thread).
    condvars: [Option<&'a Condvar>; 2],
    /// Anything at all to do.
    any: bool,
}

/// A [`WakeList`]'s wakes beyond the first of each kind.
#[derive(Default)]
struct Spill {
    more: Vec<Wake>,
    /// Replaced or deregistered wakers: only dropped.
    trash: Vec<Wake>,
}

impl<'a> WakeList<'a> {
    pub(crate) fn new() -> Self {
        Self {
            first: None,
            discarded: None,
            spill: None,
            condvars: [None, None],
            any: false,
        }
    }

    fn spill(&mut self) -> &mut Spill {
        self.spill.get_or_insert_with(Box::default)
    }

    /// Wake `w` later.
    pub(crate) fn push(&mut self, w: Wake) {
        self.any = true;
        if self.first.is_none() {
            self.first = Some(w);
        } else {
            self.spill().more.push(w);
        }
    }

    /// Drop `w` later (not under the lock: a waker's `drop` is user code).
    pub(crate) fn discard(&mut self, w: Wake) {
        self.any = true;
        if self.discarded.is_none() {
            self.discarded = Some(w);
        } else {
            self.spill().trash.push(w);
        }
    }

    /// Notify this engine condition variable later (once).
    pub(crate) fn notify(&mut self, cv: &'a Condvar) {
        self.any = true;
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

    /// Whether anything waits to be woken, notified or dropped.
    pub(crate) fn has_work(&self) -> bool {
        self.any
    }

    /// How many wakers are waiting to be woken.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let more = self.spill.as_ref().map_or(0, |s| s.more.len());
        usize::from(self.first.is_some()).saturating_add(more)
    }

    /// Wake everyone collected and drop what is to be dropped. Call with the lock released.
    #[inline]
    pub(crate) fn wake_all(&mut self) {
        if std::mem::take(&mut self.any) {
            self.wake_all_now();
        }
    }

    /// [`WakeList::wake_all`] with something to do (kept out of line: most lists are empty).
    #[inline(never)]
    fn wake_all_now(&mut self) {
        for cv in self.condvars.iter_mut().filter_map(Option::take) {
            cv.notify_one();
        }
        if let Some(w) = self.first.take() {
            sync::contain(|| w.wake());
        }
        if let Some(spill) = &mut self.spill {
            for w in spill.more.drain(..) {
                sync::contain(|| w.wake());
            }
        }
        if let Some(w) = self.discarded.take() {
            sync::contain(|| drop(w));
        }
        if let Some(spill) = &mut self.spill {
            for w in spill.trash.drain(..) {
                sync::contain(|| drop(w));
            }
        }
    }
}

impl Drop for WakeList<'_> {
    #[inline]
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

/// How a changed job stands, for [`Registry::notify_job`].
pub(crate) enum JobNow {
    /// In the table; `terminal` when it has ended (and may be removed by a later change).
    Live { terminal: bool },
    /// No longer in the table.
    Gone(LookupError),
}

/// A deregistered waiter: what it had found, and its wake (to be dropped after the lock).
pub(crate) struct Removed<P> {
    pub(crate) found: Found<P>,
    pub(crate) wake: Option<Wake>,
}

struct Entry<P> {
    watch: Watch,
    wake: Option<Wake>,
    status: Status<P>,
    /// Its deadline while it waits in the wheel's fresh list (not placed in a slot yet).
    at: Option<StdInstant>,
}

/// An entry's places in the lists, kept apart from the entries (a dense array of small
/// records): taking an entry out touches its neighbours' links only.
#[derive(Clone, Copy)]
struct Links {
    /// The job / table list it is in (`NO_LIST`: none).
    list: u32,
    prev: u32,
    next: u32,
    /// The timer wheel slot it is in (`NO_SLOT`: none).
    slot: u32,
    tprev: u32,
    tnext: u32,
    /// Its deadline, in wheel ticks (ms).
    when: u64,
}

impl Links {
    const FREE: Links = Links {
        list: NO_LIST,
        prev: NIL,
        next: NIL,
        slot: NO_SLOT,
        tprev: NIL,
        tnext: NIL,
        when: 0,
    };
}

/// Not in a job or table list.
const NO_LIST: u32 = u32::MAX;
/// The list id of the table watchers.
const TABLE_LIST: u32 = u32::MAX - 1;

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

// ----- the timer wheel ---------------------------------------------------------------------

/// Wheel levels: 64 slots each, of 1 ms, 64 ms, 4.1 s and 262 s. Deadlines are at most
/// `MAX_WAIT` (120 s) away; the top level is a ring for anything further.
const LEVELS: usize = 4;
const SLOTS: usize = 64;
/// The list of waits already due (the slot after the last level's).
const PENDING: u32 = (LEVELS * SLOTS) as u32;
/// The list of waits registered since the timer thread's last round, with their deadline
/// kept as an instant: no tick is computed and no slot is chosen while they are registered;
/// the timer thread places the ones still waiting at its next round ([`Registry::place_fresh`]).
/// A wait answered before then — most are — never costs the wheel more than a link and an
/// unlink.
const FRESH: u32 = PENDING + 1;
/// Not in the wheel.
const NO_SLOT: u32 = u32::MAX;

/// The level a deadline `when` goes to, seen from `elapsed` (tokio's hierarchical wheel).
fn level_for(elapsed: u64, when: u64) -> usize {
    const MAX: u64 = (1 << (6 * LEVELS)) - 1;
    let mut masked = (elapsed ^ when) | (SLOTS as u64 - 1);
    if masked >= MAX {
        masked = MAX - 1;
    }
    let significant = 63usize.saturating_sub(masked.leading_zeros() as usize);
    (significant / 6).min(LEVELS - 1)
}

fn slot_range(level: usize) -> u64 {
    1u64 << (6 * level)
}

/// Deadlines of registered waits: a hierarchical timing wheel (O(1) to add, O(1) to
/// remove, amortised O(1) to expire), threaded through the entries' links.
struct Wheel {
    /// Every deadline up to here has been handed out.
    elapsed: u64,
    /// Heads of the slot lists, level by level, then the pending list.
    heads: [u32; LEVELS * SLOTS + 2],
    /// Which slots of each level hold something.
    occupied: [u64; LEVELS],
    /// Entries in the wheel (pending included).
    len: usize,
    /// Entries in the fresh list.
    fresh: usize,
}

impl Wheel {
    fn new() -> Self {
        Self {
            elapsed: 0,
            heads: [NIL; LEVELS * SLOTS + 2],
            occupied: [0; LEVELS],
            len: 0,
            fresh: 0,
        }
    }

    /// The earliest occupied slot: (level, slot, its deadline), seen from `elapsed`.
    fn next_expiration(&self) -> Option<(usize, usize, u64)> {
        let now = self.elapsed;
        for level in 0..LEVELS {
            let occupied = self.occupied.get(level).copied().unwrap_or(0);
            if occupied == 0 {
                continue;
            }
            let range = slot_range(level);
            let level_range = range << 6;
            let now_slot = now / range;
            let rotated = occupied.rotate_right((now_slot % SLOTS as u64) as u32);
            let slot = (u64::from(rotated.trailing_zeros()) + now_slot) % SLOTS as u64;
            let level_start = now & !(level_range - 1);
            let mut deadline = level_start.saturating_add(slot.saturating_mul(range));
            if deadline <= now {
                // Only the top level wraps: its slots are a ring.
                deadline = deadline.saturating_add(level_range);
            }
            return Some((level, slot as usize, deadline));
        }
        None
    }
}

/// All registered waiters. `P` is the job copy handed to a settled waiter.
pub(crate) struct Registry<P> {
    entries: Slab<Entry<P>>,
    links: Vec<Links>,
    /// Job waiters (not collected yet), by the job's table slot.
    slots: Vec<List>,
    /// Table watchers not settled yet.
    table: List,
    wheel: Wheel,
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
            links: Vec::new(),
            slots: vec![List::EMPTY; slots],
            table: List::EMPTY,
            wheel: Wheel::new(),
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

    fn list_of(watch: Watch) -> u32 {
        match watch {
            Watch::Job(id, _) => u32::from(id.index()),
            Watch::Table(_) => TABLE_LIST,
        }
    }

    fn list_mut(&mut self, list: u32) -> Option<&mut List> {
        match list {
            TABLE_LIST => Some(&mut self.table),
            NO_LIST => None,
            s => {
                let s = s as usize;
                if self.slots.len() <= s {
                    self.slots.resize(s.saturating_add(1), List::EMPTY);
                }
                self.slots.get_mut(s)
            }
        }
    }

    fn list(&self, list: u32) -> List {
        match list {
            TABLE_LIST => self.table,
            s => self.slots.get(s as usize).copied().unwrap_or(List::EMPTY),
        }
    }

    fn links(&self, key: usize) -> Links {
        self.links.get(key).copied().unwrap_or(Links::FREE)
    }

    fn links_mut(&mut self, key: usize) -> Option<&mut Links> {
        self.links.get_mut(key)
    }

    /// Append `key` to `list`. O(1).
    fn link(&mut self, key: usize, list_id: u32) {
        let k = key32(key);
        let Some(list) = self.list_mut(list_id) else {
            return;
        };
        let tail = list.tail;
        list.tail = k;
        if tail == NIL {
            list.head = k;
        }
        if let Some(t) = key_of(tail).and_then(|t| self.links_mut(t)) {
            t.next = k;
        }
        if let Some(l) = self.links_mut(key) {
            l.list = list_id;
            l.prev = tail;
            l.next = NIL;
        }
    }

    /// Take `key` out of its job or table list. O(1).
    fn unlink(&mut self, key: usize) {
        let Links {
            list, prev, next, ..
        } = self.links(key);
        if list == NO_LIST {
            return;
        }
        match key_of(prev).and_then(|p| self.links_mut(p)) {
            Some(p) => p.next = next,
            None => {
                if let Some(l) = self.list_mut(list) {
                    l.head = next;
                }
            }
        }
        match key_of(next).and_then(|n| self.links_mut(n)) {
            Some(n) => n.prev = prev,
            None => {
                if let Some(l) = self.list_mut(list) {
                    l.tail = prev;
                }
            }
        }
        if let Some(l) = self.links_mut(key) {
            l.list = NO_LIST;
            l.prev = NIL;
            l.next = NIL;
        }
    }

    /// Put `key` in wheel slot `slot` (a level's slot, or `PENDING`). O(1).
    fn wheel_link(&mut self, key: usize, slot: u32) {
        let k = key32(key);
        let Some(head) = self.wheel.heads.get_mut(slot as usize) else {
            return;
        };
        let old = std::mem::replace(head, k);
        if let Some(h) = key_of(old).and_then(|h| self.links_mut(h)) {
            h.tprev = k;
        }
        if let Some(l) = self.links_mut(key) {
            l.slot = slot;
            l.tprev = NIL;
            l.tnext = old;
        }
        if slot < PENDING {
            let (level, s) = (slot as usize / SLOTS, slot as usize % SLOTS);
            if let Some(o) = self.wheel.occupied.get_mut(level) {
                *o |= 1 << s;
            }
        } else if slot == FRESH {
            self.wheel.fresh = self.wheel.fresh.saturating_add(1);
        }
    }

    /// Take `key` out of the wheel. O(1).
    fn wheel_unlink(&mut self, key: usize) {
        let Links {
            slot, tprev, tnext, ..
        } = self.links(key);
        if slot == NO_SLOT {
            return;
        }
        match key_of(tprev).and_then(|p| self.links_mut(p)) {
            Some(p) => p.tnext = tnext,
            None => {
                if let Some(h) = self.wheel.heads.get_mut(slot as usize) {
                    *h = tnext;
                }
            }
        }
        if let Some(n) = key_of(tnext).and_then(|n| self.links_mut(n)) {
            n.tprev = tprev;
        }
        if slot < PENDING && self.wheel.heads.get(slot as usize) == Some(&NIL) {
            let (level, s) = (slot as usize / SLOTS, slot as usize % SLOTS);
            if let Some(o) = self.wheel.occupied.get_mut(level) {
                *o &= !(1 << s);
            }
        } else if slot == FRESH {
            self.wheel.fresh = self.wheel.fresh.saturating_sub(1);
        }
        if let Some(l) = self.links_mut(key) {
            l.slot = NO_SLOT;
            l.tprev = NIL;
            l.tnext = NIL;
        }
        self.wheel.len = self.wheel.len.saturating_sub(1);
    }

    /// Put `key`, due at `when`, where it belongs in the wheel.
    fn wheel_insert(&mut self, key: usize, when: u64) {
        if let Some(l) = self.links_mut(key) {
            l.when = when;
        }
        self.wheel.len = self.wheel.len.saturating_add(1);
        let elapsed = self.wheel.elapsed;
        if when <= elapsed {
            self.wheel_link(key, PENDING);
            return;
        }
        let level = level_for(elapsed, when);
        let slot = ((when >> (6 * level)) % SLOTS as u64) as usize;
        self.wheel_link(key, (level * SLOTS + slot) as u32);
    }

    /// Add a waiter, due at `deadline` (ms ticks of the engine's clock) if it has one;
    /// answers its key (valid until [`Registry::deregister`]). O(1).
    #[cfg(test)]
    pub(crate) fn register(&mut self, watch: Watch, wake: Wake, deadline: Option<u64>) -> usize {
        let key = self.insert(watch, wake, None);
        if let Some(when) = deadline {
            self.wheel_insert(key, when);
        }
        key
    }

    /// Add a waiter due at `at`, if it has a deadline: it goes to the wheel's fresh list,
    /// where the timer thread finds it ([`Registry::place_fresh`]). Answers its key (valid
    /// until [`Registry::deregister`]). O(1).
    pub(crate) fn register_at(
        &mut self,
        watch: Watch,
        wake: Wake,
        at: Option<StdInstant>,
    ) -> usize {
        let key = self.insert(watch, wake, at);
        if at.is_some() {
            self.wheel.len = self.wheel.len.saturating_add(1);
            self.wheel_link(key, FRESH);
        }
        key
    }

    /// How many waits are in the fresh list (registered since the timer thread's last round
    /// and still waiting).
    pub(crate) fn fresh_len(&self) -> usize {
        self.wheel.fresh
    }

    /// A new entry in its job's (or the table's) list, in no wheel list yet.
    fn insert(&mut self, watch: Watch, wake: Wake, at: Option<StdInstant>) -> usize {
        let key = self.entries.insert(Entry {
            watch,
            wake: Some(wake),
            status: Status::Waiting,
            at,
        });
        if self.links.len() <= key {
            self.links.resize(key.saturating_add(1), Links::FREE);
        }
        if let Some(l) = self.links_mut(key) {
            *l = Links::FREE;
        }
        self.link(key, Self::list_of(watch));
        key
    }

    /// Place up to `limit` waits of the fresh list in the wheel, their deadline turned into
    /// a tick by `tick_of`; answers whether more are left. The timer thread calls it before
    /// it expires what is due and plans its sleep: every deadline is in a slot then. A fresh
    /// wait never needs placing sooner: registering one earlier than the timer thread's
    /// planned wake-up wakes it (`Shared::arm`).
    pub(crate) fn place_fresh(
        &mut self,
        limit: usize,
        tick_of: impl Fn(StdInstant) -> u64,
    ) -> bool {
        let mut done = 0usize;
        while let Some(key) = self
            .wheel
            .heads
            .get(FRESH as usize)
            .copied()
            .and_then(key_of)
        {
            if done >= limit {
                return true;
            }
            self.wheel_unlink(key);
            // Only waits with a deadline are in the fresh list.
            if let Some(at) = self.entries.get_mut(key).and_then(|e| e.at.take()) {
                self.wheel_insert(key, tick_of(at));
            }
            done = done.saturating_add(1);
        }
        false
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

    /// Remove a waiter. After this, no notification reaches it. O(1).
    pub(crate) fn deregister(&mut self, key: usize) -> Removed<P> {
        self.unlink(key);
        self.wheel_unlink(key);
        match self.entries.try_remove(key) {
            Some(e) => Removed {
                found: match e.status {
                    Status::Waiting => Found::Waiting,
                    Status::Settled(r) => Found::Ready(r),
                    Status::TimedOut => Found::TimedOut,
                },
                wake: e.wake,
            },
            None => Removed {
                found: Found::Waiting,
                wake: None,
            },
        }
    }

    /// The earliest deadline in the wheel (ms ticks), if any.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        if self.wheel.heads.get(PENDING as usize) != Some(&NIL) {
            return Some(self.wheel.elapsed);
        }
        self.wheel.next_expiration().map(|(_, _, d)| d)
    }

    /// Settle as timed out (and wake) up to `limit` waits whose deadline is at or before
    /// `now` (ms ticks); answers whether more are due. Amortised O(1) a wait.
    pub(crate) fn expire_due(&mut self, now: u64, limit: usize, wl: &mut WakeList<'_>) -> bool {
        let mut done = 0usize;
        loop {
            while let Some(key) = self
                .wheel
                .heads
                .get(PENDING as usize)
                .copied()
                .and_then(key_of)
            {
                if done >= limit {
                    return true;
                }
                self.wheel_unlink(key);
                self.time_out(key, wl);
                done = done.saturating_add(1);
            }
            match self.wheel.next_expiration() {
                Some((level, slot, deadline)) if deadline <= now => {
                    self.wheel.elapsed = deadline;
                    self.cascade(level, slot);
                }
                _ => {
                    self.wheel.elapsed = self.wheel.elapsed.max(now);
                    return false;
                }
            }
        }
    }

    /// Empty one slot whose time has come: its entries move to the pending list, or down to
    /// the level where they now belong.
    fn cascade(&mut self, level: usize, slot: usize) {
        let index = level * SLOTS + slot;
        let Some(head) = self.wheel.heads.get_mut(index) else {
            return;
        };
        let mut at = std::mem::replace(head, NIL);
        if let Some(o) = self.wheel.occupied.get_mut(level) {
            *o &= !(1 << slot);
        }
        while let Some(key) = key_of(at) {
            let l = self.links(key);
            at = l.tnext;
            if let Some(m) = self.links_mut(key) {
                m.slot = NO_SLOT;
                m.tprev = NIL;
                m.tnext = NIL;
            }
            self.wheel.len = self.wheel.len.saturating_sub(1);
            self.wheel_insert(key, l.when);
        }
    }

    /// A wait's deadline passed: settle it as timed out and wake it, unless it is settled
    /// already.
    fn time_out(&mut self, key: usize, wl: &mut WakeList<'_>) {
        let waiting = self
            .entries
            .get(key)
            .is_some_and(|e| matches!(e.status, Status::Waiting));
        if !waiting {
            return;
        }
        self.unlink(key);
        if let Some(e) = self.entries.get_mut(key) {
            e.status = Status::TimedOut;
            if let Some(w) = e.wake.take() {
                wl.push(w);
            }
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
        let mut woken = 0usize;
        let mut at = self.list(u32::from(job.index())).head;
        while let Some(key) = key_of(at) {
            at = self.links(key).next;
            let Some(e) = self.entries.get_mut(key) else {
                break;
            };
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
            if waiting {
                // Settled: its deadline no longer matters.
                self.wheel_unlink(key);
            }
        }
        woken
    }

    /// The table moved to `revision`: settle and wake every table watcher that watched an
    /// older one.
    #[inline]
    pub(crate) fn notify_table(&mut self, revision: Revision, wl: &mut WakeList<'_>) -> usize {
        if self.table.head == NIL {
            return 0;
        }
        self.notify_watchers(revision, wl)
    }

    /// [`Registry::notify_table`] with watchers to look at.
    #[inline(never)]
    fn notify_watchers(&mut self, revision: Revision, wl: &mut WakeList<'_>) -> usize {
        let mut woken = 0usize;
        let mut at = self.table.head;
        while let Some(key) = key_of(at) {
            at = self.links(key).next;
            let Some(e) = self.entries.get_mut(key) else {
                break;
            };
            match e.watch {
                Watch::Table(after) if revision > after => {
                    e.status = Status::Settled(Ready::Table(revision));
                    if let Some(w) = e.wake.take() {
                        wl.push(w);
                        woken = woken.saturating_add(1);
                    }
                    self.unlink(key);
                    self.wheel_unlink(key);
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
            while let Some(k) = key_of(at) {
                if let Some(Watch::Job(id, _)) = self.entries.get(k).map(|e| e.watch) {
                    jobs.push(id);
                }
                at = self.links(k).next;
            }
        }
        jobs.sort_unstable();
        jobs.dedup();
        jobs
    }

    /// The entries of one list, head to tail, checking the back links (tests).
    #[cfg(test)]
    fn keys(&self, list: u32) -> Vec<usize> {
        let mut out = Vec::new();
        let mut at = self.list(list).head;
        let mut prev = NIL;
        while let Some(k) = key_of(at) {
            let l = self.links(k);
            assert_eq!(l.prev, prev, "back link of {k}");
            assert_eq!(l.list, list);
            out.push(k);
            prev = at;
            at = l.next;
        }
        assert_eq!(self.list(list).tail, prev, "tail");
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

    fn job() -> JobId {
        let mut t: JobTable<u8, 4> = JobTable::new(jobstate::Config::DEFAULT);
        let now = jobstate::Instant::from_ticks(0);
        t.submit(NewJob::new(1), now).ok().unwrap()
    }

    #[test]
    fn lists_stay_consistent_under_removal_anywhere() {
        let id = job();
        let mut r: Registry<u8> = Registry::new(4);
        let keys: Vec<usize> = (0..200)
            .map(|k| r.register(Watch::Job(id, Condition::Terminal), wake(), Some(k % 70)))
            .collect();
        let list = u32::from(id.index());
        assert_eq!(r.keys(list), keys);
        // Remove head, tail and middles in a scattered order.
        let mut left = keys.clone();
        let mut x = 7usize;
        while !left.is_empty() {
            x = (x * 31 + 17) % left.len().max(1);
            let k = left.remove(x % left.len());
            let _ = r.deregister(k);
            assert_eq!(r.keys(list), left);
            assert_eq!(r.wheel.len, left.len());
        }
        assert!(r.is_empty());
        assert_eq!(r.list(list).head, NIL);
        assert_eq!(r.wheel.occupied, [0; LEVELS]);
        assert_eq!(r.next_deadline(), None);
    }

    #[test]
    fn fresh_waits_are_placed_in_batches_and_time_out_at_their_deadline() {
        let id = job();
        let mut r: Registry<u8> = Registry::new(4);
        let base = StdInstant::now();
        // Deadline k ms after `base`; a third leave before the timer thread places them.
        let at = |k: u64| base + std::time::Duration::from_millis(k);
        let tick_of = |t: StdInstant| {
            let d = t.saturating_duration_since(base);
            let ms = d.as_millis() as u64;
            ms + u64::from(!d.subsec_nanos().is_multiple_of(1_000_000))
        };
        // Fewer under Miri: every step below checks every wait.
        let n: u64 = if cfg!(miri) { 60 } else { 300 };
        let keys: Vec<(u64, usize)> = (0..n)
            .map(|k| {
                let when = (k * 37) % 500 + 1;
                let key =
                    r.register_at(Watch::Job(id, Condition::Terminal), wake(), Some(at(when)));
                (when, key)
            })
            .collect();
        let untimed = r.register_at(Watch::Job(id, Condition::Terminal), wake(), None);
        assert_eq!(r.wheel.len as u64, n);
        let mut left = Vec::new();
        for (i, (when, key)) in keys.into_iter().enumerate() {
            if i % 3 == 0 {
                let _ = r.deregister(key);
            } else {
                left.push((when, key));
            }
        }
        assert_eq!(r.wheel.len, left.len());
        // Nothing is in a slot until placed; placing goes a batch at a time.
        assert_eq!(r.next_deadline(), None);
        let batch = (n / 2) as usize;
        assert!(r.place_fresh(batch, tick_of));
        assert!(!r.place_fresh(batch, tick_of));
        assert_eq!(r.wheel.len, left.len());
        let mut wl = WakeList::new();
        for now in 0..=500u64 {
            while r.expire_due(now, 64, &mut wl) {}
            for (when, key) in &left {
                assert_eq!(r.is_settled(*key), *when <= now, "due at {when}, now {now}");
            }
        }
        assert_eq!(r.wheel.len, 0);
        assert!(!r.is_settled(untimed));
        wl.wake_all();
    }

    /// Waits registered while the wheel's clock has moved on are placed right: one whose
    /// deadline already passed is due at the next round, the others at their own tick (in
    /// whatever level and part-way slot that falls), none early.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "5,000 ticks, each checking every wait: minutes under Miri"
    )]
    fn fresh_waits_placed_after_the_clock_moved_are_due_at_their_deadline() {
        let id = job();
        let mut r: Registry<u8> = Registry::new(4);
        let base = StdInstant::now();
        let at = |k: u64| base + std::time::Duration::from_millis(k);
        let tick_of = |t: StdInstant| t.saturating_duration_since(base).as_millis() as u64;
        let mut wl = WakeList::new();
        // The clock moves to 1,000 with nothing placed.
        for now in 0..=1_000u64 {
            while r.expire_due(now, 64, &mut wl) {}
        }
        let whens = [3u64, 999, 1_000, 1_001, 1_063, 1_064, 1_100, 4_100, 5_000];
        let keys: Vec<(u64, usize)> = whens
            .iter()
            .map(|&w| {
                let key = r.register_at(Watch::Job(id, Condition::Terminal), wake(), Some(at(w)));
                (w, key)
            })
            .collect();
        while r.place_fresh(4, tick_of) {}
        for now in 1_000..=5_000u64 {
            while r.expire_due(now, 64, &mut wl) {}
            for (when, key) in &keys {
                let due = (*when).max(1_000) <= now;
                assert_eq!(r.is_settled(*key), due, "deadline {when}, now {now}");
            }
        }
        assert_eq!(r.wheel.len, 0);
        wl.wake_all();
    }

    #[test]
    fn notify_settles_only_holding_waiters_and_keeps_lazy_ones_until_the_end() {
        let id = job();
        let mut r: Registry<u8> = Registry::new(4);
        let changed = r.register(
            Watch::Job(id, Condition::ChangedSince(Revision::ZERO)),
            wake(),
            None,
        );
        let end = r.register(Watch::Job(id, Condition::Terminal), wake(), None);
        let list = u32::from(id.index());
        let mut wl = WakeList::new();
        let live = JobNow::Live { terminal: false };
        let holds = |c| matches!(c, Condition::ChangedSince(_));
        let woken = r.notify_job(id, &live, holds, || Some(9), &mut wl);
        assert_eq!(woken, 1);
        assert_eq!(wl.len(), 1);
        assert!(r.is_settled(changed) && !r.is_settled(end));
        assert_eq!(
            r.keys(list),
            vec![changed, end],
            "the lazy answer stays listed"
        );
        let ended = JobNow::Live { terminal: true };
        let woken = r.notify_job(id, &ended, |_| true, || Some(9), &mut wl);
        assert_eq!(woken, 1, "only the terminal waiter is woken again");
        assert!(r.keys(list).is_empty());
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

    #[test]
    fn the_wheel_times_out_each_wait_at_its_deadline_never_before() {
        let id = job();
        let mut r: Registry<u8> = Registry::new(4);
        // Deadlines across every level, some equal, some already due.
        let mut x: u64 = 0x1234_5678;
        // Fewer under Miri: every step below checks every wait.
        let (n, stride) = if cfg!(miri) {
            (100, 9_973)
        } else {
            (3_000, 997)
        };
        let mut due: Vec<(u64, usize)> = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let when = match x % 4 {
                    0 => x % 64,
                    1 => x % 5_000,
                    2 => x % 300_000,
                    _ => x % 130_000 + 7,
                };
                let key = r.register(Watch::Job(id, Condition::Terminal), wake(), Some(when));
                (when, key)
            })
            .collect();
        due.sort();
        let mut now = 0u64;
        let mut expired = 0usize;
        let mut wl = WakeList::new();
        while expired < due.len() {
            // Time moves in uneven steps; at each, exactly the waits due by then are out.
            now += 1 + (x % stride);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            while r.expire_due(now, 100, &mut wl) {}
            let should = due.partition_point(|(w, _)| *w <= now);
            for (w, k) in &due[..should] {
                assert!(r.is_settled(*k), "a wait due at {w} was not out at {now}");
            }
            for (w, k) in &due[should..] {
                assert!(
                    !r.is_settled(*k),
                    "a wait due at {w} was out early at {now}"
                );
            }
            if let Some(next) = r.next_deadline() {
                let first = due.get(should).map(|(w, _)| *w);
                assert!(
                    first.is_some_and(|f| next <= f),
                    "next deadline {next} after {first:?}"
                );
            }
            expired = should;
            wl.wake_all();
        }
        assert_eq!(r.wheel.len, 0);
        assert_eq!(r.next_deadline(), None);
    }
}
