//! Server-side copy of one exact object version: CopyObject, or a multipart
//! copy (UploadPartCopy) above the threshold. Bytes never pass through us.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, MetadataDirective, Tag, Tagging, TaggingDirective,
};
use futures::StreamExt;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::s3_error::S3Error;

/// CopyObject copies at most 5 GB in one request
/// (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/copy-object.html>).
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 5_000_000_000;
pub const DEFAULT_PART_SIZE: u64 = 256 * 1024 * 1024;
pub const DEFAULT_CONCURRENCY: usize = 8;
/// A multipart upload has at most 10,000 parts
/// (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html>).
pub const MAX_PARTS: u64 = 10_000;

/// How copies are made. Configurable because the emulator does not enforce
/// S3's 5 GB / 5 MiB limits, so tests exercise multipart on small objects.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Characters kept literal in the key of `x-amz-copy-source`: the unreserved
/// ones, and '/' (the header is "bucket/key", URL-encoded:
/// <https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html#API_CopyObject_RequestSyntax>).
const KEY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');
/// Query values and tag sets: unreserved characters only.
const VALUE_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The `x-amz-copy-source` value for one exact version: `bucket/key?versionId=V`.
/// A '?' or '#' in the key is encoded, so only our own '?' starts the query.
pub fn copy_source(bucket: &str, key: &str, version_id: Option<&str>) -> String {
    let mut source = format!("{bucket}/{}", utf8_percent_encode(key, KEY_ENCODE));
    if let Some(version) = version_id {
        source.push_str("?versionId=");
        source.extend(utf8_percent_encode(version, VALUE_ENCODE));
    }
    source
}

/// Tags as the `x-amz-tagging` header wants them: a URL-encoded query string.
pub fn encode_tagging(tags: &[(String, String)]) -> String {
    tags.iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, VALUE_ENCODE),
                utf8_percent_encode(v, VALUE_ENCODE)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The system headers a replica keeps. With MetadataDirective REPLACE, S3
/// keeps none of them unless they are sent again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectHeaders {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<DateTime>,
}

impl ObjectHeaders {
    pub fn from_head(head: &HeadObjectOutput) -> ObjectHeaders {
        // `expires` is deprecated in the SDK because S3 returns whatever string
        // was stored; parse `expires_string` and drop what is not an HTTP date,
        // as S3 itself would not accept it on the copy.
        let expires = head
            .expires_string()
            .and_then(|s| DateTime::from_str(s, DateTimeFormat::HttpDate).ok());
        ObjectHeaders {
            content_type: head.content_type().map(str::to_owned),
            cache_control: head.cache_control().map(str::to_owned),
            content_disposition: head.content_disposition().map(str::to_owned),
            content_encoding: head.content_encoding().map(str::to_owned),
            content_language: head.content_language().map(str::to_owned),
            expires,
        }
    }
}

/// One exact source version to copy, and what the copy carries.
#[derive(Debug, Clone)]
pub struct CopyPlan {
    pub source_bucket: String,
    pub key: String,
    /// `None` on an unversioned bucket (then the ETag alone pins the content).
    pub source_version: Option<String>,
    /// The ETag as HeadObject returned it, for `x-amz-copy-source-if-match`.
    pub source_etag: Option<String>,
    pub size: u64,
    pub destination_bucket: String,
    pub headers: ObjectHeaders,
    /// All of the source's user metadata plus the origin markers.
    pub metadata: HashMap<String, String>,
}

impl CopyPlan {
    /// The copy of the exact version `head` describes (the current object of
    /// `key` in `source_bucket`) into `destination_bucket`: its user metadata,
    /// its kept headers, and `origin`'s markers. For an original, `origin` is
    /// the object itself and the markers are added; for a replica it is the
    /// replica's own markers, so a copy of a copy keeps the original's origin.
    /// Used by the CLI's `sync`, which may copy a replica onward.
    pub fn of_head(
        source_bucket: &str,
        key: &str,
        head: &HeadObjectOutput,
        origin: &crate::origin::Origin,
        destination_bucket: &str,
    ) -> CopyPlan {
        let mut metadata = head.metadata().cloned().unwrap_or_default();
        metadata.extend(origin.to_markers());
        CopyPlan {
            source_bucket: source_bucket.to_owned(),
            key: key.to_owned(),
            source_version: head
                .version_id()
                .filter(|v| *v != "null")
                .map(str::to_owned),
            source_etag: head.e_tag().map(str::to_owned),
            size: head.content_length().unwrap_or_default().max(0) as u64,
            destination_bucket: destination_bucket.to_owned(),
            headers: ObjectHeaders::from_head(head),
            metadata,
        }
    }
}

/// Which call of a copy failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyStep {
    CopyObject,
    GetObjectTagging,
    CreateMultipartUpload,
    UploadPartCopy,
    CompleteMultipartUpload,
}

impl std::fmt::Display for CopyStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CopyStep::CopyObject => "CopyObject",
            CopyStep::GetObjectTagging => "GetObjectTagging",
            CopyStep::CreateMultipartUpload => "CreateMultipartUpload",
            CopyStep::UploadPartCopy => "UploadPartCopy",
            CopyStep::CompleteMultipartUpload => "CompleteMultipartUpload",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{step} failed: {source}")]
    S3 {
        step: CopyStep,
        #[source]
        source: S3Error,
    },
    #[error("CreateMultipartUpload answered without an UploadId")]
    NoUploadId,
}

impl CopyError {
    fn at(step: CopyStep) -> impl FnOnce(S3Error) -> CopyError {
        move |source| CopyError::S3 { step, source }
    }

    /// The source version vanished or changed: the caller skips, not fails.
    pub fn is_source_gone(&self) -> bool {
        matches!(self, CopyError::S3 { source, .. } if source.is_gone())
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, CopyError::S3 { source, .. } if source.is_retryable())
    }
}

/// How a copy was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// 1 for CopyObject.
    pub parts: usize,
    pub version_id: Option<String>,
}

/// Copies `plan` with CopyObject, or in parts when larger than the threshold.
/// `source` is a client for the source bucket's region, `destination` one
/// for the destination's.
pub async fn copy_version(
    source: &Client,
    destination: &Client,
    plan: &CopyPlan,
    settings: &CopySettings,
) -> Result<Copied, CopyError> {
    if plan.size > settings.multipart_threshold {
        copy_multipart(source, destination, plan, settings).await
    } else {
        copy_single(destination, plan).await
    }
}

/// One CopyObject. Metadata is REPLACEd (to add the markers), so every kept
/// header is sent again; tags are COPYed from the source version.
pub async fn copy_single(destination: &Client, plan: &CopyPlan) -> Result<Copied, CopyError> {
    let h = &plan.headers;
    let out = destination
        .copy_object()
        .bucket(&plan.destination_bucket)
        .key(&plan.key)
        .copy_source(copy_source(
            &plan.source_bucket,
            &plan.key,
            plan.source_version.as_deref(),
        ))
        .set_copy_source_if_match(plan.source_etag.clone())
        .metadata_directive(MetadataDirective::Replace)
        .set_metadata(Some(plan.metadata.clone()))
        .tagging_directive(TaggingDirective::Copy)
        .set_content_type(h.content_type.clone())
        .set_cache_control(h.cache_control.clone())
        .set_content_disposition(h.content_disposition.clone())
        .set_content_encoding(h.content_encoding.clone())
        .set_content_language(h.content_language.clone())
        .set_expires(h.expires)
        .send()
        .await
        .map_err(|e| CopyError::at(CopyStep::CopyObject)(S3Error::from_sdk(e)))?;
    Ok(Copied {
        parts: 1,
        version_id: out.version_id().map(str::to_owned),
    })
}

/// A multipart copy. Any failure after CreateMultipartUpload aborts the
/// upload, so no incomplete upload (and its billed storage) is left behind.
pub async fn copy_multipart(
    source: &Client,
    destination: &Client,
    plan: &CopyPlan,
    settings: &CopySettings,
) -> Result<Copied, CopyError> {
    // UploadPartCopy has no tagging directive: tags must be set when the
    // upload is created, so read them from the exact source version.
    let tags = source
        .get_object_tagging()
        .bucket(&plan.source_bucket)
        .key(&plan.key)
        .set_version_id(plan.source_version.clone())
        .send()
        .await
        .map_err(|e| CopyError::at(CopyStep::GetObjectTagging)(S3Error::from_sdk(e)))?;
    let tags: Vec<(String, String)> = tags
        .tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();

    let h = &plan.headers;
    let created = destination
        .create_multipart_upload()
        .bucket(&plan.destination_bucket)
        .key(&plan.key)
        .set_metadata(Some(plan.metadata.clone()))
        .set_tagging((!tags.is_empty()).then(|| encode_tagging(&tags)))
        .set_content_type(h.content_type.clone())
        .set_cache_control(h.cache_control.clone())
        .set_content_disposition(h.content_disposition.clone())
        .set_content_encoding(h.content_encoding.clone())
        .set_content_language(h.content_language.clone())
        .set_expires(h.expires)
        .send()
        .await
        .map_err(|e| CopyError::at(CopyStep::CreateMultipartUpload)(S3Error::from_sdk(e)))?;
    let upload_id = created
        .upload_id()
        .map(str::to_owned)
        .ok_or(CopyError::NoUploadId)?;

    match upload_parts_and_complete(destination, plan, settings, &upload_id).await {
        Ok(copied) => {
            reapply_tags(destination, plan, &copied, &tags).await;
            Ok(copied)
        }
        Err(err) => {
            abort_upload(destination, plan, &upload_id).await;
            Err(err)
        }
    }
}

async fn upload_parts_and_complete(
    destination: &Client,
    plan: &CopyPlan,
    settings: &CopySettings,
    upload_id: &str,
) -> Result<Copied, CopyError> {
    let source = copy_source(
        &plan.source_bucket,
        &plan.key,
        plan.source_version.as_deref(),
    );
    let ranges = part_ranges(plan.size, settings.part_size);
    // After the first failure, parts not yet started are skipped, but parts
    // already in flight are awaited rather than dropped: S3 may finish a
    // dropped part after our Abort, leaving storage behind
    // (<https://docs.aws.amazon.com/AmazonS3/latest/API/API_AbortMultipartUpload.html>).
    let failed = AtomicBool::new(false);
    let results: Vec<Result<Option<CompletedPart>, CopyError>> = futures::stream::iter(ranges)
        .map(|(number, first, last)| {
            let (source, failed) = (&source, &failed);
            async move {
                if failed.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                let result = destination
                    .upload_part_copy()
                    .bucket(&plan.destination_bucket)
                    .key(&plan.key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .copy_source(source.as_str())
                    .copy_source_range(format!("bytes={first}-{last}"))
                    .set_copy_source_if_match(plan.source_etag.clone())
                    .send()
                    .await;
                match result {
                    Ok(out) => Ok(Some(
                        CompletedPart::builder()
                            .part_number(number)
                            .set_e_tag(
                                out.copy_part_result()
                                    .and_then(|r| r.e_tag())
                                    .map(str::to_owned),
                            )
                            .build(),
                    )),
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        Err(CopyError::at(CopyStep::UploadPartCopy)(S3Error::from_sdk(
                            e,
                        )))
                    }
                }
            }
        })
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;

    let mut parts = Vec::with_capacity(results.len());
    for result in results {
        if let Some(part) = result? {
            parts.push(part);
        }
    }
    // CompleteMultipartUpload wants the parts in ascending order.
    parts.sort_by_key(|p| p.part_number());
    let count = parts.len();
    let out = destination
        .complete_multipart_upload()
        .bucket(&plan.destination_bucket)
        .key(&plan.key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map_err(|e| CopyError::at(CopyStep::CompleteMultipartUpload)(S3Error::from_sdk(e)))?;
    Ok(Copied {
        parts: count,
        version_id: out.version_id().map(str::to_owned),
    })
}

/// Sets the tags again on the completed replica version. On AWS the
/// `x-amz-tagging` header of CreateMultipartUpload already did, and this
/// rewrites the same tags (a tagging subresource write: no new version, no
/// ObjectCreated event). ministack 1.5.33 ignores that header, and only this
/// makes the emulator keep tags. Best effort: the copy itself succeeded, and
/// failing it now would make the retry see an up-to-date replica anyway.
async fn reapply_tags(
    destination: &Client,
    plan: &CopyPlan,
    copied: &Copied,
    tags: &[(String, String)],
) {
    if tags.is_empty() {
        return;
    }
    let tag_set = tags
        .iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect::<Vec<_>>();
    let result = destination
        .put_object_tagging()
        .bucket(&plan.destination_bucket)
        .key(&plan.key)
        .set_version_id(copied.version_id.clone())
        .tagging(
            Tagging::builder()
                .set_tag_set(Some(tag_set))
                .build()
                .expect("tag_set is set"),
        )
        .send()
        .await;
    if let Err(e) = result {
        tracing::warn!(
            bucket = %plan.destination_bucket,
            key = %plan.key,
            error = %S3Error::from_sdk(e),
            "could not re-apply tags after a multipart copy"
        );
    }
}

async fn abort_upload(destination: &Client, plan: &CopyPlan, upload_id: &str) {
    let aborted = destination
        .abort_multipart_upload()
        .bucket(&plan.destination_bucket)
        .key(&plan.key)
        .upload_id(upload_id)
        .send()
        .await;
    if let Err(e) = aborted {
        // The original error matters more; the bucket's lifecycle rule
        // (AbortIncompleteMultipartUpload) is the backstop for this one.
        tracing::warn!(
            bucket = %plan.destination_bucket,
            key = %plan.key,
            upload_id,
            error = %S3Error::from_sdk(e),
            "could not abort a failed multipart copy"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_encodes_key_but_keeps_slashes() {
        assert_eq!(
            copy_source("b", "a b/c+d%e?f#g/naïve", Some("3/L4+k=")),
            "b/a%20b/c%2Bd%25e%3Ff%23g/na%C3%AFve?versionId=3%2FL4%2Bk%3D"
        );
        assert_eq!(copy_source("b", "k", None), "b/k");
    }

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
    fn tagging_is_url_encoded() {
        let tags = vec![
            ("team".into(), "a&b=c".into()),
            ("note".into(), "x y".into()),
        ];
        assert_eq!(encode_tagging(&tags), "team=a%26b%3Dc&note=x%20y");
    }

    #[test]
    fn settings_from_lookup() {
        let none = CopySettings::from_lookup(|_| None).unwrap();
        assert_eq!(none, CopySettings::default());
        assert_eq!(none.multipart_threshold, 5_000_000_000);
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
