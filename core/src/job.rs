//! The job: what a caller submits ([`NewJob`]) and what it reads back ([`Job`]).

use crate::time::Duration;

/// The most dependencies one job may have (R-DEPS). The table's edge pool (`E`) bounds how
/// many all jobs together hold.
pub const MAX_DEPENDENCIES: usize = 8;

/// Per-job rules, chosen at submit time.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct JobOptions {
    /// A pause request is accepted (default `true`); otherwise it is refused with
    /// [`crate::JobError::NotPausable`].
    pub pausable: bool,
    /// A cancel request is accepted (default `true`); otherwise it is refused with
    /// [`crate::JobError::NotCancelable`].
    pub cancelable: bool,
    /// After a restart a job that was running goes back to `Queued` instead of failing with
    /// `Interrupted` (default `false`).
    pub restartable: bool,
    /// The job fails with `TimedOut` when it is still running or paused this long after it
    /// first started (R-DEADLINE). Kept to the millisecond (rounded up).
    #[cfg_attr(feature = "serde", serde(with = "crate::time::serde_ms::option"))]
    pub run_timeout: Option<Duration>,
    /// Heartbeat lease: a running job whose worker has not called
    /// [`crate::JobTable::heartbeat`] (or another worker-side update) for this long fails with
    /// `TimedOut`, so a job never stays running after its worker died (R-DEADLINE). Kept to the
    /// millisecond (rounded up).
    #[cfg_attr(feature = "serde", serde(with = "crate::time::serde_ms::option"))]
    pub lease: Option<Duration>,
}

impl Default for JobOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl JobOptions {
    /// The longest run timeout or lease the table keeps: `u32::MAX` milliseconds (49.7 days).
    /// Longer ones are refused with [`crate::SubmitError::DurationTooLong`].
    pub const MAX_DURATION: Duration = Duration::from_millis(u32::MAX as u64);

    /// Pausable, cancelable, not restartable, no deadline, no lease.
    pub const DEFAULT: JobOptions = JobOptions {
        pausable: true,
        cancelable: true,
        restartable: false,
        run_timeout: None,
        lease: None,
    };
}

/// A job to submit: the caller's spec plus description, dependencies and options.
///
/// ```
/// use jobstate::{JobOptions, NewJob};
/// let job = NewJob::new("create backend set")
///     .description("create backend set bs1")
///     .options(JobOptions { pausable: false, ..JobOptions::DEFAULT });
/// # let _ = job;
/// ```
#[derive(Clone, Debug)]
pub struct NewJob<'a, S> {
    pub(crate) spec: S,
    pub(crate) description: &'a str,
    pub(crate) depends_on: &'a [crate::JobId],
    pub(crate) options: JobOptions,
    pub(crate) priority: crate::Priority,
    #[cfg(feature = "retry")]
    pub(crate) retry: Option<crate::RetryPolicy>,
}

impl<'a, S> NewJob<'a, S> {
    /// A job with this spec, no description, no dependencies, default options.
    pub const fn new(spec: S) -> Self {
        Self {
            spec,
            description: "",
            depends_on: &[],
            options: JobOptions::DEFAULT,
            priority: crate::Priority::Normal,
            #[cfg(feature = "retry")]
            retry: None,
        }
    }

    /// Its priority level (R-PRIORITY; default [`crate::Priority::Normal`]).
    pub const fn priority(mut self, priority: crate::Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Its retry policy (R-RETRY; feature `retry`; default: no retries).
    #[cfg(feature = "retry")]
    pub const fn retry(mut self, policy: crate::RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// The spec.
    pub fn spec(&self) -> &S {
        &self.spec
    }

    /// A human-readable description (must fit the table's text capacity).
    pub const fn description(mut self, description: &'a str) -> Self {
        self.description = description;
        self
    }

    /// Jobs that must succeed before this one may start (R-DEPS).
    pub const fn depends_on(mut self, ids: &'a [crate::JobId]) -> Self {
        self.depends_on = ids;
        self
    }

    /// Per-job rules.
    pub const fn options(mut self, options: JobOptions) -> Self {
        self.options = options;
        self
    }
}
