//! Real time for the core: the engine's monotonic clock and its wall-clock mapping.
//!
//! The core never reads a clock; every operation takes a `jobstate::Instant`. The engine
//! makes them from `std::time::Instant`: microseconds elapsed since the engine started, plus an
//! origin (0 for a new table; the restored table's newest instant for [`crate::Engine::from_table`],
//! so time inside a table never goes back). The wall clock is sampled once, at the same moment,
//! so a table instant converts to a `SystemTime` (RFC 3339 reporting) and back (timestamp-based
//! long-polls) with one addition.

use std::time::{Duration as StdDuration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use jobstate::Instant;

/// The mapping between table instants, the monotonic clock and the wall clock.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Clock {
    /// The monotonic instant that corresponds to `origin`.
    base: StdInstant,
    /// The wall-clock time that corresponds to `origin`.
    wall: SystemTime,
    /// The table instant at `base`, in microseconds.
    origin: u64,
}

impl Clock {
    /// A clock whose "now" is `origin` (a table instant) at this moment.
    pub(crate) fn starting_at(origin: Instant) -> Self {
        // The wall clock to the whole microsecond, so that every table instant maps to a whole
        // microsecond: printed with microseconds (RFC 3339), a time reads back as the very
        // instant it was made from.
        let wall = SystemTime::now();
        let wall = match wall.duration_since(UNIX_EPOCH) {
            Ok(d) => UNIX_EPOCH
                .checked_add(StdDuration::new(d.as_secs(), d.subsec_micros() * 1_000))
                .unwrap_or(wall),
            Err(_) => wall,
        };
        Self {
            base: StdInstant::now(),
            wall,
            origin: origin.as_micros(),
        }
    }

    /// The wall clock itself: table instants are microseconds since the Unix epoch. For
    /// stores shared by several processes (each reads the same instants the same way).
    pub fn unix() -> Self {
        let origin = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let mut clock = Self::starting_at(Instant::from_micros(origin));
        clock.wall = UNIX_EPOCH
            .checked_add(StdDuration::from_micros(origin))
            .unwrap_or(clock.wall);
        clock
    }

    /// The current table instant.
    pub fn now(&self) -> Instant {
        self.instant_of(StdInstant::now())
    }

    /// The table instant of a monotonic instant (saturating at the clock's start).
    pub fn instant_of(&self, at: StdInstant) -> Instant {
        let elapsed =
            u64::try_from(at.saturating_duration_since(self.base).as_micros()).unwrap_or(u64::MAX);
        Instant::from_micros(self.origin.saturating_add(elapsed))
    }

    /// The monotonic instant of a table instant (saturating at the clock's start).
    pub fn std_instant_of(&self, at: Instant) -> StdInstant {
        let micros = at.as_micros().saturating_sub(self.origin);
        self.base
            .checked_add(StdDuration::from_micros(micros))
            .unwrap_or(self.base)
    }

    /// Whole milliseconds from the clock's start to `at`, rounded up: the timer wheel's tick
    /// of a deadline (so that a wait never ends before its deadline).
    pub(crate) fn tick_ceil(&self, at: StdInstant) -> u64 {
        let d = at.saturating_duration_since(self.base);
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if d.subsec_nanos().is_multiple_of(1_000_000) {
            ms
        } else {
            ms.saturating_add(1)
        }
    }

    /// Whole milliseconds from the clock's start to `at`, rounded down: the tick that has
    /// fully passed at `at`.
    pub(crate) fn tick_floor(&self, at: StdInstant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    /// The monotonic instant of a tick.
    pub(crate) fn at_tick(&self, tick: u64) -> StdInstant {
        self.base
            .checked_add(StdDuration::from_millis(tick))
            .unwrap_or(self.base)
    }

    /// The wall-clock time of a table instant.
    pub fn to_system_time(&self, at: Instant) -> SystemTime {
        let at = at.as_micros();
        let shifted = if at >= self.origin {
            self.wall
                .checked_add(StdDuration::from_micros(at.saturating_sub(self.origin)))
        } else {
            self.wall
                .checked_sub(StdDuration::from_micros(self.origin.saturating_sub(at)))
        };
        shifted.unwrap_or(self.wall)
    }

    /// The table instant of a wall-clock time (saturating at 0 and at the end of time).
    pub fn to_instant(&self, at: SystemTime) -> Instant {
        let micros = match at.duration_since(self.wall) {
            Ok(after) => self
                .origin
                .saturating_add(u64::try_from(after.as_micros()).unwrap_or(u64::MAX)),
            Err(e) => self
                .origin
                .saturating_sub(u64::try_from(e.duration().as_micros()).unwrap_or(u64::MAX)),
        };
        Instant::from_micros(micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_round_trip() {
        let clock = Clock::starting_at(Instant::from_secs(100));
        let t = Instant::from_secs(130);
        assert_eq!(clock.to_instant(clock.to_system_time(t)), t);
        let before = Instant::from_secs(40);
        assert_eq!(clock.to_instant(clock.to_system_time(before)), before);
        assert_eq!(
            clock
                .to_system_time(t)
                .duration_since(clock.to_system_time(before))
                .ok(),
            Some(StdDuration::from_secs(90))
        );
        assert!(clock.now() >= Instant::from_secs(100));
        // Every instant maps to a whole microsecond of the wall clock.
        let at = clock.to_system_time(Instant::from_millis(123_456));
        assert_eq!(
            at.duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos() % 1_000)
                .ok(),
            Some(0)
        );
    }
}
