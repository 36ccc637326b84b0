//! Thread-start failures are errors the caller sees: `Engine::try_new` and
//! `WorkerPool::start` answer `StartError` when the operating system refuses a thread, and
//! `Engine::new` panics with the same message.
//!
//! The refusal is real: the test re-runs its own binary as a child process (so the limit
//! touches no other test), which takes an unused user id (as root, `RLIMIT_NPROC` is not
//! enforced) and lowers its `RLIMIT_NPROC` to the number of threads it has.
#![cfg(all(target_os = "linux", not(loom)))]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::time::Duration;

use jobstate::{Condition, NewJob, State};
use jobstate_std::{Engine, EngineConfig, Success, WorkerPool};

const CHILD: &str = "JOBSTATE_START_ERRORS_CHILD";
const TEST: &str = "thread_start_failures_are_errors_under_a_low_rlimit_nproc";
/// A user id with no other process on the machine, so the limit counts only ours.
const LONELY_UID: libc::uid_t = 54_321;

type Small = jobstate::JobTable<u32, 8>;
/// Over 64 KiB: built on a helper thread.
type Big = jobstate::JobTable<u32, 1024>;

#[test]
fn thread_start_failures_are_errors_under_a_low_rlimit_nproc() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("child: every check passed"),
        "the child did not run its checks:\n{stdout}\n{stderr}"
    );
}

/// The number of threads of this process.
fn threads() -> libc::rlim_t {
    let n = std::fs::read_dir("/proc/self/task").unwrap().count();
    libc::rlim_t::try_from(n).unwrap()
}

fn set_nproc(soft: libc::rlim_t, hard: libc::rlim_t) {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: plain system call on a valid struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &lim) }, 0);
}

fn nproc() -> libc::rlimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system call on a valid struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut lim) }, 0);
    lim
}

fn child() {
    // SAFETY: plain system calls; glibc applies set*id to every thread of the process.
    unsafe {
        if libc::geteuid() == 0 {
            assert_eq!(libc::setgroups(0, std::ptr::null()), 0, "setgroups");
            assert_eq!(libc::setgid(LONELY_UID), 0, "setgid");
            assert_eq!(libc::setuid(LONELY_UID), 0, "setuid");
        }
    }
    let hard = nproc().rlim_max;
    let config = EngineConfig::default();
    // Made while threads can still start: the pool checks below use it.
    let engine: Engine<Small> = Engine::try_new(config).expect("an engine before the limit");
    let queued = engine.submit(NewJob::new(7)).unwrap();

    // No thread more: every start fails.
    set_nproc(threads(), hard);
    let err = Engine::<Small>::try_new(config).unwrap_err();
    assert_eq!(err.thread(), "timer thread");
    assert_eq!(
        err.io_error().kind(),
        std::io::ErrorKind::WouldBlock,
        "{err}"
    );
    let msg = catch_unwind(AssertUnwindSafe(|| Engine::<Small>::new(config)))
        .map(|_| String::new())
        .unwrap_err();
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("could not start the timer thread"), "{msg}");
    let err = Engine::<Big>::try_new(config).unwrap_err();
    assert_eq!(err.thread(), "table builder thread");
    let err = WorkerPool::start(engine.clone(), 3, |_| Ok(Success::normal("ran"))).unwrap_err();
    assert_eq!(err.thread(), "worker thread");
    // Converts to an io::Error for `?` in a main returning io::Result.
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::WouldBlock);

    // Room for exactly one more thread: the pool's first worker starts, the second cannot;
    // the first is stopped and joined again, and no job was taken.
    set_nproc(threads() + 1, hard);
    let err = WorkerPool::start(engine.clone(), 3, |_| Ok(Success::normal("ran"))).unwrap_err();
    assert_eq!(err.thread(), "worker thread");
    assert_eq!(engine.get(queued).unwrap().state(), State::Queued);
    assert_eq!(engine.waiting(), 0);

    // Threads can start again: the same calls work.
    set_nproc(hard, hard);
    let pool = WorkerPool::start(engine.clone(), 2, |_| Ok(Success::normal("ran"))).unwrap();
    let done = engine
        .wait(queued, Condition::Terminal, Duration::from_secs(30))
        .unwrap();
    assert_eq!(done.job.state(), State::Succeeded);
    pool.shutdown();
    let again: Engine<Small> = Engine::try_new(config).unwrap();
    drop(again);
    println!("child: every check passed");
}
