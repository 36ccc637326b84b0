//! Paging and ordering of job lists, shared by the dialects: a position is the record's sort
//! value (for an ordered list) and its place in the default order — create time (kept to the
//! millisecond), then the id's bytes (epoch, slot generation, slot index), which is not always
//! submit order within a millisecond; `desc` reverses all of it — and a page starts
//! after the cursor's position in the order as the list stands when that page is read.
//!
//! Over a fixed order — submit order, or `order_by` a field no job ever changes (`uuid`,
//! `description`, `create_time`, `priority`) — a job submitted or removed between two pages
//! is neither repeated nor skips another. `order_by` a field that changes (`state`,
//! `message`, `progress`, `code`, `start_time`, `end_time`, `last_modified`, `attempt`) pages
//! over a moving order: a job whose value changes between two pages can cross the cursor —
//! it is repeated if it moved from before the cursor to after it, and missed if it moved the
//! other way. Every job whose value did not change is still listed exactly once.

use jobstate::JobId;

use super::error::ApiError;
use super::ids::JobUuids;
use super::view::JobView;
use crate::snapshot::Snapshot;

/// Paging position: just after the job created at `created` with id `id`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct Key {
    created: u64,
    id: [u8; JobId::BYTES],
}

impl Key {
    pub(crate) fn of<S, const T: usize>(s: &Snapshot<S, T>) -> Self {
        Key {
            created: s.created().as_ticks(),
            id: s.id().to_bytes(),
        }
    }

    pub(crate) fn token(self) -> String {
        let mut out = format!("{:016x}", self.created);
        for b in self.id {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    pub(crate) fn parse(token: &str) -> Option<Key> {
        if token.len() != 16 + 2 * JobId::BYTES || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let created = u64::from_str_radix(token.get(..16)?, 16).ok()?;
        let mut id = [0u8; JobId::BYTES];
        for (k, b) in id.iter_mut().enumerate() {
            let at = 16 + 2 * k;
            *b = u8::from_str_radix(token.get(at..at + 2)?, 16).ok()?;
        }
        Some(Key { created, id })
    }
}

/// A field's value as the list sorts it (`order_by`): absent values first.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum SortValue {
    Absent,
    Num(i128),
    Text(Vec<u8>),
}

impl SortValue {
    pub(crate) fn token(&self) -> String {
        match self {
            SortValue::Absent => "z".to_owned(),
            SortValue::Num(n) => format!("n{:x}", (*n as u128) ^ (1u128 << 127)),
            SortValue::Text(t) => {
                let mut out = String::from("t");
                for b in t {
                    out.push_str(&format!("{b:02x}"));
                }
                out
            }
        }
    }

    pub(crate) fn parse(token: &str) -> Option<SortValue> {
        let (kind, rest) = (token.get(..1)?, token.get(1..)?);
        match kind {
            "z" if rest.is_empty() => Some(SortValue::Absent),
            "n" if !rest.is_empty() && rest.len() <= 32 => {
                let v = u128::from_str_radix(rest, 16).ok()?;
                Some(SortValue::Num((v ^ (1u128 << 127)) as i128))
            }
            "t" if rest.len() % 2 == 0 => {
                let bytes = (0..rest.len() / 2)
                    .map(|k| u8::from_str_radix(rest.get(2 * k..2 * k + 2)?, 16).ok())
                    .collect::<Option<Vec<u8>>>()?;
                Some(SortValue::Text(bytes))
            }
            _ => None,
        }
    }
}

/// `order_by=<field> [asc|desc]` of the job list: one field, ties broken by the default order
/// ([`Key`]: create time to the millisecond, then id), reversed with `desc`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct OrderBy {
    pub(crate) field: &'static str,
    pub(crate) desc: bool,
}

/// The fields the list sorts by. Paging is stable over `uuid`, `description`, `create_time`
/// and `priority` (and submit order); the others change as jobs run, and their order moves
/// between pages (see the module's documentation).
pub(crate) const ORDER_FIELDS: [&str; 12] = [
    "uuid",
    "description",
    "state",
    "message",
    "code",
    "start_time",
    "end_time",
    "create_time",
    "last_modified",
    "progress",
    "priority",
    "attempt",
];

impl OrderBy {
    pub(crate) fn parse(text: &str) -> Result<OrderBy, ApiError> {
        let mut words = text.split(' ').filter(|w| !w.is_empty());
        let bad = || {
            ApiError::invalid(
                "order_by",
                format!(
                    "\"order_by\" must be one of {} followed by asc or desc; got \"{text}\"",
                    ORDER_FIELDS.join(", ")
                ),
            )
        };
        let name = words.next().ok_or_else(bad)?;
        let field = ORDER_FIELDS
            .into_iter()
            .find(|f| *f == name)
            .ok_or_else(bad)?;
        let desc = match words.next() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => return Err(bad()),
        };
        if words.next().is_some() {
            return Err(bad());
        }
        Ok(OrderBy { field, desc })
    }

    pub(crate) fn value<S, const T: usize>(self, s: &Snapshot<S, T>, uuids: JobUuids) -> SortValue {
        let micros = |t: std::time::SystemTime| {
            SortValue::Num(
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i128::try_from(d.as_micros()).unwrap_or(i128::MAX)),
            )
        };
        let opt = |t: Option<std::time::SystemTime>| t.map_or(SortValue::Absent, micros);
        match self.field {
            "uuid" => SortValue::Text(uuids.encode(s.id()).hyphenated().to_string().into_bytes()),
            "description" => SortValue::Text(s.description().as_bytes().to_vec()),
            "state" => SortValue::Text(s.state().as_str().as_bytes().to_vec()),
            "message" => SortValue::Text(
                JobView::from_snapshot(s, uuids)
                    .message
                    .into_owned()
                    .into_bytes(),
            ),
            "code" => s
                .outcome()
                .map_or(SortValue::Absent, |o| SortValue::Num(o.code().into())),
            "start_time" => opt(s.started_at()),
            "end_time" => opt(s.ended_at()),
            "create_time" => micros(s.created_at()),
            "last_modified" => micros(s.modified_at()),
            "progress" => SortValue::Num(s.progress().into()),
            "priority" => SortValue::Num(s.priority() as i128),
            _ => SortValue::Num(s.attempt().into()),
        }
    }
}

/// Where a page starts: after the record at this position (`start=`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct Position {
    pub(crate) value: SortValue,
    pub(crate) key: Key,
}

impl Position {
    pub(crate) fn token(&self, ordered: bool) -> String {
        if ordered {
            format!("{}.{}", self.key.token(), self.value.token())
        } else {
            self.key.token()
        }
    }

    /// A cursor: the key, then (for an ordered list) the sort value. A value on a cursor of
    /// the default order is ignored, and a cursor without one on an ordered list starts
    /// after the records without the field.
    pub(crate) fn parse(token: &str, ordered: bool) -> Option<Position> {
        let (key, value) = match token.split_once('.') {
            Some((k, v)) => (k, SortValue::parse(v)?),
            None => (token, SortValue::Absent),
        };
        let value = if ordered { value } else { SortValue::Absent };
        Some(Position {
            value,
            key: Key::parse(key)?,
        })
    }
}

/// One page of `jobs` in the order `order` (submit order when `None`; `desc` reverses it)
/// after `start`, at most `max` long; and the position of the page's last record when more
/// follow.
pub(crate) fn page<S, const T: usize>(
    jobs: Vec<Snapshot<S, T>>,
    uuids: JobUuids,
    order: Option<OrderBy>,
    desc: bool,
    start: Option<&Position>,
    max: Option<usize>,
) -> (Vec<Snapshot<S, T>>, Option<Position>) {
    let mut keyed: Vec<(Position, Snapshot<S, T>)> = jobs
        .into_iter()
        .map(|s| {
            let value = order.map_or(SortValue::Absent, |o| o.value(&s, uuids));
            let key = Key::of(&s);
            (Position { value, key }, s)
        })
        .collect();
    let cmp = |a: &Position, b: &Position| if desc { b.cmp(a) } else { a.cmp(b) };
    keyed.sort_by(|a, b| cmp(&a.0, &b.0));
    let from = start.map_or(0, |c| {
        keyed.partition_point(|(p, _)| cmp(p, c) != std::cmp::Ordering::Greater)
    });
    let mut rest: Vec<(Position, Snapshot<S, T>)> = keyed.into_iter().skip(from).collect();
    let take = max.map_or(rest.len(), |m| m.min(rest.len()));
    let more = take < rest.len();
    rest.truncate(take);
    let next = if more {
        rest.last().map(|(p, _)| p.clone())
    } else {
        None
    };
    (rest.into_iter().map(|(_, s)| s).collect(), next)
}
