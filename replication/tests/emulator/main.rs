//! Replication against the local emulator (ministack). Needs
//! `TOASTREP_TEST_ENDPOINT`; `tools/test` sets it. Each test makes its own
//! uniquely named set (and so buckets), so tests run in parallel.

mod harness;

use std::cmp::Ordering;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::time::Duration;

use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use aws_sdk_s3::types::MetadataDirective;
use harness::{
    Before, MeddlingStore, REGION_A, REGION_B, TestBucket, TestSet, marker_key, pattern, sdk_store,
};
use testkit::events::{self, S3Record};
use testkit::keys::awkward_keys;
use testkit::upload::{self, decorate};
use toastrep_replication::function::handler::{HandleError, handle_sns_event};
use toastrep_replication::protocol::marker::{Copied, MARKER, metadata_for_copy};
use toastrep_replication::protocol::{Histories, Kind, Precondition, compare};
use toastrep_replication::store::{CopyRequest, Written};
use toastrep_replication::{
    CopySettings, Decision, MarkerKeys, ObjectStore, ReplicateError, S3Notice,
};

const MIB: usize = 1024 * 1024;

/// Multipart above 5 MiB, in 5 MiB parts: the emulator does not enforce
/// S3's limits, so small objects take the multipart path.
fn small_parts(concurrency: usize) -> CopySettings {
    CopySettings {
        multipart_threshold: 5 * MIB as u64,
        part_size: 5 * MIB as u64,
        concurrency,
    }
}

/// Puts an object with every kept header the emulator keeps, user metadata
/// and tags.
async fn put_decorated(bucket: &TestBucket, key: &str, body: &[u8]) -> S3Notice {
    bucket.put_with(key, body, decorate).await
}

/// Asserts that `key` in `replica` is a faithful copy of the current `key`
/// in `original`, marked as toastrep's copy of that very write.
async fn assert_faithful_copy(original: &TestBucket, replica: &TestBucket, key: &str) {
    let source = original.seen(key, None).await;
    let copy = replica.seen(key, None).await;
    let (mut copy_headers, mut source_headers) =
        (copy.head.headers.clone(), source.head.headers.clone());
    if copy.head.etag.contains('-') {
        // A multipart copy. ministack 1.5.33's UploadPartCopy stores no part
        // checksums, so its CompleteMultipartUpload leaves the object without
        // the composite checksum AWS gives it: compare everything else.
        copy_headers.checksum_algorithm = None;
        source_headers.checksum_algorithm = None;
    }
    assert_eq!(copy_headers, source_headers, "kept headers");
    assert_eq!(copy.head.size, source.head.size);

    assert_eq!(copy.kind, Kind::Replica, "a verified marker");
    assert_eq!(
        copy.write, source.write,
        "the marker names the source's write"
    );
    let mut metadata = copy.head.metadata.clone();
    assert!(
        metadata.remove(MARKER).is_some(),
        "one marker entry: {metadata:?}"
    );
    assert_eq!(metadata, source.head.metadata, "user metadata, unchanged");

    assert_eq!(replica.tags(key).await, original.tags(key).await, "tags");
    assert_eq!(replica.body(key).await, original.body(key).await, "body");
}

/// A toastrep copy of `source`'s current `key` into `destination`, as a
/// replicator that decided earlier would write it now: sealed marker,
/// kept headers and metadata, conditional on the destination's current
/// object (which holds, so the copy lands on AWS as on the emulator).
async fn late_copy(source: &TestBucket, destination: &TestBucket, key: &str) -> Written {
    let store = sdk_store();
    let seen = source.seen(key, None).await;
    let current = store
        .head(&destination.bucket(), key, None)
        .await
        .unwrap()
        .found();
    let copied = Copied {
        size: seen.head.size,
        md5: seen.head.etag_is_md5.then(|| seen.head.etag.clone()),
        parts: None,
        source_etag: (!seen.head.etag_is_md5).then(|| seen.head.etag.clone()),
    };
    let marker = MarkerKeys::from(marker_key()).seal(
        key,
        &destination.region,
        &seen.write,
        store.now(),
        "test",
        &copied,
    );
    let request = CopyRequest {
        source: source.bucket(),
        key: key.to_owned(),
        source_version: seen.head.version_id.clone(),
        source_etag: seen.head.etag.clone(),
        destination: destination.bucket(),
        headers: seen.head.headers.clone(),
        metadata: metadata_for_copy(&seen.head.metadata, marker),
        precondition: match current {
            Some(head) => Precondition::IfMatch(head.etag),
            None => Precondition::IfNoneMatch,
        },
    };
    store.copy_object(&request).await.expect("CopyObject")
}

fn parse_http_date(text: &str) -> DateTime {
    DateTime::from_str(text, DateTimeFormat::HttpDate)
        .unwrap_or_else(|e| panic!("Expires {text:?} is not an HTTP date: {e}"))
}

#[tokio::test]
async fn copy_keeps_headers_metadata_and_tags() {
    let set = TestSet::create().await;
    let (a, b) = (&set.a, &set.b);
    let notice = put_decorated(a, "reports/2024/q1.csv", b"id,total\n1,2\n").await;

    let outcome = set
        .replicator(CopySettings::default())
        .replicate(&notice, &b.bucket())
        .await
        .unwrap();

    assert_eq!(outcome.decision, Decision::Copied);
    assert_eq!(outcome.bytes, 13);
    assert_eq!(outcome.restores, 0);
    assert_faithful_copy(a, b, "reports/2024/q1.csv").await;
    // Spelled out, so an emulator that dropped a header on both sides fails too.
    let copy = b.head("reports/2024/q1.csv", None).await;
    let h = &copy.headers;
    assert_eq!(h.content_type.as_deref(), Some("text/csv; charset=utf-8"));
    assert_eq!(h.cache_control.as_deref(), Some("max-age=60, public"));
    assert_eq!(
        h.content_disposition.as_deref(),
        Some("attachment; filename=\"q1.csv\"")
    );
    assert_eq!(h.content_encoding.as_deref(), Some("identity"));
    assert_eq!(h.content_language.as_deref(), Some("fr-CA"));
    assert_eq!(
        h.expires.as_deref().map(parse_http_date),
        Some(DateTime::from_secs(upload::EXPIRES))
    );
    assert_eq!(
        h.website_redirect_location.as_deref(),
        Some("/reports/latest.csv")
    );
    assert_eq!(h.storage_class.as_deref(), Some("STANDARD_IA"));
    assert_eq!(copy.metadata["colour"], "blue");
    assert_eq!(copy.metadata["owner-team"], "data platform");
    assert_eq!(
        b.seen("reports/2024/q1.csv", None).await.write.region,
        REGION_A
    );
    assert_eq!(
        b.tags("reports/2024/q1.csv").await,
        upload::TAGS.map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    set.delete().await;
}

#[tokio::test]
async fn replica_of_a_replica_is_skipped_copy() {
    let set = TestSet::create().await;
    let (a, b) = (&set.a, &set.b);
    let replicator = set.replicator(CopySettings::default());
    let notice = a.put("loop/me.txt", b"once").await;
    assert_eq!(
        replicator
            .replicate(&notice, &b.bucket())
            .await
            .unwrap()
            .decision,
        Decision::Copied
    );

    // The copy in B fires its own event; B's topic feeds A's replicator.
    let echo = b.notice_for_current("loop/me.txt").await;
    let outcome = replicator.replicate(&echo, &a.bucket()).await.unwrap();
    assert_eq!(outcome.decision, Decision::SkippedCopy);
    assert_eq!(
        a.version_count("loop/me.txt").await,
        1,
        "nothing written back to the origin"
    );

    // B's own function checks the copy that landed in its region, and
    // leaves it: it is the winner there.
    let outcome = replicator.replicate(&echo, &b.bucket()).await.unwrap();
    assert_eq!(
        (outcome.decision, outcome.restores),
        (Decision::SkippedCopy, 0)
    );
    assert_eq!(b.version_count("loop/me.txt").await, 1);
    set.delete().await;
}

#[tokio::test]
async fn same_notice_again_is_up_to_date() {
    let set = TestSet::create().await;
    let (a, b) = (&set.a, &set.b);
    let replicator = set.replicator(CopySettings::default());
    let notice = a.put("again.txt", b"idempotent").await;

    let first = replicator.replicate(&notice, &b.bucket()).await.unwrap();
    let second = replicator.replicate(&notice, &b.bucket()).await.unwrap();

    assert_eq!(
        (first.decision, second.decision),
        (Decision::Copied, Decision::SkippedUpToDate)
    );
    assert_eq!(second.bytes, 0);
    assert_eq!(
        b.version_count("again.txt").await,
        1,
        "a retry writes nothing"
    );
    set.delete().await;
}

#[tokio::test]
async fn overwrite_propagates_and_an_older_notice_never_restores_older_content() {
    let set = TestSet::create().await;
    let (a, b) = (&set.a, &set.b);
    let replicator = set.replicator(CopySettings::default());
    let old = a.put("doc.txt", b"version one").await;
    assert_eq!(
        replicator
            .replicate(&old, &b.bucket())
            .await
            .unwrap()
            .decision,
        Decision::Copied
    );

    let new = a.put("doc.txt", b"version two").await;
    // The old event arriving late (or retried) after the overwrite.
    assert_eq!(
        replicator
            .replicate(&old, &b.bucket())
            .await
            .unwrap()
            .decision,
        Decision::SkippedGone
    );
    assert_eq!(b.body("doc.txt").await.unwrap(), b"version one");

    assert_eq!(
        replicator
            .replicate(&new, &b.bucket())
            .await
            .unwrap()
            .decision,
        Decision::Copied
    );
    assert_eq!(b.body("doc.txt").await.unwrap(), b"version two");

    let late = replicator.replicate(&old, &b.bucket()).await.unwrap();
    assert_eq!(
        (late.decision, late.restores),
        (Decision::SkippedGone, 0),
        "the old write's check must not put it back"
    );
    assert_eq!(b.body("doc.txt").await.unwrap(), b"version two");
    assert_faithful_copy(a, b, "doc.txt").await;
    set.delete().await;
}

#[tokio::test]
async fn deleted_source_is_skipped_gone() {
    let set = TestSet::create().await;
    let (a, b) = (&set.a, &set.b);
    let notice = a.put("ephemeral.txt", b"here and gone").await;
    a.client
        .delete_object()
        .bucket(&a.name)
        .key("ephemeral.txt")
        .send()
        .await
        .unwrap();

    let outcome = set
        .replicator(CopySettings::default())
        .replicate(&notice, &b.bucket())
        .await
        .unwrap();

    assert_eq!(outcome.decision, Decision::SkippedGone);
    assert_eq!(b.body("ephemeral.txt").await, None);
    set.delete().await;
}

#[tokio::test]
async fn concurrent_writes_in_two_regions_converge_on_one_winner() {
    let set = TestSet::create().await;
    let (a, b) = (&set.a, &set.b);
    let replicator = set.replicator(CopySettings::default());
    let key = "contested.txt";
    let in_a = a.put(key, b"written in A").await;
    let in_b = b.put(key, b"written in B").await;
    // Each write as the protocol sees it, before any copy lands.
    let write_a = a.seen(key, in_a.version_id.as_deref()).await.write;
    let write_b = b.seen(key, in_b.version_id.as_deref()).await.write;

    let to_b = replicator.replicate(&in_a, &b.bucket()).await.unwrap();
    let to_a = replicator.replicate(&in_b, &a.bucket()).await.unwrap();

    // Whichever write the rule prefers must now be in both buckets. A copy
    // of A's write that landed in B first makes B's notice find a replica.
    let (winner, decisions): (&[u8], _) =
        match compare(&write_a, &write_b, &Histories::default()).unwrap() {
            Ordering::Greater => (b"written in A", (Decision::Copied, Decision::SkippedCopy)),
            Ordering::Less => (
                b"written in B",
                (Decision::SkippedUpToDate, Decision::Copied),
            ),
            Ordering::Equal => unreachable!("different regions never tie completely"),
        };
    assert_eq!((to_b.decision, to_a.decision), decisions);
    assert_eq!(a.body(key).await.unwrap(), winner);
    assert_eq!(b.body(key).await.unwrap(), winner);
    set.delete().await;
}

#[tokio::test]
async fn multipart_copy_is_byte_identical_and_keeps_tags_and_metadata() {
    let set = TestSet::create().await;
    let (a, b) = (&set.a, &set.b);
    let body = pattern(12 * MIB, 7);
    let notice = put_decorated(a, "video/big.bin", &body).await;

    let outcome = set
        .replicator(small_parts(3))
        .replicate(&notice, &b.bucket())
        .await
        .unwrap();

    assert_eq!(outcome.decision, Decision::Copied);
    assert_eq!(outcome.bytes, (12 * MIB) as u64);
    let copy = b
        .client
        .head_object()
        .bucket(&b.name)
        .key("video/big.bin")
        .send()
        .await
        .unwrap();
    assert!(
        copy.e_tag().unwrap().ends_with("-3\""),
        "three parts, got ETag {:?}",
        copy.e_tag()
    );
    assert_faithful_copy(a, b, "video/big.bin").await;
    assert_eq!(b.multipart_uploads().await, 0);
    set.delete().await;
}

/// The source version is deleted between two parts of its copy: the part
/// copy fails, the upload is aborted, and the notice is a skip, since the
/// write it names is gone.
#[tokio::test]
async fn multipart_copy_of_a_source_deleted_mid_copy_aborts_its_upload() {
    let set = TestSet::create().await;
    let (a, b) = (&set.a, &set.b);
    let key = "vanishing.bin";
    let notice = a.put(key, &pattern(12 * MIB, 1)).await;
    let (client, name, version) = (a.client.clone(), a.name.clone(), notice.version_id.clone());
    let store = MeddlingStore::new().before(Before::CopyPart(2), move || {
        let (client, name, version) = (client.clone(), name.clone(), version.clone());
        async move {
            client
                .delete_object()
                .bucket(name)
                .key(key)
                .set_version_id(version)
                .send()
                .await
                .expect("DeleteObject of the version being copied");
        }
    });
    // One part at a time, so part 2 starts after the deletion.
    let replicator = set.replicator_on(store, small_parts(1));

    let outcome = replicator.replicate(&notice, &b.bucket()).await.unwrap();

    assert!(replicator.store().meddled());
    assert_eq!(outcome.decision, Decision::SkippedGone);
    assert_eq!(
        b.multipart_uploads().await,
        0,
        "the failed upload was aborted"
    );
    assert_eq!(b.body(key).await, None);
    set.delete().await;
}

/// A multipart copy that cannot finish before the invocation's deadline
/// (its part 2 outlasts the time left) stops and aborts its upload before
/// the deadline, instead of being killed with the function and leaving the
/// upload behind on every retry. The failure is retryable: another
/// invocation, with its own time, copies the object.
#[tokio::test]
async fn multipart_copy_out_of_time_aborts_its_upload_before_the_deadline() {
    use toastrep_replication::clock::Clock as _;
    use toastrep_replication::deadline::{ABORT_MARGIN, within};
    let set = TestSet::create().await;
    let (a, b) = (&set.a, &set.b);
    let key = "slow.bin";
    let notice = a.put(key, &pattern(12 * MIB, 4)).await;
    let deadline = toastrep_replication::clock::now_ms()
        + (ABORT_MARGIN + Duration::from_secs(2)).as_millis() as i64;
    // Part 2 lasts until well past the time copies must stop by (the
    // deadline itself), unless the copy gives it up first.
    let waited_out = Arc::new(AtomicBool::new(false));
    let part_two_ends = waited_out.clone();
    let store = MeddlingStore::new().before(Before::CopyPart(2), move || {
        let part_two_ends = part_two_ends.clone();
        async move {
            toastrep_replication::clock::SystemClock
                .sleep_until(deadline)
                .await;
            part_two_ends.store(true, AtomicOrdering::SeqCst);
        }
    });
    let replicator = set.replicator_on(store, small_parts(1));

    let error = within(deadline, replicator.replicate(&notice, &b.bucket()))
        .await
        .expect_err("the copy ran out of time");

    assert!(error.is_retryable(), "{error}");
    assert!(error.to_string().contains("time ran out"), "{error}");
    // Stopped at the time copies must stop by: part 2 was given up, not
    // waited out to the deadline (a condition, not a clock reading, so a
    // busy machine cannot fail it).
    assert!(
        !waited_out.load(AtomicOrdering::SeqCst),
        "the copy waited for its slow part until the deadline"
    );
    assert_eq!(b.multipart_uploads().await, 0, "no upload is left behind");
    assert_eq!(b.body(key).await, None);

    // Without a deadline the same copy completes.
    let outcome = set
        .replicator(small_parts(3))
        .replicate(&notice, &b.bucket())
        .await
        .unwrap();
    assert_eq!(outcome.decision, Decision::Copied);
    set.delete().await;
}

/// The source is overwritten between two parts of its copy: every part
/// copies the one version the copy started from, never a mix of two.
#[tokio::test]
async fn multipart_copy_of_a_source_overwritten_mid_copy_copies_one_version() {
    let set = TestSet::create().await;
    let (a, b) = (&set.a, &set.b);
    let key = "moving.bin";
    let old = a.put(key, &pattern(12 * MIB, 1)).await;
    let overwrite = a.clone();
    let store = MeddlingStore::new().before(Before::CopyPart(2), move || {
        let a = overwrite.clone();
        async move {
            a.put(key, &pattern(12 * MIB, 2)).await;
        }
    });
    let replicator = set.replicator_on(store, small_parts(1));

    let outcome = replicator.replicate(&old, &b.bucket()).await.unwrap();

    assert!(replicator.store().meddled());
    assert_eq!(outcome.decision, Decision::Copied);
    assert_eq!(b.multipart_uploads().await, 0);
    assert!(
        b.body(key).await.unwrap() == pattern(12 * MIB, 1),
        "the old version, whole"
    );
    assert_eq!(
        b.seen(key, None).await.write.version,
        old.version_id.clone().unwrap()
    );

    // The overwrite's own notice then brings the new version.
    let new = a.notice_for_current(key).await;
    let outcome = set
        .replicator(small_parts(3))
        .replicate(&new, &b.bucket())
        .await
        .unwrap();
    assert_eq!(outcome.decision, Decision::Copied);
    assert!(b.body(key).await.unwrap() == pattern(12 * MIB, 2));
    assert_faithful_copy(a, b, key).await;
    set.delete().await;
}

#[tokio::test]
async fn multipart_copy_with_a_bad_part_aborts_its_upload() {
    let set = TestSet::create().await;
    let (a, b) = (&set.a, &set.b);
    let notice = a.put("short.bin", &pattern(11 * MIB, 3)).await;
    // The source claims 2 MiB more than there is: the last part's range
    // (10 MiB to 13 MiB) runs past the end of the object.
    let store = MeddlingStore::new().inflating(a.bucket(), 2 * MIB as u64);
    let replicator = set.replicator_on(store, small_parts(3));

    let err = replicator
        .replicate(&notice, &b.bucket())
        .await
        .unwrap_err();

    assert!(
        matches!(&err, ReplicateError::Store(e) if e.operation == "UploadPartCopy"),
        "{err:?}"
    );
    assert!(
        !err.is_retryable(),
        "a bad range is a failure, not a retry or a skip: {err:?}"
    );
    assert_eq!(
        b.multipart_uploads().await,
        0,
        "the failed upload was aborted"
    );
    assert_eq!(b.body("short.bin").await, None);
    set.delete().await;
}

#[tokio::test]
async fn awkward_keys_round_trip() {
    let set = TestSet::create().await;
    let (a, b) = (&set.a, &set.b);
    let replicator = set.replicator(CopySettings::default());
    let keys = awkward_keys();
    for (i, key) in keys.iter().enumerate() {
        let body = format!("body of key {i}");
        let notice = a.put(key, body.as_bytes()).await;
        let outcome = replicator.replicate(&notice, &b.bucket()).await;
        assert_eq!(outcome.unwrap().decision, Decision::Copied, "key {key:?}");
        assert_eq!(
            b.body(key).await.as_deref(),
            Some(body.as_bytes()),
            "key {key:?}"
        );
        // The marker is signed over the key: it must verify at this very key.
        assert_eq!(b.seen(key, None).await.kind, Kind::Replica, "key {key:?}");
    }
    set.delete().await;
}

/// The delivery of one S3 record of `notice`, from `bucket` in `region`.
fn sns_event(region: &str, bucket: &str, key: &str, notice: &S3Notice) -> serde_json::Value {
    let record = S3Record::new(region, bucket, key)
        .etag(notice.etag.as_deref().unwrap())
        .version_id(notice.version_id.as_deref().unwrap())
        .size(7);
    events::sns_event("arn:aws:sns:us-east-1:000000000000:t", vec![record.json()])
}

#[tokio::test]
async fn handler_replicates_a_delivered_event_and_rejects_a_malformed_one() {
    let set = TestSet::create().await;
    let (a, b) = (&set.a, &set.b);
    let replicator = set.replicator(CopySettings::default());
    let key = "photos/a+b 100%/naïve café.txt";
    let notice = a.put(key, b"handled").await;
    let event = sns_event(&a.region, &a.name, key, &notice);
    // The key as S3 form-encodes it, as in the recorded fixture.
    let message = event["Records"][0]["Sns"]["Message"].as_str().unwrap();
    let recorded = events::fixture("sns-encoded-key.json");
    let recorded = recorded["Records"][0]["Sns"]["Message"].as_str().unwrap();
    let encoded = "photos/a%2Bb+100%25/na%C3%AFve+caf%C3%A9.txt";
    assert!(message.contains(encoded) && recorded.contains(encoded));

    let outcomes = handle_sns_event(&replicator, &b.bucket(), &event)
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].decision, Decision::Copied);
    assert_eq!(
        b.body("photos/a+b 100%/naïve café.txt").await.unwrap(),
        b"handled"
    );

    let malformed = events::fixture("sns-malformed.json");
    let err = handle_sns_event(&replicator, &b.bucket(), &malformed)
        .await
        .unwrap_err();
    assert!(
        matches!(err, HandleError::Malformed(_)) && !err.is_retryable(),
        "{err:?}"
    );

    // A destination bucket that does not exist: the record fails (permanently) and is reported.
    let nowhere = toastrep_replication::Bucket::new(&b.region, format!("{}-none", b.name));
    let err = handle_sns_event(&replicator, &nowhere, &event)
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "NoSuchBucket is permanent: {err}");
    assert!(
        matches!(&err, HandleError::Records { total: 1, failures } if failures.len() == 1),
        "{err:?}"
    );

    // A notice naming a bucket outside the set is refused, permanently,
    // before any call: a stray subscription cannot make the set copy from
    // (or check) buckets it does not own.
    let foreign = sns_event(&a.region, &format!("{}-other", a.name), key, &notice);
    let err = handle_sns_event(&replicator, &b.bucket(), &foreign)
        .await
        .unwrap_err();
    match &err {
        HandleError::Records { total: 1, failures } => {
            assert!(
                matches!(failures[..], [(_, ReplicateError::Foreign { .. })]),
                "{err:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable());
    set.delete().await;
}

/// A notice is a hint, not an instruction: whoever may invoke the function
/// can hand it any SNS-shaped event, and it acts only on what the set's
/// buckets hold. A forged delete of a key that is current in its region
/// deletes nothing; a forged write of a version that is not current there,
/// or with another size and ETag than the real one, copies nothing but the
/// real current object; a forged notice naming the function's own role as
/// the writer in another region is no reason to skip it.
#[tokio::test]
async fn a_forged_notice_acts_only_on_what_the_buckets_hold() {
    let set = TestSet::create().await;
    let (a, b) = (&set.a, &set.b);
    let replicator = set
        .replicator(CopySettings::default())
        .carrying_deletes(true);
    let key = "forged/notice";
    let notice = a.put(key, b"real").await;
    let event = sns_event(&a.region, &a.name, key, &notice);
    let outcomes = handle_sns_event(&replicator, &b.bucket(), &event)
        .await
        .unwrap();
    assert_eq!(outcomes[0].decision, Decision::Copied);
    let versions = b.version_count(key).await;

    let forged = |record: S3Record| {
        events::sns_event("arn:aws:sns:us-east-1:000000000000:t", vec![record.json()])
    };
    // A delete that never happened: the key is current in its region.
    let delete = forged(
        S3Record::new(&a.region, &a.name, key)
            .event_name("ObjectRemoved:DeleteMarkerCreated")
            .version_id("forged-marker"),
    );
    let outcomes = handle_sns_event(&replicator, &b.bucket(), &delete)
        .await
        .unwrap();
    assert_eq!(outcomes[0].decision, Decision::SkippedGone);
    // A version that is not the current one, and the current one with
    // another ETag and size than it has.
    for record in [
        S3Record::new(&a.region, &a.name, key)
            .version_id("forged-version")
            .etag("0123456789abcdef0123456789abcdef")
            .size(1),
        S3Record::new(&a.region, &a.name, key)
            .version_id(notice.version_id.as_deref().unwrap())
            .etag("0123456789abcdef0123456789abcdef")
            .size(999)
            .principal("AWS:AROAFORGED:toastrep-replicator"),
    ] {
        let outcomes = handle_sns_event(&replicator, &b.bucket(), &forged(record))
            .await
            .unwrap();
        assert!(
            matches!(
                outcomes[0].decision,
                Decision::SkippedGone | Decision::SkippedUpToDate
            ),
            "{:?}",
            outcomes[0]
        );
    }
    // Nothing was written: the replica is the one copy of the real write.
    assert_eq!(b.version_count(key).await, versions);
    assert_eq!(b.body(key).await.unwrap(), b"real");
    assert_eq!(a.version_count(key).await, 1);
    set.delete().await;
}

/// The race between deciding and copying: a winning write W lands in the
/// destination after the replicator looked (and saw nothing) but before its
/// copy of an older write. The check after the copy must put W back on top.
#[tokio::test]
async fn a_winning_write_overtaken_by_a_copy_is_put_back() {
    let set = TestSet::create().await;
    let (a, b) = (&set.a, &set.b);
    let replicator = set.replicator(CopySettings::default());
    let key = "overtaken.txt";
    a.put(key, b"older, from A").await;
    // In a later second, so W is the later write and wins.
    set.wait_past_last_write(key).await;
    let w = b.put(key, b"newer, from B").await;

    // The copy as decided when B had nothing yet, landing on top of W.
    late_copy(a, b, key).await;
    assert_eq!(b.body(key).await.unwrap(), b"older, from A");

    let settled = replicator.settle(&b.bucket(), key, "test").await.unwrap();
    assert_eq!(settled.restores, 1);
    assert_eq!(b.body(key).await.unwrap(), b"newer, from B");
    // Put back as W itself, so other regions see the same write.
    let current = b.seen(key, None).await;
    assert_eq!(current.kind, Kind::Restored);
    assert_eq!(current.write.region, b.region);
    assert_eq!(Some(current.write.version), w.version_id);

    // Settled: another check changes nothing.
    let versions = b.version_count(key).await;
    let again = replicator.settle(&b.bucket(), key, "test").await.unwrap();
    assert_eq!(again.restores, 0);
    assert_eq!(b.version_count(key).await, versions);

    // When nothing came in between, the check leaves a copy alone.
    let other = "alone.txt";
    a.put(other, b"only from A").await;
    late_copy(a, b, other).await;
    let settled = replicator.settle(&b.bucket(), other, "test").await.unwrap();
    assert_eq!(settled.restores, 0);
    assert_eq!(b.body(other).await.unwrap(), b"only from A");
    set.delete().await;
}

/// The same race, through the replicator: W lands in the destination just
/// before the replicator's CopyObject. On AWS the copy's If-None-Match
/// fails and the replicator decides again (W wins: up to date); the
/// emulator ignores the condition, the copy lands on W, and the check puts
/// W back. Either way W ends on top.
#[tokio::test]
async fn a_winning_write_landing_during_a_copy_stays_on_top() {
    let set = TestSet::create().await;
    let (a, b) = (&set.a, &set.b);
    let key = "raced.txt";
    let notice = a.put(key, b"older, from A").await;
    set.wait_past_last_write(key).await;
    let writer = b.clone();
    let store = MeddlingStore::new().before(Before::CopyObject, move || {
        let b = writer.clone();
        async move {
            b.put(key, b"newer, from B").await;
        }
    });
    let replicator = set.replicator_on(store, CopySettings::default());

    let outcome = replicator.replicate(&notice, &b.bucket()).await.unwrap();

    assert!(replicator.store().meddled());
    assert!(
        matches!(
            (outcome.decision, outcome.restores),
            (Decision::Copied, 1) | (Decision::SkippedUpToDate, 0)
        ),
        "{outcome:?}"
    );
    assert_eq!(b.body(key).await.unwrap(), b"newer, from B");
    assert_eq!(b.seen(key, None).await.write.region, REGION_B);
    set.delete().await;
}

/// Two late copies of losing writes on top of the winner: the check after the
/// last one looks past the other one to the winner.
#[tokio::test]
async fn a_winner_buried_under_two_late_copies_is_put_back() {
    let set = TestSet::create().await;
    let (a, b) = (&set.a, &set.b);
    let replicator = set.replicator(CopySettings::default());
    let key = "buried.txt";
    a.put(key, b"older, from A").await;
    set.wait_past_last_write(key).await;
    b.put(key, b"newer, from B").await;

    late_copy(a, b, key).await;
    late_copy(a, b, key).await;
    assert_eq!(b.version_count(key).await, 3);

    let settled = replicator.settle(&b.bucket(), key, "test").await.unwrap();
    assert_eq!(settled.restores, 1);
    assert_eq!(b.body(key).await.unwrap(), b"newer, from B");
    set.delete().await;
}

/// A write that lands on top of a replica it loses to (same second; ties go
/// to the region sorting first, eu-west-2 here) would stay in its region for
/// good: the function's check of its own region's writes puts the winner back.
#[tokio::test]
async fn a_local_write_losing_the_tie_to_the_replica_below_it_gets_the_winner_back() {
    let set = TestSet::create().await;
    let (a, b) = (&set.a, &set.b);
    let replicator = set.replicator(CopySettings::default());
    for attempt in 0..5 {
        let key = format!("tie-{attempt}.txt");
        let winner = b.put(&key, b"from eu-west-2, wins ties").await;
        let copied = replicator.replicate(&winner, &a.bucket()).await.unwrap();
        assert_eq!(copied.decision, Decision::Copied);
        let local = a.put(&key, b"from us-east-1, same second").await;
        let seconds = |bucket: &TestBucket| {
            let (bucket, key) = (bucket.clone(), key.clone());
            async move { bucket.head(&key, None).await.last_modified }
        };
        if seconds(a).await != seconds(b).await {
            continue; // Crossed a second boundary: no tie, try again.
        }
        let outcome = replicator.replicate(&local, &a.bucket()).await.unwrap();
        assert_eq!(outcome.decision, Decision::Restored);
        assert_eq!(outcome.restores, 1);
        assert_eq!(a.body(&key).await.unwrap(), b"from eu-west-2, wins ties");
        // The event of the put-back is the function's own copy: nothing to do.
        let again = a.notice_for_current(&key).await;
        let outcome = replicator.replicate(&again, &a.bucket()).await.unwrap();
        assert_eq!(outcome.decision, Decision::SkippedCopy);
        set.delete().await;
        return;
    }
    panic!("no two writes landed in the same second in five attempts");
}

/// A later local write wins: the check leaves it alone.
#[tokio::test]
async fn a_later_local_write_is_left_on_top() {
    let set = TestSet::create().await;
    let (a, b) = (&set.a, &set.b);
    let replicator = set.replicator(CopySettings::default());
    let key = "later.txt";
    let older = b.put(key, b"from eu-west-2").await;
    replicator.replicate(&older, &a.bucket()).await.unwrap();
    set.wait_past_last_write(key).await;
    let local = a.put(key, b"from us-east-1, a second later").await;
    let outcome = replicator.replicate(&local, &a.bucket()).await.unwrap();
    assert_eq!(outcome.decision, Decision::SkippedUpToDate);
    assert_eq!(
        a.body(key).await.unwrap(),
        b"from us-east-1, a second later"
    );
    set.delete().await;
}

/// A user's server-side copy of a replica to a new key (`aws s3 cp
/// s3://b/k s3://b/k2` keeps the metadata, marker included) is the user's
/// own write: the marker is signed for the old key, so it does not verify,
/// and the copy replicates like any other upload.
#[tokio::test]
async fn a_users_copy_of_a_replica_to_a_new_key_is_an_original_and_replicates() {
    let set = TestSet::create().await;
    let (a, b) = (&set.a, &set.b);
    let replicator = set.replicator(CopySettings::default());
    let notice = a.put("shared/report.txt", b"the report").await;
    replicator.replicate(&notice, &b.bucket()).await.unwrap();
    assert_eq!(b.seen("shared/report.txt", None).await.kind, Kind::Replica);

    b.client
        .copy_object()
        .bucket(&b.name)
        .key("mine/report.txt")
        .copy_source(format!("{}/shared/report.txt", b.name))
        .metadata_directive(MetadataDirective::Copy)
        .send()
        .await
        .expect("CopyObject");
    let copied = b.seen("mine/report.txt", None).await;
    assert!(
        copied.head.metadata.contains_key(MARKER),
        "the user's copy carries the replica's marker: {:?}",
        copied.head.metadata
    );
    assert_eq!(copied.kind, Kind::Original);
    assert_eq!(copied.write.region, REGION_B);

    let user_copy = b.notice_for_current("mine/report.txt").await;
    let outcome = replicator.replicate(&user_copy, &a.bucket()).await.unwrap();
    assert_eq!(outcome.decision, Decision::Copied);
    assert_eq!(a.body("mine/report.txt").await.unwrap(), b"the report");
    let replica = a.seen("mine/report.txt", None).await;
    assert_eq!(replica.kind, Kind::Replica);
    assert_eq!(replica.write, copied.write);
    set.delete().await;
}

/// An upload carrying a forged marker (another region, a time far in the
/// future) is an original at its real time: it replicates, and a later
/// write of the key in the other region wins over it.
#[tokio::test]
async fn a_forged_marker_is_an_original_and_loses_to_a_later_write() {
    let set = TestSet::create().await;
    let (a, b) = (&set.a, &set.b);
    let replicator = set.replicator(CopySettings::default());
    let key = "forged.txt";
    let now = sdk_store().now();
    let forged = format!(
        "v1;region={REGION_B};time=4102444800;version=x;etag=y;written={now};mac={}",
        "0".repeat(32)
    );
    let notice = a
        .put_with(key, b"forged in A", |p| p.metadata(MARKER, forged.clone()))
        .await;
    let seen = a.seen(key, None).await;
    assert_eq!(seen.head.metadata.get(MARKER), Some(&forged));
    assert_eq!(seen.kind, Kind::Original);
    assert_eq!(seen.write.region, REGION_A);
    assert!(seen.write.time < 4_102_444_800);

    let outcome = replicator.replicate(&notice, &b.bucket()).await.unwrap();
    assert_eq!(outcome.decision, Decision::Copied);
    let replica = b.seen(key, None).await;
    assert_eq!(replica.kind, Kind::Replica);
    assert_eq!(replica.write, seen.write, "the copy names the real write");
    assert_ne!(
        replica.head.metadata.get(MARKER),
        Some(&forged),
        "the forged marker is not copied"
    );

    set.wait_past_last_write(key).await;
    let later = b.put(key, b"later, from B").await;
    let outcome = replicator.replicate(&later, &a.bucket()).await.unwrap();
    assert_eq!(outcome.decision, Decision::Copied);
    assert_eq!(a.body(key).await.unwrap(), b"later, from B");
    assert_eq!(b.body(key).await.unwrap(), b"later, from B");
    // And the forged write's notice, late, cannot take it back.
    let late = replicator.replicate(&notice, &b.bucket()).await.unwrap();
    assert_eq!(late.decision, Decision::SkippedGone);
    assert_eq!(b.body(key).await.unwrap(), b"later, from B");
    set.delete().await;
}
