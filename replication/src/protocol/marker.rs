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
//!   signed and must match the object's Last-Modified within [`WINDOW`];
//! - a marker put on other bytes does not verify: it signs what the copy
//!   is ([`Copied`]), its size always, and its ETag where S3's ETag is the
//!   content's MD5 (single-part, not KMS- or customer-key encrypted), and
//!   every read checks the object against it.
//!
//! An object whose marker does not verify is what it looks like to S3: an
//! original write, made in its bucket's region at its Last-Modified. It
//! replicates like any other write and wins or loses by its real time.

use std::collections::BTreeMap;

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use super::key_ring::Rotation;

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
/// Markers bound to what was copied, naming the key that sealed them.
const FORMAT: &str = "v3";
/// Markers bound to what was copied, of the release before key ids: still
/// read, under any key of the ring.
const FORMAT_V2: &str = "v2";
/// Markers of earlier releases, bound to no bytes: still read, so a set's
/// replicas stay replicas when its functions are upgraded. A fresh v1 marker
/// exists only within [`WINDOW`] of an upgrade, and none is made after it.
const FORMAT_V1: &str = "v1";
/// What a key's id is derived for (see [`MarkerKey::id`]).
const ID_PURPOSE: &str = "toastrep marker key id v1";

/// What a copy is, as S3 will store it: what its marker binds it to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub size: u64,
    /// The copy's ETag, where it is known before the copy is made: a
    /// single CopyObject of an object whose ETag is its MD5 (a copy's ETag
    /// is then the same MD5). `None` for a copy in parts, or of an object
    /// uploaded in parts or encrypted with a KMS or customer key.
    pub md5: Option<String>,
    /// For a copy in parts, how many: S3's ETag of it ends in `-N`.
    pub parts: Option<u32>,
    /// For a single CopyObject of an object whose ETag is not its MD5: that
    /// ETag. S3 gives the copy a fresh one-part ETag; a store that keeps
    /// the source's (the emulator) gives it this one.
    pub source_etag: Option<String>,
}

impl Copied {
    /// Whether an object of `etag` and `size` is this copy. Where S3's ETag
    /// of the object is not its MD5 (`etag_is_md5` false: a KMS-encrypted
    /// destination, say), only the size can be compared.
    pub fn fits(&self, etag: &str, size: u64, etag_is_md5: bool) -> bool {
        let etag = etag.trim_matches('"');
        let in_parts = etag.rsplit_once('-').map(|(_, parts)| parts);
        size == self.size
            && match (&self.md5, self.parts) {
                (_, Some(parts)) => in_parts == Some(&parts.to_string()),
                // One CopyObject makes an object of one part, or keeps the
                // source's ETag.
                (_, None) if in_parts.is_some() => self
                    .source_etag
                    .as_deref()
                    .is_some_and(|source| source.eq_ignore_ascii_case(etag)),
                (Some(md5), None) if etag_is_md5 => md5.eq_ignore_ascii_case(etag),
                _ => true,
            }
    }
}

/// The object a marker is read on: where it is, and what S3 says of it.
#[derive(Debug, Clone, Copy)]
pub struct Object<'a> {
    pub key: &'a str,
    pub region: &'a str,
    pub metadata: &'a BTreeMap<String, String>,
    pub last_modified: i64,
    pub etag: &'a str,
    pub size: u64,
    /// S3's ETag of it is its MD5 (see [`Copied::md5`]).
    pub etag_is_md5: bool,
}

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
}

impl MarkerKey {
    /// A key of these bytes. The protocol draws no randomness: a new key's
    /// bytes come from whoever makes keys (the CLI's `marker_key::generate`).
    pub fn from_bytes(bytes: [u8; 32]) -> MarkerKey {
        MarkerKey(bytes)
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

    /// The key's public name, written into every marker it seals: 8
    /// hexadecimal digits derived from it, which reveal nothing of it. A
    /// reader picks the key of its ring a marker names, and a sync finds the
    /// markers an old key sealed without verifying them.
    pub fn id(&self) -> String {
        hex::encode(&self.derive(ID_PURPOSE)[..4])
    }

    /// A key derived from a label, for tests and the simulation only.
    pub fn for_tests(label: &str) -> MarkerKey {
        let mut bytes = [0u8; 32];
        for (i, b) in label.bytes().enumerate() {
            bytes[i % 32] ^= b;
        }
        MarkerKey(bytes)
    }

    #[allow(clippy::too_many_arguments)]
    fn mac(
        &self,
        format: &str,
        kid: Option<&str>,
        key: &str,
        region: &str,
        write: &Write,
        written: i64,
        by: &str,
        copied: Option<&Copied>,
    ) -> String {
        let mut mac =
            hmac::Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        let size = copied.map(|c| c.size.to_string());
        let md5 = copied.map(|c| c.md5.clone().unwrap_or_default());
        let parts = copied.map(|c| c.parts.map(|p| p.to_string()).unwrap_or_default());
        let source = copied.map(|c| c.source_etag.clone().unwrap_or_default());
        // Length-prefixed fields: no two field lists sign the same bytes.
        let fields = [
            Some(format),
            kid,
            Some(key),
            Some(region),
            Some(write.region.as_str()),
            Some(&write.time.to_string()),
            Some(write.version.as_str()),
            Some(write.etag.as_str()),
            Some(&written.to_string()),
            Some(by),
            size.as_deref(),
            md5.as_deref(),
            parts.as_deref(),
            source.as_deref(),
        ];
        for field in fields.into_iter().flatten() {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        hex::encode(&mac.finalize().into_bytes()[..MAC_BYTES])
    }

    /// The marker for `copied`, a copy of `write` at `key` in `region`'s
    /// bucket, written at `written` (seconds since the epoch, the writer's
    /// clock). `by` names what made the copy (a notice, or sync), so a retry
    /// of that notice can tell its own earlier writes from others'.
    ///
    /// `with_key_id`: the marker names the key (v3), or not (v2, which every
    /// release since markers were bound to bytes reads). Sealed through
    /// [`MarkerKeys::seal`], which knows which.
    #[allow(clippy::too_many_arguments)]
    fn seal(
        &self,
        with_key_id: bool,
        key: &str,
        region: &str,
        write: &Write,
        written: i64,
        by: &str,
        copied: &Copied,
    ) -> String {
        let kid = with_key_id.then(|| self.id());
        let (format, named) = match &kid {
            Some(kid) => (FORMAT, format!(";kid={kid}")),
            None => (FORMAT_V2, String::new()),
        };
        format!(
            "{format}{named};region={};time={};version={};etag={};written={written};by={by};size={};md5={};parts={};from={};mac={}",
            write.region,
            write.time,
            write.version,
            write.etag,
            copied.size,
            copied.md5.as_deref().unwrap_or_default(),
            copied.parts.map(|p| p.to_string()).unwrap_or_default(),
            copied.source_etag.as_deref().unwrap_or_default(),
            self.mac(
                format,
                kid.as_deref(),
                key,
                region,
                write,
                written,
                by,
                Some(copied)
            )
        )
    }

    /// The write a marker names, if it verifies for `object`. `None` for
    /// anything else: no marker, a malformed one, a wrong MAC, a write time
    /// too far from the object's, or other bytes than it was sealed for.
    pub fn open(&self, object: &Object<'_>) -> Option<(Write, String)> {
        let marker = parse(object.metadata.get(MARKER)?)?;
        self.open_parsed(&marker, object)
    }

    fn open_parsed(&self, marker: &Parsed<'_>, object: &Object<'_>) -> Option<(Write, String)> {
        let last_modified = object.last_modified;
        if !(marker.written - SKEW..=marker.written + WINDOW).contains(&last_modified) {
            return None;
        }
        if let Some(copied) = &marker.copied
            && !copied.fits(object.etag, object.size, object.etag_is_md5)
        {
            return None;
        }
        let expected = self.mac(
            marker.format,
            marker.kid,
            object.key,
            object.region,
            &marker.write,
            marker.written,
            marker.by,
            marker.copied.as_ref(),
        );
        // Compare in constant time: the MAC is a secret-derived value.
        let mac = marker.mac;
        let same = expected.len() == mac.len()
            && expected
                .bytes()
                .zip(mac.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        same.then(|| (marker.write.clone(), marker.by.to_owned()))
    }
}

/// The keys a set's markers verify under: the one that seals new markers,
/// and those of a rotation that still verify (see `toastrep rotate-key`).
///
/// A rotation from key A to key B takes two steps so that no region ever
/// reads a marker it cannot verify: first every region seals with A and
/// accepts B; then every region seals with B and accepts A; once every
/// marker A sealed has been sealed again under B, A is dropped. A region
/// that read a marker it cannot verify would take a replica for an original
/// write made at the copy's time, and let it win over later writes.
///
/// Markers that name their key (v3) are sealed only once every region reads
/// them ([`MarkerKeys::naming_keys`]): a release before key ids reads a v3
/// marker as no marker, so until then markers are sealed as v2, which every
/// release reads. The first step of a rotation deploys a release that reads
/// v3 to every region; the second seals v3.
#[derive(Clone, PartialEq, Eq)]
pub struct MarkerKeys {
    current: MarkerKey,
    accepted: Vec<MarkerKey>,
    /// Keys a rotation retired, each with the time (seconds since the
    /// epoch) it was retired at: see [`MarkerKeys::retiring`].
    retired: Vec<(MarkerKey, i64)>,
    naming_keys: bool,
    rotation: Rotation,
}

impl std::fmt::Debug for MarkerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarkerKeys")
            .field("current", &self.current.id())
            .field(
                "accepted",
                &self.accepted.iter().map(MarkerKey::id).collect::<Vec<_>>(),
            )
            .field(
                "retired",
                &self
                    .retired
                    .iter()
                    .map(|(key, at)| (key.id(), *at))
                    .collect::<Vec<_>>(),
            )
            .field("naming_keys", &self.naming_keys)
            .field("rotation", &self.rotation)
            .finish()
    }
}

impl From<MarkerKey> for MarkerKeys {
    fn from(current: MarkerKey) -> MarkerKeys {
        MarkerKeys {
            current,
            accepted: Vec::new(),
            retired: Vec::new(),
            naming_keys: false,
            rotation: Rotation::Steady,
        }
    }
}

impl MarkerKeys {
    /// `current` seals; markers sealed by it or by any of `accepted` verify.
    pub fn new(current: MarkerKey, accepted: Vec<MarkerKey>) -> MarkerKeys {
        let accepted = accepted
            .into_iter()
            .filter(|key| key.id() != current.id())
            .collect();
        MarkerKeys {
            current,
            accepted,
            retired: Vec::new(),
            naming_keys: false,
            rotation: Rotation::Steady,
        }
    }

    /// `key` was retired at `at` (seconds since the epoch): it verifies
    /// markers only on versions S3 last modified before then. A retired
    /// key's markers must keep their meaning on the versions already in
    /// the buckets, or an old copy below the current object would read as
    /// an original written at its copy time, win, and be put back on top;
    /// yet nothing written since may verify under it, so a key that leaked
    /// forges nothing. S3 sets Last-Modified, not the writer.
    pub fn retiring(mut self, key: MarkerKey, at: i64) -> MarkerKeys {
        if key.id() != self.current.id() {
            self.accepted.retain(|accepted| accepted.id() != key.id());
            self.retired.push((key, at));
        }
        self
    }

    /// New markers name the key that sealed them (v3): only once every
    /// region of the set reads v3 markers.
    pub fn naming_keys(mut self) -> MarkerKeys {
        self.naming_keys = true;
        self
    }

    /// The marker for `copied`, a copy of `write` at `key` in `region`'s
    /// bucket, written at `written` (seconds since the epoch, the writer's
    /// clock), made `by` a notice or sync: under the current key, naming it
    /// once [`MarkerKeys::naming_keys`].
    pub fn seal(
        &self,
        key: &str,
        region: &str,
        write: &Write,
        written: i64,
        by: &str,
        copied: &Copied,
    ) -> String {
        self.current
            .seal(self.naming_keys, key, region, write, written, by, copied)
    }

    /// The id of the key new markers are sealed with.
    pub fn current_id(&self) -> String {
        self.current.id()
    }

    /// The key new markers are sealed with.
    pub fn current(&self) -> &MarkerKey {
        &self.current
    }

    /// The current key, then the accepted ones: the keys whose seals
    /// verify anything, whenever it was written (held deletes, say).
    pub fn live(&self) -> impl Iterator<Item = &MarkerKey> {
        std::iter::once(&self.current).chain(&self.accepted)
    }

    /// The keys whose markers verify too.
    pub fn accepted(&self) -> impl Iterator<Item = &MarkerKey> {
        self.accepted.iter()
    }

    /// The retired keys, each with the time it was retired at.
    pub fn retired(&self) -> impl Iterator<Item = (&MarkerKey, i64)> {
        self.retired.iter().map(|(key, at)| (key, *at))
    }

    /// Whether new markers name their key.
    pub fn names_keys(&self) -> bool {
        self.naming_keys
    }

    /// The step of a rotation this ring is at.
    pub fn rotation(&self) -> Rotation {
        self.rotation
    }

    /// The ring, marked as at `rotation`'s step.
    pub fn rotating(mut self, rotation: Rotation) -> MarkerKeys {
        self.rotation = rotation;
        self
    }

    /// [`MarkerKey::open`] under the key the marker names, or, for a marker
    /// of a release before key ids, under any key of the ring.
    pub fn open(&self, object: &Object<'_>) -> Option<(Write, String)> {
        self.open_with_key(object).map(|(write, by, _)| (write, by))
    }

    /// [`MarkerKeys::open`], with the id of the key it verified under.
    pub fn open_with_key(&self, object: &Object<'_>) -> Option<(Write, String, String)> {
        let marker = parse(object.metadata.get(MARKER)?)?;
        let retired = self
            .retired
            .iter()
            .filter(|(_, at)| object.last_modified < *at)
            .map(|(key, _)| key);
        let mut keys = std::iter::once(&self.current)
            .chain(&self.accepted)
            .chain(retired);
        match marker.kid {
            Some(kid) => keys
                .find(|key| key.id() == kid)
                .and_then(|key| key.open_parsed(&marker, object))
                .map(|(write, by)| (write, by, kid.to_owned())),
            None => keys.find_map(|key| {
                key.open_parsed(&marker, object)
                    .map(|(write, by)| (write, by, key.id()))
            }),
        }
    }
}

/// A marker's fields, as written.
struct Parsed<'a> {
    format: &'a str,
    /// The sealing key's id; `None` before v3.
    kid: Option<&'a str>,
    write: Write,
    written: i64,
    by: &'a str,
    /// `None` in a v1 marker.
    copied: Option<Copied>,
    mac: &'a str,
}

fn parse(value: &str) -> Option<Parsed<'_>> {
    let mut parts = value.split(';');
    let format = parts.next()?;
    if ![FORMAT, FORMAT_V2, FORMAT_V1].contains(&format) {
        return None;
    }
    let mut field =
        |name: &str| -> Option<&str> { parts.next()?.strip_prefix(name)?.strip_prefix('=') };
    let kid = if format == FORMAT {
        Some(field("kid")?)
    } else {
        None
    };
    let region = field("region")?.to_owned();
    let time = field("time")?.parse().ok()?;
    let version = field("version")?.to_owned();
    let etag = field("etag")?.to_owned();
    let written = field("written")?.parse().ok()?;
    let by = field("by")?;
    let copied = if format != FORMAT_V1 {
        let size = field("size")?.parse().ok()?;
        let md5 = field("md5")?;
        let parts = field("parts")?;
        let from = field("from")?;
        Some(Copied {
            size,
            md5: (!md5.is_empty()).then(|| md5.to_owned()),
            parts: if parts.is_empty() {
                None
            } else {
                Some(parts.parse().ok()?)
            },
            source_etag: (!from.is_empty()).then(|| from.to_owned()),
        })
    } else {
        None
    };
    let mac = field("mac")?;
    Some(Parsed {
        format,
        kid,
        write: Write {
            region,
            time,
            version,
            etag,
        },
        written,
        by,
        copied,
        mac,
    })
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

    fn copied() -> Copied {
        Copied {
            size: 5,
            md5: Some("0123456789abcdef0123456789abcdef".into()),
            parts: None,
            source_etag: None,
        }
    }

    #[test]
    fn a_copy_in_parts_fits_only_an_object_of_as_many_parts() {
        let copied = Copied {
            size: 9,
            md5: None,
            parts: Some(3),
            source_etag: None,
        };
        assert!(copied.fits("0123456789abcdef0123456789abcdef-3", 9, false));
        assert!(!copied.fits("0123456789abcdef0123456789abcdef-2", 9, false));
        assert!(!copied.fits("0123456789abcdef0123456789abcdef", 9, true));
        let single = Copied {
            size: 9,
            md5: None,
            parts: None,
            source_etag: Some("fedcba9876543210fedcba9876543210-2".into()),
        };
        assert!(single.fits("0123456789abcdef0123456789abcdef", 9, true));
        assert!(!single.fits("0123456789abcdef0123456789abcdef-2", 9, false));
        // A store that keeps the source's ETag on a copy.
        assert!(single.fits("fedcba9876543210fedcba9876543210-2", 9, false));
    }

    fn sealed(key: &MarkerKey, object_key: &str, written: i64) -> BTreeMap<String, String> {
        BTreeMap::from([(
            MARKER.to_owned(),
            MarkerKeys::from(key.clone()).naming_keys().seal(
                object_key,
                "us-east-1",
                &write(),
                written,
                "us-east-1:v9",
                &copied(),
            ),
        )])
    }

    /// The object of `copied()` at `key` in `region`, last modified then.
    fn object<'a>(
        key: &'a str,
        region: &'a str,
        metadata: &'a BTreeMap<String, String>,
        last_modified: i64,
    ) -> Object<'a> {
        Object {
            key,
            region,
            metadata,
            last_modified,
            etag: "0123456789abcdef0123456789abcdef",
            size: 5,
            etag_is_md5: true,
        }
    }

    #[test]
    fn a_marker_on_other_bytes_does_not_open() {
        let key = MarkerKey::for_tests("set");
        let metadata = sealed(&key, "k", 10);
        let fits = object("k", "us-east-1", &metadata, 11);
        assert!(key.open(&fits).is_some());
        // Other bytes of the same size, or another size.
        let other = Object {
            etag: "fedcba9876543210fedcba9876543210",
            ..fits
        };
        assert_eq!(key.open(&other), None);
        assert_eq!(key.open(&Object { size: 6, ..fits }), None);
        // Where S3's ETag is no MD5 (a KMS-encrypted bucket), the size
        // still has to fit.
        let kms = Object {
            etag: "kms0123456789abcdef0123456789abc",
            etag_is_md5: false,
            ..fits
        };
        assert!(key.open(&kms).is_some());
        assert_eq!(key.open(&Object { size: 4, ..kms }), None);
        // The binding is signed: edited to fit other bytes, it fails.
        let mut edited = metadata.clone();
        let value = edited[MARKER].replace("size=5", "size=6");
        edited.insert(MARKER.to_owned(), value);
        let edited = Object {
            size: 6,
            ..object("k", "us-east-1", &edited, 11)
        };
        assert_eq!(key.open(&edited), None);
    }

    #[test]
    fn a_marker_opens_under_a_ring_that_holds_the_key_it_names() {
        let (a, b) = (MarkerKey::for_tests("a"), MarkerKey::for_tests("b"));
        assert_ne!(a.id(), b.id());
        assert!(a.id().len() == 8 && a.id().bytes().all(|c| c.is_ascii_hexdigit()));
        let metadata = sealed(&a, "k", 10);
        assert!(metadata[MARKER].starts_with(&format!("v3;kid={};", a.id())));
        let object = object("k", "us-east-1", &metadata, 11);
        let opened = |keys: &MarkerKeys| keys.open_with_key(&object).map(|(_, _, kid)| kid);
        // Sealed by the current key, or by one the ring still accepts.
        assert_eq!(opened(&MarkerKeys::from(a.clone())), Some(a.id()));
        assert_eq!(
            opened(&MarkerKeys::new(b.clone(), vec![a.clone()])),
            Some(a.id())
        );
        // A ring without it: the object is what it looks like, an original.
        assert_eq!(opened(&MarkerKeys::from(b.clone())), None);
        // The key id is signed: naming another key of the ring fails.
        let renamed = BTreeMap::from([(
            MARKER.to_owned(),
            metadata[MARKER].replace(&a.id(), &b.id()),
        )]);
        let ring = MarkerKeys::new(a.clone(), vec![b.clone()]);
        assert_eq!(
            ring.open(&super::Object {
                metadata: &renamed,
                ..object
            }),
            None
        );
    }

    #[test]
    fn a_retired_key_reads_only_what_was_written_before_it_was_retired() {
        let (a, b) = (MarkerKey::for_tests("a"), MarkerKey::for_tests("b"));
        // Sealed by `a` at 10; `a` retired at 100.
        let metadata = sealed(&a, "k", 10);
        let ring = MarkerKeys::from(b.clone()).retiring(a.clone(), 100);
        let before = object("k", "us-east-1", &metadata, 11);
        assert_eq!(
            ring.open_with_key(&before).map(|(_, _, kid)| kid),
            Some(a.id())
        );
        // The same marker on a version S3 wrote at or after the retirement
        // (someone holding the old key forging one now) is no marker.
        let forged = sealed(&a, "k", 100);
        assert_eq!(ring.open(&object("k", "us-east-1", &forged, 101)), None);
        // Retiring the current key does nothing; retiring an accepted one
        // stops accepting it for new versions.
        let same = MarkerKeys::from(a.clone()).retiring(a.clone(), 100);
        assert!(same.open(&object("k", "us-east-1", &forged, 101)).is_some());
        let ring = MarkerKeys::new(b, vec![a.clone()]).retiring(a, 100);
        assert_eq!(ring.open(&object("k", "us-east-1", &forged, 101)), None);
    }

    #[test]
    fn a_ring_seals_markers_every_release_reads_until_told_to_name_keys() {
        let a = MarkerKey::for_tests("a");
        let seal = |keys: &MarkerKeys| keys.seal("k", "us-east-1", &write(), 10, "s", &copied());
        let plain = seal(&MarkerKeys::from(a.clone()));
        assert!(plain.starts_with("v2;region="), "{plain}");
        let named = seal(&MarkerKeys::from(a.clone()).naming_keys());
        assert!(named.starts_with(&format!("v3;kid={};", a.id())), "{named}");
        for marker in [plain, named] {
            let metadata = BTreeMap::from([(MARKER.to_owned(), marker)]);
            assert_eq!(
                MarkerKeys::from(a.clone())
                    .open(&object("k", "us-east-1", &metadata, 11))
                    .map(|(w, _)| w),
                Some(write())
            );
        }
    }

    #[test]
    fn a_v2_marker_without_a_key_id_opens_under_any_key_of_the_ring() {
        let (a, b) = (MarkerKey::for_tests("a"), MarkerKey::for_tests("b"));
        let w = write();
        let c = copied();
        let mac = a.mac(FORMAT_V2, None, "k", "us-east-1", &w, 10, "s", Some(&c));
        let v2 = format!(
            "v2;region={};time={};version={};etag={};written=10;by=s;size={};md5={};parts=;from=;mac={mac}",
            w.region,
            w.time,
            w.version,
            w.etag,
            c.size,
            c.md5.as_deref().unwrap()
        );
        let metadata = BTreeMap::from([(MARKER.to_owned(), v2)]);
        let object = object("k", "us-east-1", &metadata, 11);
        let ring = MarkerKeys::new(b.clone(), vec![a.clone()]);
        assert_eq!(
            ring.open_with_key(&object),
            Some((w, "s".to_owned(), a.id()))
        );
        assert_eq!(MarkerKeys::from(b).open(&object), None);
    }

    #[test]
    fn a_v1_marker_of_an_earlier_release_still_opens() {
        let key = MarkerKey::for_tests("set");
        let w = write();
        let mac = key.mac(FORMAT_V1, None, "k", "us-east-1", &w, 10, "s", None);
        let v1 = format!(
            "v1;region={};time={};version={};etag={};written=10;by=s;mac={mac}",
            w.region, w.time, w.version, w.etag
        );
        let metadata = BTreeMap::from([(MARKER.to_owned(), v1)]);
        assert_eq!(
            key.open(&object("k", "us-east-1", &metadata, 11)),
            Some((w, "s".to_owned()))
        );
    }

    #[test]
    fn a_sealed_marker_opens_for_its_key_and_time() {
        let key = MarkerKey::for_tests("set");
        let metadata = sealed(&key, "a/b", 1_700_000_010);
        assert_eq!(
            key.open(&object("a/b", "us-east-1", &metadata, 1_700_000_011)),
            Some((write(), "us-east-1:v9".to_owned()))
        );
    }

    #[test]
    fn a_marker_moved_to_another_key_or_region_does_not_open() {
        let key = MarkerKey::for_tests("set");
        let metadata = sealed(&key, "a/b", 1_700_000_010);
        assert_eq!(
            key.open(&object("a/c", "us-east-1", &metadata, 1_700_000_011)),
            None
        );
        assert_eq!(
            key.open(&object("a/b", "eu-west-1", &metadata, 1_700_000_011)),
            None
        );
    }

    #[test]
    fn a_marker_reuploaded_after_the_window_does_not_open() {
        let key = MarkerKey::for_tests("set");
        let metadata = sealed(&key, "k", 1_700_000_010);
        assert_eq!(
            key.open(&object(
                "k",
                "us-east-1",
                &metadata,
                1_700_000_010 + WINDOW + 1
            )),
            None
        );
        assert_eq!(
            key.open(&object(
                "k",
                "us-east-1",
                &metadata,
                1_700_000_010 - SKEW - 1
            )),
            None
        );
    }

    #[test]
    fn another_sets_key_or_an_edited_field_does_not_open() {
        let key = MarkerKey::for_tests("set");
        let metadata = sealed(&MarkerKey::for_tests("other"), "k", 10);
        assert_eq!(key.open(&object("k", "us-east-1", &metadata, 10)), None);
        let mut forged = sealed(&key, "k", 10);
        let far_future = forged[MARKER].replace("time=1700000000", "time=4102444800");
        forged.insert(MARKER.to_owned(), far_future);
        assert_eq!(key.open(&object("k", "us-east-1", &forged, 10)), None);
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
            assert_eq!(
                key.open(&object("k", "us-east-1", &metadata, 1)),
                None,
                "{value}"
            );
        }
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let key = MarkerKey::for_tests("round trip");
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
