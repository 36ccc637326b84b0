//! RFC 3339 timestamps: `start_time`, `end_time`, `last_modified` on the wire.
//!
//! Written in UTC with microseconds (`2026-11-23T18:04:05.123456Z`), the resolution of the
//! engine's clock, so a `last_modified` value a client echoes back names exactly the instant
//! it was given. Read with any offset (`Z`, `+01:00`, `-05:00`) and any number of fraction
//! digits (RFC 3339 allows them; digits past nanoseconds are cut), by the `time` crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339 as WellKnown;
use time::OffsetDateTime;

/// `t` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (times before 1970 print as 1970-01-01T00:00:00Z).
pub fn format(t: SystemTime) -> String {
    Rfc3339(t).to_string()
}

/// Displays a time as [`format`] does, without an intermediate string.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rfc3339(pub(crate) SystemTime);

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let since = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
        // Out of `time`'s range (after year 9999): print the last representable second.
        let t = OffsetDateTime::from_unix_timestamp(secs)
            .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc());
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            since.subsec_micros()
        )
    }
}

/// `t` cut to whole microseconds, as [`format`] prints it.
pub fn truncate(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::new(d.as_secs(), d.subsec_micros() * 1000),
        Err(_) => UNIX_EPOCH,
    }
}

/// Why a timestamp was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BadTime;

/// Parse an RFC 3339 date-time (`2026-11-23T18:04:05Z`, `…05.5+01:00`), with the `time`
/// crate's RFC 3339 parser. A time before 1970 reads as the epoch (it is before every job).
pub fn parse(text: &str) -> Result<SystemTime, BadTime> {
    let t = OffsetDateTime::parse(text, &WellKnown).map_err(|_| BadTime)?;
    // A time before 1970 is before every job: it reads as the epoch.
    let Ok(secs) = u64::try_from(t.unix_timestamp()) else {
        return Ok(UNIX_EPOCH);
    };
    Ok(UNIX_EPOCH + Duration::new(secs, t.nanosecond()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(secs: u64, micros: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, micros * 1000)
    }

    #[test]
    fn known_values() {
        assert_eq!(format(at(0, 0)), "1970-01-01T00:00:00.000000Z");
        assert_eq!(format(at(951_782_400, 1)), "2000-02-29T00:00:00.000001Z");
        assert_eq!(
            format(at(1_795_457_045, 123_456)),
            "2026-11-23T18:04:05.123456Z"
        );
        assert_eq!(
            parse("2026-11-23T18:04:05.123456Z").unwrap(),
            at(1_795_457_045, 123_456)
        );
        assert_eq!(
            parse("2026-11-23T19:04:05.123456+01:00").unwrap(),
            at(1_795_457_045, 123_456)
        );
        assert_eq!(
            parse("2026-11-23T13:04:05-05:00").unwrap(),
            at(1_795_457_045, 0)
        );
        assert_eq!(
            parse("2026-11-23T18:04:05.1Z").unwrap(),
            at(1_795_457_045, 100_000)
        );
    }

    #[test]
    fn round_trip_over_four_centuries() {
        let mut t = 0u64;
        while t < 13_000_000_000 {
            let s = at(t, (t % 1_000_000) as u32);
            assert_eq!(parse(&format(s)).unwrap(), s, "{}", format(s));
            t += 86_400 * 37 + 3_613;
        }
    }

    #[test]
    fn r_input_malformed_times_are_refused() {
        for bad in [
            "",
            "2026",
            "2026-11-23",
            "2026-11-23T18:04:05",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-31T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T18:60:00Z",
            "2026-11-23T18:04:61Z",
            "2026-11-23T18:04:05.Z",
            "2026-11-23T18:04:05+1:00",
            "2026-11-23T18:04:05Zjunk",
            "２０２６-11-23T18:04:05Z",
            "+2026-11-23T18:04:05Z",
        ] {
            assert_eq!(parse(bad), Err(BadTime), "{bad:?}");
        }
        // Valid, but before every job: the epoch.
        assert_eq!(parse("1969-12-31T23:59:59Z"), Ok(UNIX_EPOCH));
        assert_eq!(parse("0001-01-01T00:00:00Z"), Ok(UNIX_EPOCH));
    }
}
