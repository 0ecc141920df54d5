//! The replicator as a deployed set runs it: real uploads, real S3 → SNS →
//! Lambda deliveries, and Lambda `Invoke` for deliveries a test must craft
//! (an old event again, several records at once, a test event). Every test
//! deploys its own set and tears it down, even when it fails.
//!
//! Copies are counted from the buckets' version history: under a key that
//! nobody else writes, every version in a region other than the upload's is
//! one copy the replicator made.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read as _, Write as _};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::future::join_all;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use testkit::events::{self, S3Record, fixture};
use testkit::keys::awkward_keys;
use testkit::upload::{self, decorate};

use toastrep::ops::sync::SyncReport;
use toastrep::ops::verify::{CopyCount, VerifyResult};

use crate::harness::{
    self, Cleanup, data_bucket, endpoint, eventually, parse, s3, toastrep, unique_name,
};

pub(crate) const THREE: [&str; 3] = ["us-east-1", "eu-west-2", "ap-northeast-1"];
const FIVE: [&str; 5] = [
    "us-east-1",
    "eu-west-2",
    "ap-northeast-1",
    "us-west-2",
    "eu-central-1",
];
const MIB: usize = 1024 * 1024;
/// How long a condition may take on a busy emulator; a wait ends as soon as
/// it holds.
pub(crate) const WAIT: Duration = Duration::from_secs(300);

/// A deployed set, torn down (data included) when dropped, panics included.
pub(crate) struct Set {
    pub(crate) name: String,
    pub(crate) regions: Vec<&'static str>,
    _cleanup: Cleanup,
}

impl Set {
    pub(crate) fn deploy(prefix: &str, regions: &[&'static str], extra: &[&str]) -> Set {
        let name = unique_name(prefix);
        let set = Set {
            _cleanup: Cleanup::new(&name).regions(regions),
            name,
            regions: regions.to_vec(),
        };
        let zip = harness::lambda_zip();
        let regions_arg = regions.join(",");
        let mut args = vec![
            "deploy",
            "--name",
            &set.name,
            "--regions",
            &regions_arg,
            "--lambda-zip",
            zip.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        assert!(toastrep(&args).status.success(), "deploy {}", set.name);
        set
    }

    pub(crate) fn bucket(&self, region: &str) -> String {
        data_bucket(&self.name, region)
    }

    pub(crate) fn function(&self) -> String {
        format!("toastrep-{}-replicator", self.name)
    }

    pub(crate) async fn put(&self, region: &str, key: &str, body: &[u8]) -> String {
        s3(region)
            .put_object()
            .bucket(self.bucket(region))
            .key(key)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutObject {key:?} in {region}: {e:?}"))
            .e_tag()
            .unwrap()
            .to_owned()
    }

    /// The current body of `key` in `region`, `None` when absent.
    pub(crate) async fn body(&self, region: &str, key: &str) -> Option<Vec<u8>> {
        let object = s3(region)
            .get_object()
            .bucket(self.bucket(region))
            .key(key)
            .send()
            .await
            .ok()?;
        Some(object.body.collect().await.unwrap().into_bytes().to_vec())
    }

    /// Puts every key into `region`, each with its name as its body, then
    /// waits until every region holds them all.
    pub(crate) async fn put_keys_everywhere(&self, region: &str, keys: &[String]) {
        for key in keys {
            self.put(region, key, key.as_bytes()).await;
        }
        for key in keys {
            self.wait_everywhere(key, key.as_bytes()).await;
        }
    }

    /// Waits until every region's current `key` is `body`.
    pub(crate) async fn wait_everywhere(&self, key: &str, body: &[u8]) {
        for region in &self.regions {
            eventually(&format!("{key:?} in {region}"), WAIT, || async {
                (self.body(region, key).await.as_deref() == Some(body)).then_some(())
            })
            .await;
        }
    }

    /// Every object version (not delete markers) under `prefix` in `region`.
    pub(crate) async fn versions(&self, region: &str, prefix: &str) -> Vec<Version> {
        let client = s3(region);
        let mut versions = Vec::new();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let page = client
                .list_object_versions()
                .bucket(self.bucket(region))
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .expect("ListObjectVersions");
            versions.extend(page.versions().iter().map(|v| Version {
                key: v.key().unwrap().to_owned(),
                version_id: v.version_id().unwrap_or_default().to_owned(),
                etag: v.e_tag().unwrap_or_default().to_owned(),
                last_modified: v.last_modified().unwrap().secs(),
            }));
            if page.is_truncated() != Some(true) {
                return versions;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
    }

    /// Object versions under `prefix`, per region.
    pub(crate) async fn version_counts(&self, prefix: &str) -> BTreeMap<&'static str, usize> {
        let counts = join_all(self.regions.iter().map(|r| self.versions(r, prefix))).await;
        self.regions
            .iter()
            .copied()
            .zip(counts.iter().map(Vec::len))
            .collect()
    }

    /// Waits until the clock is in a later second than every version under
    /// `prefix` in every region: a write from then on is the later write.
    pub(crate) async fn wait_past_last_write(&self, prefix: &str) {
        let versions = join_all(self.regions.iter().map(|r| self.versions(r, prefix))).await;
        let last = versions
            .iter()
            .flatten()
            .map(|v| v.last_modified)
            .max()
            .unwrap_or_else(|| panic!("no version under {prefix:?}"));
        testkit::wait_past(last).await;
    }

    /// Invokes `region`'s function with `event`: (function error, payload).
    pub(crate) async fn invoke(&self, region: &str, event: &Value) -> (Option<String>, Value) {
        let out = harness::lambda(region)
            .invoke()
            .function_name(self.function())
            .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
            .send()
            .await
            .expect("Invoke");
        let payload = out
            .payload()
            .map(|p| serde_json::from_slice(p.as_ref()).unwrap_or(Value::Null))
            .unwrap_or(Value::Null);
        (out.function_error().map(str::to_owned), payload)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub(crate) key: String,
    pub(crate) version_id: String,
    pub(crate) etag: String,
    pub(crate) last_modified: i64,
}

/// One S3 record of `key`'s `version`, as S3 puts it into a notification.
pub(crate) fn s3_record(
    region: &str,
    bucket: &str,
    key: &str,
    version: &Version,
    size: usize,
) -> Value {
    S3Record::new(region, bucket, key)
        .version_id(&version.version_id)
        .etag(&version.etag)
        .size(size as u64)
        .json()
}

/// A Lambda SNS event carrying one S3 notification with `records`. The
/// function does not check which topic a delivery comes from (its
/// subscriptions decide that); `replay` does, and builds its own.
pub(crate) fn sns_event(records: Vec<Value>) -> Value {
    events::sns_event("arn:aws:sns:us-east-1:000000000000:t", records)
}

/// Waits until the version counts under `prefix` have not changed for a
/// few seconds: the copies have stopped. Callers assert the counts, so a
/// late or extra copy still fails them.
async fn assert_copying_stopped(set: &Set, prefix: &str) -> BTreeMap<&'static str, usize> {
    testkit::settled(
        &format!("the versions under {prefix:?}"),
        Duration::from_secs(3),
        WAIT,
        || set.version_counts(prefix),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn overwrite_reaches_every_region_and_older_content_never_returns() {
    let set = Set::deploy("rp-over", &THREE, &[]);
    let key = "docs/report.txt";
    set.put("us-east-1", key, b"version one").await;
    set.wait_everywhere(key, b"version one").await;
    let v1 = set.versions("us-east-1", key).await.remove(0);

    // Overwrite in another region, in a later second so it is the later write.
    set.wait_past_last_write(key).await;
    set.put("eu-west-2", key, b"version two").await;
    set.wait_everywhere(key, b"version two").await;
    // And once more from the first region: a region's own overwrite of a replica.
    set.wait_past_last_write(key).await;
    set.put("us-east-1", key, b"version three").await;
    set.wait_everywhere(key, b"version three").await;
    let before = assert_copying_stopped(&set, key).await;
    assert_eq!(before.values().sum::<usize>(), 9, "3 writes, 2 copies each");

    // The first write's event delivered again, to every region's function:
    // its version is no longer current at the source, so nothing is copied.
    let old = sns_event(vec![s3_record(
        "us-east-1",
        &set.bucket("us-east-1"),
        key,
        &v1,
        11,
    )]);
    for region in THREE {
        let (error, payload) = set.invoke(region, &old).await;
        assert_eq!(error, None, "{payload}");
        assert_eq!(payload["copied"], 0, "{region}: {payload}");
        assert_eq!(payload["records"], 1, "{region}: {payload}");
    }
    for region in THREE {
        assert_eq!(
            set.body(region, key).await.as_deref(),
            Some(&b"version three"[..])
        );
    }
    assert_eq!(set.version_counts(key).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_converge_on_the_documented_winner_and_stop_copying() {
    let set = Set::deploy("rp-conc", &THREE, &[]);
    let keys: Vec<String> = (0..20).map(|i| format!("race/{i:02}")).collect();
    // The same 20 keys, different content in each region, all at once.
    let set = &set;
    let writes = keys.iter().flat_map(|key| {
        THREE.iter().map(move |region| {
            let body = format!("{key} written in {region}");
            async move {
                let etag = set.put(region, key, body.as_bytes()).await;
                ((*region, key.clone()), (etag, body))
            }
        })
    });
    let written: HashMap<(&str, String), (String, String)> =
        join_all(writes).await.into_iter().collect();

    // Every region agrees on every key.
    for key in &keys {
        let start = std::time::Instant::now();
        loop {
            let bodies = join_all(THREE.iter().map(|r| set.body(r, key))).await;
            if bodies.iter().all(|b| b.is_some() && *b == bodies[0]) {
                break;
            }
            if start.elapsed() > WAIT {
                panic!(
                    "{key} did not converge: {:?}\nhistory:\n{}",
                    bodies
                        .iter()
                        .map(|b| b.as_deref().map(String::from_utf8_lossy))
                        .collect::<Vec<_>>(),
                    history_of(set, key).await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let counts = assert_copying_stopped(set, "race/").await;

    // The winner, by the documented rule: the later origin time (the
    // original's Last-Modified, whole seconds); on a tie the region whose
    // name sorts first. The originals stay as (possibly noncurrent) versions.
    let mut history: HashMap<&str, Vec<Version>> = HashMap::new();
    for region in THREE {
        history.insert(region, set.versions(region, "race/").await);
    }
    for key in &keys {
        let winner = THREE
            .iter()
            .map(|region| {
                let (etag, _) = &written[&(*region, key.clone())];
                let original = history[region]
                    .iter()
                    .filter(|v| &v.key == key && &v.etag == etag)
                    .min_by_key(|v| v.last_modified)
                    .unwrap_or_else(|| panic!("the original of {key} in {region} is kept"));
                (original.last_modified, std::cmp::Reverse(*region))
            })
            .max()
            .unwrap()
            .1
            .0;
        let expected = &written[&(winner, key.clone())].1;
        for region in THREE {
            assert_eq!(
                set.body(region, key).await.as_deref(),
                Some(expected.as_bytes()),
                "{key} in {region}: the winner is {winner}"
            );
        }
    }
    assert!(
        counts.values().all(|&n| n >= keys.len()),
        "losing writes are kept as versions: {counts:?}"
    );
}

/// Every version of `key` in every region, newest first, with its markers:
/// what a convergence failure needs to be understood.
async fn history_of(set: &Set, key: &str) -> String {
    let mut text = String::new();
    for region in &set.regions {
        for version in set.versions(region, key).await {
            let head = s3(region)
                .head_object()
                .bucket(set.bucket(region))
                .key(key)
                .version_id(&version.version_id)
                .send()
                .await
                .ok();
            let markers = head
                .as_ref()
                .and_then(|h| h.metadata())
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| k.starts_with("toastrep-"))
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            text.push_str(&format!(
                "{region} {} lm={} etag={} {markers}\n",
                version.version_id, version.last_modified, version.etag
            ));
        }
    }
    text
}

/// Uploads `count` unique keys spread over the set's regions, waits for
/// every replica, and returns the number of copies made.
async fn upload_and_count_copies(set: &Set, prefix: &str, count: usize) -> usize {
    let uploads = (0..count).map(|i| {
        let region = set.regions[i % set.regions.len()];
        let key = format!("{prefix}{i:03}");
        async move {
            let body = format!("upload {i} into {region}");
            set.put(region, &key, body.as_bytes()).await;
            (key, body)
        }
    });
    for (key, body) in join_all(uploads).await {
        set.wait_everywhere(&key, body.as_bytes()).await;
    }
    let counts = assert_copying_stopped(set, prefix).await;
    counts.values().sum::<usize>() - count
}

fn verify_copies(set: &Set, objects: usize) -> CopyCount {
    let objects = objects.to_string();
    let out = toastrep(&[
        "verify",
        "--name",
        &set.name,
        "--regions",
        &set.regions.join(","),
        "--objects",
        &objects,
        "--probe-size",
        "1024",
        "--timeout",
        "60",
        "--output",
        "json",
    ]);
    let result = parse::<VerifyResult>(&out);
    assert_eq!(out.status.code(), Some(0), "{result}");
    result.into_inner().copies
}

#[tokio::test(flavor = "multi_thread")]
async fn three_regions_thirty_uploads_make_exactly_sixty_copies() {
    let set = Set::deploy("rp-cnt3", &THREE, &[]);
    assert_eq!(upload_and_count_copies(&set, "count/", 30).await, 60);
    let copies = verify_copies(&set, 12);
    assert_eq!(copies.copies, Some(24), "{copies:?}");
    assert_eq!(copies.per_upload, Some(2.0), "{copies:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn five_regions_twenty_uploads_make_exactly_eighty_copies() {
    let set = Set::deploy("rp-cnt5", &FIVE, &[]);
    assert_eq!(upload_and_count_copies(&set, "count/", 20).await, 80);
    let copies = verify_copies(&set, 10);
    assert_eq!(copies.copies, Some(40), "{copies:?}");
    assert_eq!(copies.per_upload, Some(4.0), "{copies:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_fails_when_a_region_gets_a_redundant_copy() {
    let set = Set::deploy("rp-dup", &THREE, &[]);
    // Stands in for a replicator that copies twice: as soon as a probe
    // replica from another region lands in us-east-1, write it once more
    // (same bytes and markers, so convergence still holds).
    let bucket = set.bucket("us-east-1");
    let meddler = tokio::spawn(async move {
        let client = s3("us-east-1");
        // Looks often: the copy must land before verify counts the copies.
        let key = testkit::wait::eventually_every(
            "a probe replica from another region in us-east-1",
            WAIT,
            Duration::from_millis(20),
            || async {
                let listed = client
                    .list_objects_v2()
                    .bucket(&bucket)
                    .prefix(".toastrep/verify/")
                    .send()
                    .await;
                listed.ok().and_then(|l| {
                    l.contents()
                        .iter()
                        .filter_map(|o| o.key())
                        .find(|k| !k.contains("/us-east-1/"))
                        .map(str::to_owned)
                })
            },
        )
        .await;
        let head = client.head_object().bucket(&bucket).key(&key).send().await;
        let metadata = head.unwrap().metadata().cloned().unwrap_or_default();
        client
            .copy_object()
            .bucket(&bucket)
            .key(&key)
            .copy_source(format!("{bucket}/{key}"))
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .set_metadata(Some(metadata))
            .send()
            .await
            .expect("the redundant copy");
    });
    let out = toastrep(&[
        "verify",
        "--name",
        &set.name,
        "--regions",
        &THREE.join(","),
        "--objects",
        "6",
        "--timeout",
        "30",
        "--output",
        "json",
    ]);
    meddler.await.unwrap();
    let result = parse::<VerifyResult>(&out);
    assert_eq!(out.status.code(), Some(1), "{result}");
    assert!(result.failed.is_empty(), "{result}");
    assert_eq!(result.copies.copies, Some(13), "{result}");
    assert!(!result.copies.exact, "{result}");
    let text = toastrep(&["verify", "--name", &set.name, "--regions", &THREE.join(",")]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("Copies per upload: 2.00"),
        "a healthy run prints the figure"
    );
}

/// Everything a replica must keep, as HeadObject and GetObjectTagging show it.
#[derive(Debug, PartialEq)]
pub(crate) struct Fields {
    content_type: Option<String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    expires: Option<String>,
    /// User metadata without toastrep's origin markers.
    metadata: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
    length: Option<i64>,
}

pub(crate) async fn fields(set: &Set, region: &str, key: &str) -> Fields {
    let client = s3(region);
    let head = client
        .head_object()
        .bucket(set.bucket(region))
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("HeadObject {key:?} in {region}: {e:?}"));
    let tags = client
        .get_object_tagging()
        .bucket(set.bucket(region))
        .key(key)
        .send()
        .await
        .expect("GetObjectTagging");
    Fields {
        content_type: head.content_type().map(str::to_owned),
        cache_control: head.cache_control().map(str::to_owned),
        content_disposition: head.content_disposition().map(str::to_owned),
        content_encoding: head.content_encoding().map(str::to_owned),
        content_language: head.content_language().map(str::to_owned),
        expires: head.expires_string().map(str::to_owned),
        metadata: head
            .metadata()
            .into_iter()
            .flatten()
            .filter(|(k, _)| !k.starts_with("toastrep-"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        tags: tags
            .tag_set()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect(),
        length: head.content_length(),
    }
}

pub(crate) async fn put_decorated(set: &Set, region: &str, key: &str, body: Vec<u8>) {
    decorate(
        s3(region)
            .put_object()
            .bucket(set.bucket(region))
            .key(key)
            .body(ByteStream::from(body)),
    )
    .send()
    .await
    .expect("PutObject with every field");
}

async fn assert_same_fields_everywhere(set: &Set, origin: &str, key: &str) {
    let original = fields(set, origin, key).await;
    assert_eq!(original.expires.as_deref(), Some(upload::EXPIRES_HTTP));
    let tags = upload::TAGS.map(|(k, v)| (k.to_owned(), v.to_owned()));
    assert_eq!(original.tags, BTreeMap::from(tags), "{original:?}");
    for region in &set.regions {
        assert_eq!(
            fields(set, region, key).await,
            original,
            "{key:?} in {region}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_keep_every_header_user_metadata_and_tags() {
    let set = Set::deploy("rp-fid", &THREE, &[]);
    for region in THREE {
        let key = format!("fidelity/from-{region}.csv");
        let body = format!("id,total\n1,{region}\n").into_bytes();
        put_decorated(&set, region, &key, body.clone()).await;
        set.wait_everywhere(&key, &body).await;
        assert_same_fields_everywhere(&set, region, &key).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn large_object_is_copied_in_parts_byte_identical_with_no_upload_left() {
    // 50 MiB with a 16 MiB part size: 4 parts, through the deployed function.
    let set = Set::deploy(
        "rp-big",
        &THREE,
        &[
            "--multipart-threshold",
            "8388608",
            "--part-size",
            "16777216",
        ],
    );
    let key = "big/video.bin";
    let body: Vec<u8> = (0..50 * MIB).map(|i| (i * 31 % 251) as u8).collect();
    put_decorated(&set, "eu-west-2", key, body.clone()).await;
    let digest = Sha256::digest(&body);
    let original_etag = set.versions("eu-west-2", key).await.remove(0).etag;
    for region in ["us-east-1", "ap-northeast-1"] {
        // Polled with HeadObject: 50 MiB GETs in a loop would only load the emulator.
        eventually(&format!("the big object in {region}"), WAIT, || async {
            let head = s3(region)
                .head_object()
                .bucket(set.bucket(region))
                .key(key)
                .send()
                .await
                .ok()?;
            // The replica's marker names the original's ETag.
            let marker = head.metadata()?.get("toastrep-origin")?;
            let named = format!(";etag={};", original_etag.trim_matches('"'));
            marker.contains(&named).then_some(())
        })
        .await;
        let got = set.body(region, key).await.unwrap();
        assert_eq!(Sha256::digest(&got), digest, "bytes in {region}");
    }
    // A multipart copy's ETag names its part count.
    for region in ["us-east-1", "ap-northeast-1"] {
        let etag = set.versions(region, key).await.remove(0).etag;
        assert!(etag.trim_matches('"').ends_with("-4"), "{region}: {etag}");
    }
    assert_same_fields_everywhere(&set, "eu-west-2", key).await;

    // Overwrite the source while copies may still be running: a copy of the
    // old version fails its if-match and must abort its upload. Whether the
    // race is hit is up to timing; the library's emulator tests fail a part
    // deterministically (multipart_copy_with_a_bad_part_aborts_its_upload).
    let newer: Vec<u8> = body.iter().rev().copied().collect();
    put_decorated(&set, "eu-west-2", key, newer).await;
    set.put("eu-west-2", key, b"small and last").await;
    set.wait_everywhere(key, b"small and last").await;
    assert_copying_stopped(&set, key).await;
    for region in THREE {
        let uploads = s3(region)
            .list_multipart_uploads()
            .bucket(set.bucket(region))
            .send()
            .await
            .expect("ListMultipartUploads");
        assert!(
            uploads.uploads().is_empty(),
            "incomplete uploads in {region}: {:?}",
            uploads.uploads()
        );
    }

    // sync copies as the set's functions do, with the deployed part size:
    // a 20 MiB object it repairs lands in two 16 MiB-or-less parts.
    let synced = "big/synced.bin";
    let body: Vec<u8> = (0..20 * MIB).map(|i| (i * 7 % 253) as u8).collect();
    set.put("ap-northeast-1", synced, &body).await;
    for region in ["us-east-1", "eu-west-2"] {
        eventually(&format!("the object in {region}"), WAIT, || async {
            (!set.versions(region, synced).await.is_empty()).then_some(())
        })
        .await;
    }
    toastrep::aws::buckets::purge_prefix(&s3("us-east-1"), &set.bucket("us-east-1"), synced)
        .await
        .unwrap();
    let out = toastrep(&[
        "sync", "--name", &set.name, "--prefix", synced, "--output", "json",
    ]);
    let repaired = parse::<SyncReport>(&out);
    assert_eq!(out.status.code(), Some(0), "{repaired}");
    assert_eq!(repaired.copies_made, 1, "{repaired}");
    let etag = set.versions("us-east-1", synced).await.remove(0).etag;
    assert!(
        etag.trim_matches('"').ends_with("-2"),
        "sync's copy: {etag}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_key_form_round_trips_through_the_set() {
    let set = Set::deploy("rp-keys", &THREE, &[]);
    let keys = awkward_keys();
    for (i, key) in keys.iter().enumerate() {
        let region = THREE[i % 3];
        let body = format!("key {i} from {region}");
        set.put(region, key, body.as_bytes()).await;
        set.wait_everywhere(key, body.as_bytes()).await;
    }
    let counts = assert_copying_stopped(&set, "").await;
    assert_eq!(counts.values().sum::<usize>(), keys.len() * 3, "{counts:?}");
}

/// A browser-style form upload (S3 PostObject), sent as raw HTTP. It is
/// unsigned: ministack accepts an unsigned form, AWS would want a signed
/// policy (the SDK has no presigned-POST builder). The event is the point.
fn post_object(bucket: &str, key: &str, body: &[u8]) {
    let url = endpoint();
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    let boundary = "toastrep-boundary-7d1f";
    let mut form = Vec::new();
    write!(
        form,
        "--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n{key}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"Content-Type\"\r\n\r\ntext/plain\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.txt\"\r\n\
         Content-Type: text/plain\r\n\r\n"
    )
    .unwrap();
    form.extend_from_slice(body);
    write!(form, "\r\n--{boundary}--\r\n").unwrap();
    let mut stream = std::net::TcpStream::connect(authority).expect("connect to the emulator");
    write!(
        stream,
        "POST /{bucket} HTTP/1.1\r\nHost: {authority}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        form.len()
    )
    .unwrap();
    stream.write_all(&form).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 20"),
        "PostObject: {response}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_shape_is_handled_as_a_real_delivery() {
    let set = Set::deploy("rp-evt", &THREE, &[]);
    let (a, a_bucket) = ("us-east-1", set.bucket("us-east-1"));

    // ObjectCreated:Put.
    set.put(a, "shapes/put.txt", b"put").await;
    set.wait_everywhere("shapes/put.txt", b"put").await;

    // ObjectCreated:Post.
    let bucket = a_bucket.clone();
    tokio::task::spawn_blocking(move || post_object(&bucket, "shapes/post.txt", b"posted"))
        .await
        .unwrap();
    set.wait_everywhere("shapes/post.txt", b"posted").await;

    // ObjectCreated:Copy (a user's copy inside one bucket).
    s3(a)
        .copy_object()
        .bucket(&a_bucket)
        .key("shapes/copied.txt")
        .copy_source(format!("{a_bucket}/shapes/put.txt"))
        .send()
        .await
        .expect("CopyObject");
    set.wait_everywhere("shapes/copied.txt", b"put").await;

    // ObjectCreated:CompleteMultipartUpload (a user's multipart upload).
    let client = s3(a);
    let upload = client
        .create_multipart_upload()
        .bucket(&a_bucket)
        .key("shapes/multipart.bin")
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let chunks = [vec![b'x'; 5 * MIB], b"tail".to_vec()];
    let mut parts = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let part = client
            .upload_part()
            .bucket(&a_bucket)
            .key("shapes/multipart.bin")
            .upload_id(id)
            .part_number(i as i32 + 1)
            .body(ByteStream::from(chunk.clone()))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(i as i32 + 1)
                .e_tag(part.e_tag().unwrap())
                .build(),
        );
    }
    client
        .complete_multipart_upload()
        .bucket(&a_bucket)
        .key("shapes/multipart.bin")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("CompleteMultipartUpload");
    set.wait_everywhere("shapes/multipart.bin", &chunks.concat())
        .await;
    let counts = assert_copying_stopped(&set, "shapes/").await;
    assert_eq!(counts.values().sum::<usize>(), 4 * 3, "{counts:?}");

    // s3:TestEvent, for real: S3 sends one when a notification configuration
    // is saved. Re-saving ours changes nothing and must copy nothing...
    let config = client
        .get_bucket_notification_configuration()
        .bucket(&a_bucket)
        .send()
        .await
        .unwrap();
    client
        .put_bucket_notification_configuration()
        .bucket(&a_bucket)
        .notification_configuration(
            aws_sdk_s3::types::NotificationConfiguration::builder()
                .set_topic_configurations(Some(config.topic_configurations().to_vec()))
                .build(),
        )
        .send()
        .await
        .expect("PutBucketNotificationConfiguration");
    // ...and the function answers it as a no-op, not an error.
    let (error, payload) = set
        .invoke("eu-west-2", &fixture("sns-test-event.json"))
        .await;
    assert_eq!(error, None, "{payload}");
    assert_eq!(payload["records"], 0, "{payload}");
    set.put(a, "shapes/after-test-event.txt", b"still replicating")
        .await;
    set.wait_everywhere("shapes/after-test-event.txt", b"still replicating")
        .await;
    assert_eq!(
        assert_copying_stopped(&set, "shapes/")
            .await
            .values()
            .sum::<usize>(),
        5 * 3
    );

    // Several records in one delivery: remove three replicas from one region
    // (by version id: a delete marker would delete the writes, and they
    // would rightly not be copied back), then deliver all three objects'
    // events at once to its function.
    let b = "ap-northeast-1";
    let names = ["shapes/put.txt", "shapes/post.txt", "shapes/copied.txt"];
    let mut records = Vec::new();
    for key in names {
        for replica in set.versions(b, key).await {
            s3(b)
                .delete_object()
                .bucket(set.bucket(b))
                .key(key)
                .version_id(replica.version_id)
                .send()
                .await
                .unwrap();
        }
        let current = set.versions(a, key).await.remove(0);
        let size = set.body(a, key).await.unwrap().len();
        records.push(s3_record(a, &a_bucket, key, &current, size));
    }
    let (error, payload) = set.invoke(b, &sns_event(records)).await;
    assert_eq!(error, None, "{payload}");
    assert_eq!(
        (payload["records"].clone(), payload["copied"].clone()),
        (json!(3), json!(3)),
        "{payload}"
    );
    for key in names {
        assert_eq!(set.body(b, key).await, set.body(a, key).await, "{key}");
    }

    // A message that is not an S3 notification fails, marked permanent.
    let (error, payload) = set.invoke(b, &fixture("sns-not-s3.json")).await;
    assert!(error.is_some(), "{payload}");
    assert_eq!(payload["errorType"], "MalformedEvent", "{payload}");
}

/// What a bucket writer puts in metadata can neither stop an object from
/// replicating nor make it win: a user's server-side copy of a replica to a
/// new key (as `aws s3 cp` makes it, metadata kept) is a new write, and an
/// upload claiming another region and a far-future time replicates as what
/// it is and loses to a later write.
#[tokio::test(flavor = "multi_thread")]
async fn markers_a_writer_copies_or_forges_neither_stop_nor_hijack_replication() {
    let set = Set::deploy("markers", &THREE[..2], &[]);
    let (a, b) = (THREE[0], THREE[1]);

    // A replica in b, copied by a user to a new key, keeping its metadata.
    set.put(a, "orig", b"original").await;
    set.wait_everywhere("orig", b"original").await;
    let source = format!("{}/orig", set.bucket(b));
    s3(b)
        .copy_object()
        .bucket(set.bucket(b))
        .key("renamed")
        .copy_source(&source)
        .send()
        .await
        .expect("a user's CopyObject of a replica");
    set.wait_everywhere("renamed", b"original").await;

    // An upload whose marker claims region a and the year 2100.
    let forged = format!(
        "v1;region={a};time=4102444800;version=x;etag=y;written={};mac={}",
        testkit::wait::now_secs(),
        "0".repeat(32)
    );
    s3(b)
        .put_object()
        .bucket(set.bucket(b))
        .key("forged")
        .body(ByteStream::from_static(b"forged"))
        .metadata("toastrep-origin", &forged)
        .send()
        .await
        .expect("PutObject with a forged marker");
    set.wait_everywhere("forged", b"forged").await;
    // It won nothing by its claim: a later write replaces it everywhere.
    // Later means a later second: in the same one, the tie would go to b
    // (its name sorts first), whatever the marker says.
    set.wait_past_last_write("forged").await;
    set.put(a, "forged", b"later").await;
    set.wait_everywhere("forged", b"later").await;
    // The copy of the renamed object names where it was really written.
    let head = s3(a)
        .get_object()
        .bucket(set.bucket(a))
        .key("renamed")
        .send()
        .await
        .unwrap();
    let marker = head
        .metadata()
        .and_then(|m| m.get("toastrep-origin"))
        .cloned()
        .unwrap_or_default();
    assert!(
        marker.contains(&format!(";region={b};")),
        "the copy names its real origin: {marker}"
    );

    // A fresh replica's marker put on other bytes of the same size, in the
    // replica's own region and key, at once: it is not the copy it names,
    // so it is a new write there, and replicates.
    set.put(a, "rebadged", b"genuine!").await;
    set.wait_everywhere("rebadged", b"genuine!").await;
    let replica = s3(b)
        .head_object()
        .bucket(set.bucket(b))
        .key("rebadged")
        .send()
        .await
        .expect("HeadObject of the replica");
    let marker = replica
        .metadata()
        .and_then(|m| m.get("toastrep-origin"))
        .cloned()
        .expect("a replica carries a marker");
    s3(b)
        .put_object()
        .bucket(set.bucket(b))
        .key("rebadged")
        .body(ByteStream::from_static(b"imposter"))
        .metadata("toastrep-origin", &marker)
        .send()
        .await
        .expect("PutObject with a replica's marker");
    set.wait_everywhere("rebadged", b"imposter").await;
}
