//! Shared set-up for the emulator tests: clients, unique versioned buckets
//! in two regions, and notices built from real PutObject answers.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration,
    VersioningConfiguration,
};
use aws_sdk_s3::{Client, Config};
use toastrep_replication::{CopySettings, Destination, RegionalClients, Replicator, S3Notice};

pub const REGION_A: &str = "us-east-1";
pub const REGION_B: &str = "eu-west-2";

/// The emulator's URL. Unset is a failure, never a silent pass: a green run
/// without an emulator would prove nothing.
pub fn endpoint() -> String {
    std::env::var("TOASTREP_TEST_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "TOASTREP_TEST_ENDPOINT is not set: these tests need the local emulator (ministack). \
             Run them with `tools/test`, or start one yourself: \
             eval \"$(tools/emulator start)\" && export TOASTREP_TEST_ENDPOINT=$AWS_ENDPOINT_URL"
        )
    })
}

pub fn base_config() -> Config {
    Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "toastrep-tests",
        ))
        .region(Region::new(REGION_A))
        // Custom endpoints on an IP address need path-style addressing.
        .force_path_style(true)
        .build()
}

pub fn client(region: &str) -> Client {
    Client::from_conf(
        base_config()
            .to_builder()
            .region(Region::new(region.to_owned()))
            .build(),
    )
}

pub fn replicator(settings: CopySettings) -> Replicator {
    Replicator::new(RegionalClients::new(base_config()), settings)
}

pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000_000;
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// One versioned bucket in a region.
#[derive(Clone)]
pub struct Bucket {
    pub region: String,
    pub name: String,
    pub client: Client,
}

impl Bucket {
    pub async fn create(region: &str) -> Bucket {
        let client = client(region);
        let name = unique(&format!("trt-{}", &region[..2]));
        let mut create = client.create_bucket().bucket(&name);
        if region != "us-east-1" {
            // us-east-1 is the one region that rejects an explicit constraint.
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        create.send().await.expect("CreateBucket");
        client
            .put_bucket_versioning()
            .bucket(&name)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .expect("PutBucketVersioning");
        Bucket {
            region: region.to_owned(),
            name,
            client,
        }
    }

    pub fn destination(&self) -> Destination {
        Destination {
            region: self.region.clone(),
            bucket: self.name.clone(),
        }
    }

    /// PutObject, then the notice S3 would send for it.
    pub async fn put(&self, key: &str, body: &[u8]) -> S3Notice {
        self.put_with(key, body, |b| b).await
    }

    pub async fn put_with(
        &self,
        key: &str,
        body: &[u8],
        extra: impl FnOnce(PutObjectFluentBuilder) -> PutObjectFluentBuilder,
    ) -> S3Notice {
        let request = self
            .client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .body(ByteStream::from(body.to_vec()));
        let out = extra(request)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutObject {key:?}: {e:?}"));
        S3Notice {
            event_name: "ObjectCreated:Put".into(),
            region: self.region.clone(),
            bucket: self.name.clone(),
            key: key.to_owned(),
            version_id: out.version_id().map(str::to_owned),
            etag: out.e_tag().map(|e| e.trim_matches('"').to_owned()),
            sequencer: None,
            size: Some(body.len() as i64),
            event_time: None,
        }
    }

    /// The notice for the current object as it is now (e.g. a replica).
    pub async fn notice_for_current(&self, key: &str) -> S3Notice {
        let head = self
            .client
            .head_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .expect("HeadObject");
        S3Notice {
            event_name: "ObjectCreated:Copy".into(),
            region: self.region.clone(),
            bucket: self.name.clone(),
            key: key.to_owned(),
            version_id: head.version_id().map(str::to_owned),
            etag: head.e_tag().map(|e| e.trim_matches('"').to_owned()),
            sequencer: None,
            size: head.content_length(),
            event_time: None,
        }
    }

    pub async fn body(&self, key: &str) -> Option<Vec<u8>> {
        match self
            .client
            .get_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Some(
                out.body
                    .collect()
                    .await
                    .expect("body")
                    .into_bytes()
                    .to_vec(),
            ),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => None,
            Err(e) => panic!("GetObject {key:?}: {e:?}"),
        }
    }

    pub async fn version_count(&self, key: &str) -> usize {
        let out = self
            .client
            .list_object_versions()
            .bucket(&self.name)
            .prefix(key)
            .send()
            .await
            .expect("ListObjectVersions");
        out.versions()
            .iter()
            .filter(|v| v.key() == Some(key))
            .count()
    }

    pub async fn tags(&self, key: &str) -> Vec<(String, String)> {
        let out = self
            .client
            .get_object_tagging()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .expect("GetObjectTagging");
        let mut tags: Vec<_> = out
            .tag_set()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect();
        tags.sort();
        tags
    }

    pub async fn multipart_uploads(&self) -> usize {
        let out = self
            .client
            .list_multipart_uploads()
            .bucket(&self.name)
            .send()
            .await
            .expect("ListMultipartUploads");
        out.uploads().len()
    }

    /// Deletes every version, delete marker and upload, then the bucket.
    pub async fn delete(self) {
        let versions = self
            .client
            .list_object_versions()
            .bucket(&self.name)
            .send()
            .await
            .expect("ListObjectVersions");
        let doomed = versions
            .versions()
            .iter()
            .map(|v| (v.key().unwrap_or_default(), v.version_id()))
            .chain(
                versions
                    .delete_markers()
                    .iter()
                    .map(|m| (m.key().unwrap_or_default(), m.version_id())),
            );
        for (key, version) in doomed {
            self.client
                .delete_object()
                .bucket(&self.name)
                .key(key)
                .set_version_id(version.map(str::to_owned))
                .send()
                .await
                .ok();
        }
        self.client
            .delete_bucket()
            .bucket(&self.name)
            .send()
            .await
            .ok();
    }
}

/// Deterministic, incompressible-looking bytes, so a reordered or
/// misplaced part cannot go unnoticed.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}
