//! `sync` and `replay` against deployed three-region sets: a region that slept
//! through uploads, concurrent writers of the same keys, a dry run that
//! changes nothing, and a replay that keeps the messages that still fail.
//! The helpers here serve `faults.rs` too, which runs its own emulator.

use std::collections::BTreeMap;
use std::process::Output;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use futures::{StreamExt, stream};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use toastrep::ops::replay::ReplayResult;
use toastrep::ops::sync::SyncReport;
use toastrep_replication::protocol::Reason;

use testkit::Emulator;
use testkit::events::{self, S3Record};

use crate::harness::{self, ACCOUNT, Cleanup, Json, REGIONS, parse, unique_name};

/// One emulator (the shared one, or the fault tests' own), with the set
/// operations these tests share. Its clients are the testkit's.
pub struct Emu {
    emulator: Emulator,
}

impl std::ops::Deref for Emu {
    type Target = Emulator;

    fn deref(&self) -> &Emulator {
        &self.emulator
    }
}

impl Emu {
    pub fn shared() -> Emu {
        Emu {
            emulator: Emulator::shared(),
        }
    }

    pub fn at(endpoint: &str) -> Emu {
        Emu {
            emulator: Emulator::at(endpoint),
        }
    }

    /// The URL of set `name`'s dead-letter queue in `region`.
    pub async fn dlq_url(&self, name: &str, region: &str) -> String {
        self.queue_url(region, &format!("toastrep-{name}-dlq"))
            .await
    }

    /// The URL of set `name`'s held-deletes queue in `region`.
    pub async fn held_deletes_url(&self, name: &str, region: &str) -> String {
        self.queue_url(region, &format!("toastrep-{name}-held-deletes"))
            .await
    }

    async fn queue_url(&self, region: &str, queue: &str) -> String {
        self.sqs(region)
            .get_queue_url()
            .queue_name(queue)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetQueueUrl of {queue}: {e:?}"))
            .queue_url
            .expect("a queue URL")
    }

    /// Runs toastrep against this emulator.
    pub fn toastrep(&self, args: &[&str]) -> Output {
        harness::run(
            harness::toastrep_command()
                .env("AWS_ENDPOINT_URL", &self.endpoint)
                .args(args),
        )
    }

    pub fn deploy(&self, name: &str) {
        self.deploy_with(name, &[]);
    }

    /// Deploys with `extra` deploy flags.
    pub fn deploy_with(&self, name: &str, extra: &[&str]) {
        let zip = harness::lambda_zip();
        let regions = REGIONS.join(",");
        let mut args = vec![
            "deploy",
            "--name",
            name,
            "--regions",
            &regions,
            "--lambda-zip",
            zip.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = self.toastrep(&args);
        assert!(out.status.success(), "deploy {name} {extra:?} failed");
    }

    /// Set `name` of this emulator, torn down when dropped.
    pub fn cleanup(&self, name: &str) -> Cleanup {
        Cleanup::at(&self.endpoint, name)
    }

    pub fn teardown(&self, name: &str) {
        self.cleanup(name).teardown();
    }

    /// `toastrep` with `args` and `--output json`: its result and exit code.
    pub fn toastrep_json<T: DeserializeOwned>(&self, args: &[&str]) -> (Json<T>, Option<i32>) {
        let out = self.toastrep(&[args, &["--output", "json"]].concat());
        (parse(&out), out.status.code())
    }

    /// `toastrep sync` with `extra` arguments: its report and exit code.
    pub fn sync(&self, name: &str, extra: &[&str]) -> (Json<SyncReport>, Option<i32>) {
        self.toastrep_json(&[&["sync", "--name", name], extra].concat())
    }

    /// Uploads an object; returns its version id and ETag.
    pub async fn put(
        &self,
        name: &str,
        region: &str,
        key: &str,
        body: Vec<u8>,
    ) -> (String, String) {
        let out = self
            .s3(region)
            .put_object()
            .bucket(harness::data_bucket(name, region))
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutObject {key} in {region}: {e:?}"));
        (
            out.version_id().unwrap_or_default().to_owned(),
            out.e_tag().unwrap_or_default().to_owned(),
        )
    }

    /// Every key of a region's bucket with its ETag.
    pub async fn listing(&self, name: &str, region: &str) -> BTreeMap<String, String> {
        let mut keys = BTreeMap::new();
        let mut pages = self
            .s3(region)
            .list_objects_v2()
            .bucket(harness::data_bucket(name, region))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for object in page.expect("ListObjectsV2").contents() {
                keys.insert(
                    object.key().unwrap().to_owned(),
                    object.e_tag().unwrap_or_default().to_owned(),
                );
            }
        }
        keys
    }

    /// Every region's listing.
    pub async fn listings(&self, name: &str) -> Vec<BTreeMap<String, String>> {
        futures::future::join_all(REGIONS.iter().map(|r| self.listing(name, r))).await
    }

    /// Every object version of a region (key, version id): what "changed
    /// nothing" is checked against.
    pub async fn versions(&self, name: &str, region: &str) -> Vec<(String, String)> {
        let out = self
            .s3(region)
            .list_object_versions()
            .bucket(harness::data_bucket(name, region))
            .max_keys(1000)
            .send()
            .await
            .expect("ListObjectVersions");
        assert_ne!(out.is_truncated(), Some(true), "more versions than a page");
        let mut versions: Vec<(String, String)> = out
            .versions()
            .iter()
            .map(|v| {
                (
                    v.key().unwrap().to_owned(),
                    v.version_id().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        versions.sort();
        versions
    }

    /// Stops (or restarts) the delivery of the other regions' events to
    /// `region`'s function.
    pub async fn pause_into(&self, name: &str, region: &str, paused: bool) {
        testkit::subscriptions::pause_delivery_into(self, name, &REGIONS, region, paused).await;
    }

    /// Uploads `uploads` (key, region) while `asleep`'s function hears
    /// nothing from the other regions, and leaves it asleep; returns every
    /// region's listing once the other regions hold every upload.
    pub async fn upload_while_asleep(
        &self,
        name: &str,
        asleep: &str,
        uploads: &[(String, &str)],
    ) -> Vec<BTreeMap<String, String>> {
        self.pause_into(name, asleep, true).await;
        stream::iter(uploads)
            .for_each_concurrent(8, |(key, region)| async move {
                self.put(name, region, key, body_of(key, region, 0)).await;
            })
            .await;
        // The region stays asleep: a delivery into it that a busy emulator
        // holds back can then never land between the snapshot and the
        // repair the test runs, and the test's counts stay exact.
        for region in REGIONS.iter().filter(|r| **r != asleep) {
            harness::eventually(
                &format!("all {} uploads in {region}", uploads.len()),
                Duration::from_secs(600),
                || async {
                    (self.listing(name, region).await.len() == uploads.len()).then_some(())
                },
            )
            .await;
        }
        self.settle(name).await
    }

    /// Waits until no bucket of the set has changed for a while: the
    /// emulator delivers events on background threads after PutObject returns.
    pub async fn settle(&self, name: &str) -> Vec<BTreeMap<String, String>> {
        self.settle_for(name, Duration::from_millis(1500)).await
    }

    /// As [`Emu::settle`], with the quiet time to wait for.
    pub async fn settle_for(&self, name: &str, quiet: Duration) -> Vec<BTreeMap<String, String>> {
        testkit::settled(
            &format!("the buckets of {name}"),
            quiet,
            // Generous: a busy machine delivers slowly, and the wait ends
            // as soon as the buckets are quiet.
            Duration::from_secs(600),
            || self.listings(name),
        )
        .await
    }
}

/// Content unique to a key, a writer and a round, of varying size.
pub fn body_of(key: &str, writer: &str, round: usize) -> Vec<u8> {
    let line = format!("{key} written in {writer}, round {round}\n");
    line.repeat(1 + key.len() % 7 + round * 3).into_bytes()
}

/// Asserts every region holds exactly `keys`, with one ETag per key.
fn assert_converged(listings: &[BTreeMap<String, String>], keys: usize) {
    for (region, listing) in REGIONS.iter().zip(listings) {
        assert_eq!(listing.len(), keys, "keys in {region}");
        assert_eq!(
            listing, &listings[0],
            "{region} differs from {}",
            REGIONS[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_completes_a_region_that_slept_through_uploads_and_its_dry_run_changes_nothing() {
    let emu = Emu::shared();
    let name = unique_name("asleep");
    let cleanup = emu.cleanup(&name);
    emu.deploy(&name);

    // eu-west-2's function hears nothing while 100 objects are uploaded
    // all over the set (its own uploads still replicate outwards).
    let uploads: Vec<(String, &str)> = (0..100)
        .map(|i| {
            let region = REGIONS[i % REGIONS.len()];
            (format!("asleep/{region}/{i:03}"), region)
        })
        .collect();
    let before = emu.upload_while_asleep(&name, "eu-west-2", &uploads).await;
    let missing_in_eu = 100 - before[1].len();
    assert!(
        missing_in_eu >= 60,
        "eu-west-2 should have missed the others' 66 uploads, holds {} of 100",
        before[1].len()
    );

    // The dry run plans exactly the missing copies and changes nothing.
    let versions_before =
        futures::future::join_all(REGIONS.iter().map(|r| emu.versions(&name, r))).await;
    let (plan, code) = emu.sync(&name, &["--dry-run"]);
    assert_eq!(code, Some(0), "{plan}");
    assert!(plan.dry_run);
    assert_eq!(plan.keys_scanned, 100);
    assert_eq!(plan.copies_made, 0);
    assert_eq!(plan.copies_planned, missing_in_eu as u64, "{plan}");
    assert!(plan.copies.iter().all(|c| c.destination == "eu-west-2"
        && c.reason == Reason::Missing
        && !before[1].contains_key(&c.key)));
    let versions_after =
        futures::future::join_all(REGIONS.iter().map(|r| emu.versions(&name, r))).await;
    assert_eq!(
        versions_before, versions_after,
        "the dry run changed a bucket"
    );

    // The real run makes those copies, and the region is complete.
    let (report, code) = emu.sync(&name, &[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report.copies_made, missing_in_eu as u64, "{report}");
    assert!(report.failures.is_empty(), "{report}");
    let after = emu.settle(&name).await;
    assert_converged(&after, 100);
    for (key, region) in &uploads {
        let object = emu
            .s3("eu-west-2")
            .get_object()
            .bucket(harness::data_bucket(&name, "eu-west-2"))
            .key(key)
            .send()
            .await
            .unwrap();
        let marker = object
            .metadata()
            .and_then(|m| m.get("toastrep-origin").cloned());
        if *region != "eu-west-2" {
            // A copy made by sync is marked like the replicator's copies.
            let named = format!(";region={region};");
            assert!(
                marker.as_deref().is_some_and(|m| m.contains(&named)),
                "{key}: {marker:?}"
            );
        }
        let bytes = object.body.collect().await.unwrap().into_bytes();
        assert_eq!(bytes.as_ref(), body_of(key, region, 0).as_slice(), "{key}");
    }

    // Nothing left to do.
    let (again, code) = emu.sync(&name, &[]);
    assert_eq!(code, Some(0));
    assert_eq!(again.copies_made, 0, "{again}");
    assert_eq!(again.keys_examined, 0, "{again}");

    cleanup.teardown();
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_converges_concurrent_writers_and_a_second_sync_copies_nothing() {
    let emu = Emu::shared();
    let name = unique_name("writers");
    let cleanup = emu.cleanup(&name);
    emu.deploy(&name);

    // Three rounds; in each, every key is written in all three regions at
    // once with different content. The functions replicate the first two
    // rounds as they race; the last round's events are lost (every
    // delivery paused), so each region keeps its own last write and sync,
    // not the functions, must bring the set together.
    let keys: Vec<String> = (0..50).map(|i| format!("contested/{i:02}")).collect();
    let last_round = std::sync::Mutex::new(BTreeMap::<String, Vec<String>>::new());
    for round in 0..3 {
        if round == 2 {
            emu.settle(&name).await;
            for region in REGIONS {
                emu.pause_into(&name, region, true).await;
            }
        }
        let writes: Vec<(&String, &str)> = keys
            .iter()
            .flat_map(|k| REGIONS.iter().map(move |r| (k, *r)))
            .collect();
        stream::iter(writes)
            .for_each_concurrent(24, |(key, region)| {
                let (emu, name, last_round) = (&emu, &name, &last_round);
                async move {
                    let (_, etag) = emu
                        .put(name, region, key, body_of(key, region, round))
                        .await;
                    if round == 2 {
                        let mut last = last_round.lock().unwrap();
                        last.entry(key.clone()).or_default().push(etag);
                    }
                }
            })
            .await;
    }
    let before = emu.settle(&name).await;
    for region in REGIONS {
        emu.pause_into(&name, region, false).await;
    }
    // Every region holds its own last write of every key: all 50 differ.
    let diverged = keys
        .iter()
        .filter(|k| before.iter().any(|l| l.get(*k) != before[0].get(*k)))
        .count();
    assert_eq!(diverged, 50, "keys that differ between regions before sync");

    let (report, code) = emu.sync(&name, &["--concurrency", "8"]);
    assert_eq!(code, Some(0), "{report}");
    assert!(report.failures.is_empty(), "{report}");
    assert_eq!(report.keys_scanned, 50, "{report}");
    assert_eq!(report.keys_examined, 50, "{report}");
    // Each key's winner is copied into the two regions that lost.
    assert_eq!(report.copies_made, 100, "{report}");
    let after = emu.settle(&name).await;
    assert_converged(&after, 50);
    // Every region holds one of the final round's writes, byte for byte.
    let last_round = last_round.into_inner().unwrap();
    for key in &keys {
        assert!(
            last_round[key].contains(&after[0][key]),
            "{key} is not a last-round write"
        );
    }

    let (again, code) = emu.sync(&name, &[]);
    assert_eq!(code, Some(0));
    assert_eq!(again.copies_made, 0, "{again}");
    assert_eq!(again.keys_examined, 0, "{again}");

    cleanup.teardown();
}

/// The Lambda SNS event S3 → SNS delivers (the shape AWS dead-letters),
/// from set `name`'s topic in the first record's region, for `records`
/// (region, bucket, key, version id).
pub fn sns_event(name: &str, records: &[(&str, &str, &str, &str)]) -> Value {
    let topic = events::topic_arn(records[0].0, name);
    let records = records
        .iter()
        .map(|(region, bucket, key, version)| {
            S3Record::new(region, bucket, key)
                .version_id(version)
                .json()
        })
        .collect();
    events::sns_event(&topic, records)
}

/// The bodies of every message in a queue (received, then released).
/// The bodies in a queue, once `expected` of them are visible (or as many
/// as there are when the wait gives up): a busy emulator makes a message
/// visible again some time after it is released.
async fn queue_bodies(emu: &Emu, region: &str, url: &str, expected: usize) -> Vec<String> {
    let sqs = emu.sqs(region);
    let look = || async {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("ReceiveMessage");
        let mut bodies: Vec<String> = out
            .messages()
            .iter()
            .map(|m| m.body().unwrap_or_default().to_owned())
            .collect();
        bodies.sort();
        bodies
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let bodies = look().await;
        if bodies.len() >= expected || std::time::Instant::now() > deadline {
            return bodies;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_deletes_only_messages_whose_records_all_succeeded() {
    let emu = Emu::shared();
    let name = unique_name("replay");
    let cleanup = emu.cleanup(&name);
    emu.deploy(&name);
    let source = "us-east-1";
    let destination = "eu-west-2";
    let source_bucket = harness::data_bucket(&name, source);

    // A good object whose replica in eu-west-2 is then lost...
    let good_body = body_of("good", source, 0);
    let (good_version, _) = emu
        .put(&name, source, "replay/good", good_body.clone())
        .await;
    emu.settle(&name).await;
    toastrep::aws::buckets::purge_prefix(
        &emu.s3(destination),
        &harness::data_bucket(&name, destination),
        "replay/good",
    )
    .await
    .unwrap();
    // ...and one naming a bucket outside the set, as anyone who can send to
    // the queue could forge: replay must refuse it, whatever it holds.
    let foreign_bucket = format!("not-{}", harness::data_bucket(&name, source));
    let bad_version = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY".to_owned();

    // Three dead letters in eu-west-2's queue: the good record in AWS's
    // shape; the good and the bad one in the emulator's wrapper; garbage.
    let sqs = emu.sqs(destination);
    let url = emu.dlq_url(&name, destination).await;
    let good = sns_event(
        &name,
        &[(source, &source_bucket, "replay/good", &good_version)],
    );
    // The set's own bucket, but sent as if from a topic outside the set.
    let mut forged = good.clone();
    forged["Records"][0]["Sns"]["TopicArn"] = json!(format!(
        "arn:aws:sns:{source}:{ACCOUNT}:someone-elses-topic"
    ));
    let mixed = json!({
        "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": sns_event(&name, &[
            (source, &source_bucket, "replay/good", &good_version),
            (source, &foreign_bucket, "replay/bad", &bad_version),
        ]),
        "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
        "responsePayload": {"errorType": "ReplicationFailed"},
    });
    for body in [
        good.to_string(),
        mixed.to_string(),
        forged.to_string(),
        "not an event".to_owned(),
    ] {
        sqs.send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let sent = queue_bodies(&emu, destination, &url, 4).await;
    assert_eq!(sent.len(), 4);
    let good_in_destination = || async {
        emu.s3(destination)
            .get_object()
            .bucket(harness::data_bucket(&name, destination))
            .key("replay/good")
            .send()
            .await
            .ok()
    };
    assert!(good_in_destination().await.is_none());

    // A dry run parses and reports, and neither copies nor deletes.
    let out = emu.toastrep(&[
        "replay",
        "--name",
        &name,
        "--region",
        destination,
        "--dry-run",
        "--output",
        "json",
    ]);
    let dry = parse::<ReplayResult>(&out);
    assert_eq!(out.status.code(), Some(1), "{dry}");
    assert_eq!(dry.replayed, 2, "{dry}");
    assert_eq!(dry.unparseable, 1, "{dry}");
    assert_eq!(dry.refused, 1, "{dry}");
    assert_eq!(queue_bodies(&emu, destination, &url, 4).await, sent);
    assert!(good_in_destination().await.is_none());

    // The real replay: the good message is replayed and deleted; the mixed
    // one still fails and stays (its good record was copied all the same);
    // the forged one is refused untouched; the garbage stays, with the reason.
    let out = emu.toastrep(&["replay", "--name", &name, "--output", "json"]);
    let result = parse::<ReplayResult>(&out);
    assert_eq!(out.status.code(), Some(1), "{result}");
    assert_eq!(result.replayed, 1, "{result}");
    assert_eq!(result.failing, 1, "{result}");
    assert_eq!(result.unparseable, 1, "{result}");
    assert_eq!(result.refused, 1, "{result}");
    let eu = result
        .regions
        .iter()
        .find(|r| r.region == destination)
        .unwrap();
    let reasons: Vec<&str> = eu.left.iter().map(|l| l.reason.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("not a bucket of set")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("not JSON")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("someone-elses-topic")),
        "{reasons:?}"
    );
    let left = queue_bodies(&emu, destination, &url, 3).await;
    let mut expected = vec![
        mixed.to_string(),
        forged.to_string(),
        "not an event".to_owned(),
    ];
    expected.sort();
    assert_eq!(left, expected);
    let replica = good_in_destination()
        .await
        .expect("the good object was replayed");
    assert_eq!(
        replica.body.collect().await.unwrap().into_bytes().as_ref(),
        good_body.as_slice()
    );

    cleanup.teardown();
}
