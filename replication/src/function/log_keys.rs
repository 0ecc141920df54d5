//! How object keys appear in the function's log lines and error messages.
//!
//! Keys are whatever bucket writers make them, and often hold personal data
//! (names, e-mail addresses, customer ids). A log group is read by more
//! people, and kept longer, than the data. So by default the function logs a
//! keyed hash of each key instead: `k:` and 24 hexadecimal digits of
//! HMAC-SHA256 under a key derived from the set's marker key. The same key
//! always gives the same hash, so one object's lines can still be followed
//! and grepped for (`toastrep hash-key` prints a key's hash); without the
//! set's secret, no one can test a guessed key against the log.
//!
//! The function chooses once, at start ([`hash_with`]); the CLI never does,
//! so its own messages, shown to the operator who ran it, name keys plainly.

use std::fmt;
use std::sync::OnceLock;

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::protocol::marker::MarkerKey;

/// The purpose the log key is derived from the marker key for.
const PURPOSE: &str = "toastrep log keys v1";
/// Bytes of the HMAC kept: 96 bits.
const HASH_BYTES: usize = 12;

static LOG_KEY: OnceLock<[u8; 32]> = OnceLock::new();

/// From now on, keys are logged as their keyed hash under the set's key.
pub fn hash_with(marker_key: &MarkerKey) {
    let _ = LOG_KEY.set(log_key(marker_key));
}

/// Whether keys are logged as hashes.
pub fn hashing() -> bool {
    LOG_KEY.get().is_some()
}

/// The hash `key` is logged as under the set's `marker_key`.
pub fn hash(marker_key: &MarkerKey, key: &str) -> String {
    hash_under(&log_key(marker_key), key)
}

/// The key the logs' hashes are made under, derived from the marker key:
/// all that finding a key's lines needs (`toastrep hash-key`), and it
/// reveals nothing of the marker key, so it can be given to log readers who
/// must never be able to seal a marker.
pub fn log_key(marker_key: &MarkerKey) -> [u8; 32] {
    marker_key.derive(PURPOSE)
}

/// The hash `key` is logged as under the derived `log_key`.
pub fn hash_under(log_key: &[u8; 32], key: &str) -> String {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(log_key).expect("HMAC takes any key length");
    mac.update(key.as_bytes());
    format!(
        "k:{}",
        hex::encode(&mac.finalize().into_bytes()[..HASH_BYTES])
    )
}

/// `key` as logs show it: itself, or its keyed hash once [`hash_with`] ran.
pub fn shown(key: &str) -> Shown<'_> {
    Shown(key)
}

pub struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match LOG_KEY.get() {
            Some(log_key) => f.write_str(&hash_under(log_key, self.0)),
            None => f.write_str(self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keys_hash_is_stable_keyed_and_hides_the_key() {
        let set = MarkerKey::for_tests("set");
        let other = MarkerKey::for_tests("other set");
        let key = "customers/jane.doe@example.com/invoice.pdf";
        let hashed = hash(&set, key);
        assert_eq!(hashed, hash(&set, key));
        assert_ne!(hashed, hash(&set, "customers/john/invoice.pdf"));
        assert_ne!(
            hashed,
            hash(&other, key),
            "another set's secret, another hash"
        );
        assert!(!hashed.contains("jane"));
        assert_eq!(hashed.len(), 2 + 2 * HASH_BYTES);
    }
}
