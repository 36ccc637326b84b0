//! Idempotency keys as the job table keeps them (R-IDEMPOTENT): never the header a client
//! sent, but `HMAC-SHA256(secret, user ‖ 0 ‖ header)` — keyed with a secret of this appliance,
//! and scoped to the authenticated user.
//!
//! The core keeps a key as a 64-bit hash (FNV-1a) of the bytes it is given. Given the raw
//! header, a client could craft a token whose hash equals another client's token and be
//! answered with that client's job (or refuse that client's request as a conflict). Given a
//! MAC under a secret the client never sees, no token can be crafted to collide, and the user
//! in the MAC's input makes two users' equal tokens two different keys. Without
//! authentication every request is the same (empty) user.
//!
//! The secret is drawn once per data directory and kept in it beside the UUID instance tag
//! ([`crate::storage`]), so keys still name their jobs after a restart; `--ephemeral` draws
//! one per run.

use std::fs;
use std::io;
use std::path::Path;

use hmac::{Hmac, Mac};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::Sha256;

/// The appliance's key secret (32 random bytes).
#[derive(Clone)]
pub struct KeySecret([u8; 32]);

impl std::fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySecret(..)")
    }
}

impl KeySecret {
    /// A fresh secret from the system's random source.
    pub fn random() -> io::Result<Self> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| io::Error::other("no random source for the idempotency key secret"))?;
        Ok(KeySecret(bytes))
    }

    /// The secret kept at `path` (64 hex digits), or a fresh one written there (readable by
    /// the owner only) when there is none.
    pub fn load_or_create(path: &Path) -> io::Result<Self> {
        match fs::read_to_string(path) {
            Ok(text) => Self::parse(text.trim()).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: not 64 hex digits", path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let secret = Self::random()?;
                let mut text = String::with_capacity(65);
                for b in secret.0 {
                    text.push_str(&format!("{b:02x}"));
                }
                text.push('\n');
                crate::storage::write_private(path, text.as_bytes())?;
                Ok(secret)
            }
            Err(e) => Err(e),
        }
    }

    fn parse(text: &str) -> Option<Self> {
        if text.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (k, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(text.get(2 * k..2 * k + 2)?, 16).ok()?;
        }
        Some(KeySecret(bytes))
    }

    /// The key the job table keeps for `header` sent by `user` (`None` without
    /// authentication): `HMAC-SHA256(secret, user ‖ 0 ‖ header)`.
    pub fn derive(&self, user: Option<&str>, header: &[u8]) -> [u8; 32] {
        // A key of any length is valid for HMAC.
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.0) else {
            unreachable!("HMAC takes a key of any length")
        };
        mac.update(user.unwrap_or("").as_bytes());
        mac.update(&[0]);
        mac.update(header);
        mac.finalize().into_bytes().into()
    }

    /// [`KeySecret::derive`] of an optional header.
    pub fn scope(&self, user: Option<&str>, header: Option<&[u8]>) -> Option<[u8; 32]> {
        header.map(|h| self.derive(user, h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_idempotent_keys_are_scoped_to_the_user_and_the_secret() {
        let a = KeySecret([1; 32]);
        let b = KeySecret([2; 32]);
        let k = a.derive(Some("alice"), b"token");
        assert_eq!(k, a.derive(Some("alice"), b"token"), "the same key again");
        assert_ne!(k, a.derive(Some("bob"), b"token"), "another user");
        assert_ne!(k, a.derive(None, b"token"), "no user");
        assert_ne!(k, b.derive(Some("alice"), b"token"), "another secret");
        // The 0 separates the user from the header: no (user, header) split collides.
        assert_ne!(a.derive(Some("ab"), b"c"), a.derive(Some("a"), b"bc"));
        // HMAC-SHA256 as RFC 4231 test case 2 computes it ("Jefe", "what do ya want for
        // nothing?"), through the same crates.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let out: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(out[..4], [0x5b, 0xdc, 0xc1, 0x46]);
    }

    #[test]
    fn the_secret_is_kept_and_read_back() {
        let dir = std::env::temp_dir().join(format!("appliance-keys-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("idempotency-secret");
        let _ = fs::remove_file(&path);
        let first = KeySecret::load_or_create(&path).unwrap();
        let again = KeySecret::load_or_create(&path).unwrap();
        assert_eq!(first.0, again.0);
        fs::write(&path, "nothex").unwrap();
        assert!(KeySecret::load_or_create(&path).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
