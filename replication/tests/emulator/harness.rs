//! Shared set-up for the emulator tests: clients, a uniquely named set with
//! versioned buckets in two regions, notices built from real PutObject
//! answers, and a store that meddles with a copy half-way through.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration,
    VersioningConfiguration,
};
use aws_sdk_s3::{Client, Config};
use testkit::{Emulator, unique_name, wait_past};
use toastrep_replication::protocol::{ObjectHead, Seen, VersionEntry};
use toastrep_replication::store::s3::RegionalClients;
use toastrep_replication::store::{CopyRequest, KeyPage, Lookup, Part, StoreResult, Written};
use toastrep_replication::{
    CopySettings, MarkerKey, ObjectStore, Replicator, S3Notice, SdkStore, SetBuckets,
};

pub const REGION_A: &str = "us-east-1";
pub const REGION_B: &str = "eu-west-2";
pub use testkit::ACCOUNT;

/// The S3 configuration of every client here: the shared emulator.
pub fn base_config() -> Config {
    Emulator::shared().s3_config(REGION_A)
}

pub fn client(region: &str) -> Client {
    Emulator::shared().s3(region)
}

/// The marker key every test set shares.
pub fn marker_key() -> MarkerKey {
    MarkerKey::for_tests("emulator")
}

/// The store the function uses, on the emulator.
pub fn sdk_store() -> SdkStore {
    SdkStore::new(RegionalClients::new(base_config())).expecting_owner(ACCOUNT)
}

/// One test's replica set: its name, and its versioned bucket in each of
/// two regions, named as the set names them (the replicator refuses notices
/// from any other bucket).
pub struct TestSet {
    pub buckets: SetBuckets,
    pub a: TestBucket,
    pub b: TestBucket,
}

impl TestSet {
    pub async fn create() -> TestSet {
        let buckets = SetBuckets::new(unique_name("t"), ACCOUNT);
        let (a, b) = tokio::join!(
            TestBucket::create(&buckets, REGION_A),
            TestBucket::create(&buckets, REGION_B)
        );
        TestSet { buckets, a, b }
    }

    /// The replicator of this set, on the SDK store.
    pub fn replicator(&self, settings: CopySettings) -> Replicator<SdkStore> {
        self.replicator_on(sdk_store(), settings)
    }

    pub fn replicator_on<S: ObjectStore>(&self, store: S, settings: CopySettings) -> Replicator<S> {
        Replicator::new(store, marker_key(), self.buckets.clone(), settings)
    }

    /// Waits until the clock is in a later second than `key`'s current
    /// object in either bucket: a write from then on is the later write.
    pub async fn wait_past_last_write(&self, key: &str) {
        let mut last = None;
        for bucket in [&self.a, &self.b] {
            let head = sdk_store().head(&bucket.bucket(), key, None).await;
            if let Some(head) = head.expect("HeadObject").found() {
                last = last.max(Some(head.last_modified));
            }
        }
        wait_past(last.unwrap_or_else(|| panic!("no object {key:?} in the set"))).await;
    }

    pub async fn delete(self) {
        tokio::join!(self.a.delete(), self.b.delete());
    }
}

/// One versioned bucket of a test set.
#[derive(Clone)]
pub struct TestBucket {
    pub region: String,
    pub name: String,
    pub client: Client,
}

impl TestBucket {
    async fn create(set: &SetBuckets, region: &str) -> TestBucket {
        let client = client(region);
        let name = set.bucket(region).name;
        let mut create = client.create_bucket().bucket(&name);
        if region != "us-east-1" {
            // us-east-1 is the one region that rejects an explicit constraint.
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        create
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateBucket {name}: {e:?}"));
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
        TestBucket {
            region: region.to_owned(),
            name,
            client,
        }
    }

    /// The bucket as the replication library names it.
    pub fn bucket(&self) -> toastrep_replication::Bucket {
        toastrep_replication::Bucket::new(&self.region, &self.name)
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
            principal: None,
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
            principal: None,
        }
    }

    /// The current object (or one version) as the store reads it.
    pub async fn head(&self, key: &str, version: Option<&str>) -> ObjectHead {
        sdk_store()
            .head(&self.bucket(), key, version)
            .await
            .unwrap_or_else(|e| panic!("HeadObject {key:?}: {e}"))
            .found()
            .unwrap_or_else(|| panic!("no object {key:?} ({version:?}) in {}", self.name))
    }

    /// The current object (or one version), interpreted with the set's key.
    pub async fn seen(&self, key: &str, version: Option<&str>) -> Seen {
        Seen::of(
            &self.region,
            key,
            self.head(key, version).await,
            &marker_key().into(),
        )
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
        if let Ok(uploads) = self
            .client
            .list_multipart_uploads()
            .bucket(&self.name)
            .send()
            .await
        {
            for upload in uploads.uploads() {
                self.client
                    .abort_multipart_upload()
                    .bucket(&self.name)
                    .key(upload.key().unwrap_or_default())
                    .upload_id(upload.upload_id().unwrap_or_default())
                    .send()
                    .await
                    .ok();
            }
        }
        self.client
            .delete_bucket()
            .bucket(&self.name)
            .send()
            .await
            .ok();
    }
}

/// Something a test does to S3 in the middle of a replicator's copy.
pub type Meddling = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// When the meddling happens: just before the store sends this call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before {
    CopyObject,
    CopyPart(i32),
}

/// The SDK store, with a test's hand in it: it can run one [`Meddling`]
/// just before a given copy call (once), and it can claim objects in one
/// bucket are larger than they are. Everything else goes to S3 unchanged,
/// so the replicator's own code meets real S3 answers.
pub struct MeddlingStore {
    inner: SdkStore,
    meddle: Option<(Before, Meddling)>,
    meddled: AtomicBool,
    inflate: Option<(toastrep_replication::Bucket, u64)>,
}

impl MeddlingStore {
    pub fn new() -> MeddlingStore {
        MeddlingStore {
            inner: sdk_store(),
            meddle: None,
            meddled: AtomicBool::new(false),
            inflate: None,
        }
    }

    pub fn before<F, Fut>(mut self, call: Before, meddling: F) -> MeddlingStore
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.meddle = Some((call, Arc::new(move || Box::pin(meddling()))));
        self
    }

    /// HeadObject in `bucket` reports `extra` more bytes than there are.
    pub fn inflating(mut self, bucket: toastrep_replication::Bucket, extra: u64) -> MeddlingStore {
        self.inflate = Some((bucket, extra));
        self
    }

    async fn maybe_meddle(&self, call: Before) {
        if let Some((when, meddling)) = &self.meddle
            && *when == call
            && !self.meddled.swap(true, Ordering::SeqCst)
        {
            meddling().await;
        }
    }

    /// Whether the meddling ran.
    pub fn meddled(&self) -> bool {
        self.meddled.load(Ordering::SeqCst)
    }
}

impl ObjectStore for MeddlingStore {
    fn now(&self) -> i64 {
        self.inner.now()
    }

    async fn head(
        &self,
        bucket: &toastrep_replication::Bucket,
        key: &str,
        version: Option<&str>,
    ) -> StoreResult<Lookup> {
        let mut head = self.inner.head(bucket, key, version).await?;
        if let (Lookup::Found(head), Some((inflated, extra))) = (&mut head, &self.inflate)
            && inflated == bucket
        {
            head.size += extra;
        }
        Ok(head)
    }

    async fn delete_object(
        &self,
        bucket: &toastrep_replication::Bucket,
        key: &str,
        if_match: &str,
    ) -> StoreResult<Written> {
        self.inner.delete_object(bucket, key, if_match).await
    }

    async fn versions(
        &self,
        bucket: &toastrep_replication::Bucket,
        key: &str,
    ) -> StoreResult<Vec<VersionEntry>> {
        self.inner.versions(bucket, key).await
    }

    async fn copy_object(&self, request: &CopyRequest) -> StoreResult<Written> {
        self.maybe_meddle(Before::CopyObject).await;
        self.inner.copy_object(request).await
    }

    async fn tags(
        &self,
        bucket: &toastrep_replication::Bucket,
        key: &str,
        version: &str,
    ) -> StoreResult<Vec<(String, String)>> {
        self.inner.tags(bucket, key, version).await
    }

    async fn put_tags(
        &self,
        bucket: &toastrep_replication::Bucket,
        key: &str,
        version: &str,
        tags: &[(String, String)],
    ) -> StoreResult<()> {
        self.inner.put_tags(bucket, key, version, tags).await
    }

    async fn create_upload(
        &self,
        request: &CopyRequest,
        tags: &[(String, String)],
    ) -> StoreResult<String> {
        self.inner.create_upload(request, tags).await
    }

    async fn copy_part(
        &self,
        request: &CopyRequest,
        upload_id: &str,
        part: i32,
        first: u64,
        last: u64,
    ) -> StoreResult<Part> {
        self.maybe_meddle(Before::CopyPart(part)).await;
        self.inner
            .copy_part(request, upload_id, part, first, last)
            .await
    }

    async fn complete_upload(
        &self,
        request: &CopyRequest,
        upload_id: &str,
        parts: &[Part],
    ) -> StoreResult<Written> {
        self.inner.complete_upload(request, upload_id, parts).await
    }

    async fn abort_upload(
        &self,
        bucket: &toastrep_replication::Bucket,
        key: &str,
        upload_id: &str,
    ) -> StoreResult<()> {
        self.inner.abort_upload(bucket, key, upload_id).await
    }

    async fn list_keys(
        &self,
        bucket: &toastrep_replication::Bucket,
        prefix: Option<&str>,
        start: Option<&str>,
    ) -> StoreResult<KeyPage> {
        self.inner.list_keys(bucket, prefix, start).await
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
