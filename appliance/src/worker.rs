//! The jobs' work: each change runs as a few simulated steps with a progress message each,
//! checking in between them, so pause, resume and cancel act within one step.
//!
//! The worker changes no configuration itself: the configuration follows the jobs'
//! outcomes ([`crate::model::Lb::reconcile`]), whoever ended them.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use jobstate::FailReason;
use jobstate_std::http::JobUuids;
use jobstate_std::{Canceled, Failure, JobContext, Success};
use tracing::{info, warn};

use crate::model::{unreachable, Jobs, Op};

type Ctx<'a> = JobContext<'a, Jobs>;

/// The message of a job interrupted by a shutdown.
pub const INTERRUPTED: &str = "interrupted: the appliance shut down";

/// The workers' view of a shutdown: `stop` wakes every step that sleeps and every held
/// worker, so the pool's shutdown is not kept waiting by a sleeping step.
#[derive(Debug, Default)]
pub struct Gate {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    /// A gate that is open (not stopping).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The hard stop: wake everything that sleeps.
    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }

    /// Sleep `d`, or less when the gate stops. Answers whether it stopped.
    pub fn sleep(&self, d: Duration) -> bool {
        let guard = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = self
            .cv
            .wait_timeout_while(guard, d, |stopped| !*stopped)
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }

    /// Whether the gate stopped.
    pub fn stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Block until the gate stops.
    pub fn wait(&self) {
        let guard = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        let _guard = self
            .cv
            .wait_while(guard, |stopped| !*stopped)
            .unwrap_or_else(|e| e.into_inner());
    }
}

/// Run `steps` with a progress message each, checking in between them.
fn steps(ctx: &mut Ctx<'_>, gate: &Gate, step: Duration, steps: &[&str]) -> Result<(), Failure> {
    for (k, what) in steps.iter().enumerate() {
        ctx.checkpoint()?;
        let done = u8::try_from(k * 100 / steps.len().max(1)).unwrap_or(100);
        ctx.progress(done, what)?;
        ctx.log(what)?;
        if gate.sleep(step) {
            return Err(Canceled::Shutdown.into());
        }
    }
    ctx.checkpoint()?;
    Ok(())
}

/// What a job does.
pub fn run(ctx: &mut Ctx<'_>, gate: &Gate, step: Duration) -> Result<Success, Failure> {
    let op = ctx.spec().clone();
    if gate.stopped() && op != Op::Hold {
        return Err(Canceled::Shutdown.into());
    }
    match op {
        Op::CreateSet { name, policy } => {
            let plan = [
                "validating policy",
                "allocating listener capacity",
                "programming data plane",
                "syncing health checks",
            ];
            steps(ctx, gate, step, &plan)?;
            Ok(Success::normal(format!(
                "backend set {name} ({}) created",
                policy.as_str()
            )))
        }
        Op::AddBackend { set, addr } => {
            let plan = [
                "resolving backend",
                "opening health check",
                "adding to rotation",
            ];
            steps(ctx, gate, step, &plan)?;
            if unreachable(addr.ip()) {
                return Err(Failure::new(
                    1001,
                    format!("health check of {addr} failed: unreachable"),
                ));
            }
            Ok(Success::normal(format!("backend {addr} added to {set}")))
        }
        Op::RemoveBackend { set, backend } => {
            steps(
                ctx,
                gate,
                step,
                &["draining connections", "removing from rotation"],
            )?;
            Ok(Success::normal(format!(
                "backend {backend} removed from {set}"
            )))
        }
        Op::DeleteSet { name } => {
            steps(
                ctx,
                gate,
                step,
                &["draining backends", "releasing listener capacity"],
            )?;
            Ok(Success::normal(format!("backend set {name} deleted")))
        }
        // The appliance runs barriers itself; one never reaches a worker unless restored
        // from before a restart, and then there is nothing left to wait for.
        Op::Barrier { .. } => Err(Failure::new(3, "a barrier outlived its appliance")),
        Op::Hold => {
            gate.wait();
            // The pool's own stop comes right after the gate's: keep this worker until it
            // has, so that it starts no queued job in between.
            while ctx.checkpoint().is_ok() {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(Success::normal("worker released at shutdown"))
        }
    }
}

/// The pool's handler: [`run`] with logs; a job the shutdown stopped fails as interrupted
/// with [`INTERRUPTED`].
pub fn handler(
    gate: Arc<Gate>,
    step: Duration,
    uuids: JobUuids,
) -> impl Fn(&mut Ctx<'_>) -> Result<Success, Failure> + Send + Sync + 'static {
    move |ctx| {
        let uuid = uuids.encode(ctx.id());
        let op = ctx.spec().clone();
        if op != Op::Hold {
            info!(job = %uuid, ?op, "job started");
        }
        let result = run(ctx, &gate, step);
        let result = result.map_err(|f| match f.reason {
            FailReason::Interrupted => Failure {
                message: INTERRUPTED.to_owned(),
                ..Failure::from(Canceled::Shutdown)
            },
            _ => f,
        });
        match &result {
            Ok(_) if op == Op::Hold => {}
            Ok(s) => info!(job = %uuid, message = %s.message, "job succeeded"),
            Err(f) => warn!(job = %uuid, code = f.code, message = %f.message, "job failed"),
        }
        result
    }
}
