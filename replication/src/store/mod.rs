//! Every S3 call replication makes, behind one small trait.
//!
//! Two implementations: [`s3::SdkStore`] on `aws-sdk-s3`, and the simulated
//! S3 in [`crate::sim`], which the deterministic simulation drives through
//! exactly the same replication code.

pub mod aws;
pub mod s3;
pub mod services;

use std::collections::BTreeMap;
use std::future::Future;

use crate::protocol::{Headers, ObjectHead, Precondition, VersionEntry};

/// A bucket and the region it lives in (calls are signed for that region).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bucket {
    pub region: String,
    pub name: String,
}

impl Bucket {
    pub fn new(region: impl Into<String>, name: impl Into<String>) -> Bucket {
        Bucket {
            region: region.into(),
            name: name.into(),
        }
    }
}

/// What HeadObject found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // Short-lived: read, then interpreted.
pub enum Lookup {
    Found(ObjectHead),
    /// A delete marker: the current version of the key, or the version
    /// asked for.
    DeleteMarker,
    /// No such key or version.
    Missing,
}

impl Lookup {
    pub fn found(self) -> Option<ObjectHead> {
        match self {
            Lookup::Found(head) => Some(head),
            Lookup::DeleteMarker | Lookup::Missing => None,
        }
    }
}

/// A server-side copy of one exact source version.
#[derive(Debug, Clone)]
pub struct CopyRequest {
    pub source: Bucket,
    pub key: String,
    pub source_version: String,
    /// The source version's ETag: the copy fails rather than copy anything else.
    pub source_etag: String,
    pub destination: Bucket,
    pub headers: Headers,
    pub metadata: BTreeMap<String, String>,
    pub precondition: Precondition,
}

/// One part of a multipart copy, as CompleteMultipartUpload wants it back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Part {
    pub number: i32,
    pub etag: String,
    /// The part's checksum, of the upload's algorithm: an upload created
    /// with a checksum algorithm completes only with every part's checksum.
    pub checksum: Option<String>,
}

/// A version a write created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub version_id: String,
}

/// One page of a bucket listing, in key order.
#[derive(Debug, Clone, Default)]
pub struct KeyPage {
    /// Key and ETag (without quotes) of each current object.
    pub keys: Vec<(String, String)>,
    /// The key the next page starts after, if there is one.
    pub next: Option<String>,
}

/// What a failed call means for replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 404: the object, version or upload is gone.
    NotFound,
    /// 412: a condition did not hold (the source changed, or the
    /// destination is no longer what the decision saw).
    PreconditionFailed,
    /// 409 ConditionalRequestConflict: a concurrent write to the same key.
    Conflict,
    /// Throttling, 5xx, timeouts, connection failures, AccessDenied right
    /// after a deploy: worth another attempt.
    Retryable,
    /// Anything else.
    Permanent,
    /// The object can never be copied as it is, whoever retries: the
    /// writer's choice, reported once instead of failing every attempt.
    NotReplicable(Unreplicable),
}

/// Why an object can never be copied as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Unreplicable {
    /// In an archive storage class (GLACIER, DEEP_ARCHIVE) and not
    /// restored: S3 answers InvalidObjectState. Restoring it (or moving it
    /// to another class) lets the next sync copy it.
    Archived,
    /// Its user metadata and toastrep's marker together exceed S3's 2 KB
    /// limit on user-defined metadata.
    MetadataTooLarge,
    /// Encrypted with a customer-provided key (SSE-C): S3 neither describes
    /// nor copies it without that key, which toastrep never holds.
    CustomerKey,
}

impl Unreplicable {
    /// What to tell the operator.
    pub fn why(self) -> &'static str {
        match self {
            Unreplicable::Archived => {
                "archived (GLACIER or DEEP_ARCHIVE): restore it, and the next sync copies it"
            }
            Unreplicable::MetadataTooLarge => {
                "its user metadata leaves no room for toastrep's marker within S3's 2 KB: \
                 write it with less metadata"
            }
            Unreplicable::CustomerKey => {
                "encrypted with a customer-provided key (SSE-C), which toastrep never holds: \
                 write it with SSE-S3 or SSE-KMS instead"
            }
        }
    }
}

/// A failed store call, classified.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.naming_key(.key))]
pub struct StoreError {
    pub kind: ErrorKind,
    pub operation: &'static str,
    pub region: String,
    pub bucket: String,
    pub key: String,
    pub message: String,
}

impl StoreError {
    /// The message, with the key written as `key` (the function's logs
    /// name keys by a hash: see `engine::KeyNames`).
    pub fn naming_key(&self, key: &str) -> String {
        format!(
            "{} s3://{}/{key} in {}: {}",
            self.operation, self.bucket, self.region, self.message
        )
    }

    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Retryable
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// Why the object can never be copied as it is, if that is the error.
    pub fn unreplicable(&self) -> Option<Unreplicable> {
        match self.kind {
            ErrorKind::NotReplicable(why) => Some(why),
            _ => None,
        }
    }

    /// The write's condition failed: decide again.
    pub fn is_condition(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::PreconditionFailed | ErrorKind::Conflict
        )
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The S3 calls replication makes. Every future is `Send`, so the Lambda
/// runtime and the CLI can run them on any thread.
pub trait ObjectStore: Send + Sync {
    /// Seconds since the epoch, as the store's writes will stamp them.
    fn now(&self) -> i64;

    /// HeadObject of the current object (`version` None) or one version.
    fn head(
        &self,
        bucket: &Bucket,
        key: &str,
        version: Option<&str>,
    ) -> impl Future<Output = StoreResult<Lookup>> + Send;

    /// DeleteObject without a version id, on condition the current
    /// object's ETag is `if_match`: a delete marker on top, and its version
    /// id. Replication never deletes a version: there is no call for it.
    fn delete_object(
        &self,
        bucket: &Bucket,
        key: &str,
        if_match: &str,
    ) -> impl Future<Output = StoreResult<Written>> + Send;

    /// Every version and delete marker of exactly `key`, newest first.
    fn versions(
        &self,
        bucket: &Bucket,
        key: &str,
    ) -> impl Future<Output = StoreResult<Vec<VersionEntry>>> + Send;

    /// CopyObject: metadata replaced, tags copied.
    fn copy_object(
        &self,
        request: &CopyRequest,
    ) -> impl Future<Output = StoreResult<Written>> + Send;

    /// The tags of one version.
    fn tags(
        &self,
        bucket: &Bucket,
        key: &str,
        version: &str,
    ) -> impl Future<Output = StoreResult<Vec<(String, String)>>> + Send;

    /// Sets the tags of one version (no new version, no event).
    fn put_tags(
        &self,
        bucket: &Bucket,
        key: &str,
        version: &str,
        tags: &[(String, String)],
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// CreateMultipartUpload in `request.destination`; returns the upload id.
    fn create_upload(
        &self,
        request: &CopyRequest,
        tags: &[(String, String)],
    ) -> impl Future<Output = StoreResult<String>> + Send;

    /// UploadPartCopy of bytes `first..=last`.
    fn copy_part(
        &self,
        request: &CopyRequest,
        upload_id: &str,
        part: i32,
        first: u64,
        last: u64,
    ) -> impl Future<Output = StoreResult<Part>> + Send;

    /// CompleteMultipartUpload, under `request.precondition`.
    fn complete_upload(
        &self,
        request: &CopyRequest,
        upload_id: &str,
        parts: &[Part],
    ) -> impl Future<Output = StoreResult<Written>> + Send;

    fn abort_upload(
        &self,
        bucket: &Bucket,
        key: &str,
        upload_id: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// One page of current keys under `prefix`, after the key `start`
    /// (S3's StartAfter).
    fn list_keys(
        &self,
        bucket: &Bucket,
        prefix: Option<&str>,
        start: Option<&str>,
    ) -> impl Future<Output = StoreResult<KeyPage>> + Send;
}
