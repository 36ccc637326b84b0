//! Dependencies (R-DEPS): edges from a job to the jobs it depends on, from a pool of `E`
//! shared by the table, and the two ways a dependency's end reaches its dependents — release
//! (it succeeded) and the cascade (it failed).
//!
//! A job's own edges form a singly linked list in submit order (its `depends_on`); the edges
//! pointing at a job form its doubly linked *dependents* list, so a dependent that ends early
//! leaves it in O(1). The cascade needs no stack: every job it fails is appended to the
//! retained list, so walking that list from the failed job onward visits them all, breadth
//! first.

use super::lists::{index, link, List};
use super::Core;
use crate::id::JobId;
use crate::record::{flag, Detail, Edge, Phase, NIL};
use crate::state::{FailReason, Outcome};

impl<S> Core<'_, S> {
    pub(crate) fn edge_mut(&mut self, e: u16) -> Option<&mut Edge> {
        self.edges.get_mut(usize::from(index(e)?))
    }

    pub(crate) fn edge(&self, e: u16) -> Option<&Edge> {
        self.edges.get(usize::from(index(e)?))
    }

    /// Free edges left in the pool.
    pub(crate) fn edges_free(&self) -> usize {
        self.edges
            .len()
            .saturating_sub(usize::from(self.h.edges_used))
    }

    fn alloc_edge(&mut self) -> Option<u16> {
        let e = if self.h.edge_free != NIL {
            let e = self.h.edge_free;
            self.h.edge_free = self.edge(e)?.next_own;
            e
        } else if usize::from(self.h.edge_fresh) < self.edges.len() {
            self.h.edge_fresh = self.h.edge_fresh.saturating_add(1);
            self.h.edge_fresh
        } else {
            return None;
        };
        self.h.edges_used = self.h.edges_used.saturating_add(1);
        Some(e)
    }

    /// Give the edges of slot `i` (its own dependencies) back to the pool. They must already
    /// be off their targets' dependents lists.
    pub(crate) fn free_edges(&mut self, i: u16) {
        let Some(mut e) = self.slot(i).map(|s| s.deps) else {
            return;
        };
        if let Some(s) = self.slot_mut(i) {
            s.deps = NIL;
        }
        while let Some(edge) = self.edge(e).copied() {
            let head = self.h.edge_free;
            if let Some(x) = self.edge_mut(e) {
                *x = Edge::EMPTY;
                x.next_own = head;
            }
            self.h.edge_free = e;
            self.h.edges_used = self.h.edges_used.saturating_sub(1);
            e = edge.next_own;
        }
    }

    /// Give slot `i` edges to `deps`, in order, not yet on their targets' lists. The caller
    /// checked there is room.
    pub(crate) fn store_edges(&mut self, i: u16, deps: &[JobId]) {
        let mut tail = NIL;
        for dep in deps {
            let Some(e) = self.alloc_edge() else { return };
            if let Some(x) = self.edge_mut(e) {
                *x = Edge {
                    target: *dep,
                    owner: link(i),
                    next_own: NIL,
                    prev_dep: Edge::UNLINKED,
                    next_dep: NIL,
                };
            }
            match self.edge_mut(tail) {
                Some(t) => t.next_own = e,
                None => {
                    if let Some(s) = self.slot_mut(i) {
                        s.deps = e;
                    }
                }
            }
            tail = e;
        }
    }

    /// Put edge `e` at the head of slot `t`'s dependents list.
    pub(crate) fn link_edge(&mut self, e: u16, t: u16) {
        let head = self.slot(t).map_or(NIL, |s| s.dependents);
        if let Some(x) = self.edge_mut(e) {
            x.prev_dep = NIL;
            x.next_dep = head;
        }
        if let Some(h) = self.edge_mut(head) {
            h.prev_dep = e;
        }
        if let Some(s) = self.slot_mut(t) {
            s.dependents = e;
        }
    }

    /// Give slot `i` edges to `deps` (in order), linking each into the dependents list of its
    /// live target, and count those not yet succeeded. The caller checked there is room and
    /// every dependency is live or terminal.
    pub(crate) fn link_dependencies(&mut self, i: u16, deps: &[JobId]) {
        self.store_edges(i, deps);
        let mut unmet: u8 = 0;
        let mut e = self.slot(i).map_or(NIL, |s| s.deps);
        while let Some(edge) = self.edge(e).copied() {
            let target = self
                .locate(edge.target)
                .ok()
                .filter(|t| self.slot(*t).is_some_and(|s| s.phase.is_live()));
            if let Some(t) = target {
                self.link_edge(e, t);
                unmet = unmet.saturating_add(1);
            }
            e = edge.next_own;
        }
        if let Some(s) = self.slot_mut(i) {
            s.unmet = unmet;
        }
    }

    /// Take edge `e` off its target's dependents list.
    pub(crate) fn unlink_edge(&mut self, e: u16) {
        let Some(edge) = self.edge(e).copied() else {
            return;
        };
        if edge.prev_dep == Edge::UNLINKED {
            return;
        }
        match self.edge_mut(edge.prev_dep) {
            Some(p) => p.next_dep = edge.next_dep,
            None => {
                // Head of the list: the target is live and sits at its id's index.
                let target = edge.target.index();
                if let Some(t) = self.slot_mut(target) {
                    if t.dependents == e {
                        t.dependents = edge.next_dep;
                    }
                }
            }
        }
        if let Some(n) = self.edge_mut(edge.next_dep) {
            n.prev_dep = edge.prev_dep;
        }
        if let Some(x) = self.edge_mut(e) {
            x.prev_dep = Edge::UNLINKED;
            x.next_dep = NIL;
        }
    }

    /// Slot `i` ended: its own edges leave their targets' dependents lists (they stay owned,
    /// so its `depends_on` still reads back, until the job is removed).
    pub(crate) fn unlink_own_edges(&mut self, i: u16) {
        let mut e = self.slot(i).map_or(NIL, |s| s.deps);
        while let Some(next) = self.edge(e).map(|x| x.next_own) {
            self.unlink_edge(e);
            e = next;
        }
    }

    /// Slot `i` succeeded: each dependent has one dependency fewer to wait for.
    ///
    /// Dependents are listed newest first; each one released goes in front of those this call
    /// released before it, so jobs that become runnable together queue oldest first (R-SCHED).
    pub(crate) fn release_dependents(&mut self, i: u16) {
        let anchors = self.h.runnable.map(|l| l.tail);
        loop {
            let e = match self.slot(i) {
                Some(s) if s.dependents != NIL => s.dependents,
                _ => return,
            };
            self.unlink_edge(e);
            let Some(d) = self.edge(e).and_then(|x| index(x.owner)) else {
                return;
            };
            let Some(slot) = self.slot_mut(d) else { return };
            slot.unmet = slot.unmet.saturating_sub(1);
            if slot.unmet == 0 && slot.phase == Phase::Queued && !slot.has(flag::RUNNABLE) {
                slot.set(flag::RUNNABLE, true);
                let level = slot.level();
                let anchor = anchors.get(usize::from(level)).map_or(NIL, |a| *a);
                self.insert_after(List::Runnable(level), anchor, d);
            }
        }
    }

    /// The position + 1 of edge `e` in slot `i`'s own list.
    fn position(&self, i: u16, e: u16) -> u8 {
        let mut k: u8 = 0;
        let mut x = self.slot(i).map_or(NIL, |s| s.deps);
        while let Some(edge) = self.edge(x) {
            k = k.saturating_add(1);
            if x == e {
                return k;
            }
            x = edge.next_own;
        }
        0
    }

    /// `root` failed: fail its dependents with `DependencyFailed`, transitively (see the
    /// module docs for why no stack is needed).
    pub(crate) fn cascade(&mut self, root: u16) {
        let mut x = Some(root);
        while let Some(failed) = x {
            loop {
                let e = match self.slot(failed) {
                    Some(s) if s.dependents != NIL => s.dependents,
                    _ => break,
                };
                let Some(d) = self.edge(e).and_then(|x| index(x.owner)) else {
                    self.unlink_edge(e);
                    continue;
                };
                let cause = self.position(d, e);
                let outcome = Outcome::Failed {
                    reason: FailReason::DependencyFailed,
                    code: FailReason::DependencyFailed.default_code(),
                };
                // Ending `d` unlinks all of its edges, `e` among them.
                self.end(d, outcome, Some(Detail::Dependency(JobId::default())), None);
                if let Some(s) = self.slot_mut(d) {
                    s.set_failed_dep(cause);
                }
                self.unlink_edge(e);
            }
            x = self.slot(failed).and_then(|s| index(s.next));
        }
    }
}
