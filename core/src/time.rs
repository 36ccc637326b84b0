//! The time types and their serde form.
//!
//! The core uses `embassy_time::Instant` and `Duration` as plain values and never reads a clock:
//! every operation takes `now`. A firmware passes `Instant::now()`; a host test passes whatever
//! instant its scenario needs; a service converts its own clock (see `jobstate-std`).

pub use embassy_time::{Duration, Instant};

/// Serde form of `Instant` / `Duration` / their options: raw ticks as `u64`.
#[cfg(feature = "serde")]
pub(crate) mod serde_ticks {
    use super::{Duration, Instant};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) trait Ticks: Sized {
        fn to_ticks(&self) -> u64;
        fn from_ticks(t: u64) -> Self;
    }
    impl Ticks for Instant {
        fn to_ticks(&self) -> u64 {
            self.as_ticks()
        }
        fn from_ticks(t: u64) -> Self {
            Instant::from_ticks(t)
        }
    }
    impl Ticks for Duration {
        fn to_ticks(&self) -> u64 {
            self.as_ticks()
        }
        fn from_ticks(t: u64) -> Self {
            Duration::from_ticks(t)
        }
    }

    pub(crate) fn serialize<T: Ticks, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.to_ticks())
    }
    pub(crate) fn deserialize<'de, T: Ticks, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        u64::deserialize(d).map(T::from_ticks)
    }

    pub(crate) mod option {
        use super::Ticks;
        use serde::{Deserialize, Deserializer, Serializer};
        pub(crate) fn serialize<T: Ticks, S: Serializer>(
            v: &Option<T>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => s.serialize_some(&v.to_ticks()),
                None => s.serialize_none(),
            }
        }
        pub(crate) fn deserialize<'de, T: Ticks, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<T>, D::Error> {
            Option::<u64>::deserialize(d).map(|o| o.map(T::from_ticks))
        }
    }
}

/// `at + d`, saturating at the end of time instead of overflowing.
pub(crate) fn add(at: Instant, d: Duration) -> Instant {
    Instant::from_ticks(at.as_ticks().saturating_add(d.as_ticks()))
}

/// An `Option<Instant>` in 8 bytes instead of 16: raw ticks, with `u64::MAX` meaning "none".
///
/// The one instant it cannot hold, the very end of time (`u64::MAX` ticks), is stored one tick
/// earlier, so a set stamp always reads back as `Some`. Its `Debug`, `defmt` and serde forms are
/// those of `Option<Instant>` (serde: raw ticks as `Option<u64>`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp(u64);

impl Stamp {
    const NEVER_TICKS: u64 = u64::MAX;
    /// No instant.
    pub(crate) const NEVER: Stamp = Stamp(Self::NEVER_TICKS);

    /// The stamp of `at`, or [`Stamp::NEVER`].
    pub(crate) const fn new(at: Option<Instant>) -> Self {
        match at {
            Some(at) => Self::at(at),
            None => Self::NEVER,
        }
    }

    /// The stamp of `at` (the end of time is stored one tick earlier).
    pub(crate) const fn at(at: Instant) -> Self {
        let t = at.as_ticks();
        Stamp(if t == Self::NEVER_TICKS {
            t.saturating_sub(1)
        } else {
            t
        })
    }

    /// The instant, if any.
    pub(crate) const fn get(self) -> Option<Instant> {
        if self.0 == Self::NEVER_TICKS {
            None
        } else {
            Some(Instant::from_ticks(self.0))
        }
    }
}

impl core::fmt::Debug for Stamp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&self.get(), f)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Stamp {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::Format::format(&self.get(), f)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Stamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.get() {
            Some(at) => s.serialize_some(&at.as_ticks()),
            None => s.serialize_none(),
        }
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Stamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <Option<u64> as serde::Deserialize>::deserialize(d)
            .map(|o| Stamp::new(o.map(Instant::from_ticks)))
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use core::fmt::Write as _;

    use super::{Instant, Stamp};

    #[test]
    fn stamp_reads_back_what_was_stored() {
        assert_eq!(Stamp::NEVER.get(), None);
        assert_eq!(Stamp::new(None), Stamp::NEVER);
        for t in [0, 1, 1_000_000, u64::MAX - 1] {
            let at = Instant::from_ticks(t);
            assert_eq!(Stamp::new(Some(at)).get(), Some(at));
            assert_eq!(Stamp::at(at).get(), Some(at));
        }
        // The end of time stays a set stamp, one tick earlier.
        assert_eq!(
            Stamp::at(Instant::MAX).get(),
            Some(Instant::from_ticks(u64::MAX - 1))
        );
        // Debug reads like the `Option<Instant>` it stands for.
        let (mut a, mut b) = (heapless::String::<64>::new(), heapless::String::<64>::new());
        let at = Instant::from_ticks(7);
        assert!(write!(a, "{:?}{:?}", Stamp::NEVER, Stamp::at(at)).is_ok());
        assert!(write!(b, "{:?}{:?}", None::<Instant>, Some(at)).is_ok());
        assert_eq!(a, b);
    }
}
