//! The one primitive every write into a destination goes through: copy,
//! restore and sync repair alike. A server-side copy of one exact source
//! version (CopyObject, or UploadPartCopy parts above the threshold), with
//! the source's headers, metadata and tags and a fresh marker, on condition
//! the destination is still what the decision saw. Bytes never pass through
//! the caller.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;

use super::{Replicator, deadline};
use crate::clock;
use crate::protocol::marker::{Copied, metadata_for_copy, user_metadata};
use crate::protocol::{Precondition, Seen};
use crate::store::{
    Bucket, CopyRequest, ErrorKind, ObjectStore, Part, StoreError, StoreResult, Unreplicable,
    Written,
};

/// S3's limit for one CopyObject and for one part of a multipart copy
/// (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html>):
/// AWS's docs say "5 GB" and mean 5 GiB, 5,368,709,120 bytes.
pub const MAX_COPY_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// S3's limit on user-defined metadata: the bytes of every key and value
/// (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html>).
pub const MAX_USER_METADATA: usize = 2 * 1024;
/// S3's smallest part (all but the last).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// The most parts one copy makes at once (the base template's bound too).
pub const MAX_CONCURRENCY: usize = 64;
/// Objects up to S3's limit are copied in one request.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = MAX_COPY_SIZE;
pub const DEFAULT_PART_SIZE: u64 = 256 * 1024 * 1024;
pub const DEFAULT_CONCURRENCY: usize = 8;
/// A multipart upload has at most 10,000 parts
/// (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html>).
pub const MAX_PARTS: u64 = 10_000;

/// How copies are made. Configurable because the emulator does not enforce
/// S3's 5 GiB / 5 MiB limits, so tests exercise multipart on small objects.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CopySettings {
    /// Objects larger than this (bytes) are copied in parts.
    pub multipart_threshold: u64,
    /// Preferred part size (bytes); raised when 10,000 parts would not cover the object.
    pub part_size: u64,
    /// How many parts are copied at once (and, in the Lambda, how many records).
    pub concurrency: usize,
}

impl Default for CopySettings {
    fn default() -> Self {
        CopySettings {
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("environment variable {name} is {value:?}, not {expected}")]
pub struct SettingsError {
    pub name: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl CopySettings {
    /// Reads `MULTIPART_THRESHOLD`, `PART_SIZE` and `COPY_CONCURRENCY`;
    /// unset variables keep their defaults.
    pub fn from_env() -> Result<CopySettings, SettingsError> {
        CopySettings::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`CopySettings::from_env`], reading variables through `lookup`.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<CopySettings, SettingsError> {
        let defaults = CopySettings::default();
        let read = |name: &'static str, default: u64| -> Result<u64, SettingsError> {
            match lookup(name) {
                None => Ok(default),
                Some(value) => match value.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(SettingsError {
                        name,
                        value,
                        expected: "a positive integer",
                    }),
                },
            }
        };
        Ok(CopySettings {
            multipart_threshold: read("MULTIPART_THRESHOLD", defaults.multipart_threshold)?,
            part_size: read("PART_SIZE", defaults.part_size)?,
            concurrency: read("COPY_CONCURRENCY", defaults.concurrency as u64)? as usize,
        })
    }
}

/// The part size actually used: at least `part_size`, and large enough that
/// `size` fits in 10,000 parts.
pub fn effective_part_size(size: u64, part_size: u64) -> u64 {
    part_size.max(size.div_ceil(MAX_PARTS)).max(1)
}

/// `(part number, first byte, last byte)` for each part, inclusive ranges as
/// `x-amz-copy-source-range` wants them.
pub fn part_ranges(size: u64, part_size: u64) -> Vec<(i32, u64, u64)> {
    let part_size = effective_part_size(size, part_size);
    (0..size.div_ceil(part_size))
        .map(|i| {
            let first = i * part_size;
            let last = (first + part_size).min(size) - 1;
            (i as i32 + 1, first, last)
        })
        .collect()
}

impl<S: ObjectStore> Replicator<S> {
    /// Writes a copy of `version` (of `key` in `source`) into `destination`
    /// under `precondition`, its marker naming the write `version` is or
    /// copies. The caller
    /// checks the destination afterwards ([`Replicator::settle`]): a store
    /// may ignore the condition.
    pub(crate) async fn write_copy(
        &self,
        source: &Bucket,
        key: &str,
        version: &Seen,
        destination: &Bucket,
        precondition: Precondition,
        by: &str,
    ) -> StoreResult<Written> {
        // What the copy will be: its size, and its ETag where S3 makes it
        // the source's MD5 (one CopyObject of an object whose ETag is its
        // MD5). The marker binds itself to them.
        let head = &version.head;
        let single = head.size <= self.settings.multipart_threshold;
        let copied = Copied {
            size: head.size,
            md5: (single && head.etag_is_md5).then(|| head.etag.clone()),
            parts: (!single).then(|| {
                let parts = part_ranges(head.size, self.settings.part_size).len();
                u32::try_from(parts).unwrap_or(u32::MAX)
            }),
            source_etag: (single && !head.etag_is_md5).then(|| head.etag.clone()),
        };
        let marker = self.keys.seal(
            key,
            &destination.region,
            &version.write,
            self.store.now(),
            by,
            &copied,
        );
        let metadata = metadata_for_copy(&version.head.metadata, marker);
        // S3 would refuse it (MetadataTooLarge) on every attempt: say so
        // without asking.
        let size: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > MAX_USER_METADATA {
            return Err(StoreError {
                kind: ErrorKind::NotReplicable(Unreplicable::MetadataTooLarge),
                operation: "CopyObject",
                region: destination.region.clone(),
                bucket: destination.name.clone(),
                key: key.to_owned(),
                message: format!(
                    "its user metadata and the marker come to {size} bytes, over S3's \
                     {MAX_USER_METADATA}"
                ),
            });
        }
        self.write_version(source, key, version, destination, precondition, metadata)
            .await
    }

    /// Writes `version` (of `key` in `bucket`) again on top of `bucket`, as
    /// a new write with no marker: the user's bytes, metadata, headers and
    /// tags, made a new original now (what `restore` writes).
    pub(crate) async fn write_original(
        &self,
        bucket: &Bucket,
        key: &str,
        version: &Seen,
        precondition: Precondition,
    ) -> StoreResult<Written> {
        let metadata = user_metadata(&version.head.metadata);
        self.write_version(bucket, key, version, bucket, precondition, metadata)
            .await
    }

    async fn write_version(
        &self,
        source: &Bucket,
        key: &str,
        version: &Seen,
        destination: &Bucket,
        precondition: Precondition,
        metadata: BTreeMap<String, String>,
    ) -> StoreResult<Written> {
        let head = &version.head;
        let request = CopyRequest {
            source: source.clone(),
            key: key.to_owned(),
            source_version: head.version_id.clone(),
            source_etag: head.etag.clone(),
            destination: destination.clone(),
            headers: head.headers.clone(),
            metadata,
            precondition,
        };
        if head.size > self.settings.multipart_threshold {
            self.copy_in_parts(&request, head.size).await
        } else {
            self.store.copy_object(&request).await
        }
    }

    /// A multipart copy. Any failure after CreateMultipartUpload aborts the
    /// upload, so no incomplete upload (and its billed storage) is left; so
    /// does running out of the invocation's time ([`deadline`]).
    async fn copy_in_parts(&self, request: &CopyRequest, size: u64) -> StoreResult<Written> {
        let stop_at = deadline::copies_stop_at();
        if stop_at.is_some_and(|stop| self.clock.now_ms() >= stop) {
            return Err(out_of_time(request, "not started"));
        }
        // UploadPartCopy has no tagging directive: the tags go on the
        // upload, read from the exact source version.
        let tags = self
            .store
            .tags(&request.source, &request.key, &request.source_version)
            .await?;
        let upload_id = self.store.create_upload(request, &tags).await?;
        let copied = match stop_at {
            Some(stop) => clock::until(
                &*self.clock,
                stop,
                self.copy_parts(request, size, &upload_id),
            )
            .await
            .unwrap_or_else(|| Err(out_of_time(request, "stopped and aborted"))),
            None => self.copy_parts(request, size, &upload_id).await,
        };
        match copied {
            Ok(written) => {
                // On AWS the upload already carried the tags and this writes
                // the same ones again (no new version, no event); some stores
                // drop tags given at CreateMultipartUpload.
                if !tags.is_empty()
                    && let Err(error) = self
                        .store
                        .put_tags(
                            &request.destination,
                            &request.key,
                            &written.version_id,
                            &tags,
                        )
                        .await
                {
                    tracing::warn!(
                        error = %self.naming_key_of(&error),
                        "could not set the tags again after a multipart copy"
                    );
                }
                Ok(written)
            }
            Err(error) => {
                // Parts still in flight when time ran out were dropped: S3
                // may finish one after this abort. The bucket's lifecycle
                // rule (AbortIncompleteMultipartUpload) is the backstop for
                // that, and for an abort that fails; the copy's own error
                // matters more.
                if let Err(abort) = self
                    .store
                    .abort_upload(&request.destination, &request.key, &upload_id)
                    .await
                {
                    tracing::warn!(
                        abort = %self.naming_key_of(&abort),
                        upload_id,
                        "could not abort a failed multipart copy"
                    );
                }
                Err(error)
            }
        }
    }

    async fn copy_parts(
        &self,
        request: &CopyRequest,
        size: u64,
        upload_id: &str,
    ) -> StoreResult<Written> {
        // After the first failure, parts not yet started are skipped, but
        // parts in flight are awaited rather than dropped: S3 may finish a
        // dropped part after the abort, leaving storage behind.
        let failed = AtomicBool::new(false);
        let results: Vec<StoreResult<Option<Part>>> =
            futures::stream::iter(part_ranges(size, self.settings.part_size))
                .map(|(number, first, last)| {
                    let failed = &failed;
                    async move {
                        if failed.load(Ordering::Relaxed) {
                            return Ok(None);
                        }
                        match self
                            .store
                            .copy_part(request, upload_id, number, first, last)
                            .await
                        {
                            Ok(part) => Ok(Some(part)),
                            Err(error) => {
                                failed.store(true, Ordering::Relaxed);
                                Err(error)
                            }
                        }
                    }
                })
                .buffer_unordered(self.settings.concurrency.max(1))
                .collect()
                .await;
        let mut parts = Vec::with_capacity(results.len());
        for result in results {
            if let Some(part) = result? {
                parts.push(part);
            }
        }
        // CompleteMultipartUpload wants the parts in ascending order.
        parts.sort();
        self.store.complete_upload(request, upload_id, &parts).await
    }
}

/// A multipart copy the invocation has no time left to finish: another
/// attempt, with a fresh timeout, copies it.
fn out_of_time(request: &CopyRequest, what: &str) -> StoreError {
    StoreError {
        kind: ErrorKind::Retryable,
        operation: "UploadPartCopy",
        region: request.destination.region.clone(),
        bucket: request.destination.name.clone(),
        key: request.key.clone(),
        message: format!(
            "the invocation's time ran out for this multipart copy ({what}, {} s before the deadline)",
            deadline::ABORT_MARGIN.as_secs()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_object_exactly() {
        let mib = 1024 * 1024;
        assert_eq!(
            part_ranges(12 * mib, 5 * mib),
            vec![
                (1, 0, 5 * mib - 1),
                (2, 5 * mib, 10 * mib - 1),
                (3, 10 * mib, 12 * mib - 1)
            ]
        );
        assert_eq!(part_ranges(10, 5), vec![(1, 0, 4), (2, 5, 9)]);
        assert_eq!(part_ranges(0, 5), vec![]);
    }

    #[test]
    fn part_size_grows_to_fit_ten_thousand_parts() {
        assert_eq!(effective_part_size(100, 10), 10);
        assert_eq!(effective_part_size(1_000_001, 10), 101);
        let size = 5 * 1024u64.pow(4); // 5 TiB, S3's maximum object size
        let ranges = part_ranges(size, DEFAULT_PART_SIZE);
        assert!(ranges.len() as u64 <= MAX_PARTS);
        assert_eq!(ranges.last().unwrap().2, size - 1);
    }

    #[test]
    fn settings_from_lookup() {
        let none = CopySettings::from_lookup(|_| None).unwrap();
        assert_eq!(none, CopySettings::default());
        assert_eq!(none.multipart_threshold, MAX_COPY_SIZE);
        assert_eq!(none.part_size, 268_435_456);
        assert_eq!(none.concurrency, 8);
        let set = CopySettings::from_lookup(|n| match n {
            "MULTIPART_THRESHOLD" => Some("10".into()),
            "PART_SIZE" => Some("5".into()),
            "COPY_CONCURRENCY" => Some("2".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            set,
            CopySettings {
                multipart_threshold: 10,
                part_size: 5,
                concurrency: 2
            }
        );
        let bad = CopySettings::from_lookup(|n| (n == "PART_SIZE").then(|| "big".into()));
        assert_eq!(bad.unwrap_err().name, "PART_SIZE");
    }
}
