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
//! The function chooses once, at start, and hands its [`LogKeys`] to what
//! logs keys (the replicator, the breaker); the CLI never hashes, so its own
//! messages, shown to the operator who ran it, name keys plainly.

use std::borrow::Cow;
use std::fmt;

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::engine::KeyNames;
use crate::protocol::marker::MarkerKey;

/// The purpose the log key is derived from the marker key for.
const PURPOSE: &str = "toastrep log keys v1";
/// Bytes of the HMAC kept: 96 bits.
const HASH_BYTES: usize = 12;

/// How the function's logs name object keys.
#[derive(Clone)]
pub enum LogKeys {
    Plain,
    /// As their keyed hash under this derived key (see [`log_key`]).
    Hashed([u8; 32]),
}

impl LogKeys {
    /// Keys logged as their keyed hash under the set's `marker_key`.
    pub fn hashed(marker_key: &MarkerKey) -> LogKeys {
        LogKeys::Hashed(log_key(marker_key))
    }
}

impl fmt::Debug for LogKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogKeys::Plain => "LogKeys::Plain",
            LogKeys::Hashed(_) => "LogKeys::Hashed(…)",
        })
    }
}

impl KeyNames for LogKeys {
    fn name<'k>(&self, key: &'k str) -> Cow<'k, str> {
        match self {
            LogKeys::Plain => Cow::Borrowed(key),
            LogKeys::Hashed(log_key) => Cow::Owned(hash_under(log_key, key)),
        }
    }

    fn hides_keys(&self) -> bool {
        matches!(self, LogKeys::Hashed(_))
    }
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

    #[test]
    fn hashed_log_keys_name_a_key_by_its_hash() {
        let set = MarkerKey::for_tests("set");
        let key = "customers/jane.doe@example.com/invoice.pdf";
        assert_eq!(LogKeys::hashed(&set).name(key), hash(&set, key));
        assert!(LogKeys::hashed(&set).hides_keys());
        assert_eq!(LogKeys::Plain.name(key), key);
        assert!(!LogKeys::Plain.hides_keys());
    }

    #[test]
    fn a_failure_names_its_key_as_the_logs_do() {
        use crate::engine::ReplicateError;
        use crate::store::{ErrorKind, StoreError};
        let keys = LogKeys::hashed(&MarkerKey::for_tests("set"));
        let key = "customers/jane.doe@example.com/invoice.pdf";
        let error = ReplicateError::Store(StoreError {
            kind: ErrorKind::Permanent,
            operation: "HeadObject",
            region: "eu-west-2".into(),
            bucket: "b".into(),
            key: key.into(),
            message: "S3 answered HTTP 400".into(),
        });
        let logged = error.naming_keys(&keys);
        assert!(!logged.contains("jane"), "{logged}");
        assert!(logged.contains(keys.name(key).as_ref()), "{logged}");
        assert_eq!(error.naming_keys(&LogKeys::Plain), error.to_string());
        assert!(error.to_string().contains(key));
    }
}
