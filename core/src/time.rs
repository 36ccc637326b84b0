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
