//! The data buckets' lifecycle rules: how long overwritten and deleted
//! versions are kept (the setting
//! [`keep_noncurrent_days`](crate::model::function::FunctionSettings::keep_noncurrent_days)),
//! and the cleanup of what nobody needs any more.
//!
//! The base template declares the same rules, which CloudFormation applies
//! on AWS. `deploy` puts them on each bucket as well, and `status` and
//! `plan` read them back from the bucket: the bucket's own configuration is
//! what expires versions, so that is what is shown. (The emulator does not
//! apply a bucket's `LifecycleConfiguration` from a template; this way it
//! holds there too.)

use aws_sdk_s3::Client;
use aws_sdk_s3::error::BuildError;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration,
};

use super::CallError;

type Result<T, E = CallError> = std::result::Result<T, E>;

/// The rule that expires noncurrent versions (the template's too).
const EXPIRE_NONCURRENT: &str = "expire-noncurrent-versions";
/// The backstop for a multipart copy whose abort failed.
const ABORT_UPLOADS: &str = "abort-incomplete-multipart-uploads";

/// The rules for a bucket keeping noncurrent versions `days` days (0:
/// forever), exactly as the base template declares them.
fn configuration(days: u32) -> Result<BucketLifecycleConfiguration, BuildError> {
    let everything = || LifecycleRuleFilter::builder().prefix("").build();
    let mut rules = vec![
        LifecycleRule::builder()
            .id(ABORT_UPLOADS)
            .status(ExpirationStatus::Enabled)
            .filter(everything())
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(7)
                    .build(),
            )
            .build()?,
    ];
    if days > 0 {
        rules.push(
            LifecycleRule::builder()
                .id(EXPIRE_NONCURRENT)
                .status(ExpirationStatus::Enabled)
                .filter(everything())
                .noncurrent_version_expiration(
                    NoncurrentVersionExpiration::builder()
                        // Settings check the days; past i32 is forever anyway.
                        .noncurrent_days(i32::try_from(days).unwrap_or(i32::MAX))
                        .build(),
                )
                // A delete marker with nothing left below it goes too.
                .expiration(
                    LifecycleExpiration::builder()
                        .expired_object_delete_marker(true)
                        .build(),
                )
                .build()?,
        );
    }
    BucketLifecycleConfiguration::builder()
        .set_rules(Some(rules))
        .build()
}

/// The artifact bucket's rules: the delete breaker's counts (one small
/// object a carried delete, under `breaker/deletes/`) go after a day, a
/// minute's count being all it reads; and, the bucket being versioned,
/// what was overwritten or deleted goes after 30 days (an earlier package
/// stays as long as a stack may roll back to it: its key is its own).
fn artifact_configuration() -> Result<BucketLifecycleConfiguration, BuildError> {
    let noncurrent = |days| {
        NoncurrentVersionExpiration::builder()
            .noncurrent_days(days)
            .build()
    };
    BucketLifecycleConfiguration::builder()
        .rules(
            LifecycleRule::builder()
                .id("expire-delete-counts")
                .status(ExpirationStatus::Enabled)
                .filter(
                    LifecycleRuleFilter::builder()
                        .prefix(toastrep_replication::function::breaker_keys::COUNTS)
                        .build(),
                )
                .expiration(LifecycleExpiration::builder().days(1).build())
                .noncurrent_version_expiration(noncurrent(1))
                .build()?,
        )
        .rules(
            LifecycleRule::builder()
                .id("expire-noncurrent-state")
                .status(ExpirationStatus::Enabled)
                .filter(LifecycleRuleFilter::builder().prefix("").build())
                .noncurrent_version_expiration(noncurrent(30))
                .build()?,
        )
        .build()
}

/// Puts the artifact bucket's rule on `bucket`.
pub async fn apply_artifacts(s3: &Client, bucket: &str) -> Result<()> {
    put(s3, bucket, artifact_configuration()).await
}

/// Puts the rules for `days` on `bucket`.
pub async fn apply(s3: &Client, bucket: &str, days: u32) -> Result<()> {
    put(s3, bucket, configuration(days)).await
}

async fn put(
    s3: &Client,
    bucket: &str,
    rules: Result<BucketLifecycleConfiguration, BuildError>,
) -> Result<()> {
    const OPERATION: &str = "PutBucketLifecycleConfiguration";
    let rules = rules.map_err(|e| CallError::other(OPERATION, bucket, e))?;
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(rules)
        .send()
        .await
        .map_err(|e| CallError::of(OPERATION, bucket, e))?;
    Ok(())
}

/// How many days `bucket` keeps noncurrent versions: 0 when no rule
/// expires them.
pub async fn noncurrent_days(s3: &Client, bucket: &str) -> Result<u32> {
    let rules = match s3
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => out.rules.unwrap_or_default(),
        Err(error) if error.code() == Some("NoSuchLifecycleConfiguration") => Vec::new(),
        Err(error) => {
            return Err(CallError::of(
                "GetBucketLifecycleConfiguration",
                bucket,
                error,
            ));
        }
    };
    Ok(rules
        .iter()
        .filter(|r| r.status() == &ExpirationStatus::Enabled)
        .filter_map(|r| r.noncurrent_version_expiration()?.noncurrent_days())
        .filter_map(|days| u32::try_from(days).ok())
        .min()
        .unwrap_or(0))
}
