//! RFC 3339 timestamps: `start_time`, `end_time`, `last_modified` on the wire.
//!
//! Written in UTC with microseconds (`2026-11-23T18:04:05.123456Z`), the resolution of the
//! engine's clock, so a `last_modified` value a client echoes back names exactly the instant
//! it was given. Read with any offset (`Z`, `+01:00`, `-05:00`) and 0–9 fraction digits.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

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
        let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX / 2);
        let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        write!(
            f,
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
            sod / 3600,
            sod / 60 % 60,
            sod % 60,
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

struct Cursor<'a> {
    rest: &'a [u8],
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize) -> Result<u32, BadTime> {
        let (head, tail) = self.rest.split_at_checked(n).ok_or(BadTime)?;
        let mut v = 0u32;
        for &c in head {
            if !c.is_ascii_digit() {
                return Err(BadTime);
            }
            v = v * 10 + u32::from(c - b'0');
        }
        self.rest = tail;
        Ok(v)
    }

    fn byte(&mut self, allowed: &[u8]) -> Result<u8, BadTime> {
        let (&c, tail) = self.rest.split_first().ok_or(BadTime)?;
        if !allowed.contains(&c) {
            return Err(BadTime);
        }
        self.rest = tail;
        Ok(c)
    }
}

/// Parse an RFC 3339 date-time (`2026-11-23T18:04:05Z`, `…05.5+01:00`; `t`/`z` and a space
/// separator accepted as RFC 3339 allows). Times before 1970 are refused.
pub fn parse(text: &str) -> Result<SystemTime, BadTime> {
    let mut c = Cursor {
        rest: text.as_bytes(),
    };
    let y = i64::from(c.digits(4)?);
    c.byte(b"-")?;
    let mo = c.digits(2)?;
    c.byte(b"-")?;
    let d = c.digits(2)?;
    c.byte(b"Tt ")?;
    let h = c.digits(2)?;
    c.byte(b":")?;
    let mi = c.digits(2)?;
    c.byte(b":")?;
    let s = c.digits(2)?;
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 {
        return Err(BadTime);
    }
    // A leap second (…:60) is read as the last instant of its minute.
    if s > 60 {
        return Err(BadTime);
    }
    let mut nanos = 0u32;
    if c.rest.first() == Some(&b'.') {
        c.rest = c.rest.get(1..).unwrap_or_default();
        let n = c.rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return Err(BadTime);
        }
        let frac = c.digits(n)?;
        nanos = frac * 10u32.pow(9 - n as u32);
    }
    let offset = match c.byte(b"Zz+-")? {
        b'Z' | b'z' => 0i64,
        sign => {
            let oh = c.digits(2)?;
            c.byte(b":")?;
            let om = c.digits(2)?;
            if oh > 23 || om > 59 {
                return Err(BadTime);
            }
            let o = i64::from(oh * 3600 + om * 60);
            if sign == b'-' {
                -o
            } else {
                o
            }
        }
    };
    if !c.rest.is_empty() {
        return Err(BadTime);
    }
    let secs =
        days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s.min(59)) - offset;
    let (secs, nanos) = if s == 60 {
        (secs, 999_999_999)
    } else {
        (secs, nanos)
    };
    let secs = u64::try_from(secs).map_err(|_| BadTime)?;
    Ok(UNIX_EPOCH + Duration::new(secs, nanos))
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
            parse("2026-11-23t13:04:05-05:00").unwrap(),
            at(1_795_457_045, 0)
        );
        assert_eq!(
            parse("2026-11-23 18:04:05.1z").unwrap(),
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
            "2026-11-23T18:04:05.1234567890Z",
            "2026-11-23T18:04:05+1:00",
            "2026-11-23T18:04:05Zjunk",
            "1969-12-31T23:59:59Z",
            "２０２６-11-23T18:04:05Z",
            "+2026-11-23T18:04:05Z",
        ] {
            assert_eq!(parse(bad), Err(BadTime), "{bad:?}");
        }
    }
}
