//! The artifact bucket of each region, which toastrep creates, owns and
//! deletes: Lambda reads a function's code from a bucket in its own region.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, ChecksumAlgorithm, ChecksumMode,
    CreateBucketConfiguration, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    VersioningConfiguration,
};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

use super::objects::Objects;
use super::{AwsError, CallError};
use crate::bail_input;
use crate::model::names::SetName;
use crate::model::regions::Region;
use crate::package::Package;

type Result<T, E = CallError> = std::result::Result<T, E>;

/// What ensuring the bucket and the package did, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArtifactChange {
    pub bucket_created: bool,
    pub package_uploaded: bool,
}

/// The package in one region's artifact bucket, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnsuredPackage {
    pub change: ArtifactChange,
    /// The version of the object whose SHA-256 was checked: the function's
    /// code is pinned to it (`CodeVersion`), so what CloudFormation fetches,
    /// now or on a rollback, is what was checked.
    pub version: String,
}

/// Makes sure the artifact bucket exists, hardened like the data buckets, and
/// holds the package.
pub async fn ensure_package(
    artifacts: &Objects,
    partition: &str,
    writer: &str,
    package: &Package,
) -> Result<EnsuredPackage, AwsError> {
    let (s3, bucket, region) = (&artifacts.client, artifacts.name.as_str(), artifacts.region);
    let bucket_created = create_bucket(s3, bucket, region).await?;
    let wanted_policy = artifact_policy(bucket, partition, writer);
    if bucket_created {
        harden(s3, bucket, &wanted_policy).await?;
    } else if policy(s3, bucket).await?.as_ref() != Some(&wanted_policy) {
        // A bucket of an earlier release, or one whose policy was changed.
        put_policy(s3, bucket, &wanted_policy).await?;
    }
    ensure_versioning(s3, bucket).await?;
    // The key names the package's hash, but a name is no proof: anyone who
    // could write to the bucket could have put other code under it. S3's
    // SHA-256 checksum of the object must be the package's own.
    let wanted = BASE64.encode(Sha256::digest(&package.zip));
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(&package.key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await;
    let found = match head {
        Ok(head) => Some((
            head.checksum_sha256().map(str::to_owned),
            head.version_id()
                .filter(|v| *v != "null")
                .map(str::to_owned),
        )),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => None,
        Err(error) => {
            let target = format!("s3://{bucket}/{} in {region}", package.key);
            return Err(CallError::of("HeadObject", target, error).into());
        }
    };
    let (upload, mut version) = match found {
        // Checked, and versioned: the function is pinned to this version.
        Some((Some(sha), Some(version))) if sha == wanted => (false, Some(version)),
        // Checked, but put before the bucket was versioned: put again, for
        // a version to pin.
        Some((Some(sha), None)) if sha == wanted => (true, None),
        Some((Some(sha), _)) => bail_input!(
            "s3://{bucket}/{} in {region} is not this function package: its SHA-256 is {sha}, \
             the package's is {wanted}, so something other than toastrep wrote it. Nothing was \
             deployed. Find out who can write to the artifact bucket, delete the object, and \
             deploy again (toastrep uploads the package anew)",
            package.key
        ),
        // Absent, or put without a SHA-256 checksum (by an older toastrep):
        // put the package, whose checksum S3 verifies on arrival.
        Some((None, _)) | None => (true, None),
    };
    if upload {
        let put = s3
            .put_object()
            .bucket(bucket)
            .key(&package.key)
            .body(ByteStream::from(package.zip.clone()))
            .content_type("application/zip")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(&wanted)
            .send()
            .await
            .map_err(|e| {
                let target = format!("s3://{bucket}/{} in {region}", package.key);
                CallError::of("PutObject", target, e)
            })?;
        version = put.version_id().map(str::to_owned);
    }
    let Some(version) = version.filter(|v| v != "null") else {
        let target = format!("s3://{bucket}/{} in {region}", package.key);
        let detail = "no version id although the bucket is versioned: the function's code \
                      cannot be pinned to the package checked; deploy again";
        return Err(CallError::answered("PutObject", target, detail).into());
    };
    Ok(EnsuredPackage {
        change: ArtifactChange {
            bucket_created,
            package_uploaded: upload,
        },
        version,
    })
}

/// Turns versioning on, once: a package or state object overwritten later
/// is a new version, and the function's code names the version checked.
async fn ensure_versioning(s3: &Client, bucket: &str) -> Result<()> {
    let status = s3
        .get_bucket_versioning()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| CallError::of("GetBucketVersioning", bucket, e))?;
    if status.status() == Some(&BucketVersioningStatus::Enabled) {
        return Ok(());
    }
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(|e| CallError::of("PutBucketVersioning", bucket, e))?;
    Ok(())
}

/// Creates the bucket; `false` if this account already owns it.
async fn create_bucket(s3: &Client, bucket: &str, region: Region) -> Result<bool, AwsError> {
    let mut request = s3.create_bucket().bucket(bucket);
    // us-east-1 is S3's default location and rejects an explicit constraint.
    if region != "us-east-1" {
        request = request.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    match request.send().await {
        Ok(_) => Ok(true),
        Err(error) if error.code() == Some("BucketAlreadyOwnedByYou") => Ok(false),
        Err(error) if error.code() == Some("BucketAlreadyExists") => Err(
            crate::error::InputError::new(format!(
                "the artifact bucket name {bucket} is taken by another AWS account: choose another set name"
            ))
            .into(),
        ),
        Err(error) => {
            let target = format!("{bucket} in {region}");
            Err(CallError::of("CreateBucket", target, error).into())
        }
    }
}

/// The bucket's policy, if it has one.
async fn policy(s3: &Client, bucket: &str) -> Result<Option<serde_json::Value>> {
    match s3.get_bucket_policy().bucket(bucket).send().await {
        Ok(found) => Ok(found.policy().and_then(|p| serde_json::from_str(p).ok())),
        Err(error) if error.code() == Some("NoSuchBucketPolicy") => Ok(None),
        Err(error) => Err(CallError::of("GetBucketPolicy", bucket, error)),
    }
}

/// The artifact bucket's policy, one for `deploy` and for the script
/// `render` writes:
/// - every request without TLS is refused, as the data buckets'
///   `DenyInsecureTransport` in `templates/base.yaml`;
/// - only the region's replicator role (`writer`, its ARN) writes the set's
///   state under `breaker/` (delete counts, open breakers) and `repair/`
///   (bounds, runs, what `status` shows): no other principal of the account,
///   whatever its own policy allows, opens a breaker or poisons a repair.
///   Closing a breaker (`deletes --release`) deletes, which stays the
///   operator's.
pub fn artifact_policy(bucket: &str, partition: &str, writer: &str) -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                // Every action: a request without TLS is refused whatever it asks.
                "Action": "s3:*",
                "Resource": [
                    format!("arn:{partition}:s3:::{bucket}"),
                    format!("arn:{partition}:s3:::{bucket}/*"),
                ],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {
                "Sid": "OnlyTheReplicatorWritesSetState",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": [
                    format!("arn:{partition}:s3:::{bucket}/breaker/*"),
                    format!("arn:{partition}:s3:::{bucket}/repair/*"),
                ],
                "Condition": {"ArnNotEquals": {"aws:PrincipalArn": writer}},
            },
        ],
    })
}

/// Where the artifact bucket keeps the set's log key (see
/// `toastrep_replication::function::log_keys::log_key`), for `hash-key`: readable
/// with `s3:GetObject` on this one object, without the marker key.
pub const LOG_KEY_OBJECT: &str = "toastrep/log-key";

/// Keeps the set's derived log key in the artifact bucket, unless it holds it.
pub async fn keep_log_key(artifacts: &Objects, log_key: &[u8; 32]) -> Result<()> {
    let wanted = hex::encode(log_key);
    if log_key_in(artifacts).await?.as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    artifacts.put(LOG_KEY_OBJECT, wanted.into_bytes()).await?;
    Ok(())
}

/// The set's log key as the artifact bucket keeps it; `None` for a set
/// deployed before it was kept.
pub async fn log_key_in(artifacts: &Objects) -> Result<Option<String>> {
    Ok(artifacts
        .get(LOG_KEY_OBJECT)
        .await?
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned()))
}

/// The ARN of the replicator role that may write a set's state in `region`.
pub fn state_writer(name: &SetName, region: Region, account: &str, partition: &str) -> String {
    format!("arn:{partition}:iam::{account}:role/{}", name.role(region))
}

/// Public access blocked, encryption at rest, TLS-only: the same defaults as
/// the data buckets in `templates/base.yaml`.
async fn harden(s3: &Client, bucket: &str, policy: &serde_json::Value) -> Result<()> {
    s3.put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .block_public_policy(true)
                .ignore_public_acls(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(|e| CallError::of("PutPublicAccessBlock", bucket, e))?;
    s3.put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(
                            ServerSideEncryptionByDefault::builder()
                                .sse_algorithm(ServerSideEncryption::Aes256)
                                .build()
                                .map_err(|e| CallError::other("PutBucketEncryption", bucket, e))?,
                        )
                        .build(),
                )
                .build()
                .map_err(|e| CallError::other("PutBucketEncryption", bucket, e))?,
        )
        .send()
        .await
        .map_err(|e| CallError::of("PutBucketEncryption", bucket, e))?;
    put_policy(s3, bucket, policy).await
}

async fn put_policy(s3: &Client, bucket: &str, policy: &serde_json::Value) -> Result<()> {
    s3.put_bucket_policy()
        .bucket(bucket)
        .policy(policy.to_string())
        .send()
        .await
        .map_err(|e| CallError::of("PutBucketPolicy", bucket, e))?;
    Ok(())
}
