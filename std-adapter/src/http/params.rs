//! Query parameters: parsing and validation.
//!
//! Every parameter is checked; an unknown name, a repeated name or a bad value answers 400
//! with the error envelope and names the parameter in `target` (R-INPUT). Nothing is silently
//! ignored, so a client's typo never turns into a different request.

use std::time::{Duration, SystemTime};

use axum::extract::{FromRequestParts, RawQuery};
use axum::http::request::Parts;
use jobstate::State;

use super::error::ApiError;
use super::ontap::wire::{Field, Fields};
use super::rfc3339;

/// The longest `poll_timeout` and `return_timeout`, in seconds (ONTAP's range): the core's
/// [`jobstate::MAX_WAIT`].
pub const MAX_TIMEOUT_SECS: u64 = jobstate::MAX_WAIT.as_secs();

/// The decoded query string of a request, consumed parameter by parameter.
#[derive(Debug, Default)]
pub(crate) struct Args {
    pairs: Vec<(String, String)>,
}

impl<St: Send + Sync> FromRequestParts<St> for Args {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        let RawQuery(raw) = RawQuery::from_request_parts(parts, state)
            .await
            .unwrap_or(RawQuery(None));
        Ok(Args::parse(raw.as_deref().unwrap_or("")))
    }
}

impl Args {
    /// Decode a query string (`a=1&b=2`, percent- and `+`-encoded).
    pub(crate) fn parse(query: &str) -> Self {
        Args {
            pairs: form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    /// Take the value of `name`; 400 if it is given twice.
    pub(crate) fn take(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        let mut found = None;
        let mut twice = false;
        self.pairs.retain(|(k, v)| {
            if k != name {
                return true;
            }
            twice |= found.is_some();
            found = Some(v.clone());
            false
        });
        if twice {
            return Err(ApiError::invalid(
                name,
                format!("\"{name}\" is given more than once"),
            ));
        }
        Ok(found)
    }

    /// 400 naming the first parameter nobody took.
    pub(crate) fn finish(self) -> Result<(), ApiError> {
        match self.pairs.first() {
            Some((k, _)) => Err(ApiError::unexpected(k)),
            None => Ok(()),
        }
    }

    /// Take `name` as a whole number of seconds in `range`.
    pub(crate) fn seconds(
        &mut self,
        name: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<Duration>, ApiError> {
        self.number(name, range).map(|v| v.map(Duration::from_secs))
    }

    /// Take `name` as a decimal integer in `range`.
    pub(crate) fn number(
        &mut self,
        name: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<u64>, ApiError> {
        let Some(text) = self.take(name)? else {
            return Ok(None);
        };
        let bad = || {
            ApiError::invalid(
                name,
                format!(
                    "\"{name}\" must be a whole number from {} to {}; got \"{text}\"",
                    range.start(),
                    range.end()
                ),
            )
        };
        if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        match text.parse::<u64>() {
            Ok(v) if range.contains(&v) => Ok(Some(v)),
            _ => Err(bad()),
        }
    }

    /// Take `name` as `true` or `false`.
    pub(crate) fn boolean(&mut self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.take(name)?.as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(ApiError::invalid(
                name,
                format!("\"{name}\" must be true or false; got \"{other}\""),
            )),
        }
    }

    /// Take `name` as an RFC 3339 date-time.
    pub(crate) fn time(&mut self, name: &str) -> Result<Option<SystemTime>, ApiError> {
        let Some(text) = self.take(name)? else {
            return Ok(None);
        };
        rfc3339::parse(&text).map(Some).map_err(|_| {
            ApiError::invalid(
                name,
                format!("\"{name}\" must be an RFC 3339 date-time; got \"{text}\""),
            )
        })
    }

    /// Take `fields` (`fields=state,message`, `fields=*`), or `default` when absent.
    pub(crate) fn fields(&mut self, default: Fields) -> Result<Fields, ApiError> {
        self.take("fields")?
            .map_or(Ok(default), |text| parse_fields(&text))
    }
}

/// A `fields=` value.
pub(crate) fn parse_fields(text: &str) -> Result<Fields, ApiError> {
    let mut set = Fields::KEYS;
    for name in text.split(',').map(|n| n.trim_matches(' ')) {
        match name {
            "*" | "**" => set = Fields::ALL,
            _ => match Field::parse(name) {
                Some(Some(f)) => set = set.with(f),
                Some(None) => {}
                None => {
                    return Err(ApiError::invalid(
                        "fields",
                        format!("unknown field \"{name}\" in \"fields\""),
                    ))
                }
            },
        }
    }
    Ok(set)
}

/// A state filter value of parameter `name`.
pub(crate) fn parse_states(name: &str, text: &str) -> Result<StateFilter, ApiError> {
    StateFilter::parse(text).ok_or_else(|| {
        ApiError::invalid(
            name,
            format!(
                "\"{name}\" must be states (queued, running, paused, success, failure) \
                 joined with \"|\", optionally preceded by \"!\"; got \"{text}\""
            ),
        )
    })
}

/// The state of a name as printed (`success`, `failure`, …).
pub(crate) fn state_named(name: &str) -> Option<State> {
    [
        State::Queued,
        State::Running,
        State::Paused,
        State::Succeeded,
        State::Failed,
    ]
    .into_iter()
    .find(|s| s.as_str() == name)
}

/// ONTAP's query syntax for a state filter: `running`, `queued|running`, `!success`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct StateFilter {
    mask: u8,
}

impl StateFilter {
    fn bit(s: State) -> u8 {
        1 << (s as u8)
    }

    /// Parse the filter; `None` when malformed.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let (negate, list) = match text.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let mut mask = 0u8;
        for name in list.split('|') {
            mask |= Self::bit(state_named(name.trim_matches(' '))?);
        }
        Some(StateFilter {
            mask: if negate { !mask } else { mask },
        })
    }

    /// Whether a job in state `s` passes.
    pub(crate) fn admits(self, s: State) -> bool {
        self.mask & Self::bit(s) != 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn r_input_numbers_in_range_only() {
        let max = MAX_TIMEOUT_SECS;
        let top = format!("poll_timeout={max}");
        let over = format!("poll_timeout={}", max + 1);
        for (q, ok) in [("poll_timeout=1", Some(1)), (&*top, Some(max)), ("", None)] {
            assert_eq!(Args::parse(q).number("poll_timeout", 1..=max).unwrap(), ok);
        }
        for q in [
            "poll_timeout=0",
            &*over,
            "poll_timeout=-1",
            "poll_timeout=%2B5",
            "poll_timeout=1.5",
            "poll_timeout=",
            "poll_timeout=99999999999999999999999",
            "poll_timeout=abc",
            "poll_timeout=1&poll_timeout=2",
        ] {
            let e = Args::parse(q).number("poll_timeout", 1..=max).unwrap_err();
            assert_eq!(e.status(), 400, "{q}");
            assert_eq!(e.target(), Some("poll_timeout"));
        }
    }

    #[test]
    fn r_input_unknown_parameter_is_named() {
        let mut a = Args::parse("fields=state&poll_timout=5");
        assert_eq!(
            a.fields(Fields::ALL).unwrap(),
            Fields::KEYS.with(Field::State)
        );
        let e = a.finish().unwrap_err();
        assert_eq!(e.target(), Some("poll_timout"));
        assert_eq!(e.code(), "262179");
    }

    #[test]
    fn fields_and_states() {
        let f = parse_fields("state,error.code,uuid,_links").unwrap();
        assert!(f.has(Field::State) && f.has(Field::Error) && !f.has(Field::Message));
        assert_eq!(parse_fields("*").unwrap(), Fields::ALL);
        assert!(parse_fields("stat").is_err());
        assert!(parse_fields("").is_err());

        let s = StateFilter::parse("queued|running").unwrap();
        assert!(s.admits(State::Queued) && s.admits(State::Running) && !s.admits(State::Failed));
        let s = StateFilter::parse("!success").unwrap();
        assert!(!s.admits(State::Succeeded) && s.admits(State::Failed));
        for bad in ["", "done", "running|", "!!running", "Running"] {
            assert_eq!(StateFilter::parse(bad), None, "{bad}");
        }
    }
}
