//! [`ObjectStore`] on `aws-sdk-s3`: the store the function and the CLI use.

use std::collections::BTreeMap;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, MetadataDirective,
    ObjectLockLegalHoldStatus, ObjectLockMode, StorageClass, Tag, Tagging, TaggingDirective,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::{
    Bucket, CopyRequest, ErrorKind, KeyPage, Lookup, ObjectStore, Part, StoreError, StoreResult,
    Unreplicable, Written,
};
use crate::protocol::{Headers, ObjectHead, Precondition, VersionEntry};
use error::{ErrorKind as S3ErrorKind, S3Error};

mod clients;
mod error;

pub use clients::RegionalClients;

/// The store on real S3 (or any S3 endpoint the SDK is pointed at).
#[derive(Debug)]
pub struct SdkStore {
    clients: RegionalClients,
    /// The account every bucket must belong to (`x-amz-expected-bucket-owner`).
    expected_owner: Option<String>,
}

impl SdkStore {
    pub fn new(clients: RegionalClients) -> SdkStore {
        SdkStore {
            clients,
            expected_owner: None,
        }
    }

    /// Every call then fails unless the bucket belongs to `account`.
    pub fn expecting_owner(mut self, account: impl Into<String>) -> SdkStore {
        self.expected_owner = Some(account.into());
        self
    }

    fn client(&self, bucket: &Bucket) -> Client {
        self.clients.client(&bucket.region)
    }
}

fn error<E>(
    operation: &'static str,
    bucket: &Bucket,
    key: &str,
) -> impl FnOnce(SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (region, name, key) = (bucket.region.clone(), bucket.name.clone(), key.to_owned());
    move |sdk| {
        let error = S3Error::from_sdk(sdk);
        let kind = match error.kind {
            _ if operation == "HeadObject" && error.is_bare_bad_request() => {
                ErrorKind::NotReplicable(Unreplicable::CustomerKey)
            }
            S3ErrorKind::CustomerKey => ErrorKind::NotReplicable(Unreplicable::CustomerKey),
            S3ErrorKind::NotFound => ErrorKind::NotFound,
            S3ErrorKind::PreconditionFailed => ErrorKind::PreconditionFailed,
            S3ErrorKind::Retryable => ErrorKind::Retryable,
            S3ErrorKind::Permanent => ErrorKind::Permanent,
            S3ErrorKind::Archived => ErrorKind::NotReplicable(Unreplicable::Archived),
            S3ErrorKind::MetadataTooLarge => {
                ErrorKind::NotReplicable(Unreplicable::MetadataTooLarge)
            }
        };
        // 409 ConditionalRequestConflict: another conditional write to the
        // key was in flight; deciding again is the answer.
        let kind = if error.code.as_deref() == Some("ConditionalRequestConflict")
            || error.status == Some(409)
        {
            ErrorKind::Conflict
        } else {
            kind
        };
        StoreError {
            kind,
            operation,
            region,
            bucket: name,
            key,
            message: error.to_string(),
        }
    }
}

fn unquote(etag: Option<&str>) -> String {
    etag.unwrap_or_default().trim_matches('"').to_owned()
}

fn quote(etag: &str) -> String {
    format!("\"{etag}\"")
}

fn version_or_null(version: Option<&str>) -> String {
    version.unwrap_or("null").to_owned()
}

/// `None` for the unversioned `null`, which S3 does not take as a version id.
fn version_param(version: &str) -> Option<String> {
    (version != "null").then(|| version.to_owned())
}

fn http_date(text: Option<&String>) -> Option<DateTime> {
    text.and_then(|t| DateTime::from_str(t, DateTimeFormat::HttpDate).ok())
}

fn rfc3339(text: Option<&String>) -> Option<DateTime> {
    text.and_then(|t| DateTime::from_str(t, DateTimeFormat::DateTime).ok())
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

fn source_of(request: &CopyRequest) -> String {
    copy_source(
        &request.source.name,
        &request.key,
        version_param(&request.source_version).as_deref(),
    )
}

fn split_precondition(p: &Precondition) -> (Option<String>, Option<String>) {
    match p {
        Precondition::IfMatch(etag) => (Some(quote(etag)), None),
        Precondition::IfNoneMatch => (None, Some("*".to_owned())),
    }
}

/// Sets the kept headers on a CopyObject or CreateMultipartUpload request,
/// whose builders have the same setters.
macro_rules! with_headers {
    ($builder:expr, $headers:expr) => {{
        let h: &Headers = $headers;
        $builder
            .set_content_type(h.content_type.clone())
            .set_cache_control(h.cache_control.clone())
            .set_content_disposition(h.content_disposition.clone())
            .set_content_encoding(h.content_encoding.clone())
            .set_content_language(h.content_language.clone())
            .set_expires(http_date(h.expires.as_ref()))
            .set_website_redirect_location(h.website_redirect_location.clone())
            .set_storage_class(h.storage_class.as_deref().map(StorageClass::from))
            .set_checksum_algorithm(h.checksum_algorithm.as_deref().map(ChecksumAlgorithm::from))
            .set_object_lock_mode(h.object_lock_mode.as_deref().map(ObjectLockMode::from))
            .set_object_lock_retain_until_date(rfc3339(h.object_lock_retain_until.as_ref()))
            .set_object_lock_legal_hold_status(
                h.object_lock_legal_hold
                    .as_deref()
                    .map(ObjectLockLegalHoldStatus::from),
            )
    }};
}

impl ObjectStore for SdkStore {
    fn now(&self) -> i64 {
        crate::clock::now_ms().div_euclid(1000)
    }

    async fn head(&self, bucket: &Bucket, key: &str, version: Option<&str>) -> StoreResult<Lookup> {
        let result = self
            .client(bucket)
            .head_object()
            .bucket(&bucket.name)
            .key(key)
            .set_version_id(version.and_then(version_param))
            // Only then does HeadObject say which checksum the object has.
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .set_expected_bucket_owner(self.expected_owner.clone())
            .send()
            .await;
        let head = match result {
            Ok(head) => head,
            Err(sdk) => {
                // A delete marker answers 404 (the current version) or 405
                // (a version asked for), marked by x-amz-delete-marker.
                let delete_marker = sdk
                    .raw_response()
                    .and_then(|r| r.headers().get("x-amz-delete-marker"))
                    == Some("true");
                let error = error("HeadObject", bucket, key)(sdk);
                return match error.kind {
                    _ if delete_marker => Ok(Lookup::DeleteMarker),
                    ErrorKind::NotFound => Ok(Lookup::Missing),
                    _ if error.message.contains("HTTP 405") => Ok(Lookup::DeleteMarker),
                    _ => Err(error),
                };
            }
        };
        if head.delete_marker() == Some(true) {
            return Ok(Lookup::DeleteMarker);
        }
        let metadata: BTreeMap<String, String> = head
            .metadata()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.to_lowercase(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let headers = Headers {
            content_type: head.content_type().map(str::to_owned),
            cache_control: head.cache_control().map(str::to_owned),
            content_disposition: head.content_disposition().map(str::to_owned),
            content_encoding: head.content_encoding().map(str::to_owned),
            content_language: head.content_language().map(str::to_owned),
            // S3 returns whatever string was stored; only an HTTP date can
            // be sent again on the copy.
            expires: head
                .expires_string()
                .filter(|s| DateTime::from_str(s, DateTimeFormat::HttpDate).is_ok())
                .map(str::to_owned),
            website_redirect_location: head.website_redirect_location().map(str::to_owned),
            storage_class: head
                .storage_class()
                .map(|c| c.as_str().to_owned())
                .filter(|c| c != "STANDARD"),
            checksum_algorithm: checksum_algorithm_of(&head),
            object_lock_mode: head.object_lock_mode().map(|m| m.as_str().to_owned()),
            object_lock_retain_until: head
                .object_lock_retain_until_date()
                .and_then(|d| d.fmt(DateTimeFormat::DateTime).ok()),
            object_lock_legal_hold: head
                .object_lock_legal_hold_status()
                .map(|s| s.as_str().to_owned()),
        };
        let etag = unquote(head.e_tag());
        let etag_is_md5 = !etag.contains('-')
            && head.sse_customer_algorithm().is_none()
            && !head
                .server_side_encryption()
                .is_some_and(|e| e.as_str().starts_with("aws:kms"));
        Ok(Lookup::Found(ObjectHead {
            version_id: version_or_null(head.version_id()),
            etag,
            etag_is_md5,
            last_modified: head.last_modified().map(|t| t.secs()).unwrap_or_default(),
            size: head.content_length().unwrap_or_default().max(0) as u64,
            metadata,
            headers,
        }))
    }

    async fn versions(&self, bucket: &Bucket, key: &str) -> StoreResult<Vec<VersionEntry>> {
        // S3 lists a key's versions and its delete markers apart, each
        // newest first; (seconds, nanoseconds) orders them into one history.
        let mut objects = Vec::new();
        let mut markers = Vec::new();
        let modified =
            |t: Option<&DateTime>| t.map(|t| (t.secs(), t.subsec_nanos())).unwrap_or_default();
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        loop {
            let page = self
                .client(bucket)
                .list_object_versions()
                .bucket(&bucket.name)
                .prefix(key)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .set_expected_bucket_owner(self.expected_owner.clone())
                .send()
                .await
                .map_err(error("ListObjectVersions", bucket, key))?;
            for v in page.versions().iter().filter(|v| v.key() == Some(key)) {
                let time = modified(v.last_modified());
                objects.push((
                    time,
                    VersionEntry::Object {
                        version_id: version_or_null(v.version_id()),
                        etag: unquote(v.e_tag()),
                        last_modified: time.0,
                    },
                ));
            }
            for m in page
                .delete_markers()
                .iter()
                .filter(|m| m.key() == Some(key))
            {
                let time = modified(m.last_modified());
                markers.push((
                    time,
                    VersionEntry::DeleteMarker {
                        version_id: version_or_null(m.version_id()),
                        last_modified: time.0,
                    },
                ));
            }
            // Past our key: the rest of the listing is other keys.
            let past = page
                .versions()
                .iter()
                .any(|v| v.key().is_some_and(|k| k > key))
                || page
                    .delete_markers()
                    .iter()
                    .any(|m| m.key().is_some_and(|k| k > key));
            if past || page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
        // Both lists are newest first: a stable sort, newest first, merges
        // them, a version before a marker of the same instant.
        let mut history: Vec<_> = objects.into_iter().chain(markers).collect();
        history.sort_by_key(|(time, _)| std::cmp::Reverse(*time));
        Ok(history.into_iter().map(|(_, entry)| entry).collect())
    }

    async fn delete_object(
        &self,
        bucket: &Bucket,
        key: &str,
        if_match: &str,
    ) -> StoreResult<Written> {
        let out = self
            .client(bucket)
            .delete_object()
            .bucket(&bucket.name)
            .key(key)
            .if_match(quote(if_match))
            .set_expected_bucket_owner(self.expected_owner.clone())
            .send()
            .await
            .map_err(error("DeleteObject", bucket, key))?;
        Ok(Written {
            version_id: version_or_null(out.version_id()),
        })
    }

    async fn copy_object(&self, request: &CopyRequest) -> StoreResult<Written> {
        let (if_match, if_none_match) = split_precondition(&request.precondition);
        let builder = self
            .client(&request.destination)
            .copy_object()
            .bucket(&request.destination.name)
            .key(&request.key)
            .copy_source(source_of(request))
            .copy_source_if_match(quote(&request.source_etag))
            .set_if_match(if_match)
            .set_if_none_match(if_none_match)
            .metadata_directive(MetadataDirective::Replace)
            .set_metadata(Some(request.metadata.clone().into_iter().collect()))
            .tagging_directive(TaggingDirective::Copy);
        let out = with_headers!(builder, &request.headers)
            .set_expected_bucket_owner(self.expected_owner.clone())
            .set_expected_source_bucket_owner(self.expected_owner.clone())
            .send()
            .await
            .map_err(error("CopyObject", &request.destination, &request.key))?;
        Ok(Written {
            version_id: version_or_null(out.version_id()),
        })
    }

    async fn tags(
        &self,
        bucket: &Bucket,
        key: &str,
        version: &str,
    ) -> StoreResult<Vec<(String, String)>> {
        let out = self
            .client(bucket)
            .get_object_tagging()
            .bucket(&bucket.name)
            .key(key)
            .set_version_id(version_param(version))
            .set_expected_bucket_owner(self.expected_owner.clone())
            .send()
            .await
            .map_err(error("GetObjectTagging", bucket, key))?;
        Ok(out
            .tag_set()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect())
    }

    async fn put_tags(
        &self,
        bucket: &Bucket,
        key: &str,
        version: &str,
        tags: &[(String, String)],
    ) -> StoreResult<()> {
        let tag_set = tags
            .iter()
            .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
            .collect::<Vec<_>>();
        self.client(bucket)
            .put_object_tagging()
            .bucket(&bucket.name)
            .key(key)
            .set_version_id(version_param(version))
            .tagging(
                Tagging::builder()
                    .set_tag_set(Some(tag_set))
                    .build()
                    .expect("tag_set is set"),
            )
            .set_expected_bucket_owner(self.expected_owner.clone())
            .send()
            .await
            .map_err(error("PutObjectTagging", bucket, key))?;
        Ok(())
    }

    async fn create_upload(
        &self,
        request: &CopyRequest,
        tags: &[(String, String)],
    ) -> StoreResult<String> {
        let builder = self
            .client(&request.destination)
            .create_multipart_upload()
            .bucket(&request.destination.name)
            .key(&request.key)
            .set_metadata(Some(request.metadata.clone().into_iter().collect()))
            .set_tagging((!tags.is_empty()).then(|| encode_tagging(tags)));
        let out = with_headers!(builder, &request.headers)
            .set_expected_bucket_owner(self.expected_owner.clone())
            .send()
            .await
            .map_err(error(
                "CreateMultipartUpload",
                &request.destination,
                &request.key,
            ))?;
        out.upload_id()
            .map(str::to_owned)
            .ok_or_else(|| StoreError {
                kind: ErrorKind::Retryable,
                operation: "CreateMultipartUpload",
                region: request.destination.region.clone(),
                bucket: request.destination.name.clone(),
                key: request.key.clone(),
                message: "answered without an UploadId".into(),
            })
    }

    async fn copy_part(
        &self,
        request: &CopyRequest,
        upload_id: &str,
        part: i32,
        first: u64,
        last: u64,
    ) -> StoreResult<Part> {
        let out = self
            .client(&request.destination)
            .upload_part_copy()
            .bucket(&request.destination.name)
            .key(&request.key)
            .upload_id(upload_id)
            .part_number(part)
            .copy_source(source_of(request))
            .copy_source_range(format!("bytes={first}-{last}"))
            .copy_source_if_match(quote(&request.source_etag))
            .set_expected_bucket_owner(self.expected_owner.clone())
            .set_expected_source_bucket_owner(self.expected_owner.clone())
            .send()
            .await
            .map_err(error("UploadPartCopy", &request.destination, &request.key))?;
        let result = out.copy_part_result();
        let checksum =
            result.and_then(|r| match request.headers.checksum_algorithm.as_deref()? {
                "CRC32" => r.checksum_crc32(),
                "CRC32C" => r.checksum_crc32_c(),
                "CRC64NVME" => r.checksum_crc64_nvme(),
                "SHA1" => r.checksum_sha1(),
                "SHA256" => r.checksum_sha256(),
                _ => None,
            });
        Ok(Part {
            number: part,
            etag: result
                .and_then(|r| r.e_tag())
                .unwrap_or_default()
                .to_owned(),
            checksum: checksum.map(str::to_owned),
        })
    }

    async fn complete_upload(
        &self,
        request: &CopyRequest,
        upload_id: &str,
        parts: &[Part],
    ) -> StoreResult<Written> {
        let (if_match, if_none_match) = split_precondition(&request.precondition);
        let algorithm = request.headers.checksum_algorithm.as_deref();
        let parts = parts
            .iter()
            .map(|part| {
                let builder = CompletedPart::builder()
                    .part_number(part.number)
                    .e_tag(&part.etag);
                let checksum = part.checksum.clone();
                match algorithm {
                    Some("CRC32") => builder.set_checksum_crc32(checksum),
                    Some("CRC32C") => builder.set_checksum_crc32_c(checksum),
                    Some("CRC64NVME") => builder.set_checksum_crc64_nvme(checksum),
                    Some("SHA1") => builder.set_checksum_sha1(checksum),
                    Some("SHA256") => builder.set_checksum_sha256(checksum),
                    _ => builder,
                }
                .build()
            })
            .collect();
        let out = self
            .client(&request.destination)
            .complete_multipart_upload()
            .bucket(&request.destination.name)
            .key(&request.key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .set_if_match(if_match)
            .set_if_none_match(if_none_match)
            .set_expected_bucket_owner(self.expected_owner.clone())
            .send()
            .await
            .map_err(error(
                "CompleteMultipartUpload",
                &request.destination,
                &request.key,
            ))?;
        Ok(Written {
            version_id: version_or_null(out.version_id()),
        })
    }

    async fn abort_upload(&self, bucket: &Bucket, key: &str, upload_id: &str) -> StoreResult<()> {
        self.client(bucket)
            .abort_multipart_upload()
            .bucket(&bucket.name)
            .key(key)
            .upload_id(upload_id)
            .set_expected_bucket_owner(self.expected_owner.clone())
            .send()
            .await
            .map_err(error("AbortMultipartUpload", bucket, key))?;
        Ok(())
    }

    async fn list_keys(
        &self,
        bucket: &Bucket,
        prefix: Option<&str>,
        start: Option<&str>,
    ) -> StoreResult<KeyPage> {
        let out = self
            .client(bucket)
            .list_objects_v2()
            .bucket(&bucket.name)
            .set_prefix(prefix.map(str::to_owned))
            // A key, not a continuation token: a range (or a resumed
            // repair) starts anywhere.
            .set_start_after(start.map(str::to_owned))
            .set_expected_bucket_owner(self.expected_owner.clone())
            .send()
            .await
            .map_err(error("ListObjectsV2", bucket, prefix.unwrap_or("")))?;
        Ok(KeyPage {
            keys: out
                .contents()
                .iter()
                .filter_map(|o| Some((o.key()?.to_owned(), unquote(o.e_tag()))))
                .collect(),
            next: out
                .contents()
                .last()
                .and_then(|o| o.key())
                .filter(|_| out.is_truncated() == Some(true))
                .map(str::to_owned),
        })
    }
}

/// The algorithm of the object's additional checksum, if it has one.
/// HeadObject reports checksums only with ChecksumMode ENABLED; the type
/// tells the algorithm, whichever value is set.
fn checksum_algorithm_of(
    head: &aws_sdk_s3::operation::head_object::HeadObjectOutput,
) -> Option<String> {
    [
        (head.checksum_crc32().is_some(), "CRC32"),
        (head.checksum_crc32_c().is_some(), "CRC32C"),
        (head.checksum_crc64_nvme().is_some(), "CRC64NVME"),
        (head.checksum_sha1().is_some(), "SHA1"),
        (head.checksum_sha256().is_some(), "SHA256"),
    ]
    .into_iter()
    .find(|(set, _)| *set)
    .map(|(_, name)| name.to_owned())
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
    fn tagging_is_url_encoded() {
        let tags = vec![
            ("team".into(), "a&b=c".into()),
            ("note".into(), "x y".into()),
        ];
        assert_eq!(encode_tagging(&tags), "team=a%26b%3Dc&note=x%20y");
    }
}
