//! One bucket of a set, as the CLI works it: the objects toastrep keeps in
//! an artifact bucket (the package, breakers, repair reports, markers), the
//! probes `verify` writes, and counts of what a data bucket holds. Every
//! request names the account as the expected owner (see `clients`).

use std::collections::BTreeSet;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::BucketVersioningStatus;

use super::{Aws, CallError, buckets, lifecycle};
use crate::model::regions::Region;

/// A bucket in its region.
#[derive(Debug, Clone)]
pub struct Objects {
    pub name: String,
    pub region: Region,
    pub(super) client: Client,
}

/// An object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub etag: String,
    pub size: u64,
}

/// Whether a bucket keeps versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    Enabled,
    Suspended,
    /// Never switched on.
    Off,
}

impl Aws {
    /// Bucket `name` in `region`.
    pub fn objects(&self, region: Region, name: impl Into<String>) -> Objects {
        Objects {
            name: name.into(),
            region: region.to_owned(),
            client: self.s3(region),
        }
    }
}

impl Aws {
    /// The names of the account's buckets that start with `prefix`.
    /// ListBuckets is global: `region` is only where it is asked.
    pub async fn bucket_names(
        &self,
        region: Region,
        prefix: &str,
    ) -> Result<BTreeSet<String>, CallError> {
        let mut pages = self
            .s3(region)
            .list_buckets()
            .prefix(prefix)
            .max_buckets(1000)
            .into_paginator()
            .send();
        let mut names = BTreeSet::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| CallError::of("ListBuckets", prefix, e))?;
            names.extend(
                page.buckets()
                    .iter()
                    .filter_map(|b| b.name())
                    // The prefix is asked for, but not every S3 honours it.
                    .filter(|n| n.starts_with(prefix))
                    .map(str::to_owned),
            );
        }
        Ok(names)
    }
}

impl Objects {
    fn target(&self, key: &str) -> String {
        format!("s3://{}/{key} in {}", self.name, self.region)
    }

    /// Whether `key` is there; `false` too when the bucket is not.
    pub async fn holds(&self, key: &str) -> Result<bool, CallError> {
        let head = self
            .client
            .head_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await;
        match head {
            Ok(_) => Ok(true),
            Err(error)
                if error.as_service_error().is_some_and(|e| e.is_not_found())
                    || aws_sdk_s3::error::ProvideErrorMetadata::code(&error)
                        == Some("NoSuchBucket") =>
            {
                Ok(false)
            }
            Err(error) => Err(CallError::of("HeadObject", self.target(key), error)),
        }
    }

    /// The bytes of `key`; `None` when there is no such key.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CallError> {
        let object = match self
            .client
            .get_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
        {
            Ok(object) => object,
            Err(error) if error.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None);
            }
            Err(error) => return Err(CallError::of("GetObject", self.target(key), error)),
        };
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| CallError::other("GetObject", self.target(key), e))?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    /// Writes `bytes` under `key`; returns the new object's ETag.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<String, CallError> {
        let out = self
            .client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| CallError::of("PutObject", self.target(key), e))?;
        Ok(out.e_tag().unwrap_or_default().to_owned())
    }

    /// Deletes `key` (a delete marker, in a versioned bucket).
    pub async fn delete(&self, key: &str) -> Result<(), CallError> {
        self.client
            .delete_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| CallError::of("DeleteObject", self.target(key), e))
    }

    /// The current objects under `prefix` (every one for `""`).
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>, CallError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.name)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut listed = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| CallError::of("ListObjectsV2", self.target(prefix), e))?;
            listed.extend(page.contents().iter().filter_map(|object| {
                Some(Listed {
                    key: object.key()?.to_owned(),
                    etag: object.e_tag().unwrap_or_default().to_owned(),
                    size: object.size().unwrap_or(0).max(0) as u64,
                })
            }));
        }
        Ok(listed)
    }

    /// Whether the bucket keeps versions.
    pub async fn versioning(&self) -> Result<Versioning, CallError> {
        let out = self
            .client
            .get_bucket_versioning()
            .bucket(&self.name)
            .send()
            .await
            .map_err(|e| CallError::of("GetBucketVersioning", self.target(""), e))?;
        Ok(match out.status() {
            Some(BucketVersioningStatus::Enabled) => Versioning::Enabled,
            Some(BucketVersioningStatus::Suspended) => Versioning::Suspended,
            _ => Versioning::Off,
        })
    }

    /// Object versions under `prefix`, delete markers not counted.
    pub async fn version_count(&self, prefix: &str) -> Result<u64, CallError> {
        buckets::version_count(&self.client, &self.name, prefix).await
    }

    /// Every key under `prefix` with a version or a delete marker.
    pub async fn keys_with_versions(&self, prefix: &str) -> Result<BTreeSet<String>, CallError> {
        buckets::keys_with_versions(&self.client, &self.name, prefix).await
    }

    /// Versions and delete markers, counted up to `limit` versions.
    pub async fn count(&self, limit: u64) -> Result<buckets::Contents, CallError> {
        buckets::count(&self.client, &self.name, limit).await
    }

    /// Deletes every version (or only the delete markers) in the bucket.
    pub async fn purge(&self, only_markers: bool) -> Result<u64, CallError> {
        buckets::purge(&self.client, &self.name, only_markers).await
    }

    /// Deletes every version under `prefix`.
    pub async fn purge_prefix(&self, prefix: &str) -> Result<u64, CallError> {
        buckets::purge_prefix(&self.client, &self.name, prefix).await
    }

    /// Deletes the (empty) bucket; `false` when it was already gone.
    pub async fn delete_bucket(&self) -> Result<bool, CallError> {
        buckets::delete_bucket(&self.client, &self.name).await
    }

    /// Puts the data bucket's lifecycle rules for `days`.
    pub async fn keep_noncurrent_for(&self, days: u32) -> Result<(), CallError> {
        lifecycle::apply(&self.client, &self.name, days).await
    }

    /// Puts the artifact bucket's lifecycle rule.
    pub async fn keep_artifacts_by_rule(&self) -> Result<(), CallError> {
        lifecycle::apply_artifacts(&self.client, &self.name).await
    }

    /// How many days the bucket keeps noncurrent versions (0: for good).
    pub async fn noncurrent_days(&self) -> Result<u32, CallError> {
        lifecycle::noncurrent_days(&self.client, &self.name).await
    }
}
