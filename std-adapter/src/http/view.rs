//! The one job view every dialect prints from.
//!
//! [`JobView`] is a job as a client may see it — the core's state and outcome, the message
//! (never empty for a failed job), times on the wall clock, progress, the pending requests —
//! built once from a snapshot or a tombstone. Each dialect (`ontap`, `oci`, `aiqum`,
//! `deploy`) only renames: its fields and a state mapping table over [`JobView`]; none of
//! them decides anything about a job (what "ended", "failed" or "canceled" means is the
//! core's). [`history`] reads a job's events from the core's journal (R-JOURNAL) for the
//! dialects that list them (OCI's work-request logs and errors).

use std::borrow::Cow;
use std::time::SystemTime;

use jobstate::{Detail, FailReason, JobId, Outcome, State, Tombstone};
use uuid::Uuid;

use super::ids::JobUuids;
use crate::engine::{Engine, EngineTable};
use crate::snapshot::Snapshot;
pub use crate::store::{Entry, History};

/// A job as the dialects print it. Build it with [`JobView::from_snapshot`] or
/// [`JobView::from_tombstone`].
#[derive(Clone, Debug, PartialEq)]
pub struct JobView<'a> {
    /// The UUID.
    pub uuid: Uuid,
    /// Description (absent for a tombstone).
    pub description: Option<&'a str>,
    /// State.
    pub state: State,
    /// The outcome, once terminal.
    pub outcome: Option<Outcome>,
    /// Message; never empty for a failed job.
    pub message: Cow<'a, str>,
    /// When a worker started it.
    pub start_time: Option<SystemTime>,
    /// When it ended.
    pub end_time: Option<SystemTime>,
    /// When it was submitted (absent for a tombstone).
    pub create_time: Option<SystemTime>,
    /// When it last changed.
    pub last_modified: Option<SystemTime>,
    /// Percent done (absent for a tombstone).
    pub progress: Option<u8>,
    /// The table revision of its last change (absent for a tombstone).
    pub revision: Option<u64>,
    /// Its priority level (absent for a tombstone).
    pub priority: Option<&'static str>,
    /// The attempt under way or last made (absent for a tombstone).
    pub attempt: Option<u8>,
    /// A cancel was asked for and the worker has not acted on it yet.
    pub cancel_requested: bool,
    /// A pause was asked for and the worker has not acted on it yet.
    pub pause_requested: bool,
    /// The record itself is gone; this is its tombstone (R-RETAIN).
    pub expired: bool,
}

/// The words of a failure reason, for a failed job that carries neither a message nor a
/// [`Detail`] (a worker's failure without a message: "failed"; otherwise the reason's name).
pub(crate) fn reason_text(reason: FailReason) -> Cow<'static, str> {
    match reason {
        FailReason::Error => Cow::Borrowed("failed"),
        _ => Cow::Owned(reason.as_str().replace('_', " ")),
    }
}

/// Why the table itself ended a job, in words; a failed dependency is named by its UUID.
fn detail_text(detail: Detail, uuids: JobUuids) -> Cow<'static, str> {
    match detail {
        Detail::Dependency(dep) => Cow::Owned(format!(
            "dependency {} failed",
            uuids.encode(dep).hyphenated()
        )),
        _ => Cow::Borrowed(detail.as_str()),
    }
}

impl<'a> JobView<'a> {
    /// The view of a job snapshot; `uuids` names the job and, in the message of a job failed
    /// by a dependency, that dependency.
    ///
    /// The message is the job's own (its last progress message, or the worker's outcome
    /// message); a failed job without one — the table ended it — says why, from its
    /// [`Detail`]: "canceled", "deadline passed", "heartbeat lease expired", "interrupted",
    /// "dependency `<uuid>` failed".
    pub fn from_snapshot<S, const T: usize>(snapshot: &'a Snapshot<S, T>, uuids: JobUuids) -> Self {
        let job = &snapshot.job;
        let message = match (job.outcome(), job.message()) {
            (Some(Outcome::Failed { reason, .. }), "") => match job.detail() {
                Some(detail) => detail_text(detail, uuids),
                None => reason_text(reason),
            },
            (_, m) => Cow::Borrowed(m),
        };
        JobView {
            uuid: uuids.encode(job.id()),
            description: Some(job.description()),
            state: job.state(),
            outcome: job.outcome(),
            message,
            start_time: snapshot.started_at(),
            end_time: snapshot.ended_at(),
            create_time: Some(snapshot.created_at()),
            last_modified: Some(snapshot.modified_at()),
            progress: Some(job.progress()),
            revision: Some(job.revision().get()),
            priority: Some(job.priority().as_str()),
            attempt: Some(job.attempt()),
            cancel_requested: job.cancel_requested(),
            pause_requested: job.pause_requested(),
            expired: false,
        }
    }

    /// The view of a removed job, from its tombstone (R-RETAIN): state, outcome, end time and
    /// a message saying the record itself is gone.
    pub fn from_tombstone(
        t: &Tombstone,
        uuid: Uuid,
        clock: impl Fn(jobstate::Instant) -> SystemTime,
    ) -> Self {
        let message = match t.outcome {
            Outcome::Failed { reason, code } => Cow::Owned(format!(
                "job record expired; the job had failed: {} (code {code})",
                reason_text(reason)
            )),
            _ => Cow::Borrowed("job record expired; the job had succeeded"),
        };
        JobView {
            uuid,
            description: None,
            state: t.state(),
            outcome: Some(t.outcome),
            message,
            start_time: None,
            end_time: Some(clock(t.ended)),
            create_time: None,
            last_modified: Some(clock(t.ended)),
            progress: None,
            revision: None,
            priority: None,
            attempt: None,
            cancel_requested: false,
            pause_requested: false,
            expired: true,
        }
    }

    /// The final code once ended (0 for success).
    pub fn code(&self) -> Option<i32> {
        self.outcome.map(Outcome::code)
    }

    /// Whether it ended (succeeded or failed).
    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }

    /// Whether it failed because it was canceled (R-CONTROL).
    pub fn canceled(&self) -> bool {
        matches!(
            self.outcome,
            Some(Outcome::Failed {
                reason: FailReason::Canceled,
                ..
            })
        )
    }
}

/// The events of job `id` that the engine's journal still holds (what
/// [`JobStore::history`](crate::JobStore::history) answers for an [`Engine`]).
pub fn history<Tb: EngineTable>(engine: &Engine<Tb>, id: JobId) -> History {
    crate::store::journal_history(engine, id)
}

/// Put the times a job has into a dialect's JSON object under the dialect's names (RFC 3339;
/// a time the job does not have yet is left out), then its `_links.self` to `href`.
pub(crate) fn put_times_and_link(
    m: &mut serde_json::Map<String, serde_json::Value>,
    times: &[(&str, Option<SystemTime>)],
    href: String,
) {
    for (name, t) in times {
        if let Some(t) = t {
            m.insert(
                (*name).into(),
                serde_json::Value::String(super::rfc3339::format(*t)),
            );
        }
    }
    m.insert("_links".into(), serde_json::json!({"self": {"href": href}}));
}
