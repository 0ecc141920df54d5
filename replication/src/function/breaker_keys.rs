//! Where the mass-delete breaker keeps its state, in each region's artifact
//! bucket: the function writes it, the CLI reads and clears it, and a
//! lifecycle rule expires the counts.

/// One empty object per delete counted, under
/// `COUNTS/SOURCE/MINUTE/MARKER`.
pub const COUNTS: &str = "breaker/deletes/";

/// The open breakers, one object per source region.
pub const OPEN: &str = "breaker/open/";

/// The deletes from `source` counted in the minute starting at `minute`
/// (unix seconds).
pub fn count_prefix(source: &str, minute: i64) -> String {
    format!("{COUNTS}{source}/{minute}/")
}

/// The open breaker for deletes from `source`.
pub fn open_key(source: &str) -> String {
    format!("{OPEN}{source}")
}

/// The message attribute a held delete carries: the function's seal over
/// the message, so `toastrep deletes` acts only on what the function wrote.
pub const SEAL_ATTRIBUTE: &str = "toastrep-seal";

/// What the seal is made with: a key derived from the set's marker key for
/// this purpose alone.
const SEAL_PURPOSE: &str = "toastrep held delete v1";

/// The seal of a held-delete message whose body is `body`, destined for
/// `region`'s queue (a message moved to another region's queue does not
/// verify there).
pub fn seal(key: &crate::MarkerKey, region: &str, body: &str) -> String {
    use hmac::Mac;
    hex::encode(sealer(key, region, body).finalize().into_bytes())
}

/// Whether `seal` is the function's seal of `body` for `region`, compared
/// in constant time (the seal is a secret-derived value).
pub fn is_sealed(key: &crate::MarkerKey, region: &str, body: &str, seal: &str) -> bool {
    use hmac::Mac;
    hex::decode(seal).is_ok_and(|seal| sealer(key, region, body).verify_slice(&seal).is_ok())
}

fn sealer(key: &crate::MarkerKey, region: &str, body: &str) -> hmac::Hmac<sha2::Sha256> {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key.derive(SEAL_PURPOSE))
        .expect("HMAC takes any key length");
    for field in [region, body] {
        mac.update(&(field.len() as u64).to_be_bytes());
        mac.update(field.as_bytes());
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MarkerKey;

    #[test]
    fn a_seal_verifies_only_for_its_message_region_and_key() {
        let key = MarkerKey::for_tests("set");
        let seal = seal(&key, "eu-west-2", "{\"Records\":[]}");
        assert!(is_sealed(&key, "eu-west-2", "{\"Records\":[]}", &seal));
        assert!(!is_sealed(&key, "eu-west-2", "{\"Records\":[1]}", &seal));
        assert!(!is_sealed(&key, "us-east-1", "{\"Records\":[]}", &seal));
        let other = MarkerKey::for_tests("other");
        assert!(!is_sealed(&other, "eu-west-2", "{\"Records\":[]}", &seal));
        assert!(!is_sealed(&key, "eu-west-2", "{\"Records\":[]}", ""));
    }
}
