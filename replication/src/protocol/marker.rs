//! Origin markers that a bucket writer can neither forge nor move.
//!
//! Every copy toastrep writes carries one user-metadata entry,
//! [`MARKER`], naming the original write it copies (region, time, version,
//! ETag) and when the copy was written. It is authenticated with an
//! HMAC-SHA256 under the set's own key ([`MarkerKey`]), over the object key
//! and every field. So:
//! - a forged marker (a writer without the key) does not verify;
//! - a marker moved to another key (a user's `aws s3 cp` of a replica to a
//!   new name keeps its metadata) or another region's bucket does not
//!   verify, since the key and the bucket's region are signed;
//! - a marker re-uploaded later (a replica downloaded and uploaded again
//!   with its metadata) does not verify, since the copy's write time is
//!   signed and must match the object's Last-Modified within [`WINDOW`].
//!
//! An object whose marker does not verify is what it looks like to S3: an
//! original write, made in its bucket's region at its Last-Modified. It
//! replicates like any other write and wins or loses by its real time.

use std::collections::BTreeMap;

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use super::write::Write;

/// The user-metadata name of the marker. S3 lowercases metadata names.
pub const MARKER: &str = "toastrep-origin";
/// Every metadata name starting with this belongs to toastrep: a copy drops
/// such names from the source's metadata before adding its own marker.
pub const RESERVED_PREFIX: &str = "toastrep-";

/// How long after its marker's write time a copy's Last-Modified may be.
/// A CopyObject's Last-Modified is set when it completes and a multipart
/// copy's when it is created, and no copy outlives the 15-minute Lambda
/// limit. A re-upload within this window of the very copy it repeats, at the
/// same key and with the same bytes and metadata, is taken for that copy.
pub const WINDOW: i64 = 15 * 60;
/// Clock difference tolerated between the writer and S3.
pub const SKEW: i64 = 5;

/// Bytes of HMAC-SHA256 kept in a marker: 128 bits.
const MAC_BYTES: usize = 16;
const FORMAT: &str = "v1";

/// The set's marker key: 32 random bytes, the same in every region.
#[derive(Clone, PartialEq, Eq)]
pub struct MarkerKey([u8; 32]);

impl std::fmt::Debug for MarkerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MarkerKey(…)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MarkerKeyError {
    #[error("a marker key is 64 hexadecimal characters (32 bytes), not {0} characters")]
    Length(usize),
    #[error("a marker key is hexadecimal: {0}")]
    Hex(#[from] hex::FromHexError),
    #[error("no random bytes from the operating system: {0}")]
    Random(String),
}

impl MarkerKey {
    /// A new random key, from the operating system's generator.
    pub fn generate() -> Result<MarkerKey, MarkerKeyError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| MarkerKeyError::Random(e.to_string()))?;
        Ok(MarkerKey(bytes))
    }

    pub fn from_hex(text: &str) -> Result<MarkerKey, MarkerKeyError> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(MarkerKeyError::Length(text.len()));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes)?;
        Ok(MarkerKey(bytes))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A key for another purpose, derived from this one
    /// (HMAC-SHA256(key, purpose)): one secret per set, and no use of it
    /// can reveal another's.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac =
            hmac::Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A key derived from a label, for tests and the simulation only.
    pub fn for_tests(label: &str) -> MarkerKey {
        let mut bytes = [0u8; 32];
        for (i, b) in label.bytes().enumerate() {
            bytes[i % 32] ^= b;
        }
        MarkerKey(bytes)
    }

    fn mac(&self, key: &str, region: &str, write: &Write, written: i64, by: &str) -> String {
        let mut mac =
            hmac::Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        // Length-prefixed fields: no two field lists sign the same bytes.
        for field in [
            FORMAT,
            key,
            region,
            &write.region,
            &write.time.to_string(),
            &write.version,
            &write.etag,
            &written.to_string(),
            by,
        ] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        hex::encode(&mac.finalize().into_bytes()[..MAC_BYTES])
    }

    /// The marker for a copy of `write` at `key` in `region`'s bucket,
    /// written at `written` (seconds since the epoch, the writer's clock).
    /// `by` names what made the copy (a notice, or sync), so a retry of
    /// that notice can tell its own earlier writes from others'.
    pub fn seal(&self, key: &str, region: &str, write: &Write, written: i64, by: &str) -> String {
        format!(
            "{FORMAT};region={};time={};version={};etag={};written={written};by={by};mac={}",
            write.region,
            write.time,
            write.version,
            write.etag,
            self.mac(key, region, write, written, by)
        )
    }

    /// The write a marker names, if it verifies for an object at `key` in
    /// `region`'s bucket, last modified at `last_modified`. `None` for anything else: no
    /// marker, a malformed one, a wrong MAC, or a write time too far from
    /// the object's.
    pub fn open(
        &self,
        key: &str,
        region: &str,
        metadata: &BTreeMap<String, String>,
        last_modified: i64,
    ) -> Option<(Write, String)> {
        let (write, written, by, mac) = parse(metadata.get(MARKER)?)?;
        if !(written - SKEW..=written + WINDOW).contains(&last_modified) {
            return None;
        }
        let expected = self.mac(key, region, &write, written, by);
        // Compare in constant time: the MAC is a secret-derived value.
        let same = expected.len() == mac.len()
            && expected
                .bytes()
                .zip(mac.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        same.then(|| (write, by.to_owned()))
    }
}

fn parse(value: &str) -> Option<(Write, i64, &str, &str)> {
    let mut parts = value.split(';');
    if parts.next()? != FORMAT {
        return None;
    }
    let mut field =
        |name: &str| -> Option<&str> { parts.next()?.strip_prefix(name)?.strip_prefix('=') };
    let region = field("region")?.to_owned();
    let time = field("time")?.parse().ok()?;
    let version = field("version")?.to_owned();
    let etag = field("etag")?.to_owned();
    let written = field("written")?.parse().ok()?;
    let by = field("by")?;
    let mac = field("mac")?;
    Some((
        Write {
            region,
            time,
            version,
            etag,
        },
        written,
        by,
        mac,
    ))
}

/// The source's metadata as a copy carries it: everything the writer set,
/// without names reserved for toastrep, plus the copy's own marker.
pub fn metadata_for_copy(
    source: &BTreeMap<String, String>,
    marker: String,
) -> BTreeMap<String, String> {
    let mut metadata = user_metadata(source);
    metadata.insert(MARKER.to_owned(), marker);
    metadata
}

/// A version's own metadata, without toastrep's (`toastrep-*`) entries.
pub fn user_metadata(source: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    source
        .iter()
        .filter(|(name, _)| !name.starts_with(RESERVED_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write() -> Write {
        Write {
            region: "eu-west-2".into(),
            time: 1_700_000_000,
            version: "v.1_x".into(),
            etag: "abc".into(),
        }
    }

    fn sealed(key: &MarkerKey, object_key: &str, written: i64) -> BTreeMap<String, String> {
        BTreeMap::from([(
            MARKER.to_owned(),
            key.seal(object_key, "us-east-1", &write(), written, "us-east-1:v9"),
        )])
    }

    #[test]
    fn a_sealed_marker_opens_for_its_key_and_time() {
        let key = MarkerKey::for_tests("set");
        let metadata = sealed(&key, "a/b", 1_700_000_010);
        assert_eq!(
            key.open("a/b", "us-east-1", &metadata, 1_700_000_011),
            Some((write(), "us-east-1:v9".to_owned()))
        );
    }

    #[test]
    fn a_marker_moved_to_another_key_or_region_does_not_open() {
        let key = MarkerKey::for_tests("set");
        let metadata = sealed(&key, "a/b", 1_700_000_010);
        assert_eq!(key.open("a/c", "us-east-1", &metadata, 1_700_000_011), None);
        assert_eq!(key.open("a/b", "eu-west-1", &metadata, 1_700_000_011), None);
    }

    #[test]
    fn a_marker_reuploaded_after_the_window_does_not_open() {
        let key = MarkerKey::for_tests("set");
        let metadata = sealed(&key, "k", 1_700_000_010);
        assert_eq!(
            key.open("k", "us-east-1", &metadata, 1_700_000_010 + WINDOW + 1),
            None
        );
        assert_eq!(
            key.open("k", "us-east-1", &metadata, 1_700_000_010 - SKEW - 1),
            None
        );
    }

    #[test]
    fn another_sets_key_or_an_edited_field_does_not_open() {
        let key = MarkerKey::for_tests("set");
        let metadata = sealed(&MarkerKey::for_tests("other"), "k", 10);
        assert_eq!(key.open("k", "us-east-1", &metadata, 10), None);
        let mut forged = sealed(&key, "k", 10);
        let far_future = forged[MARKER].replace("time=1700000000", "time=4102444800");
        forged.insert(MARKER.to_owned(), far_future);
        assert_eq!(key.open("k", "us-east-1", &forged, 10), None);
    }

    #[test]
    fn malformed_markers_do_not_open() {
        let key = MarkerKey::for_tests("set");
        for value in [
            "",
            "v1",
            "v2;region=a",
            "v1;region=a;time=x;version=v;etag=e;written=1;by=s;mac=00",
        ] {
            let metadata = BTreeMap::from([(MARKER.to_owned(), value.to_owned())]);
            assert_eq!(key.open("k", "us-east-1", &metadata, 1), None, "{value}");
        }
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let key = MarkerKey::generate().unwrap();
        assert_eq!(MarkerKey::from_hex(&key.to_hex()).unwrap(), key);
        assert!(matches!(
            MarkerKey::from_hex("abc"),
            Err(MarkerKeyError::Length(3))
        ));
        assert!(matches!(
            MarkerKey::from_hex(&"zz".repeat(32)),
            Err(MarkerKeyError::Hex(_))
        ));
    }

    #[test]
    fn copies_drop_reserved_names_and_keep_the_rest() {
        let source = BTreeMap::from([
            ("colour".to_owned(), "blue".to_owned()),
            ("toastrep-origin".to_owned(), "forged".to_owned()),
            ("toastrep-origin-region".to_owned(), "old".to_owned()),
        ]);
        let copied = metadata_for_copy(&source, "m".into());
        assert_eq!(
            copied,
            BTreeMap::from([
                ("colour".to_owned(), "blue".to_owned()),
                (MARKER.to_owned(), "m".to_owned())
            ])
        );
    }
}
