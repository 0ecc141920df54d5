//! An in-memory S3: versioned buckets per region, ETags, Last-Modified to
//! the second, delete markers, user metadata, headers, tags and multipart
//! copies. Every call is a scheduling point (see [`super::executor`]) and
//! may fail: 5xx and throttling before it acts, timeouts after it acted.
//! Each write queues event notifications for the world to deliver.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::clock::Clock;
use crate::event::S3Notice;
use crate::protocol::{Headers, ObjectHead, Precondition, VersionEntry};
use crate::store::{
    Bucket, CopyRequest, ErrorKind, KeyPage, Lookup, ObjectStore, Part, StoreError, StoreResult,
    Unreplicable, Written,
};

use super::executor::yield_now;

/// An object's bytes, by identity: the same id is the same bytes.
pub type Content = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub version_id: String,
    pub etag: String,
    pub last_modified: i64,
    pub content: Content,
    pub size: u64,
    pub metadata: BTreeMap<String, String>,
    pub headers: Headers,
    pub tags: Vec<(String, String)>,
    pub delete_marker: bool,
    /// Written with SSE-C: S3 neither describes nor copies it without the
    /// customer's key.
    pub customer_key: bool,
}

#[derive(Debug, Clone)]
struct Upload {
    key: String,
    request: CopyRequest,
    tags: Vec<(String, String)>,
    /// Part number → (content, first byte, last byte).
    parts: BTreeMap<i32, (Content, u64, u64)>,
}

/// Fault rates, each out of 1,000 calls.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct Faults {
    /// 5xx or throttling, before the call acts.
    pub fail: u32,
    /// A timeout after the call acted (writes) or before (reads).
    pub timeout: u32,
}

#[derive(Debug)]
struct State {
    clock_ms: u64,
    /// Bucket name → region and key → history, oldest first.
    buckets: BTreeMap<String, (String, BTreeMap<String, Vec<Version>>)>,
    uploads: BTreeMap<String, Upload>,
    next_id: u64,
    rng: fastrand::Rng,
    faults: Faults,
    /// CopyObject ignores If-Match / If-None-Match on its destination, as
    /// the emulator does. CompleteMultipartUpload always honours them.
    ignore_copy_conditions: bool,
    /// Writes not yet announced: the world takes them and delivers them.
    outbox: Vec<S3Notice>,
    /// Every write ever made, for the convergence checks.
    writes: u64,
    /// Every call made.
    calls: u64,
}

/// The simulated S3, shared by every region's replicator and the world.
#[derive(Debug, Clone)]
pub struct SimS3(Arc<Mutex<State>>);

/// The ETag of single-part content: stands in for its MD5.
pub fn etag_of(content: Content) -> String {
    format!("{content:032x}")
}

impl SimS3 {
    pub fn new(seed: u64, buckets: &[Bucket], ignore_copy_conditions: bool) -> SimS3 {
        SimS3(Arc::new(Mutex::new(State {
            clock_ms: 1_800_000_000_000,
            buckets: buckets
                .iter()
                .map(|b| (b.name.clone(), (b.region.clone(), BTreeMap::new())))
                .collect(),
            uploads: BTreeMap::new(),
            next_id: 0,
            rng: fastrand::Rng::with_seed(seed),
            faults: Faults::default(),
            ignore_copy_conditions,
            outbox: Vec::new(),
            writes: 0,
            calls: 0,
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_faults(&self, faults: Faults) {
        self.state().faults = faults;
    }

    pub fn clock_ms(&self) -> u64 {
        self.state().clock_ms
    }

    pub fn advance(&self, ms: u64) {
        self.state().clock_ms += ms;
    }

    pub fn take_outbox(&self) -> Vec<S3Notice> {
        std::mem::take(&mut self.state().outbox)
    }

    pub fn writes(&self) -> u64 {
        self.state().writes
    }

    /// Calls made through the store trait.
    pub fn calls(&self) -> u64 {
        self.state().calls
    }

    /// The history of `key` in `bucket`, oldest first.
    pub fn history(&self, bucket: &str, key: &str) -> Vec<Version> {
        let state = self.state();
        state.buckets[bucket]
            .1
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    /// Every bucket's every key's history, oldest first, by bucket name.
    pub fn objects(&self) -> BTreeMap<String, BTreeMap<String, Vec<Version>>> {
        let state = self.state();
        state
            .buckets
            .iter()
            .map(|(name, (_, objects))| (name.clone(), objects.clone()))
            .collect()
    }

    /// Every key that has a history in any bucket.
    pub fn keys(&self) -> Vec<String> {
        let state = self.state();
        let mut keys: Vec<String> = state
            .buckets
            .values()
            .flat_map(|(_, o)| o.keys().cloned())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// A user's PutObject, never faulted: the world records what it wrote.
    pub fn user_put(
        &self,
        bucket: &str,
        key: &str,
        size: u64,
        metadata: BTreeMap<String, String>,
        headers: Headers,
        tags: Vec<(String, String)>,
    ) -> Version {
        let mut state = self.state();
        let content = state.fresh_id();
        state.append(
            bucket,
            key,
            content,
            size,
            etag_of(content),
            metadata,
            headers,
            tags,
            "Put",
        )
    }

    /// A user's PutObject with a customer-provided key (SSE-C), never
    /// faulted.
    pub fn user_put_customer_key(&self, bucket: &str, key: &str, size: u64) -> Version {
        let written = self.user_put(
            bucket,
            key,
            size,
            BTreeMap::new(),
            Headers::default(),
            Vec::new(),
        );
        let mut state = self.state();
        let stored = state
            .buckets
            .get_mut(bucket)
            .and_then(|(_, keys)| keys.get_mut(key))
            .and_then(|history| {
                history
                    .iter_mut()
                    .find(|v| v.version_id == written.version_id)
            })
            .expect("just written");
        stored.customer_key = true;
        stored.clone()
    }

    /// A user's DeleteObject without a version id: a delete marker on top,
    /// and its notice (S3 sends one even when nothing was current).
    pub fn user_delete(&self, bucket: &str, key: &str) -> String {
        self.state().delete_marker(bucket, key)
    }

    /// A user's DeleteObject of the current version by its id: the version
    /// is gone for good, and an `ObjectRemoved:Delete` notice says so.
    /// `None` when no object is current.
    pub fn user_delete_version(&self, bucket: &str, key: &str) -> Option<Version> {
        let mut state = self.state();
        let history = state.buckets.get_mut(bucket)?.1.get_mut(key)?;
        if history.last()?.delete_marker {
            return None;
        }
        let removed = history.pop()?;
        state.notify(
            bucket,
            key,
            "ObjectRemoved:Delete".into(),
            &removed.version_id,
            None,
            None,
            None,
        );
        Some(removed)
    }

    /// A user's upload of an object's bytes and metadata, as downloaded.
    pub fn user_reupload(&self, bucket: &str, key: &str, source: &Version) -> Version {
        let mut state = self.state();
        state.append(
            bucket,
            key,
            source.content,
            source.size,
            etag_of(source.content),
            source.metadata.clone(),
            source.headers.clone(),
            source.tags.clone(),
            "Put",
        )
    }

    /// A user's CopyObject within one bucket, metadata and tags copied
    /// (the `aws s3 cp s3://b/a s3://b/b` of a replica). `None` when the
    /// source key has no current object.
    pub fn user_copy(&self, bucket: &str, from: &str, to: &str) -> Option<Version> {
        let mut state = self.state();
        let source = state.current(bucket, from)?;
        Some(state.append(
            bucket,
            to,
            source.content,
            source.size,
            source.etag.clone(),
            source.metadata.clone(),
            source.headers.clone(),
            source.tags.clone(),
            "Copy",
        ))
    }
}

impl State {
    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn now(&self) -> i64 {
        (self.clock_ms / 1000) as i64
    }

    fn current(&self, bucket: &str, key: &str) -> Option<Version> {
        self.buckets[bucket]
            .1
            .get(key)
            .and_then(|h| h.last())
            .filter(|v| !v.delete_marker)
            .cloned()
    }

    #[allow(clippy::too_many_arguments)]
    fn append(
        &mut self,
        bucket: &str,
        key: &str,
        content: Content,
        size: u64,
        etag: String,
        metadata: BTreeMap<String, String>,
        headers: Headers,
        tags: Vec<(String, String)>,
        how: &str,
    ) -> Version {
        let id = self.fresh_id();
        let version = Version {
            version_id: format!("v{id}"),
            etag,
            last_modified: self.now(),
            content,
            size,
            metadata,
            headers,
            tags,
            delete_marker: false,
            customer_key: false,
        };
        self.push_version(bucket, key, &version);
        self.notify(
            bucket,
            key,
            format!("ObjectCreated:{how}"),
            &version.version_id,
            Some(version.etag.clone()),
            Some(size as i64),
            Some(id),
        );
        version
    }

    /// A new version on top of `key`: a write the convergence checks count.
    fn push_version(&mut self, bucket: &str, key: &str, version: &Version) {
        self.buckets
            .get_mut(bucket)
            .expect("a known bucket")
            .1
            .entry(key.to_owned())
            .or_default()
            .push(version.clone());
        self.writes += 1;
    }

    /// Queues the notification S3 sends for a change of `key`.
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &mut self,
        bucket: &str,
        key: &str,
        event_name: String,
        version_id: &str,
        etag: Option<String>,
        size: Option<i64>,
        sequence: Option<u64>,
    ) {
        let region = self.buckets[bucket].0.clone();
        self.outbox.push(S3Notice {
            event_name,
            region,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: Some(version_id.to_owned()),
            etag,
            sequencer: sequence.map(|id| format!("{id:016X}")),
            size,
            event_time: None,
            principal: None,
        });
    }

    /// A delete marker on top of `key`, and its notice.
    fn delete_marker(&mut self, bucket: &str, key: &str) -> String {
        let id = self.fresh_id();
        let marker = Version {
            version_id: format!("v{id}"),
            etag: String::new(),
            last_modified: self.now(),
            content: 0,
            size: 0,
            metadata: BTreeMap::new(),
            headers: Headers::default(),
            tags: Vec::new(),
            delete_marker: true,
            customer_key: false,
        };
        self.push_version(bucket, key, &marker);
        self.notify(
            bucket,
            key,
            "ObjectRemoved:DeleteMarkerCreated".into(),
            &marker.version_id,
            None,
            None,
            Some(id),
        );
        marker.version_id
    }

    fn roll(&mut self, per_mille: u32) -> bool {
        per_mille > 0 && self.rng.u32(0..1000) < per_mille
    }

    fn version(&self, bucket: &str, key: &str, version: &str) -> Option<&Version> {
        self.buckets
            .get(bucket)?
            .1
            .get(key)?
            .iter()
            .find(|v| v.version_id == version)
    }

    /// The exact source version a copy names: 404 when it is gone, 412
    /// when its ETag is not the one the copy asks for.
    fn copy_source(&self, request: &CopyRequest, operation: &'static str) -> StoreResult<Version> {
        let destination = &request.destination;
        let Some(source) = self
            .version(&request.source.name, &request.key, &request.source_version)
            .filter(|v| !v.delete_marker)
            .cloned()
        else {
            return Err(error(
                ErrorKind::NotFound,
                operation,
                destination,
                &request.key,
                "NoSuchVersion",
            ));
        };
        if source.customer_key {
            return Err(error(
                ErrorKind::NotReplicable(Unreplicable::CustomerKey),
                operation,
                destination,
                &request.key,
                "InvalidRequest: stored using a form of Server Side Encryption",
            ));
        }
        if source.etag != request.source_etag {
            return Err(error(
                ErrorKind::PreconditionFailed,
                operation,
                destination,
                &request.key,
                "source ETag",
            ));
        }
        Ok(source)
    }

    fn holds(&self, bucket: &str, key: &str, precondition: &Precondition) -> bool {
        let current = self.current(bucket, key);
        match precondition {
            Precondition::IfMatch(etag) => current.is_some_and(|c| c.etag == *etag),
            Precondition::IfNoneMatch => current.is_none(),
        }
    }
}

fn error(
    kind: ErrorKind,
    operation: &'static str,
    bucket: &Bucket,
    key: &str,
    message: &str,
) -> StoreError {
    StoreError {
        kind,
        operation,
        region: bucket.region.clone(),
        bucket: bucket.name.clone(),
        key: key.to_owned(),
        message: message.to_owned(),
    }
}

impl SimS3 {
    /// One call: a scheduling point, then the call acts (unless a fault
    /// comes first), then another scheduling point before the answer.
    async fn call<T>(
        &self,
        operation: &'static str,
        bucket: &Bucket,
        key: &str,
        writes: bool,
        act: impl FnOnce(&mut State) -> StoreResult<T>,
    ) -> StoreResult<T> {
        yield_now().await;
        let result = {
            let mut state = self.state();
            state.calls += 1;
            let faults = state.faults;
            if state.roll(faults.fail) {
                Err(error(
                    ErrorKind::Retryable,
                    operation,
                    bucket,
                    key,
                    "SlowDown (injected)",
                ))
            } else if !writes && state.roll(faults.timeout) {
                Err(error(
                    ErrorKind::Retryable,
                    operation,
                    bucket,
                    key,
                    "timeout (injected)",
                ))
            } else {
                let result = act(&mut state);
                // A write may act and still time out on the way back.
                if writes && result.is_ok() && state.roll(faults.timeout) {
                    Err(error(
                        ErrorKind::Retryable,
                        operation,
                        bucket,
                        key,
                        "timeout after acting (injected)",
                    ))
                } else {
                    result
                }
            }
        };
        yield_now().await;
        result
    }
}

/// What HeadObject says of a version.
pub fn head_of(v: &Version) -> ObjectHead {
    ObjectHead {
        version_id: v.version_id.clone(),
        etag: v.etag.clone(),
        last_modified: v.last_modified,
        size: v.size,
        etag_is_md5: !v.etag.contains('-'),
        metadata: v.metadata.clone(),
        headers: v.headers.clone(),
    }
}

/// The simulated time is the replicators' clock too: a deadline passes
/// only as the schedule advances it.
impl Clock for SimS3 {
    fn now_ms(&self) -> i64 {
        self.clock_ms() as i64
    }

    fn sleep_until(&self, at_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            while self.now_ms() < at_ms {
                yield_now().await;
            }
        })
    }
}

impl ObjectStore for SimS3 {
    fn now(&self) -> i64 {
        self.state().now()
    }

    async fn head(&self, bucket: &Bucket, key: &str, version: Option<&str>) -> StoreResult<Lookup> {
        self.call("HeadObject", bucket, key, false, |state| {
            let found = match version {
                None => state.buckets[&bucket.name]
                    .1
                    .get(key)
                    .and_then(|h| h.last()),
                Some(v) => state.version(&bucket.name, key, v),
            };
            Ok(match found {
                None => Lookup::Missing,
                Some(v) if v.delete_marker => Lookup::DeleteMarker,
                // S3's bare 400 for an SSE-C object asked without its key.
                Some(v) if v.customer_key => {
                    return Err(error(
                        ErrorKind::NotReplicable(Unreplicable::CustomerKey),
                        "HeadObject",
                        bucket,
                        key,
                        "HTTP 400",
                    ));
                }
                Some(v) => Lookup::Found(head_of(v)),
            })
        })
        .await
    }

    async fn delete_object(
        &self,
        bucket: &Bucket,
        key: &str,
        if_match: &str,
    ) -> StoreResult<Written> {
        // Both S3 and the emulator honour If-Match on DeleteObject.
        self.call("DeleteObject", bucket, key, true, |state| {
            match state.current(&bucket.name, key) {
                None => Err(error(
                    ErrorKind::NotFound,
                    "DeleteObject",
                    bucket,
                    key,
                    "NoSuchKey",
                )),
                Some(current) if current.etag != if_match => Err(error(
                    ErrorKind::PreconditionFailed,
                    "DeleteObject",
                    bucket,
                    key,
                    "If-Match",
                )),
                Some(_) => Ok(Written {
                    version_id: state.delete_marker(&bucket.name, key),
                }),
            }
        })
        .await
    }

    async fn versions(&self, bucket: &Bucket, key: &str) -> StoreResult<Vec<VersionEntry>> {
        self.call("ListObjectVersions", bucket, key, false, |state| {
            let history = state.buckets[&bucket.name]
                .1
                .get(key)
                .cloned()
                .unwrap_or_default();
            Ok(history
                .iter()
                .rev()
                .map(|v| match v.delete_marker {
                    true => VersionEntry::DeleteMarker {
                        version_id: v.version_id.clone(),
                        last_modified: v.last_modified,
                    },
                    false => VersionEntry::Object {
                        version_id: v.version_id.clone(),
                        etag: v.etag.clone(),
                        last_modified: v.last_modified,
                    },
                })
                .collect())
        })
        .await
    }

    async fn copy_object(&self, request: &CopyRequest) -> StoreResult<Written> {
        let destination = &request.destination;
        self.call("CopyObject", destination, &request.key, true, |state| {
            let source = state.copy_source(request, "CopyObject")?;
            if !state.ignore_copy_conditions
                && !state.holds(&destination.name, &request.key, &request.precondition)
            {
                return Err(error(
                    ErrorKind::PreconditionFailed,
                    "CopyObject",
                    destination,
                    &request.key,
                    "destination condition",
                ));
            }
            let version = state.append(
                &destination.name,
                &request.key,
                source.content,
                source.size,
                source.etag.clone(),
                request.metadata.clone(),
                request.headers.clone(),
                source.tags.clone(),
                "Copy",
            );
            Ok(Written {
                version_id: version.version_id,
            })
        })
        .await
    }

    async fn tags(
        &self,
        bucket: &Bucket,
        key: &str,
        version: &str,
    ) -> StoreResult<Vec<(String, String)>> {
        self.call("GetObjectTagging", bucket, key, false, |state| {
            state
                .version(&bucket.name, key, version)
                .map(|v| v.tags.clone())
                .ok_or_else(|| {
                    error(
                        ErrorKind::NotFound,
                        "GetObjectTagging",
                        bucket,
                        key,
                        "NoSuchVersion",
                    )
                })
        })
        .await
    }

    async fn put_tags(
        &self,
        bucket: &Bucket,
        key: &str,
        version: &str,
        tags: &[(String, String)],
    ) -> StoreResult<()> {
        self.call("PutObjectTagging", bucket, key, true, |state| {
            let history = state
                .buckets
                .get_mut(&bucket.name)
                .and_then(|b| b.1.get_mut(key));
            let found = history.and_then(|h| h.iter_mut().find(|v| v.version_id == version));
            match found {
                Some(v) => {
                    v.tags = tags.to_vec();
                    Ok(())
                }
                None => Err(error(
                    ErrorKind::NotFound,
                    "PutObjectTagging",
                    bucket,
                    key,
                    "NoSuchVersion",
                )),
            }
        })
        .await
    }

    async fn create_upload(
        &self,
        request: &CopyRequest,
        tags: &[(String, String)],
    ) -> StoreResult<String> {
        self.call(
            "CreateMultipartUpload",
            &request.destination,
            &request.key,
            true,
            |state| {
                let id = format!("u{}", state.fresh_id());
                state.uploads.insert(
                    id.clone(),
                    Upload {
                        key: request.key.clone(),
                        request: request.clone(),
                        tags: tags.to_vec(),
                        parts: BTreeMap::new(),
                    },
                );
                Ok(id)
            },
        )
        .await
    }

    async fn copy_part(
        &self,
        request: &CopyRequest,
        upload_id: &str,
        part: i32,
        first: u64,
        last: u64,
    ) -> StoreResult<Part> {
        let destination = &request.destination;
        self.call("UploadPartCopy", destination, &request.key, true, |state| {
            let source = state.copy_source(request, "UploadPartCopy")?;
            let upload = state.uploads.get_mut(upload_id).ok_or_else(|| {
                error(
                    ErrorKind::NotFound,
                    "UploadPartCopy",
                    destination,
                    &request.key,
                    "NoSuchUpload",
                )
            })?;
            upload.parts.insert(part, (source.content, first, last));
            Ok(Part {
                number: part,
                etag: format!("p{part}-{}", source.content),
                checksum: None,
            })
        })
        .await
    }

    async fn complete_upload(
        &self,
        request: &CopyRequest,
        upload_id: &str,
        parts: &[Part],
    ) -> StoreResult<Written> {
        let destination = &request.destination;
        self.call(
            "CompleteMultipartUpload",
            destination,
            &request.key,
            true,
            |state| {
                let upload = state.uploads.get(upload_id).cloned().ok_or_else(|| {
                    error(
                        ErrorKind::NotFound,
                        "CompleteMultipartUpload",
                        destination,
                        &request.key,
                        "NoSuchUpload",
                    )
                })?;
                if !state.holds(&destination.name, &upload.key, &request.precondition) {
                    return Err(error(
                        ErrorKind::PreconditionFailed,
                        "CompleteMultipartUpload",
                        destination,
                        &request.key,
                        "destination condition",
                    ));
                }
                // The parts must tile one source's bytes exactly.
                let mut next = 0;
                let mut content = None;
                for Part { number, .. } in parts {
                    let (c, first, last) = *upload.parts.get(number).ok_or_else(|| {
                        error(
                            ErrorKind::Permanent,
                            "CompleteMultipartUpload",
                            destination,
                            &request.key,
                            "InvalidPart",
                        )
                    })?;
                    assert_eq!(first, next, "parts must be contiguous");
                    assert!(content.is_none_or(|x| x == c), "parts from one source");
                    content = Some(c);
                    next = last + 1;
                }
                let content = content.expect("at least one part");
                state.uploads.remove(upload_id);
                let etag = format!("{}-{}", etag_of(content), parts.len());
                let version = state.append(
                    &destination.name,
                    &upload.key,
                    content,
                    next,
                    etag,
                    upload.request.metadata.clone(),
                    upload.request.headers.clone(),
                    upload.tags.clone(),
                    "CompleteMultipartUpload",
                );
                Ok(Written {
                    version_id: version.version_id,
                })
            },
        )
        .await
    }

    async fn abort_upload(&self, bucket: &Bucket, key: &str, upload_id: &str) -> StoreResult<()> {
        self.call("AbortMultipartUpload", bucket, key, true, |state| {
            state.uploads.remove(upload_id);
            Ok(())
        })
        .await
    }

    async fn list_keys(
        &self,
        bucket: &Bucket,
        prefix: Option<&str>,
        start: Option<&str>,
    ) -> StoreResult<KeyPage> {
        self.call(
            "ListObjectsV2",
            bucket,
            prefix.unwrap_or(""),
            false,
            |state| {
                let keys: Vec<(String, String)> = state.buckets[&bucket.name]
                    .1
                    .iter()
                    .filter(|(k, _)| prefix.is_none_or(|p| k.starts_with(p)))
                    .filter(|(k, _)| start.is_none_or(|s| k.as_str() > s))
                    .filter_map(|(k, h)| {
                        h.last()
                            .filter(|v| !v.delete_marker)
                            .map(|v| (k.clone(), v.etag.clone()))
                    })
                    .take(1000)
                    .collect();
                let next = (keys.len() == 1000).then(|| keys.last().expect("1000 keys").0.clone());
                Ok(KeyPage { keys, next })
            },
        )
        .await
    }
}

impl SimS3 {
    /// Uploads still open (a copy that neither completed nor aborted).
    pub fn open_uploads(&self) -> usize {
        self.state().uploads.len()
    }
}
