//! Replication against the local emulator (ministack). Needs
//! `TOASTREP_TEST_ENDPOINT`; `tools/test` sets it. Each test makes its own
//! uniquely named buckets, so tests run in parallel.

mod harness;

use std::cmp::Ordering;

use aws_sdk_s3::primitives::DateTime;
use harness::{Bucket, REGION_A, REGION_B, pattern, replicator};
use toastrep_replication::copy::{
    CopyPlan, CopySettings, ObjectHeaders, copy_multipart, copy_version,
};
use toastrep_replication::origin::{self, Origin};
use toastrep_replication::{Decision, HandleError, handle_sns_event};

const MIB: usize = 1024 * 1024;

async fn two_regions() -> (Bucket, Bucket) {
    tokio::join!(Bucket::create(REGION_A), Bucket::create(REGION_B))
}

fn small_parts() -> CopySettings {
    CopySettings {
        multipart_threshold: 5 * MIB as u64,
        part_size: 5 * MIB as u64,
        concurrency: 3,
    }
}

/// Puts an object with every kept header, user metadata and tags.
async fn put_decorated(bucket: &Bucket, key: &str, body: &[u8]) -> toastrep_replication::S3Notice {
    bucket
        .put_with(key, body, |p| {
            p.content_type("text/csv; charset=utf-8")
                .cache_control("max-age=60, public")
                .content_disposition("attachment; filename=\"q1.csv\"")
                .content_encoding("identity")
                .content_language("fr-CA")
                .expires(DateTime::from_secs(1_893_456_000))
                .metadata("colour", "blue")
                .metadata("owner-team", "data platform")
                .tagging("team=data&note=a%20b%26c")
        })
        .await
}

/// Asserts that `key` in `replica` is a faithful, marked copy of `key` in `original`.
async fn assert_faithful_copy(original: &Bucket, replica: &Bucket, key: &str) {
    let source = original
        .client
        .head_object()
        .bucket(&original.name)
        .key(key)
        .send()
        .await
        .unwrap();
    let copy = replica
        .client
        .head_object()
        .bucket(&replica.name)
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ObjectHeaders::from_head(&copy),
        ObjectHeaders::from_head(&source),
        "kept headers"
    );
    assert_eq!(copy.content_length(), source.content_length());

    let mut expected = source.metadata().cloned().unwrap_or_default();
    expected.insert(origin::ORIGIN_REGION.into(), original.region.clone());
    expected.insert(
        origin::ORIGIN_TIME.into(),
        origin::format_time(source.last_modified().unwrap()),
    );
    expected.insert(
        origin::ORIGIN_VERSION.into(),
        source.version_id().unwrap().into(),
    );
    expected.insert(
        origin::ORIGIN_ETAG.into(),
        source.e_tag().unwrap().trim_matches('"').into(),
    );
    assert_eq!(
        copy.metadata().cloned().unwrap_or_default(),
        expected,
        "user metadata plus markers"
    );

    assert_eq!(replica.tags(key).await, original.tags(key).await, "tags");
    assert_eq!(replica.body(key).await, original.body(key).await, "body");
}

#[tokio::test]
async fn copy_keeps_headers_metadata_and_tags() {
    let (a, b) = two_regions().await;
    let notice = put_decorated(&a, "reports/2024/q1.csv", b"id,total\n1,2\n").await;

    let outcome = replicator(CopySettings::default())
        .replicate(&notice, &b.destination())
        .await
        .unwrap();

    assert_eq!(outcome.decision, Decision::Copied);
    assert_eq!(outcome.bytes, 13);
    assert_faithful_copy(&a, &b, "reports/2024/q1.csv").await;
    // Spelled out, so an emulator that dropped a header on both sides fails too.
    let copy = b
        .client
        .head_object()
        .bucket(&b.name)
        .key("reports/2024/q1.csv")
        .send()
        .await
        .unwrap();
    assert_eq!(
        ObjectHeaders::from_head(&copy),
        ObjectHeaders {
            content_type: Some("text/csv; charset=utf-8".into()),
            cache_control: Some("max-age=60, public".into()),
            content_disposition: Some("attachment; filename=\"q1.csv\"".into()),
            content_encoding: Some("identity".into()),
            content_language: Some("fr-CA".into()),
            expires: Some(DateTime::from_secs(1_893_456_000)),
        }
    );
    let metadata = copy.metadata().unwrap();
    assert_eq!(metadata["colour"], "blue");
    assert_eq!(metadata["owner-team"], "data platform");
    assert_eq!(metadata[origin::ORIGIN_REGION], REGION_A);
    assert_eq!(
        b.tags("reports/2024/q1.csv").await,
        vec![
            ("note".to_owned(), "a b&c".to_owned()),
            ("team".to_owned(), "data".to_owned())
        ]
    );
    a.delete().await;
    b.delete().await;
}

#[tokio::test]
async fn replica_of_a_replica_is_skipped_copy() {
    let (a, b) = two_regions().await;
    let replicator = replicator(CopySettings::default());
    let notice = a.put("loop/me.txt", b"once").await;
    assert_eq!(
        replicator
            .replicate(&notice, &b.destination())
            .await
            .unwrap()
            .decision,
        Decision::Copied
    );

    // The copy in B fires its own event; B's topic feeds A's replicator.
    let echo = b.notice_for_current("loop/me.txt").await;
    let outcome = replicator.replicate(&echo, &a.destination()).await.unwrap();

    assert_eq!(outcome.decision, Decision::SkippedCopy);
    assert_eq!(
        a.version_count("loop/me.txt").await,
        1,
        "nothing written back to the origin"
    );
    a.delete().await;
    b.delete().await;
}

#[tokio::test]
async fn same_notice_again_is_up_to_date() {
    let (a, b) = two_regions().await;
    let replicator = replicator(CopySettings::default());
    let notice = a.put("again.txt", b"idempotent").await;

    let first = replicator
        .replicate(&notice, &b.destination())
        .await
        .unwrap();
    let second = replicator
        .replicate(&notice, &b.destination())
        .await
        .unwrap();

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
    a.delete().await;
    b.delete().await;
}

#[tokio::test]
async fn overwrite_propagates_and_an_older_notice_never_restores_older_content() {
    let (a, b) = two_regions().await;
    let replicator = replicator(CopySettings::default());
    let old = a.put("doc.txt", b"version one").await;
    assert_eq!(
        replicator
            .replicate(&old, &b.destination())
            .await
            .unwrap()
            .decision,
        Decision::Copied
    );

    let new = a.put("doc.txt", b"version two").await;
    // The old event arriving late (or retried) after the overwrite.
    assert_eq!(
        replicator
            .replicate(&old, &b.destination())
            .await
            .unwrap()
            .decision,
        Decision::SkippedGone
    );
    assert_eq!(b.body("doc.txt").await.unwrap(), b"version one");

    assert_eq!(
        replicator
            .replicate(&new, &b.destination())
            .await
            .unwrap()
            .decision,
        Decision::Copied
    );
    assert_eq!(b.body("doc.txt").await.unwrap(), b"version two");

    assert_eq!(
        replicator
            .replicate(&old, &b.destination())
            .await
            .unwrap()
            .decision,
        Decision::SkippedGone
    );
    assert_eq!(b.body("doc.txt").await.unwrap(), b"version two");
    assert_faithful_copy(&a, &b, "doc.txt").await;
    a.delete().await;
    b.delete().await;
}

#[tokio::test]
async fn deleted_source_is_skipped_gone() {
    let (a, b) = two_regions().await;
    let notice = a.put("ephemeral.txt", b"here and gone").await;
    a.client
        .delete_object()
        .bucket(&a.name)
        .key("ephemeral.txt")
        .send()
        .await
        .unwrap();

    let outcome = replicator(CopySettings::default())
        .replicate(&notice, &b.destination())
        .await
        .unwrap();

    assert_eq!(outcome.decision, Decision::SkippedGone);
    assert_eq!(b.body("ephemeral.txt").await, None);
    a.delete().await;
    b.delete().await;
}

#[tokio::test]
async fn concurrent_writes_in_two_regions_converge_on_one_winner() {
    let (a, b) = two_regions().await;
    let replicator = replicator(CopySettings::default());
    let in_a = a.put("contested.txt", b"written in A").await;
    let in_b = b.put("contested.txt", b"written in B").await;

    let to_b = replicator.replicate(&in_a, &b.destination()).await.unwrap();
    let to_a = replicator.replicate(&in_b, &a.destination()).await.unwrap();

    // Whichever write the rule prefers must now be in both buckets.
    let origin_of = |bucket: &Bucket, notice: &toastrep_replication::S3Notice| {
        let (bucket, notice) = (bucket.clone(), notice.clone());
        async move {
            let v = bucket
                .client
                .head_object()
                .bucket(&bucket.name)
                .key("contested.txt")
                .version_id(notice.version_id.clone().unwrap())
                .send()
                .await
                .unwrap();
            Origin::of_object(
                &bucket.region,
                v.metadata(),
                v.last_modified(),
                v.version_id(),
                v.e_tag(),
            )
            .unwrap()
        }
    };
    let (origin_a, origin_b) = (origin_of(&a, &in_a).await, origin_of(&b, &in_b).await);
    let (winner, decisions): (&[u8], _) = match origin::compare(&origin_a, &origin_b) {
        Ordering::Greater => (
            b"written in A",
            (Decision::Copied, Decision::SkippedUpToDate),
        ),
        Ordering::Less => (
            b"written in B",
            (Decision::SkippedUpToDate, Decision::Copied),
        ),
        Ordering::Equal => unreachable!("different regions never tie completely"),
    };
    assert_eq!((to_b.decision, to_a.decision), decisions);
    assert_eq!(a.body("contested.txt").await.unwrap(), winner);
    assert_eq!(b.body("contested.txt").await.unwrap(), winner);
    a.delete().await;
    b.delete().await;
}

#[tokio::test]
async fn multipart_copy_is_byte_identical_and_keeps_tags_and_metadata() {
    let (a, b) = two_regions().await;
    let body = pattern(12 * MIB, 7);
    let notice = put_decorated(&a, "video/big.bin", &body).await;

    let outcome = replicator(small_parts())
        .replicate(&notice, &b.destination())
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
    assert_faithful_copy(&a, &b, "video/big.bin").await;
    assert_eq!(b.multipart_uploads().await, 0);
    a.delete().await;
    b.delete().await;
}

fn plan_for(
    a: &Bucket,
    b: &Bucket,
    key: &str,
    etag: &str,
    version: Option<String>,
    size: u64,
) -> CopyPlan {
    CopyPlan {
        source_bucket: a.name.clone(),
        key: key.into(),
        source_version: version,
        source_etag: Some(format!("\"{etag}\"")),
        size,
        destination_bucket: b.name.clone(),
        headers: ObjectHeaders::default(),
        metadata: Default::default(),
    }
}

#[tokio::test]
async fn multipart_copy_of_an_overwritten_source_aborts_its_upload() {
    let (a, b) = two_regions().await;
    let old = a.put("moving.bin", &pattern(12 * MIB, 1)).await;
    a.put("moving.bin", &pattern(12 * MIB, 2)).await;
    // The plan made before the overwrite: current object, old ETag.
    let plan = plan_for(
        &a,
        &b,
        "moving.bin",
        old.etag.as_deref().unwrap(),
        None,
        (12 * MIB) as u64,
    );

    let err = copy_multipart(&a.client, &b.client, &plan, &small_parts())
        .await
        .unwrap_err();

    assert!(
        err.is_source_gone(),
        "412 from copy-source-if-match: {err:?}"
    );
    assert_eq!(
        b.multipart_uploads().await,
        0,
        "the failed upload was aborted"
    );
    assert_eq!(b.body("moving.bin").await, None);
    a.delete().await;
    b.delete().await;
}

#[tokio::test]
async fn multipart_copy_with_a_bad_part_aborts_its_upload() {
    let (a, b) = two_regions().await;
    let notice = a.put("short.bin", &pattern(11 * MIB, 3)).await;
    // Claims 2 MiB more than there is: the last part's range is unsatisfiable.
    let plan = plan_for(
        &a,
        &b,
        "short.bin",
        notice.etag.as_deref().unwrap(),
        notice.version_id.clone(),
        (13 * MIB) as u64,
    );

    let err = copy_multipart(&a.client, &b.client, &plan, &small_parts())
        .await
        .unwrap_err();

    assert!(
        !err.is_source_gone(),
        "a bad range is a failure, not a skip: {err:?}"
    );
    assert_eq!(
        b.multipart_uploads().await,
        0,
        "the failed upload was aborted"
    );
    assert_eq!(b.body("short.bin").await, None);
    a.delete().await;
    b.delete().await;
}

#[tokio::test]
async fn awkward_keys_round_trip() {
    let (a, b) = two_regions().await;
    let replicator = replicator(CopySettings::default());
    let long_key = {
        let mut k = "deep/".repeat(150);
        k.push_str(&"é".repeat((1024 - k.len()) / 2));
        while k.len() < 1024 {
            k.push('x');
        }
        k
    };
    assert_eq!(long_key.len(), 1024);
    let keys = [
        "with space/and  two.txt".to_owned(),
        "plus+sign/a+b.txt".to_owned(),
        "percent%25/100%.txt".to_owned(),
        "question?versionId=fake".to_owned(),
        "hash#fragment/x#y".to_owned(),
        "naïve/café/日本語/emoji-🚀.txt".to_owned(),
        "many////slashes//a/b/c/d/e/f/g/".to_owned() + "leaf",
        "/leading-slash".to_owned(),
        "photos/a+b 100%/naïve café.txt".to_owned(),
        "amp&equals=semi;colon,comma'quote\"".to_owned(),
        long_key,
    ];
    for (i, key) in keys.iter().enumerate() {
        let body = format!("body of key {i}");
        let notice = a.put(key, body.as_bytes()).await;
        let outcome = replicator.replicate(&notice, &b.destination()).await;
        assert_eq!(outcome.unwrap().decision, Decision::Copied, "key {key:?}");
        assert_eq!(
            b.body(key).await.as_deref(),
            Some(body.as_bytes()),
            "key {key:?}"
        );
    }
    a.delete().await;
    b.delete().await;
}

#[tokio::test]
async fn handler_replicates_a_delivered_event_and_rejects_a_malformed_one() {
    let (a, b) = two_regions().await;
    let replicator = replicator(CopySettings::default());
    let notice = a.put("photos/a+b 100%/naïve café.txt", b"handled").await;
    let encoded = "photos/a%2Bb+100%25/na%C3%AFve+caf%C3%A9.txt";
    let s3_message = serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": a.region,
        "eventTime": "2024-05-01T12:00:00.000Z", "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": a.name, "arn": format!("arn:aws:s3:::{}", a.name)},
               "object": {"key": encoded, "size": 7, "eTag": notice.etag, "versionId": notice.version_id,
                          "sequencer": "0055AED6DCD90281E5"}}}]});
    let event = serde_json::json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0",
        "EventSubscriptionArn": "arn:aws:sns:us-east-1:000000000000:t:1",
        "Sns": {"Type": "Notification", "MessageId": "m1", "Message": s3_message.to_string()}}]});

    let outcomes = handle_sns_event(&replicator, &b.destination(), &event)
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].decision, Decision::Copied);
    assert_eq!(
        b.body("photos/a+b 100%/naïve café.txt").await.unwrap(),
        b"handled"
    );

    let malformed: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/sns-malformed.json")).unwrap();
    let err = handle_sns_event(&replicator, &b.destination(), &malformed)
        .await
        .unwrap_err();
    assert!(
        matches!(err, HandleError::Malformed(_)) && !err.is_retryable(),
        "{err:?}"
    );

    // A destination bucket that does not exist: the record fails (permanently) and is reported.
    let nowhere = toastrep_replication::Destination {
        region: b.region.clone(),
        bucket: harness::unique("trt-none"),
    };
    let err = handle_sns_event(&replicator, &nowhere, &event)
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "NoSuchBucket is permanent: {err}");
    assert!(
        matches!(&err, HandleError::Records { total: 1, failures } if failures.len() == 1),
        "{err:?}"
    );
    a.delete().await;
    b.delete().await;
}

/// The race between deciding and copying: a winning write W lands in the
/// destination after the replicator looked (and saw nothing) but before its
/// copy of an older write. The check after the copy must put W back on top.
#[tokio::test]
async fn a_winning_write_overtaken_by_a_copy_is_put_back() {
    let (a, b) = two_regions().await;
    let replicator = replicator(CopySettings::default());
    let key = "overtaken.txt";
    a.put(key, b"older, from A").await;
    // A second later, so W is the later write and wins.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let w = b.put(key, b"newer, from B").await;

    // The copy as decided when B had nothing yet, landing on top of W.
    let head = a
        .client
        .head_object()
        .bucket(&a.name)
        .key(key)
        .send()
        .await
        .unwrap();
    let origin_a = Origin::of_object(
        &a.region,
        head.metadata(),
        head.last_modified(),
        head.version_id(),
        head.e_tag(),
    )
    .unwrap();
    let plan = CopyPlan::of_head(&a.name, key, &head, &origin_a, &b.name);
    let copied = copy_version(&a.client, &b.client, &plan, &CopySettings::default())
        .await
        .unwrap();
    assert_eq!(b.body(key).await.unwrap(), b"older, from A");

    replicator
        .restore_overtaken_write(&b.destination(), key, &origin_a, None, &copied)
        .await;
    assert_eq!(b.body(key).await.unwrap(), b"newer, from B");
    // Put back with W's own origin, so other regions see the same write.
    let current = b
        .client
        .head_object()
        .bucket(&b.name)
        .key(key)
        .send()
        .await
        .unwrap();
    let markers = Origin::from_markers(current.metadata().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(markers.region, b.region);
    assert_eq!(markers.version, w.version_id);

    // When nothing came in between, the check leaves the copy alone.
    let before = current.version_id().map(str::to_owned);
    let head = a
        .client
        .head_object()
        .bucket(&a.name)
        .key(key)
        .send()
        .await
        .unwrap();
    let plan = CopyPlan::of_head(&a.name, key, &head, &origin_a, &b.name);
    let copied = copy_version(&a.client, &b.client, &plan, &CopySettings::default())
        .await
        .unwrap();
    replicator
        .restore_overtaken_write(&b.destination(), key, &origin_a, before.as_deref(), &copied)
        .await;
    assert_eq!(b.body(key).await.unwrap(), b"older, from A");
    a.delete().await;
    b.delete().await;
}

/// Two late copies of losing writes on top of the winner: the check after the
/// last one looks past the other one to the winner.
#[tokio::test]
async fn a_winner_buried_under_two_late_copies_is_put_back() {
    let (a, b) = two_regions().await;
    let replicator = replicator(CopySettings::default());
    let key = "buried.txt";
    a.put(key, b"older, from A").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    b.put(key, b"newer, from B").await;

    let head = a
        .client
        .head_object()
        .bucket(&a.name)
        .key(key)
        .send()
        .await
        .unwrap();
    let origin_a = Origin::of_object(
        &a.region,
        head.metadata(),
        head.last_modified(),
        head.version_id(),
        head.e_tag(),
    )
    .unwrap();
    let plan = CopyPlan::of_head(&a.name, key, &head, &origin_a, &b.name);
    let settings = CopySettings::default();
    copy_version(&a.client, &b.client, &plan, &settings)
        .await
        .unwrap();
    let last = copy_version(&a.client, &b.client, &plan, &settings)
        .await
        .unwrap();

    replicator
        .restore_overtaken_write(&b.destination(), key, &origin_a, None, &last)
        .await;
    assert_eq!(b.body(key).await.unwrap(), b"newer, from B");
    a.delete().await;
    b.delete().await;
}

/// A write that lands on top of a replica it loses to (same second; ties go
/// to the region sorting first, eu-west-2 here) would stay in its region for
/// good: the function's check of its own region's writes puts the winner back.
#[tokio::test]
async fn a_local_write_losing_the_tie_to_the_replica_below_it_gets_the_winner_back() {
    let (a, b) = two_regions().await;
    let replicator = replicator(CopySettings::default());
    for attempt in 0..5 {
        let key = format!("tie-{attempt}.txt");
        let winner = b.put(&key, b"from eu-west-2, wins ties").await;
        let copied = replicator
            .replicate(&winner, &a.destination())
            .await
            .unwrap();
        assert_eq!(copied.decision, Decision::Copied);
        let local = a.put(&key, b"from us-east-1, same second").await;
        let seconds = |bucket: &Bucket| {
            let key = key.clone();
            let client = bucket.client.clone();
            let name = bucket.name.clone();
            async move {
                let head = client
                    .head_object()
                    .bucket(name)
                    .key(key)
                    .send()
                    .await
                    .unwrap();
                head.last_modified().unwrap().secs()
            }
        };
        if seconds(&a).await != seconds(&b).await {
            continue; // Crossed a second boundary: no tie, try again.
        }
        let outcome = replicator
            .replicate(&local, &a.destination())
            .await
            .unwrap();
        assert_eq!(outcome.decision, Decision::Restored);
        assert_eq!(a.body(&key).await.unwrap(), b"from eu-west-2, wins ties");
        // The event of the put-back is the function's own copy: nothing to do.
        let again = a.notice_for_current(&key).await;
        let outcome = replicator
            .replicate(&again, &a.destination())
            .await
            .unwrap();
        assert_eq!(outcome.decision, Decision::SkippedCopy);
        return;
    }
    panic!("no two writes landed in the same second in five attempts");
}

/// A later local write wins: the check leaves it alone.
#[tokio::test]
async fn a_later_local_write_is_left_on_top() {
    let (a, b) = two_regions().await;
    let replicator = replicator(CopySettings::default());
    let key = "later.txt";
    let older = b.put(key, b"from eu-west-2").await;
    replicator
        .replicate(&older, &a.destination())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let local = a.put(key, b"from us-east-1, a second later").await;
    let outcome = replicator
        .replicate(&local, &a.destination())
        .await
        .unwrap();
    assert_eq!(outcome.decision, Decision::SkippedUpToDate);
    assert_eq!(
        a.body(key).await.unwrap(),
        b"from us-east-1, a second later"
    );
}
