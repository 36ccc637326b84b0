//! Memory per waiting future: what one pending `wait_async` costs, heap included. Prints the
//! figure quoted in docs/std-adapter.md; asserts only that registration is released on drop.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

use jobstate::{Condition, NewJob};
use jobstate_std::{Engine, EngineConfig, WaitFuture, DEFAULT_MAX_WAIT};

/// Counts live heap bytes of this test process.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::SeqCst);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::SeqCst);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::SeqCst);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Nop;
impl Wake for Nop {
    fn wake(self: Arc<Self>) {}
}

const FUTURES: usize = 10_000;
type Jobs = jobstate::JobTable<u32, 10_240>;

#[test]
fn memory_per_waiting_future() {
    let e: Engine<Jobs> = Engine::new(EngineConfig {
        timer_thread: false,
        ..EngineConfig::default()
    });
    let ids: Vec<_> = (0..FUTURES as u32)
        .map(|k| e.submit(NewJob::new(k)).unwrap())
        .collect();
    let waker = Waker::from(Arc::new(Nop));
    let mut cx = Context::from_waker(&waker);
    // Warm up the timer thread and the registry's first allocations.
    {
        let mut f = Box::pin(e.wait_async(ids[0], Condition::Terminal, DEFAULT_MAX_WAIT));
        assert!(f.as_mut().poll(&mut cx).is_pending());
    }
    let mut futures: Vec<WaitFuture<Jobs>> = Vec::with_capacity(FUTURES);
    let before = LIVE.load(Ordering::SeqCst);
    for &id in &ids {
        let mut f = e.wait_async(id, Condition::Terminal, DEFAULT_MAX_WAIT);
        assert!(std::pin::Pin::new(&mut f).poll(&mut cx).is_pending());
        futures.push(f);
    }
    let heap = (LIVE.load(Ordering::SeqCst) - before) as f64 / FUTURES as f64;
    let inline = std::mem::size_of::<WaitFuture<Jobs>>();
    assert_eq!(e.waiting(), FUTURES);
    println!(
        "memory per waiting future: {inline} B inline (the future) + {heap:.0} B heap \
         (registry entry and its list and timer-wheel links) = {:.0} B",
        inline as f64 + heap
    );
    drop(futures);
    assert_eq!(e.waiting(), 0);
}
