//! The JSON shapes of the binding.
//!
//! * [`Record`] — a job record (`GET /api/cluster/jobs/{uuid}`, the list's `records`, and the
//!   `job` of a completed submission), printed with the fields a [`Fields`] set selects;
//! * [`JobLink`] — `{"uuid":…,"_links":{"self":{"href":…}}}`, the `job` of a 202;
//! * [`Page`] — a page of the list with `num_records` and `_links.next`.

use std::time::SystemTime;

use jobstate::{State, Tombstone};

use crate::snapshot::Snapshot;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use uuid::Uuid;

use crate::http::ids::JobUuids;
use crate::http::rfc3339;
use crate::http::view::JobView;

/// Where the binding serves one job.
pub(crate) fn job_href(uuid: &Uuid) -> String {
    format!("/api/cluster/jobs/{}", uuid.hyphenated())
}

/// `{"href": …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Href {
    /// The path (relative to the service root).
    pub href: String,
}

/// `{"self": {"href": …}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SelfLink {
    /// Where the job is served.
    #[serde(rename = "self")]
    pub self_: Href,
}

/// The `job` object of an accepted asynchronous request:
/// `{"uuid":…,"_links":{"self":{"href":"/api/cluster/jobs/<uuid>"}}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JobLink {
    /// The job's UUID.
    pub uuid: String,
    /// Its link.
    #[serde(rename = "_links")]
    pub links: SelfLink,
}

impl JobLink {
    /// The link of the job with this UUID.
    pub fn new(uuid: &Uuid) -> Self {
        Self {
            uuid: uuid.hyphenated().to_string(),
            links: SelfLink {
                self_: Href {
                    href: job_href(uuid),
                },
            },
        }
    }
}

/// One field a `fields=` list may name.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u16)]
pub enum Field {
    /// `description`
    Description = 1 << 0,
    /// `state`
    State = 1 << 1,
    /// `message`
    Message = 1 << 2,
    /// `code`
    Code = 1 << 3,
    /// `start_time`
    StartTime = 1 << 4,
    /// `end_time`
    EndTime = 1 << 5,
    /// `error`
    Error = 1 << 6,
    /// `create_time`
    CreateTime = 1 << 7,
    /// `last_modified`
    LastModified = 1 << 8,
    /// `progress`
    Progress = 1 << 9,
    /// `revision`
    Revision = 1 << 10,
    /// `priority` (an extension of the dialect: `low`, `normal`, `high`, `urgent`; R-PRIORITY)
    Priority = 1 << 11,
    /// `attempt` (an extension of the dialect: 1 for the first attempt; R-RETRY)
    Attempt = 1 << 12,
}

impl Field {
    /// Every field, in the order a record prints them.
    pub const ALL: [Field; 13] = [
        Field::Description,
        Field::State,
        Field::Message,
        Field::Code,
        Field::StartTime,
        Field::EndTime,
        Field::Error,
        Field::CreateTime,
        Field::LastModified,
        Field::Progress,
        Field::Revision,
        Field::Priority,
        Field::Attempt,
    ];

    /// The JSON name.
    pub const fn name(self) -> &'static str {
        match self {
            Field::Description => "description",
            Field::State => "state",
            Field::Message => "message",
            Field::Code => "code",
            Field::StartTime => "start_time",
            Field::EndTime => "end_time",
            Field::Error => "error",
            Field::CreateTime => "create_time",
            Field::LastModified => "last_modified",
            Field::Progress => "progress",
            Field::Revision => "revision",
            Field::Priority => "priority",
            Field::Attempt => "attempt",
        }
    }

    /// The field a `fields=` entry names (`error.code` and `error.message` name `error`;
    /// `uuid` and `_links` are always printed and name nothing more).
    pub fn parse(name: &str) -> Option<Option<Field>> {
        if matches!(name, "uuid" | "_links" | "_links.self" | "_links.self.href") {
            return Some(None);
        }
        if name == "error.code" || name == "error.message" {
            return Some(Some(Field::Error));
        }
        Field::ALL.into_iter().find(|f| f.name() == name).map(Some)
    }
}

/// The set of fields to print. `uuid` and `_links` are always printed; `message` is always
/// printed for a failed job, whatever the set.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Fields(u16);

impl Fields {
    /// Every field (a single job's default, `fields=*`).
    pub const ALL: Fields = Fields(u16::MAX);
    /// Only `uuid` and `_links` (the list's default, as ONTAP's).
    pub const KEYS: Fields = Fields(0);

    /// Add a field.
    pub const fn with(self, f: Field) -> Fields {
        Fields(self.0 | f as u16)
    }

    /// Whether the set holds `f`.
    pub const fn has(self, f: Field) -> bool {
        self.0 & f as u16 != 0
    }
}

/// A job record as printed: the shared [`JobView`] with the fields a `fields=` set selects.
/// Build it with [`Record::from_snapshot`] or [`Record::from_tombstone`]; it derefs to the
/// view.
#[derive(Clone, Debug, PartialEq)]
pub struct Record<'a> {
    /// The job.
    pub view: JobView<'a>,
    /// Which fields to print.
    pub fields: Fields,
}

impl<'a> std::ops::Deref for Record<'a> {
    type Target = JobView<'a>;
    fn deref(&self) -> &JobView<'a> {
        &self.view
    }
}

impl<'a> Record<'a> {
    /// The record of a job snapshot ([`JobView::from_snapshot`]).
    pub fn from_snapshot<S, const T: usize>(
        snapshot: &'a Snapshot<S, T>,
        uuids: JobUuids,
        fields: Fields,
    ) -> Self {
        Record {
            view: JobView::from_snapshot(snapshot, uuids),
            fields,
        }
    }

    /// The record of a removed job, from its tombstone ([`JobView::from_tombstone`]).
    pub fn from_tombstone(
        t: &Tombstone,
        uuid: Uuid,
        fields: Fields,
        clock: impl Fn(jobstate::Instant) -> SystemTime,
    ) -> Self {
        Record {
            view: JobView::from_tombstone(t, uuid, clock),
            fields,
        }
    }
}

struct Error<'a> {
    code: i32,
    message: &'a str,
}

impl Serialize for Error<'_> {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("code", &self.code.to_string())?;
        m.serialize_entry("message", self.message)?;
        m.end()
    }
}

struct Links<'a>(&'a Uuid);

impl Serialize for Links<'_> {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("self", &HrefOf(self.0))?;
        m.end()
    }
}

/// `{"href": "/api/cluster/jobs/<uuid>"}`, written without an intermediate string.
struct HrefOf<'a>(&'a Uuid);

impl Serialize for HrefOf<'_> {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(
            "href",
            &Display(format_args!("/api/cluster/jobs/{}", self.0.hyphenated())),
        )?;
        m.end()
    }
}

/// Serializes a `Display` value as a string, straight into the output.
struct Display<T>(T);

impl<T: std::fmt::Display> Serialize for Display<T> {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        s.collect_str(&self.0)
    }
}

impl Serialize for Record<'_> {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        let f = self.fields;
        let failed = self.state == State::Failed;
        let code = self.code();
        let mut m = s.serialize_map(None)?;
        let mut buf = Uuid::encode_buffer();
        m.serialize_entry("uuid", &*self.uuid.hyphenated().encode_lower(&mut buf))?;
        if let (true, Some(d)) = (f.has(Field::Description), self.description) {
            m.serialize_entry("description", d)?;
        }
        if f.has(Field::State) {
            m.serialize_entry("state", self.state.as_str())?;
        }
        if f.has(Field::Message) || failed {
            m.serialize_entry("message", &self.message)?;
        }
        if let (true, Some(code)) = (f.has(Field::Code), code) {
            m.serialize_entry("code", &code)?;
        }
        let time = |t: &Option<SystemTime>| t.map(|t| Display(rfc3339::Rfc3339(t)));
        if let (true, Some(t)) = (f.has(Field::StartTime), time(&self.start_time)) {
            m.serialize_entry("start_time", &t)?;
        }
        if let (true, Some(t)) = (f.has(Field::EndTime), time(&self.end_time)) {
            m.serialize_entry("end_time", &t)?;
        }
        if let (true, true, Some(code)) = (f.has(Field::Error), failed, code) {
            m.serialize_entry(
                "error",
                &Error {
                    code,
                    message: &self.message,
                },
            )?;
        }
        if let (true, Some(t)) = (f.has(Field::CreateTime), time(&self.create_time)) {
            m.serialize_entry("create_time", &t)?;
        }
        if let (true, Some(t)) = (f.has(Field::LastModified), time(&self.last_modified)) {
            m.serialize_entry("last_modified", &t)?;
        }
        if let (true, Some(p)) = (f.has(Field::Progress), self.progress) {
            m.serialize_entry("progress", &p)?;
        }
        if let (true, Some(r)) = (f.has(Field::Revision), self.revision) {
            m.serialize_entry("revision", &r)?;
        }
        if let (true, Some(p)) = (f.has(Field::Priority), self.priority) {
            m.serialize_entry("priority", p)?;
        }
        if let (true, Some(a)) = (f.has(Field::Attempt), self.attempt) {
            m.serialize_entry("attempt", &a)?;
        }
        m.serialize_entry("_links", &Links(&self.uuid))?;
        m.end()
    }
}

/// A page of the job list.
#[derive(Serialize)]
pub struct Page<'a> {
    /// The records.
    pub records: Vec<Record<'a>>,
    /// How many records this page holds.
    pub num_records: usize,
    /// `self` and, when more records follow, `next`.
    #[serde(rename = "_links")]
    pub links: PageLinks,
}

/// The links of a page.
#[derive(Serialize)]
pub struct PageLinks {
    /// This page.
    #[serde(rename = "self")]
    pub self_: Href,
    /// The next page, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<Href>,
}

/// The body of a job that ended in time (200): `{"job": <record>}`.
#[derive(Serialize)]
pub struct Completed<'a> {
    /// The job record.
    pub job: Record<'a>,
}

/// The body of an accepted job (202): `{"job": {"uuid", "_links"}}`.
#[derive(Serialize)]
pub struct Accepted {
    /// The job link.
    pub job: JobLink,
}
