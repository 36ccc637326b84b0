//! The time types and their serde form.
//!
//! The core uses `embassy_time::Instant` and `Duration` as plain values and never reads a clock:
//! every operation takes `now`. A firmware passes `Instant::now()`; a host test passes whatever
//! instant its scenario needs; a service converts its own clock (see `jobstate-std`).

pub use embassy_time::{Duration, Instant};

/// Serde form of `Instant` / `Duration` / their options: whole milliseconds as `u64`, so images
/// and serde output do not depend on the `embassy-time` tick rate of the program that wrote them.
#[cfg(feature = "serde")]
pub(crate) mod serde_ms {
    use super::{Duration, Instant};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) trait Millis: Sized {
        fn to_ms(&self) -> u64;
        fn from_ms(ms: u64) -> Self;
    }
    impl Millis for Instant {
        fn to_ms(&self) -> u64 {
            self.as_millis()
        }
        fn from_ms(ms: u64) -> Self {
            super::instant_of_ms(ms)
        }
    }
    impl Millis for Duration {
        fn to_ms(&self) -> u64 {
            self.as_millis()
        }
        fn from_ms(ms: u64) -> Self {
            Duration::from_millis(ms)
        }
    }

    pub(crate) fn serialize<T: Millis, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.to_ms())
    }
    pub(crate) fn deserialize<'de, T: Millis, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        u64::deserialize(d).map(T::from_ms)
    }

    pub(crate) mod option {
        use super::Millis;
        use serde::{Deserialize, Deserializer, Serializer};
        pub(crate) fn serialize<T: Millis, S: Serializer>(
            v: &Option<T>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => s.serialize_some(&v.to_ms()),
                None => s.serialize_none(),
            }
        }
        pub(crate) fn deserialize<'de, T: Millis, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<T>, D::Error> {
            Option::<u64>::deserialize(d).map(|o| o.map(T::from_ms))
        }
    }
}

/// The instant `ms` milliseconds after time zero, saturating at the end of time.
pub(crate) fn instant_of_ms(ms: u64) -> Instant {
    Instant::try_from_millis(ms).unwrap_or(Instant::MAX)
}

/// `at + d`, saturating at the end of time instead of overflowing.
pub(crate) fn add(at: Instant, d: Duration) -> Instant {
    Instant::from_ticks(at.as_ticks().saturating_add(d.as_ticks()))
}

/// An instant in whole milliseconds since time zero, in 6 bytes (48 bits: 8 900 years), with
/// the top value meaning "none". This is how the table stores every instant of a job: compact,
/// and independent of the tick rate (R-PERSIST images read the same on any time driver).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Ms([u16; 3]);

impl Ms {
    /// The largest value, kept for "no instant".
    const NONE_MS: u64 = (1 << 48) - 1;
    /// Time zero.
    pub(crate) const ZERO: Ms = Ms([0; 3]);
    /// No instant.
    pub(crate) const NONE: Ms = Ms([u16::MAX; 3]);

    /// Raw milliseconds, clamped to the 48-bit range (the top value stays "none").
    pub(crate) const fn from_ms(ms: u64) -> Self {
        let ms = if ms > Self::NONE_MS {
            Self::NONE_MS
        } else {
            ms
        };
        Ms([(ms >> 32) as u16, (ms >> 16) as u16, ms as u16])
    }

    /// The millisecond count (`Ms::NONE` reads as 2^48 - 1).
    pub(crate) const fn ms(self) -> u64 {
        let [a, b, c] = self.0;
        ((a as u64) << 32) | ((b as u64) << 16) | (c as u64)
    }

    /// The stamp of `at`, truncated to the millisecond. The one instant it cannot hold, 2^48 - 1
    /// ms, is stored one millisecond earlier so that a set stamp never reads as none.
    pub(crate) fn at(at: Instant) -> Self {
        Self::from_ms(at.as_millis().min(Self::NONE_MS.saturating_sub(1)))
    }

    /// The instant, if any.
    pub(crate) fn get(self) -> Option<Instant> {
        if self.is_none() {
            None
        } else {
            Some(instant_of_ms(self.ms()))
        }
    }

    /// The instant of a stamp that is always set (created, modified).
    pub(crate) fn instant(self) -> Instant {
        instant_of_ms(self.ms())
    }

    /// `true` for [`Ms::NONE`].
    pub(crate) const fn is_none(self) -> bool {
        self.ms() == Self::NONE_MS
    }
}

impl core::fmt::Debug for Ms {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&self.get().map(|t| t.as_millis()), f)
    }
}

/// A duration kept in 4 bytes: whole milliseconds (rounded up, at least 1), 0 meaning none. At
/// most `u32::MAX` ms (49.7 days).
pub(crate) fn duration_ms(d: Option<Duration>) -> Option<u32> {
    match d {
        None => Some(0),
        Some(d) => {
            // Rounded up without a run-time 64-bit division where the tick rate is a multiple
            // of 1 kHz (embassy-time reduces the conversion to constants).
            let ms = d.as_millis();
            let ms = if Duration::from_millis(ms) < d {
                ms.saturating_add(1)
            } else {
                ms
            };
            u32::try_from(ms.max(1)).ok()
        }
    }
}

/// The duration of a stored millisecond count (0 = none).
pub(crate) fn duration_of_ms(ms: u32) -> Option<Duration> {
    (ms != 0).then(|| Duration::from_millis(u64::from(ms)))
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::{duration_ms, Duration, Instant, Ms};

    #[test]
    fn stamps_read_back_to_the_millisecond() {
        assert_eq!(Ms::NONE.get(), None);
        assert_eq!(Ms::default().get(), Some(Instant::from_ticks(0)));
        for ms in [0, 1, 1_000, 1 << 40, (1 << 48) - 3] {
            let at = Instant::from_millis(ms);
            assert_eq!(Ms::at(at).get(), Some(at));
        }
        // Sub-millisecond parts are dropped; the end of the range stays a set stamp.
        assert_eq!(
            Ms::at(Instant::from_micros(1_999)).get(),
            Some(Instant::from_millis(1))
        );
        assert!(Ms::at(Instant::MAX).get().is_some());
    }

    #[test]
    fn durations_round_up_to_whole_milliseconds() {
        assert_eq!(duration_ms(None), Some(0));
        assert_eq!(duration_ms(Some(Duration::from_ticks(0))), Some(1));
        assert_eq!(duration_ms(Some(Duration::from_micros(1_001))), Some(2));
        assert_eq!(duration_ms(Some(Duration::from_secs(60))), Some(60_000));
        assert_eq!(duration_ms(Some(Duration::from_secs(50 * 86_400))), None);
    }
}
