//! What the protocol decides on: object versions as the store describes
//! them, and the condition a write carries. Here, not in `store/`, so the
//! protocol depends on nothing that does I/O; the store speaks in them.

use std::collections::BTreeMap;

/// The headers a writer can set on an object, which a copy keeps. With
/// MetadataDirective REPLACE S3 keeps none of them unless they are sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    /// The Expires header as stored (an HTTP date).
    pub expires: Option<String>,
    pub website_redirect_location: Option<String>,
    /// `None` is STANDARD.
    pub storage_class: Option<String>,
    /// The additional checksum's algorithm (CRC32, CRC32C, SHA1, SHA256,
    /// CRC64NVME), so a copy computes the same kind.
    pub checksum_algorithm: Option<String>,
    /// Object Lock retention and legal hold, kept where the destination
    /// bucket has Object Lock.
    pub object_lock_mode: Option<String>,
    pub object_lock_retain_until: Option<String>,
    pub object_lock_legal_hold: Option<String>,
}

/// One object version as HeadObject describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    /// `null` on an unversioned bucket.
    pub version_id: String,
    /// Without quotes.
    pub etag: String,
    /// Whole seconds since the epoch.
    pub last_modified: i64,
    pub size: u64,
    /// Whether the ETag is the content's MD5: S3's is for an object
    /// uploaded in one part, unencrypted or encrypted with S3's own keys;
    /// not for one uploaded in parts or encrypted with a KMS or customer
    /// key.
    pub etag_is_md5: bool,
    /// User metadata, names lowercased.
    pub metadata: BTreeMap<String, String>,
    pub headers: Headers,
}

/// One entry of a key's history, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionEntry {
    Object {
        version_id: String,
        etag: String,
        last_modified: i64,
    },
    DeleteMarker {
        version_id: String,
        last_modified: i64,
    },
}

impl VersionEntry {
    pub fn version_id(&self) -> &str {
        match self {
            VersionEntry::Object { version_id, .. }
            | VersionEntry::DeleteMarker { version_id, .. } => version_id,
        }
    }

    pub fn last_modified(&self) -> i64 {
        match self {
            VersionEntry::Object { last_modified, .. }
            | VersionEntry::DeleteMarker { last_modified, .. } => *last_modified,
        }
    }
}

/// A condition on the destination of a write: what the decision saw there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// The destination's current object still has this ETag.
    IfMatch(String),
    /// The destination still has no current object.
    IfNoneMatch,
}
