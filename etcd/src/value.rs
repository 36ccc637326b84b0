//! A job's value in etcd: 8 bytes of state revision (little-endian; 0 = the state last
//! changed in the very commit that wrote this value, i.e. at the key's mod revision), then the
//! job's [`JobRecord`] image. Revisions are etcd's: a job's revision is its key's mod
//! revision (R-VERSION).

use jobstate::persist::JobRecord;
use jobstate::{JobId, Revision, State};
use jobstate_std::store::StoreError;
use jobstate_std::{Clock, Snapshot};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A job as read from etcd: the record, and the revisions around it.
pub(crate) struct Stored<S, const T: usize> {
    pub(crate) record: JobRecord<S, T>,
    /// The key's mod revision (the job's revision).
    pub(crate) mod_revision: i64,
    /// The key's create revision (submission order).
    pub(crate) create_revision: i64,
    /// The revision of the last state change.
    pub(crate) state_revision: i64,
}

fn bad(what: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("a job record in etcd is unreadable: {what}").into())
}

impl<S: DeserializeOwned, const T: usize> Stored<S, T> {
    /// Read a `jobs/<id>` value with its key's revisions.
    pub(crate) fn decode(
        value: &[u8],
        mod_revision: i64,
        create_revision: i64,
    ) -> Result<Self, StoreError> {
        let (head, image) = value.split_at_checked(8).ok_or_else(|| bad("too short"))?;
        let mut raw = [0u8; 8];
        raw.copy_from_slice(head);
        let stored = i64::from_le_bytes(raw);
        let record = JobRecord::decode(image).map_err(bad)?;
        Ok(Self {
            record,
            mod_revision,
            create_revision,
            state_revision: if stored == 0 { mod_revision } else { stored },
        })
    }
}

impl<S: Clone, const T: usize> Stored<S, T> {
    /// The job under its store id and etcd revisions.
    pub(crate) fn snapshot(&self, id: JobId, clock: Clock) -> Option<Snapshot<S, T>> {
        let rev = |r: i64| Revision::new(u64::try_from(r).unwrap_or(0));
        self.record
            .snapshot(id, rev(self.mod_revision), Some(rev(self.state_revision)))
            .map(|job| Snapshot::new(job, clock))
    }
}

/// The value to write for `record` after a change: `state_changed` says whether the change
/// moved the job's state (then its state revision is the commit's own revision).
pub(crate) fn encode<S: Serialize, const T: usize>(
    record: &JobRecord<S, T>,
    state_revision: Option<i64>,
) -> Result<Vec<u8>, StoreError> {
    let mut size = 512;
    loop {
        let mut buf = vec![0u8; size];
        let (head, body) = buf.split_at_mut(8);
        head.copy_from_slice(&state_revision.unwrap_or(0).to_le_bytes());
        match record.encode(body) {
            Ok(n) => {
                buf.truncate(8 + n);
                return Ok(buf);
            }
            Err(jobstate::persist::EncodeError::BufferTooSmall) if size < (1 << 24) => size *= 4,
            Err(e) => {
                return Err(StoreError::Unavailable(
                    format!("the job cannot be encoded: {e}").into(),
                ))
            }
        }
    }
}

/// The state revision to store after a change from `before` to the record's state now.
pub(crate) fn state_revision_after<S, const T: usize>(
    before: Option<State>,
    old_state_revision: i64,
    record: &JobRecord<S, T>,
) -> Option<i64> {
    if record.state() == before {
        Some(old_state_revision)
    } else {
        None
    }
}
