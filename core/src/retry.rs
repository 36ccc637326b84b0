//! Retries with backoff (R-RETRY) and priorities (R-PRIORITY): the policy types and the
//! backoff arithmetic. The table applies them (`table/lifecycle.rs`, `table/timers.rs`).
//!
//! Retries are a compile-time choice (feature `retry`): the policy and the attempt count add 16
//! bytes to every slot record (64 → 80). Priorities cost nothing: two bits of the record.

#[cfg(feature = "retry")]
use crate::time::Duration;

/// How urgent a job is (R-PRIORITY). Runnable jobs start highest level first, oldest first
/// within a level, in O(1) (a FIFO per level). The order is strict: a lower level starts only
/// when no higher level has a runnable job — under a steady stream of urgent work a low job
/// waits (no aging); give such work the same level, or start it explicitly with
/// [`crate::JobTable::start`].
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Priority {
    /// Background work.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Ahead of normal work.
    High,
    /// Ahead of everything.
    Urgent,
}

impl Priority {
    /// Number of levels.
    pub const LEVELS: usize = 4;

    /// The level, 0 (low) to 3 (urgent).
    pub const fn level(self) -> u8 {
        match self {
            Priority::Low => 0,
            Priority::Normal => 1,
            Priority::High => 2,
            Priority::Urgent => 3,
        }
    }

    /// The priority of a level (only the two low bits count).
    pub const fn of_level(level: u8) -> Self {
        match level & 3 {
            0 => Priority::Low,
            1 => Priority::Normal,
            2 => Priority::High,
            _ => Priority::Urgent,
        }
    }

    /// Lower-case name (`low`, `normal`, `high`, `urgent`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

/// A job's retry policy (R-RETRY, feature `retry`).
///
/// A retryable failure — the worker's [`crate::JobTable::fail`], or its heartbeat lease running
/// out — sends the job back to `Queued` while attempts remain; it may start again no earlier
/// than `now + backoff`, where the backoff of the `n`-th retry is
/// `min(ceiling, first_backoff × multiplierⁿ⁻¹)`, less a jitter of up to `jitter_percent` of it
/// drawn from `seed` and `n` (the core reads no random source: the same seed gives the same
/// jitter). The deadline ([`crate::JobOptions::run_timeout`]) spans all attempts; a cancel
/// during the backoff fails the job `Canceled`; dependents wait across attempts and fail only on
/// the final failure. [`crate::JobTable::fail_final`] fails without retrying.
#[cfg(feature = "retry")]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: no retry).
    pub max_attempts: u8,
    /// Backoff before the first retry. Kept to the millisecond, at most 49.7 days.
    #[cfg_attr(feature = "serde", serde(with = "crate::time::serde_ms"))]
    pub first_backoff: Duration,
    /// Each retry's backoff is this many times the previous one (at least 1).
    pub multiplier: u8,
    /// The longest backoff. Kept to the millisecond, at most 49.7 days.
    #[cfg_attr(feature = "serde", serde(with = "crate::time::serde_ms"))]
    pub ceiling: Duration,
    /// Up to this share (0–100 %) of a backoff is taken off, by a hash of `seed` and the
    /// attempt, so that jobs failing together do not retry together.
    pub jitter_percent: u8,
    /// The jitter's seed, the caller's.
    pub seed: u32,
}

#[cfg(feature = "retry")]
impl RetryPolicy {
    /// No retries.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        first_backoff: Duration::from_ticks(0),
        multiplier: 1,
        ceiling: Duration::from_ticks(0),
        jitter_percent: 0,
        seed: 0,
    };

    /// Up to `max_attempts` attempts, backoff doubling from `first` up to `ceiling`, no jitter.
    pub const fn exponential(max_attempts: u8, first: Duration, ceiling: Duration) -> Self {
        RetryPolicy {
            max_attempts,
            first_backoff: first,
            multiplier: 2,
            ceiling,
            jitter_percent: 0,
            seed: 0,
        }
    }

    /// The same policy with jitter.
    pub const fn with_jitter(mut self, percent: u8, seed: u32) -> Self {
        self.jitter_percent = percent;
        self.seed = seed;
        self
    }
}

/// A retry policy as a slot keeps it: 16 bytes.
#[cfg(feature = "retry")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RetryState {
    pub(crate) max_attempts: u8,
    pub(crate) multiplier: u8,
    pub(crate) jitter_percent: u8,
    /// Failures so far that were retried (the running attempt is `retries + 1`).
    pub(crate) retries: u8,
    pub(crate) first_ms: u32,
    pub(crate) ceiling_ms: u32,
    pub(crate) seed: u32,
}

#[cfg(feature = "retry")]
impl RetryState {
    pub(crate) const EMPTY: RetryState = RetryState {
        max_attempts: 0,
        multiplier: 0,
        jitter_percent: 0,
        retries: 0,
        first_ms: 0,
        ceiling_ms: 0,
        seed: 0,
    };

    /// The stored form, or `None` when a duration is over 49.7 days or a field out of range.
    pub(crate) fn of(p: &RetryPolicy) -> Option<Self> {
        if p.max_attempts == 0 || p.multiplier == 0 || p.jitter_percent > 100 {
            return None;
        }
        Some(RetryState {
            max_attempts: p.max_attempts,
            multiplier: p.multiplier,
            jitter_percent: p.jitter_percent,
            retries: 0,
            first_ms: u32::try_from(p.first_backoff.as_millis()).ok()?,
            ceiling_ms: u32::try_from(p.ceiling.as_millis()).ok()?,
            seed: p.seed,
        })
    }

    pub(crate) fn policy(&self) -> RetryPolicy {
        if self.max_attempts == 0 {
            return RetryPolicy::NONE;
        }
        RetryPolicy {
            max_attempts: self.max_attempts,
            first_backoff: Duration::from_millis(u64::from(self.first_ms)),
            multiplier: self.multiplier,
            ceiling: Duration::from_millis(u64::from(self.ceiling_ms)),
            jitter_percent: self.jitter_percent,
            seed: self.seed,
        }
    }

    /// Another attempt is allowed after the current one failed.
    pub(crate) fn can_retry(&self) -> bool {
        u16::from(self.retries).saturating_add(1) < u16::from(self.max_attempts)
    }

    /// The backoff in ms before retry number `n` (1-based).
    pub(crate) fn backoff_ms(&self, n: u8) -> u64 {
        let mut b = u64::from(self.first_ms);
        for _ in 1..n {
            b = b.saturating_mul(u64::from(self.multiplier));
            if b >= u64::from(self.ceiling_ms) {
                break;
            }
        }
        let b = b.min(u64::from(self.ceiling_ms.max(self.first_ms)));
        let span = b
            .saturating_mul(u64::from(self.jitter_percent))
            .checked_div(100)
            .unwrap_or(0);
        let jitter = u64::from(mix(self.seed ^ u32::from(n).wrapping_mul(0x9E37_79B9)))
            .checked_rem(span.saturating_add(1))
            .unwrap_or(0);
        b.saturating_sub(jitter)
    }
}

/// A 32-bit integer hash (lowbias32): deterministic jitter from the caller's seed.
#[cfg(feature = "retry")]
fn mix(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

#[cfg(all(test, feature = "retry"))]
#[allow(
    clippy::unwrap_used,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]
mod tests {
    use super::{RetryPolicy, RetryState};
    use crate::time::Duration;

    #[test]
    fn backoff_grows_to_the_ceiling_and_jitter_stays_within_its_share() {
        let p = RetryPolicy::exponential(10, Duration::from_millis(100), Duration::from_secs(1));
        let s = RetryState::of(&p).unwrap();
        let got: [u64; 6] = core::array::from_fn(|k| s.backoff_ms(k as u8 + 1));
        assert_eq!(got, [100, 200, 400, 800, 1000, 1000]);
        let j = RetryState::of(&p.with_jitter(50, 7)).unwrap();
        for n in 1..10 {
            let b = j.backoff_ms(n);
            assert!(b <= s.backoff_ms(n) && b >= s.backoff_ms(n) / 2, "{n}: {b}");
            assert_eq!(b, j.backoff_ms(n), "deterministic");
        }
    }
}
