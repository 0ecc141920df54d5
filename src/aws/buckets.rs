//! Bucket contents: counting what a bucket holds, and emptying it when, and
//! only when, the user asked for exactly that.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::operation::list_object_versions::ListObjectVersionsOutput;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::CallError;

type Result<T, E = CallError> = std::result::Result<T, E>;

/// Pages of ListObjectVersions, which the SDK offers no paginator for: the
/// next page starts after the key and version markers of the last.
struct VersionPages<'a> {
    s3: &'a Client,
    bucket: &'a str,
    prefix: Option<&'a str>,
    next: Option<(Option<String>, Option<String>)>,
}

impl<'a> VersionPages<'a> {
    fn new(s3: &'a Client, bucket: &'a str, prefix: Option<&'a str>) -> Self {
        Self {
            s3,
            bucket,
            prefix,
            next: Some((None, None)),
        }
    }

    async fn next(&mut self) -> Option<Result<ListObjectVersionsOutput>> {
        let (key_marker, version_marker) = self.next.take()?;
        let page = self
            .s3
            .list_object_versions()
            .bucket(self.bucket)
            .set_prefix(self.prefix.map(str::to_owned))
            .set_key_marker(key_marker)
            .set_version_id_marker(version_marker)
            .send()
            .await
            .map_err(|e| CallError::of("ListObjectVersions", self.bucket, e));
        if let Ok(page) = &page
            && page.is_truncated() == Some(true)
        {
            self.next = Some((
                page.next_key_marker().map(str::to_owned),
                page.next_version_id_marker().map(str::to_owned),
            ));
        }
        Some(page)
    }
}

/// Every key under `prefix` with a version or a delete marker, deleted
/// keys included (ListObjectsV2 shows only keys with a current object).
pub async fn keys_with_versions(
    s3: &Client,
    bucket: &str,
    prefix: &str,
) -> Result<std::collections::BTreeSet<String>> {
    let mut keys = std::collections::BTreeSet::new();
    let mut pages = VersionPages::new(s3, bucket, Some(prefix));
    while let Some(page) = pages.next().await {
        let page = page?;
        keys.extend(
            page.versions()
                .iter()
                .filter_map(|v| v.key().map(str::to_owned)),
        );
        keys.extend(
            page.delete_markers()
                .iter()
                .filter_map(|m| m.key().map(str::to_owned)),
        );
    }
    Ok(keys)
}

/// What a versioned bucket holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Contents {
    /// Object versions, current and noncurrent: data.
    pub versions: u64,
    /// Delete markers: no data, but they keep a bucket from being deleted.
    pub delete_markers: u64,
}

/// Counts versions and delete markers, stopping once `limit` versions are
/// seen (enough to say a bucket is not empty).
pub async fn count(s3: &Client, bucket: &str, limit: u64) -> Result<Contents> {
    let mut contents = Contents::default();
    let mut pages = VersionPages::new(s3, bucket, None);
    while let Some(page) = pages.next().await {
        let page = page?;
        contents.versions += page.versions().len() as u64;
        contents.delete_markers += page.delete_markers().len() as u64;
        if contents.versions >= limit {
            break;
        }
    }
    Ok(contents)
}

/// Object versions under `prefix`; delete markers are not data.
pub async fn version_count(s3: &Client, bucket: &str, prefix: &str) -> Result<u64> {
    let mut versions = 0;
    let mut pages = VersionPages::new(s3, bucket, Some(prefix));
    while let Some(page) = pages.next().await {
        versions += page?.versions().len() as u64;
    }
    Ok(versions)
}

/// Deletes every version and delete marker. `only_markers` deletes the
/// markers alone, which loses no data.
pub async fn purge(s3: &Client, bucket: &str, only_markers: bool) -> Result<u64> {
    purge_matching(s3, bucket, None, only_markers).await
}

/// Deletes every version and delete marker of the keys under `prefix`.
pub async fn purge_prefix(s3: &Client, bucket: &str, prefix: &str) -> Result<u64> {
    purge_matching(s3, bucket, Some(prefix), false).await
}

async fn purge_matching(
    s3: &Client,
    bucket: &str,
    prefix: Option<&str>,
    only_markers: bool,
) -> Result<u64> {
    let mut deleted = 0;
    // The listing continues after its key and version markers, so deleting
    // what a page listed does not disturb the pages after it.
    let mut pages = VersionPages::new(s3, bucket, prefix);
    while let Some(page) = pages.next().await {
        let page = page?;
        let mut targets: Vec<ObjectIdentifier> = page
            .delete_markers()
            .iter()
            .filter_map(|m| identifier(m.key()?, m.version_id()))
            .collect();
        if !only_markers {
            targets.extend(
                page.versions()
                    .iter()
                    .filter_map(|v| identifier(v.key()?, v.version_id())),
            );
        }
        if targets.is_empty() {
            continue;
        }
        let count = targets.len() as u64;
        let out = s3
            .delete_objects()
            .bucket(bucket)
            .delete(
                Delete::builder()
                    .set_objects(Some(targets))
                    .quiet(true)
                    .build()
                    .map_err(|e| CallError::other("DeleteObjects", bucket, e))?,
            )
            .send()
            .await
            .map_err(|e| CallError::of("DeleteObjects", bucket, e))?;
        if let Some(error) = out.errors().first() {
            let detail = format!(
                "deleting {} failed: {}",
                error.key().unwrap_or_default(),
                error.message().unwrap_or_default()
            );
            return Err(CallError::answered("DeleteObjects", bucket, detail));
        }
        deleted += count;
    }
    Ok(deleted)
}

fn identifier(key: &str, version: Option<&str>) -> Option<ObjectIdentifier> {
    ObjectIdentifier::builder()
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .build()
        .ok()
}

/// Deletes an empty bucket; `false` if it was already gone.
pub async fn delete_bucket(s3: &Client, bucket: &str) -> Result<bool> {
    match s3.delete_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(true),
        Err(error) if error.code() == Some("NoSuchBucket") => Ok(false),
        Err(error) => Err(CallError::of("DeleteBucket", bucket, error)),
    }
}
