//! Deletes in a deployed set: carried to every region when the set carries
//! them, never over a write that raced them, never for a delete of one
//! version; kept where they were made otherwise, and never brought back by
//! sync. Noncurrent versions expire by the deployed lifecycle rule, and
//! `restore` brings a prefix back to a past time.

use std::time::SystemTime;

use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use futures::future::join_all;
use serde::de::DeserializeOwned;
use serde_json::Value;
use toastrep::model::function::{SettingChange, Source};
use toastrep::ops::deletes::DeletesResult;
use toastrep::ops::health::StatusResult;
use toastrep::ops::preview::PlanResult;
use toastrep::ops::replay::ReplayResult;
use toastrep::ops::restore::RestoreResult;
use toastrep::ops::rollout::DeployResult;
use toastrep::ops::sync::SyncReport;

use testkit::events::S3Record;

use crate::harness::{self, Json, eventually, parse, s3, toastrep};
use crate::replicator::{Set, THREE, WAIT, fields, put_decorated, sns_event};
use crate::sync::Emu;

/// DeleteObject without a version id: the delete marker's version id.
async fn delete(set: &Set, region: &str, key: &str) -> String {
    s3(region)
        .delete_object()
        .bucket(set.bucket(region))
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DeleteObject {key:?} in {region}: {e:?}"))
        .version_id()
        .expect("a versioned bucket names the delete marker")
        .to_owned()
}

/// Whether `key`'s current version in `region` is a delete marker.
async fn is_deleted(set: &Set, region: &str, key: &str) -> bool {
    let page = s3(region)
        .list_object_versions()
        .bucket(set.bucket(region))
        .prefix(key)
        .send()
        .await
        .expect("ListObjectVersions");
    page.delete_markers()
        .iter()
        .any(|m| m.key() == Some(key) && m.is_latest() == Some(true))
}

async fn wait_deleted_everywhere(set: &Set, key: &str) {
    for region in &set.regions {
        eventually(&format!("{key:?} deleted in {region}"), WAIT, || async {
            is_deleted(set, region, key).await.then_some(())
        })
        .await;
    }
}

/// The SNS event of an `ObjectRemoved:*` notification from `region`.
fn removal_event(set: &Set, region: &str, key: &str, version_id: &str, name: &str) -> Value {
    sns_event(vec![
        removal_record(set, region, key, version_id, name).json(),
    ])
}

/// The S3 record of an `ObjectRemoved:*` notification from `region`.
fn removal_record(set: &Set, region: &str, key: &str, version_id: &str, name: &str) -> S3Record {
    S3Record::new(region, &set.bucket(region), key)
        .event_name(name)
        .version_id(version_id)
        .sequencer("0055AED6DCD90281E6")
}

/// Delivers `event` to every region's function, as SNS would, and returns
/// each answer after checking it did not fail.
async fn deliver_everywhere(set: &Set, event: &Value) -> Vec<Value> {
    let mut payloads = Vec::new();
    for region in &set.regions {
        let (error, payload) = set.invoke(region, event).await;
        assert_eq!(error, None, "{region}: {payload}");
        payloads.push(payload);
    }
    payloads
}

/// `toastrep` with `args` on the shared emulator, which must succeed: its result.
fn toastrep_json<T: DeserializeOwned>(args: &[&str]) -> Json<T> {
    let (result, code) = harness::run_json(args);
    assert_eq!(code, Some(0), "toastrep {args:?}: {result}");
    result
}

#[tokio::test(flavor = "multi_thread")]
async fn deletes_reach_every_region_racing_writes_survive_and_version_deletes_stay_local() {
    let set = Set::deploy("del-on", &THREE, &["--replicate-deletes"]);

    // A delete in one region reaches every region, and removes no version.
    set.put("us-east-1", "gone", b"one").await;
    set.wait_everywhere("gone", b"one").await;
    delete(&set, "eu-west-2", "gone").await;
    wait_deleted_everywhere(&set, "gone").await;
    for region in THREE {
        assert_eq!(set.versions(region, "gone").await.len(), 1, "{region}");
    }

    // A write that raced a delete survives everywhere, the deleting region
    // included. The write is a second later than the one deleted, so it
    // wins over it; the delete went first, so it did not see the write.
    set.put("us-east-1", "raced", b"first").await;
    set.wait_everywhere("raced", b"first").await;
    set.wait_past_last_write("raced").await;
    let marker = delete(&set, "eu-west-2", "raced").await;
    set.put("ap-northeast-1", "raced", b"second").await;
    set.wait_everywhere("raced", b"second").await;
    // However late the delete's notice comes, it deletes nothing now.
    let late = removal_event(
        &set,
        "eu-west-2",
        "raced",
        &marker,
        "ObjectRemoved:DeleteMarkerCreated",
    );
    for payload in deliver_everywhere(&set, &late).await {
        assert_eq!(payload["deleted"], 0, "{payload}");
    }
    for region in THREE {
        assert_eq!(
            set.body(region, "raced").await.as_deref(),
            Some(&b"second"[..])
        );
    }

    // A delete of one version stays where it was made: every function,
    // given its notice, deletes nothing, and sync puts the write back.
    set.put("us-east-1", "kept", b"kept").await;
    set.wait_everywhere("kept", b"kept").await;
    let copy = set.versions("ap-northeast-1", "kept").await.remove(0);
    s3("ap-northeast-1")
        .delete_object()
        .bucket(set.bucket("ap-northeast-1"))
        .key("kept")
        .version_id(&copy.version_id)
        .send()
        .await
        .expect("DeleteObject of one version");
    let removed = removal_event(
        &set,
        "ap-northeast-1",
        "kept",
        &copy.version_id,
        "ObjectRemoved:Delete",
    );
    for payload in deliver_everywhere(&set, &removed).await {
        assert_eq!(payload["deleted"], 0, "{payload}");
    }
    for region in ["us-east-1", "eu-west-2"] {
        assert!(!is_deleted(&set, region, "kept").await, "{region}");
        assert_eq!(
            set.body(region, "kept").await.as_deref(),
            Some(&b"kept"[..])
        );
    }
    let sync: Json<SyncReport> = toastrep_json(&["sync", "--name", &set.name]);
    assert_eq!(sync.copies_made, 1, "{sync}");
    assert_eq!(sync.deletes_made, 0, "{sync}");
    set.wait_everywhere("kept", b"kept").await;

    // A delete nobody heard of (eu-west-2's bucket sent no events while it
    // was made) is carried by sync, which plans it first.
    set.put("us-east-1", "missed", b"missed").await;
    set.wait_everywhere("missed", b"missed").await;
    let eu = s3("eu-west-2");
    let config = eu
        .get_bucket_notification_configuration()
        .bucket(set.bucket("eu-west-2"))
        .send()
        .await
        .expect("GetBucketNotificationConfiguration");
    let notify = |topics: Vec<aws_sdk_s3::types::TopicConfiguration>| {
        eu.put_bucket_notification_configuration()
            .bucket(set.bucket("eu-west-2"))
            .notification_configuration(
                aws_sdk_s3::types::NotificationConfiguration::builder()
                    .set_topic_configurations(Some(topics))
                    .build(),
            )
            .send()
    };
    notify(Vec::new()).await.expect("no notifications");
    delete(&set, "eu-west-2", "missed").await;
    // Notifications stay off until sync has run: the emulator sends an
    // event after the request returns, so one switched back on at once can
    // still announce the delete and race sync to it.
    let dry: Json<SyncReport> = toastrep_json(&["sync", "--name", &set.name, "--dry-run"]);
    assert_eq!(dry.deletes_planned, 2, "{dry}");
    assert_eq!(dry.copies_planned, 0, "{dry}");
    for region in ["us-east-1", "ap-northeast-1"] {
        assert!(!is_deleted(&set, region, "missed").await, "{region}");
    }
    let sync: Json<SyncReport> = toastrep_json(&["sync", "--name", &set.name]);
    // Sync carries it into both; the first one it makes is announced, and
    // the other region's function may carry that one before sync's second
    // lands (then sync finds it done). Either way, no failure, and deleted
    // everywhere.
    let made = sync.deletes_made;
    assert!((1..=2).contains(&made), "{sync}");
    assert!(sync.ok, "{sync}");
    wait_deleted_everywhere(&set, "missed").await;
    notify(config.topic_configurations().to_vec())
        .await
        .expect("notifications again");
}

/// The deployed noncurrent-version expiry of `region`'s bucket, in days;
/// `None` without one.
async fn noncurrent_days(set: &Set, region: &str) -> Option<i32> {
    let rules = s3(region)
        .get_bucket_lifecycle_configuration()
        .bucket(set.bucket(region))
        .send()
        .await
        .expect("GetBucketLifecycleConfiguration")
        .rules
        .unwrap_or_default();
    let rule = rules
        .iter()
        .find(|r| r.id() == Some("expire-noncurrent-versions"))?;
    assert_eq!(
        rule.expiration()
            .and_then(|e| e.expired_object_delete_marker()),
        Some(true),
        "expired delete markers are cleaned up: {rule:?}"
    );
    rule.noncurrent_version_expiration()
        .and_then(|e| e.noncurrent_days())
}

#[tokio::test(flavor = "multi_thread")]
async fn deletes_stay_local_until_switched_on_and_old_versions_expire_by_rule() {
    let set = Set::deploy("del-off", &THREE, &[]);
    let regions = THREE.join(",");
    let zip = harness::lambda_zip();
    let zip = zip.to_str().unwrap();
    for region in THREE {
        assert_eq!(noncurrent_days(&set, region).await, Some(30), "{region}");
        // The breaker's per-delete counts expire from the artifact bucket.
        let rules = s3(region)
            .get_bucket_lifecycle_configuration()
            .bucket(harness::artifact_bucket(&set.name, region))
            .send()
            .await
            .expect("the artifact bucket's lifecycle rules")
            .rules
            .unwrap_or_default();
        assert!(
            rules.iter().any(|r| r.id() == Some("expire-delete-counts")),
            "{rules:?}"
        );
    }
    let status: Json<StatusResult> = toastrep_json(&["status", "--name", &set.name]);
    assert_eq!(
        status.deletes.as_ref().map(|d| d.replicated),
        Some(false),
        "{status}"
    );

    // Off: a delete stays in its region, whatever the functions are told.
    set.put("us-east-1", "local", b"x").await;
    set.wait_everywhere("local", b"x").await;
    let marker = delete(&set, "eu-west-2", "local").await;
    let event = removal_event(
        &set,
        "eu-west-2",
        "local",
        &marker,
        "ObjectRemoved:DeleteMarkerCreated",
    );
    for payload in deliver_everywhere(&set, &event).await {
        assert_eq!(payload["deleted"], 0, "{payload}");
    }
    // Sync does not bring it back, and says the key differs only by it.
    let sync: Json<SyncReport> = toastrep_json(&["sync", "--name", &set.name]);
    assert_eq!(sync.copies_made, 0, "{sync}");
    assert_eq!(sync.deletes_made, 0, "{sync}");
    assert_eq!(sync.keys_differing_by_delete, 1, "{sync}");
    assert!(is_deleted(&set, "eu-west-2", "local").await);
    for region in ["us-east-1", "ap-northeast-1"] {
        assert_eq!(set.body(region, "local").await.as_deref(), Some(&b"x"[..]));
    }

    // Switched on, with a shorter expiry: plan shows it, then deploy.
    let switch = [
        "--name",
        &set.name,
        "--regions",
        &regions,
        "--lambda-zip",
        zip,
        "--replicate-deletes",
        "on",
        "--keep-noncurrent-days",
        "7",
    ];
    let plan: Json<PlanResult> = toastrep_json(&[&["plan"][..], &switch].concat());
    let change = |setting: &str, deployed: &str, planned: &str| SettingChange {
        setting: setting.into(),
        deployed: deployed.into(),
        planned: planned.into(),
        source: Source::Flag,
    };
    assert_eq!(
        plan.setting_changes,
        [
            change("keep-noncurrent-days", "30", "7"),
            change("replicate-deletes", "false", "true"),
        ],
        "{plan}"
    );
    assert!(plan.settings.replicate_deletes, "{plan}");
    assert_eq!(plan.settings.keep_noncurrent_days, 7, "{plan}");
    toastrep_json::<DeployResult>(&[&["deploy"][..], &switch].concat());
    // Healthy once the functions have taken their new configuration.
    let status = eventually("a healthy set", WAIT, || async {
        let out = toastrep(&["status", "--name", &set.name, "--output", "json"]);
        out.status.success().then(|| parse::<StatusResult>(&out))
    })
    .await;
    assert_eq!(
        status.deletes.as_ref().map(|d| d.replicated),
        Some(true),
        "{status}"
    );
    assert_eq!(
        status.deletes.as_ref().map(|d| d.keep_noncurrent_days),
        Some(7),
        "{status}"
    );
    for region in THREE {
        assert_eq!(noncurrent_days(&set, region).await, Some(7), "{region}");
    }
    // A deploy that leaves the flags out keeps them.
    let plan: Json<PlanResult> = toastrep_json(&[
        "plan",
        "--name",
        &set.name,
        "--regions",
        &regions,
        "--lambda-zip",
        zip,
    ]);
    assert!(plan.settings.replicate_deletes, "{plan}");
    assert!(plan.setting_changes.is_empty(), "{plan}");
    assert!(!plan.changes, "{plan}");

    // Now the delete kept before is carried: by sync, or by the function if
    // the delete's own notice is only now delivered (the emulator's delivery
    // may lag a busy machine). Sync carrying a missed delete is shown,
    // deterministically, in the test before.
    let sync: Json<SyncReport> = toastrep_json(&["sync", "--name", &set.name]);
    assert_eq!(sync.copies_made, 0, "{sync}");
    wait_deleted_everywhere(&set, "local").await;

    // 0 keeps every version: no expiry rule.
    toastrep_json::<DeployResult>(&[
        "deploy",
        "--name",
        &set.name,
        "--regions",
        &regions,
        "--lambda-zip",
        zip,
        "--keep-noncurrent-days",
        "0",
    ]);
    for region in THREE {
        assert_eq!(noncurrent_days(&set, region).await, None, "{region}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_brings_a_prefix_back_in_every_region_and_refuses_bad_input() {
    let set = Set::deploy("del-rst", &THREE, &["--replicate-deletes"]);
    let keys: Vec<String> = (0..3).map(|i| format!("docs/{i}.csv")).collect();
    for (key, region) in keys.iter().zip(THREE) {
        let body = format!("id,region\n1,{region}\n").into_bytes();
        put_decorated(&set, region, key, body.clone()).await;
        set.wait_everywhere(key, &body).await;
    }
    let before = join_all(keys.iter().map(|key| fields(&set, "us-east-1", key))).await;
    let bodies = join_all(keys.iter().map(|key| set.body("us-east-1", key))).await;

    // The time restored to: after every write above (whole seconds), and
    // before every change below.
    set.wait_past_last_write("docs/").await;
    let at = DateTime::from(SystemTime::now());
    testkit::wait_past(at.secs()).await;
    let at = at.fmt(DateTimeFormat::DateTime).unwrap();
    // Overwritten, then the whole prefix deleted in every region.
    set.put("eu-west-2", &keys[0], b"overwritten").await;
    set.wait_everywhere(&keys[0], b"overwritten").await;
    delete(&set, "eu-west-2", &keys[0]).await;
    delete(&set, "us-east-1", &keys[1]).await;
    delete(&set, "ap-northeast-1", &keys[2]).await;
    for key in &keys {
        wait_deleted_everywhere(&set, key).await;
    }
    set.put("us-east-1", "docs/new.txt", b"made after").await;
    set.wait_everywhere("docs/new.txt", b"made after").await;

    // Bad input: exit 2, a message naming the fix, nothing changed.
    let counts = set.version_counts("docs/").await;
    let restore = |prefix: &str, at: &str| {
        toastrep(&[
            "restore", "--name", &set.name, "--prefix", prefix, "--at", at,
        ])
    };
    for (out, says) in [
        (restore("docs/", "2999-01-01T00:00:00Z"), "in the future"),
        (restore("docs/", "yesterday"), "RFC 3339"),
        (restore("nothing-here/", &at), "check the prefix"),
    ] {
        assert_eq!(out.status.code(), Some(2), "{}", harness::stderr(&out));
        assert!(
            harness::stderr(&out).contains(says),
            "{}",
            harness::stderr(&out)
        );
    }
    assert_eq!(set.version_counts("docs/").await, counts);

    // A dry run plans the three keys, leaves the newer one, changes nothing.
    let dry: Json<RestoreResult> = toastrep_json(&[
        "restore",
        "--name",
        &set.name,
        "--prefix",
        "docs/",
        "--at",
        &at,
        "--dry-run",
    ]);
    assert_eq!(dry.restored.len(), 3, "{dry}");
    assert_eq!(dry.none_then, 1, "{dry}");
    assert_eq!(set.version_counts("docs/").await, counts);

    // Every region gets back each object as it was: bytes, headers,
    // metadata and tags. The key made later is left.
    let done: Json<RestoreResult> = toastrep_json(&[
        "restore", "--name", &set.name, "--prefix", "docs/", "--at", &at,
    ]);
    assert_eq!(done.restored.len(), 3, "{done}");
    for ((key, fields_then), body) in keys.iter().zip(&before).zip(&bodies) {
        for region in THREE {
            assert_eq!(
                &fields(&set, region, key).await,
                fields_then,
                "{key} in {region}"
            );
            assert_eq!(&set.body(region, key).await, body, "{key} in {region}");
        }
    }
    set.wait_everywhere("docs/new.txt", b"made after").await;
    // Nothing was deleted: every version is still there, and more.
    for (region, count) in set.version_counts("docs/").await {
        assert!(count > counts[region], "{region}");
    }
    // Restored once, there is nothing left to restore.
    let again: Json<RestoreResult> = toastrep_json(&[
        "restore", "--name", &set.name, "--prefix", "docs/", "--at", &at,
    ]);
    assert_eq!(again.restored.len(), 0, "{again}");
    assert_eq!(again.unchanged, 3, "{again}");

    // A bucket that keeps no versions is refused before anything is done.
    s3("ap-northeast-1")
        .put_bucket_versioning()
        .bucket(set.bucket("ap-northeast-1"))
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .expect("PutBucketVersioning");
    let counts = set.version_counts("docs/").await;
    let out = restore("docs/", &at);
    assert_eq!(out.status.code(), Some(2), "{}", harness::stderr(&out));
    assert!(
        harness::stderr(&out).contains("versioning"),
        "{}",
        harness::stderr(&out)
    );
    assert_eq!(set.version_counts("docs/").await, counts);
}

/// How many of `keys` are deleted, over `regions`.
async fn count_deleted(set: &Set, regions: &[&str], keys: &[String]) -> u64 {
    let mut deleted = 0;
    for region in regions {
        for key in keys {
            deleted += u64::from(is_deleted(set, region, key).await);
        }
    }
    deleted
}

/// Regions whose delete breaker is open, and the deletes each holds, as
/// `status` reports them.
fn breakers(status: &StatusResult) -> Vec<(String, u64)> {
    status
        .regions
        .iter()
        .filter_map(|r| {
            let breaker = r.delete_breaker.as_ref().unwrap();
            (!breaker.open_for.is_empty()).then(|| (r.region.to_string(), breaker.held))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_deletes_opens_the_breaker_while_writes_replicate_and_release_or_discard_ends_it()
 {
    let set = Set::deploy(
        "del-brk",
        &THREE,
        &["--replicate-deletes", "--delete-breaker", "3"],
    );
    let burst: Vec<String> = (0..8).map(|i| format!("burst/{i}")).collect();
    set.put_keys_everywhere("us-east-1", &burst).await;

    // Eight deletes in us-east-1 within moments: past three a minute, the
    // other regions hold the rest (however the burst falls across minutes,
    // one minute sees more than three).
    for key in &burst {
        delete(&set, "us-east-1", key).await;
    }
    let others = ["eu-west-2", "ap-northeast-1"];
    let status = eventually("the breaker open in both other regions", WAIT, || async {
        let out = toastrep(&["status", "--name", &set.name, "--output", "json"]);
        let status = parse::<StatusResult>(&out);
        let open = breakers(&status);
        let settled = open.len() == 2 && open.iter().all(|(_, held)| *held > 0);
        let carried = count_deleted(&set, &others, &burst).await;
        let held: u64 = open.iter().map(|(_, held)| held).sum();
        // Every delete is carried or held (or both: on the emulator, whose
        // events do not name the writer, a region's carried deletes echo to
        // the others, where a held one may be carried that way).
        (settled && carried + held >= 16 && out.status.code() == Some(1)).then_some(status)
    })
    .await;
    for region in &status.regions {
        if others.contains(&region.region.as_str()) {
            assert_eq!(
                region
                    .delete_breaker
                    .as_ref()
                    .and_then(|b| b.alarm.as_deref()),
                Some("ALARM"),
                "{region:?}"
            );
        }
    }

    // Writes replicate throughout, from every region.
    set.put("us-east-1", "after/one", b"still").await;
    set.put("eu-west-2", "after/two", b"still").await;
    set.wait_everywhere("after/one", b"still").await;
    set.wait_everywhere("after/two", b"still").await;

    // A look, and a release without --yes, change nothing.
    let look: Json<DeletesResult> = toastrep_json(&["deletes", "--name", &set.name]);
    let held_keys =
        |report: &DeletesResult| -> usize { report.regions.iter().map(|r| r.held.len()).sum() };
    let held = held_keys(&look);
    assert!(held > 0, "{look}");
    let dry: Json<DeletesResult> = toastrep_json(&["deletes", "--name", &set.name, "--release"]);
    assert!(!dry.done, "{dry}");
    // (More may be held by now: deliveries and echoes still come in.)
    assert!(held_keys(&dry) >= held, "{dry}");

    // Released, the held deletes are carried, and the breakers close. (On
    // the emulator, whose events do not name the writer, a region's carried
    // deletes echo to the others, which may hold them too: they are
    // released with the rest.)
    let released: Json<DeletesResult> =
        toastrep_json(&["deletes", "--name", &set.name, "--release", "--yes"]);
    assert!(held_keys(&released) >= held, "{released}");
    for key in &burst {
        wait_deleted_everywhere(&set, key).await;
    }
    let status: Json<StatusResult> = toastrep_json(&["status", "--name", &set.name]);
    assert!(breakers(&status).is_empty(), "{status}");

    // A second burst, discarded: the keys come back where they were
    // deleted, and every region holds them.
    let second: Vec<String> = (0..6).map(|i| format!("second/{i}")).collect();
    set.put_keys_everywhere("eu-west-2", &second).await;
    for key in &second {
        delete(&set, "ap-northeast-1", key).await;
    }
    eventually("the breaker open again", WAIT, || async {
        let out = toastrep(&["status", "--name", &set.name, "--output", "json"]);
        (breakers(&parse(&out)).len() == 2).then_some(())
    })
    .await;
    // Deletes still in flight to the function are held too; the discard
    // runs once they are all counted.
    eventually("every delete of the burst counted", WAIT, || async {
        let carried = count_deleted(&set, &["us-east-1", "eu-west-2"], &second).await;
        let out = toastrep(&["status", "--name", &set.name, "--output", "json"]);
        let held: u64 = breakers(&parse(&out)).iter().map(|(_, h)| h).sum();
        (carried + held >= 12).then_some(())
    })
    .await;
    let discarded: Json<DeletesResult> =
        toastrep_json(&["deletes", "--name", &set.name, "--discard", "--yes"]);
    let undone: std::collections::BTreeSet<&str> = discarded
        .regions
        .iter()
        .flat_map(|r| &r.held)
        .map(|h| h.key.as_str())
        .collect();
    assert!(!undone.is_empty(), "{discarded}");
    // A key whose delete was held anywhere is back everywhere, the region
    // that deleted it included; one carried everywhere before the breaker
    // opened stays deleted (`restore --at` brings those back).
    for key in &second {
        if undone.contains(key.as_str()) {
            set.wait_everywhere(key, key.as_bytes()).await;
        } else {
            wait_deleted_everywhere(&set, key).await;
        }
    }
    let status: Json<StatusResult> = toastrep_json(&["status", "--name", &set.name]);
    assert!(breakers(&status).is_empty(), "{status}");
}

/// Switches `region`'s bucket notifications off: what is written there
/// from now on announces nothing.
pub(crate) async fn notifications_off(set: &Set, region: &str) {
    s3(region)
        .put_bucket_notification_configuration()
        .bucket(set.bucket(region))
        .notification_configuration(aws_sdk_s3::types::NotificationConfiguration::builder().build())
        .send()
        .await
        .expect("PutBucketNotificationConfiguration");
}

/// The deletes `region`'s breaker holds, as `status` reports them; `None`
/// while its breaker is closed.
fn held_in(status: &StatusResult, region: &str) -> Option<u64> {
    breakers(status)
        .into_iter()
        .find(|(r, _)| r == region)
        .map(|(_, held)| held)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_burst_stays_held_through_sync_deep_sync_and_the_cloud_repair() {
    let set = Set::deploy(
        "held-brk",
        &["us-east-1", "eu-west-2"],
        &["--replicate-deletes", "--delete-breaker", "5"],
    );
    let keys: Vec<String> = (0..50).map(|i| format!("held/{i:02}")).collect();
    set.put_keys_everywhere("us-east-1", &keys).await;
    for key in &keys {
        delete(&set, "us-east-1", key).await;
    }
    // Past five a minute, eu-west-2 holds the rest of the burst.
    eventually(
        "every delete of the burst carried or held",
        WAIT,
        || async {
            let status = parse::<StatusResult>(&toastrep(&[
                "status", "--name", &set.name, "--output", "json",
            ]));
            let held = held_in(&status, "eu-west-2")?;
            let carried = count_deleted(&set, &["eu-west-2"], &keys).await;
            (held + carried >= 50).then_some(())
        },
    )
    .await;
    let mut current = Vec::new();
    for key in &keys {
        if !is_deleted(&set, "eu-west-2", key).await {
            current.push(key.clone());
        }
    }
    assert!(current.len() >= 30, "only {} of 50 held", current.len());

    // No repair carries what the breaker holds: each reports them held.
    for extra in [&[][..], &["--deep"], &["--in-cloud", "--deep"]] {
        let mut args = vec!["sync", "--name", set.name.as_str()];
        args.extend_from_slice(extra);
        let report: Json<SyncReport> = toastrep_json(&args);
        assert_eq!(report.deletes_made, 0, "sync {extra:?}: {report}");
        assert_eq!(
            report.deletes_held,
            current.len() as u64,
            "sync {extra:?}: {report}"
        );
        assert_eq!(
            count_deleted(&set, &["eu-west-2"], &current).await,
            0,
            "sync {extra:?} carried a held delete: {report}"
        );
    }

    // The operator decides: released, they are carried, and sync then
    // finds nothing held.
    toastrep_json::<DeletesResult>(&["deletes", "--name", &set.name, "--release", "--yes"]);
    for key in &current {
        wait_deleted_everywhere(&set, key).await;
    }
    let report: Json<SyncReport> = toastrep_json(&["sync", "--name", &set.name]);
    assert_eq!(report.deletes_held, 0, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn deletes_from_a_session_named_like_the_function_are_counted() {
    let set = Set::deploy(
        "brk-name",
        &["us-east-1", "eu-west-2"],
        &["--replicate-deletes", "--delete-breaker", "2"],
    );
    let keys: Vec<String> = (0..6).map(|i| format!("named/{i}")).collect();
    set.put_keys_everywhere("us-east-1", &keys).await;
    // The deletes announce nothing by themselves: eu-west-2 hears of them
    // only from the events below, whose writer is any role's session that
    // took the function's name.
    notifications_off(&set, "us-east-1").await;
    let session = format!("AWS:AROAEXAMPLEOTHERROLE:{}", set.function());
    for key in &keys {
        let marker = delete(&set, "us-east-1", key).await;
        let record = removal_record(
            &set,
            "us-east-1",
            key,
            &marker,
            "ObjectRemoved:DeleteMarkerCreated",
        )
        .principal(&session);
        let (error, payload) = set
            .invoke("eu-west-2", &sns_event(vec![record.json()]))
            .await;
        assert_eq!(error, None, "{payload}");
    }
    // Counted like any other: past two a minute, the breaker holds the rest.
    let status = parse::<StatusResult>(&toastrep(&[
        "status", "--name", &set.name, "--output", "json",
    ]));
    let held = held_in(&status, "eu-west-2").unwrap_or(0);
    let carried = count_deleted(&set, &["eu-west-2"], &keys).await;
    assert!(
        held >= 2 && carried <= 4,
        "held {held}, carried {carried}: {status}"
    );
    assert_eq!(held + carried, 6, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_delete_the_function_did_not_write_is_never_released() {
    let set = Set::deploy(
        "brk-seal",
        &["us-east-1", "eu-west-2"],
        &["--replicate-deletes"],
    );
    let key = "victim".to_owned();
    set.put_keys_everywhere("us-east-1", std::slice::from_ref(&key))
        .await;
    // A real delete in us-east-1 that nobody hears of, and a message in
    // eu-west-2's held-deletes queue that claims the breaker held it: put
    // there by someone allowed to send to the queue, not by the function.
    notifications_off(&set, "us-east-1").await;
    let marker = delete(&set, "us-east-1", &key).await;
    let record = removal_record(
        &set,
        "us-east-1",
        &key,
        &marker,
        "ObjectRemoved:DeleteMarkerCreated",
    );
    let body = serde_json::json!({ "Records": [record.json()] }).to_string();
    let url = Emu::shared().held_deletes_url(&set.name, "eu-west-2").await;
    harness::sqs("eu-west-2")
        .send_message()
        .queue_url(&url)
        .message_body(body)
        .send()
        .await
        .expect("SendMessage");

    let (released, code) = Emu::shared().toastrep_json::<DeletesResult>(&[
        "deletes",
        "--name",
        &set.name,
        "--release",
        "--yes",
    ]);
    assert_eq!(code, Some(1), "{released}");
    let refused = &released.refused;
    assert_eq!(refused.len(), 1, "{released}");
    assert!(
        refused[0].contains("not written by the set's function"),
        "{released}"
    );
    assert!(!is_deleted(&set, "eu-west-2", &key).await, "{released}");
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_gives_a_dead_lettered_delete_back_to_the_function() {
    let set = Set::deploy(
        "rp-del",
        &["us-east-1", "eu-west-2"],
        &["--replicate-deletes"],
    );
    let key = "gone".to_owned();
    set.put_keys_everywhere("us-east-1", std::slice::from_ref(&key))
        .await;
    // A delete whose delivery to eu-west-2 failed and was dead-lettered.
    notifications_off(&set, "us-east-1").await;
    let marker = delete(&set, "us-east-1", &key).await;
    let record = removal_record(
        &set,
        "us-east-1",
        &key,
        &marker,
        "ObjectRemoved:DeleteMarkerCreated",
    );
    let event = testkit::events::sns_event(
        &testkit::events::topic_arn("us-east-1", &set.name),
        vec![record.json()],
    );
    let url = Emu::shared().dlq_url(&set.name, "eu-west-2").await;
    harness::sqs("eu-west-2")
        .send_message()
        .queue_url(&url)
        .message_body(event.to_string())
        .send()
        .await
        .expect("SendMessage");
    assert!(!is_deleted(&set, "eu-west-2", &key).await);

    // Replayed, the delete is carried (by the function, through its
    // breaker), not dropped with its message.
    let replayed: Json<ReplayResult> =
        toastrep_json(&["replay", "--name", &set.name, "--region", "eu-west-2"]);
    assert_eq!(replayed.replayed, 1, "{replayed}");
    assert!(is_deleted(&set, "eu-west-2", &key).await, "{replayed}");
}
