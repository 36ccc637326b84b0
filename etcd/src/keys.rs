//! Where things live in etcd, under the cluster's prefix (default `/jobstate/`):
//!
//! | key | value |
//! | --- | --- |
//! | `jobs/<id>` | one job: its state revision and its record image ([`crate::value`]) |
//! | `tombs/<id>` | what is left of a job after its retention: its record holding only the tombstone, under a lease that ends it after `tombstone_ttl` |
//! | `claims/<id>` | the replica running the job, attached to that replica's lease |
//! | `count` | how many job records exist (the cluster-wide capacity check) |
//! | `epoch` | the last id epoch a replica took (each replica start takes the next) |
//! | `tag` | the UUID instance tag every replica prints job ids with |
//!
//! `<id>` is the job id's 10 bytes ([`JobId::to_bytes`]) in lower-case hex.

use jobstate::JobId;

/// The key layout under one prefix.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    prefix: String,
}

fn hex(id: JobId) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(JobId::BYTES * 2);
    for b in id.to_bytes() {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(text: &[u8]) -> Option<JobId> {
    if text.len() != JobId::BYTES * 2 {
        return None;
    }
    let mut bytes = [0u8; JobId::BYTES];
    for (i, b) in bytes.iter_mut().enumerate() {
        let pair = std::str::from_utf8(text.get(2 * i..2 * i + 2)?).ok()?;
        *b = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(JobId::from_bytes(bytes))
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        let mut prefix = prefix.to_owned();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Self { prefix }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn jobs(&self) -> String {
        format!("{}jobs/", self.prefix)
    }

    pub(crate) fn job(&self, id: JobId) -> String {
        format!("{}jobs/{}", self.prefix, hex(id))
    }

    pub(crate) fn tomb(&self, id: JobId) -> String {
        format!("{}tombs/{}", self.prefix, hex(id))
    }

    pub(crate) fn claims(&self) -> String {
        format!("{}claims/", self.prefix)
    }

    pub(crate) fn claim(&self, id: JobId) -> String {
        format!("{}claims/{}", self.prefix, hex(id))
    }

    pub(crate) fn count(&self) -> String {
        format!("{}count", self.prefix)
    }

    pub(crate) fn epoch(&self) -> String {
        format!("{}epoch", self.prefix)
    }

    pub(crate) fn tag(&self) -> String {
        format!("{}tag", self.prefix)
    }

    /// The job a `jobs/<id>` key names.
    pub(crate) fn job_of(&self, key: &[u8]) -> Option<JobId> {
        unhex(key.strip_prefix(self.jobs().as_bytes())?)
    }

    /// The job a `claims/<id>` key names.
    pub(crate) fn claim_of(&self, key: &[u8]) -> Option<JobId> {
        unhex(key.strip_prefix(self.claims().as_bytes())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_keys_round_trip() {
        let keys = Keys::new("/x");
        let id = JobId::from_bytes([0, 0, 0, 7, 0, 0, 1, 2, 0, 3]);
        assert_eq!(keys.job(id), "/x/jobs/00000007000001020003");
        assert_eq!(keys.job_of(keys.job(id).as_bytes()), Some(id));
        assert_eq!(keys.claim_of(keys.claim(id).as_bytes()), Some(id));
        assert_eq!(keys.job_of(keys.claim(id).as_bytes()), None);
        assert_eq!(keys.job_of(b"/x/jobs/0000zz"), None);
    }
}
