//! Job ids on the wire: a reversible mapping between [`JobId`] and a version-8 UUID.
//!
//! A UUID has 122 free bits once the version (8, "custom") and the RFC 9562 variant are set.
//! jobstate uses 80 of them for the job id ([`JobId::to_bytes`]: epoch, generation, slot) and
//! the remaining 42 for an *instance tag* that names the engine. A UUID whose tag is not this
//! engine's (another appliance's job, a typo, a hand-made UUID) decodes to nothing, so it answers
//! 404 instead of being mistaken for a job here.
//!
//! Bit layout of the 128-bit value, most significant first:
//!
//! ```text
//! | 48 bits payload | 4 bits version = 8 | 12 bits payload | 2 bits variant = 10 | 62 bits payload |
//!   payload (122 bits) = tag (42 bits) ‖ job id (80 bits)
//! ```
//!
//! The tag is chosen per engine instance ([`JobUuids::random`]) or fixed by the service
//! ([`JobUuids::with_tag`]) — fix it when the table is persisted across restarts, so that
//! UUIDs handed out before a restart still reach their job (or its tombstone).

use std::fmt;

use jobstate::JobId;
use uuid::Uuid;

/// Bits of the instance tag.
const TAG_BITS: u32 = 42;
/// Bits of the job id.
const ID_BITS: u32 = 80;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;

/// The UUID codec of one engine: job id ↔ UUID, tagged with the engine's instance tag.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobUuids {
    tag: u64,
}

impl fmt::Debug for JobUuids {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobUuids(tag {:#x})", self.tag)
    }
}

impl JobUuids {
    /// The largest instance tag (42 bits).
    pub const MAX_TAG: u64 = TAG_MASK;

    /// A codec with this instance tag. Only the low 42 bits are kept.
    pub const fn with_tag(tag: u64) -> Self {
        Self {
            tag: tag & TAG_MASK,
        }
    }

    /// A codec with a tag drawn from the process's hash seed and the clock: distinct per
    /// engine instance with overwhelming probability.
    pub fn random() -> Self {
        use std::collections::hash_map::RandomState;
        use std::hash::{BuildHasher, Hasher};
        let mut h = RandomState::new().build_hasher();
        if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            h.write_u128(d.as_nanos());
        }
        h.write_u32(std::process::id());
        Self::with_tag(h.finish())
    }

    /// The instance tag.
    pub const fn tag(self) -> u64 {
        self.tag
    }

    /// The UUID of a job.
    pub fn encode(self, id: JobId) -> Uuid {
        let mut raw = [0u8; 16];
        if let Some(tail) = raw.get_mut(16 - JobId::BYTES..) {
            tail.copy_from_slice(&id.to_bytes());
        }
        let payload = u128::from_be_bytes(raw) | (u128::from(self.tag) << ID_BITS);
        // Spread 122 payload bits around the version nibble and the variant bits.
        let high = payload >> 74; // top 48 bits
        let mid = (payload >> 62) & 0xfff; // next 12 bits
        let low = payload & ((1u128 << 62) - 1); // last 62 bits
        let value = (high << 80) | (0x8 << 76) | (mid << 64) | (0b10 << 62) | low;
        Uuid::from_u128(value)
    }

    /// The job id a UUID stands for, if it is a version-8 UUID carrying this engine's tag.
    pub fn decode(self, uuid: Uuid) -> Option<JobId> {
        let value = uuid.as_u128();
        if (value >> 76) & 0xf != 0x8 || (value >> 62) & 0b11 != 0b10 {
            return None;
        }
        let high = value >> 80;
        let mid = (value >> 64) & 0xfff;
        let low = value & ((1u128 << 62) - 1);
        let payload = (high << 74) | (mid << 62) | low;
        let tag = u64::try_from(payload >> ID_BITS).ok()?;
        if tag != self.tag {
            return None;
        }
        let bytes = payload.to_be_bytes();
        let id: [u8; JobId::BYTES] = bytes.get(16 - JobId::BYTES..)?.try_into().ok()?;
        Some(JobId::from_bytes(id))
    }

    /// Parse a UUID string (hyphenated, simple, braced or URN form, any case) and decode it.
    /// `Err` when the text is not a UUID at all, `Ok(None)` when it is one but not this
    /// engine's.
    pub fn parse(self, text: &str) -> Result<Option<JobId>, uuid::Error> {
        Uuid::try_parse(text).map(|u| self.decode(u))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id(epoch: u32, generation: u32, index: u16) -> JobId {
        let mut b = [0u8; JobId::BYTES];
        b[..4].copy_from_slice(&epoch.to_be_bytes());
        b[4..8].copy_from_slice(&generation.to_be_bytes());
        b[8..].copy_from_slice(&index.to_be_bytes());
        JobId::from_bytes(b)
    }

    #[test]
    fn r_id_uuid_round_trip_keeps_every_bit() {
        let codec = JobUuids::with_tag(JobUuids::MAX_TAG);
        for (e, g, i) in [
            (0, 0, 0),
            (1, 1, 0),
            (u32::MAX, u32::MAX, u16::MAX),
            (0x8000_0001, 0x1234_5678, 0xbeef),
            (7, 1 << 31, 1),
        ] {
            let job = id(e, g, i);
            let uuid = codec.encode(job);
            assert_eq!(uuid.get_version_num(), 8, "{uuid}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(codec.decode(uuid), Some(job), "{uuid}");
            let text = uuid.hyphenated().to_string();
            assert_eq!(codec.parse(&text).unwrap(), Some(job));
            assert_eq!(codec.parse(&text.to_uppercase()).unwrap(), Some(job));
        }
    }

    #[test]
    fn r_id_other_engines_uuid_is_not_ours() {
        let a = JobUuids::with_tag(1);
        let b = JobUuids::with_tag(2);
        let job = id(1, 1, 3);
        assert_eq!(b.decode(a.encode(job)), None);
        // A random (v4) UUID is never a job.
        let v4 = Uuid::from_u128(0x6f1c_7ae2_4b7d_4c3a_9f0e_2d4b_6a8c_1e3f);
        assert_eq!(a.decode(v4), None);
        assert!(a.parse("not-a-uuid").is_err());
    }

    #[test]
    fn distinct_ids_give_distinct_uuids() {
        let codec = JobUuids::with_tag(0x2a);
        let mut seen = std::collections::HashSet::new();
        for e in 0..4 {
            for g in 0..16 {
                for i in 0..16 {
                    assert!(seen.insert(codec.encode(id(e, g, i))));
                }
            }
        }
    }

    #[test]
    fn random_tags_differ() {
        assert_ne!(JobUuids::random().tag(), JobUuids::random().tag());
    }
}
