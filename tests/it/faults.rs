//! Nothing is lost under faults: with ~20% of the functions' S3 calls
//! failing, 300 uploads over three regions end up, after `replay` and
//! `sync`, in every region byte for byte.
//!
//! The faults come from `tools/faults`: a ministack of this test's own whose
//! functions reach S3 through a microburst proxy (the test and toastrep talk
//! to the emulator directly, so only the functions' calls are faulted).

use std::process::Command;
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{DeadLetterConfig, InvocationType};
use futures::{StreamExt, stream};
use serde_json::json;

use toastrep::ops::health::StatusResult;
use toastrep::ops::replay::ReplayResult;

use crate::harness::{REGIONS, data_bucket, parse, unique_name};
use crate::sync::{Emu, body_of, sns_event};

/// The rig of `tools/faults`, stopped when dropped (also when a test panics).
struct Rig {
    emulator: String,
    proxy: String,
    pids: String,
}

impl Rig {
    fn start() -> Rig {
        let root = env!("CARGO_MANIFEST_DIR");
        let out = Command::new(format!("{root}/tools/faults"))
            .arg("start")
            .output()
            .expect("tools/faults runs");
        assert!(
            out.status.success(),
            "tools/faults start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let exports = String::from_utf8(out.stdout).unwrap();
        let value = |name: &str| {
            exports
                .lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .unwrap_or_else(|| panic!("tools/faults printed no {name}: {exports}"))
                .to_owned()
        };
        Rig {
            emulator: value("TOASTREP_FAULTS_ENDPOINT"),
            proxy: value("TOASTREP_FAULTS_PROXY"),
            pids: value("TOASTREP_FAULTS_PIDS"),
        }
    }

    /// Replaces the proxy's fault rules.
    fn set_rules(&self, rules: serde_json::Value) {
        let out = Command::new("curl")
            .args(["-fsS", "-X", "POST", "-d", &rules.to_string()])
            .arg(format!("{}/_microburst/rules", self.proxy))
            .output()
            .expect("curl runs");
        assert!(out.status.success(), "setting rules: {out:?}");
    }

    /// How many requests the proxy faulted so far.
    fn faulted(&self) -> u64 {
        let out = Command::new("curl")
            .args(["-fsS", &format!("{}/_microburst/stats", self.proxy)])
            .output()
            .expect("curl runs");
        let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stats JSON");
        stats["requests"]["faulted"].as_u64().unwrap_or_default()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let root = env!("CARGO_MANIFEST_DIR");
        let _ = Command::new(format!("{root}/tools/faults"))
            .args(["stop", &self.pids])
            .status();
    }
}

/// A fifth of the functions' S3 calls answer 503 SlowDown, as S3 does under load.
fn twenty_percent_s3_faults() -> serde_json::Value {
    json!([{"service": "s3", "probability": 0.2, "error": {"code": "SlowDown", "status": 503}}])
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_lost_under_faults_after_replay_and_sync() {
    let rig = Rig::start();
    let emu = Emu::at(&rig.emulator);
    let name = unique_name("faults");
    emu.deploy(&name);

    // ministack drops a function's DeadLetterConfig on create (docs/emulator.md),
    // so the test sets the DLQ the template declares.
    for region in REGIONS {
        let sqs = emu.sqs(region);
        let url = emu.dlq_url(&name, region).await;
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .unwrap();
        emu.lambda(region)
            .update_function_configuration()
            .function_name(format!("toastrep-{name}-replicator"))
            .dead_letter_config(DeadLetterConfig::builder().target_arn(arn).build())
            .send()
            .await
            .expect("UpdateFunctionConfiguration");
    }
    rig.set_rules(twenty_percent_s3_faults());

    // Two ways events fail, as on AWS:
    // - ministack's own SNS → Lambda delivery makes one attempt and has no
    //   DLQ: a failed delivery is simply lost (what `sync` repairs);
    // - AWS's SNS invokes Lambda asynchronously: 2 retries, then the DLQ.
    //   ministack does that for Invoke(InvocationType=Event), so us-east-1's
    //   events are delivered that way by the test, with its subscriptions
    //   paused so each is delivered once (what `replay` repairs).
    for destination in ["eu-west-2", "ap-northeast-1"] {
        testkit::subscriptions::pause_delivery(&emu, &name, "us-east-1", destination, true).await;
    }
    let uploads: Vec<(String, &str)> = (0..300)
        .map(|i| {
            let region = REGIONS[i % REGIONS.len()];
            (format!("faults/{region}/{i:03}"), region)
        })
        .collect();
    let lambda_of = |r: &str| emu.lambda(r);
    stream::iter(&uploads)
        .for_each_concurrent(8, |(key, region)| {
            let (emu, name, lambda_of) = (&emu, &name, &lambda_of);
            async move {
                let (version, _) = emu.put(name, region, key, body_of(key, region, 0)).await;
                if *region != "us-east-1" {
                    return;
                }
                let bucket = data_bucket(name, region);
                let event = sns_event(name, &[(region, &bucket, key, &version)]);
                for destination in ["eu-west-2", "ap-northeast-1"] {
                    lambda_of(destination)
                        .invoke()
                        .function_name(format!("toastrep-{name}-replicator"))
                        .invocation_type(InvocationType::Event)
                        .payload(Blob::new(event.to_string()))
                        .send()
                        .await
                        .expect("Invoke");
                }
            }
        })
        .await;
    // Under this load the emulator cold-starts many function environments
    // and retries async invokes: wait for a longer quiet time.
    let before = emu.settle_for(&name, Duration::from_secs(4)).await;
    wait_for_dead_letters(&emu, &name).await;
    let lost_before: usize = before.iter().map(|l| 300 - l.len()).sum();
    let faulted = rig.faulted();

    // Replay the dead letters (toastrep talks to the emulator directly).
    let out = emu.toastrep(&["replay", "--name", &name, "--output", "json"]);
    let replay = parse::<ReplayResult>(&out);
    assert_eq!(out.status.code(), Some(0), "{replay}");
    let dead_lettered = replay.replayed;

    // A region that cannot be reached: toastrep through the proxy, with
    // every S3 call to ap-northeast-1 failing. It is named, and the others
    // are still repaired.
    rig.set_rules(
        json!([{"service": "s3", "region": "ap-northeast-1", "probability": 1.0,
        "error": {"code": "ServiceUnavailable", "status": 503}}]),
    );
    let partial = Emu::at(&rig.proxy);
    let (cut_off, code) = partial.sync(&name, &[]);
    assert_eq!(code, Some(1), "{cut_off}");
    assert_eq!(cut_off.unreachable.len(), 1, "{cut_off}");
    assert_eq!(cut_off.unreachable[0].region, "ap-northeast-1");
    // us-east-1 and eu-west-2 now hold every key either of them held (keys
    // only ap-northeast-1 holds must wait for it).
    let mid = emu.listings(&name).await;
    for (index, region) in [(0, "us-east-1"), (1, "eu-west-2")] {
        for key in before[0].keys().chain(before[1].keys()) {
            assert!(
                mid[index].contains_key(key),
                "{key} not repaired in {region}"
            );
        }
    }
    rig.set_rules(twenty_percent_s3_faults());

    // The full sync.
    let (report, code) = emu.sync(&name, &[]);
    assert_eq!(code, Some(0), "{report}");
    let repaired = cut_off.copies_made + report.copies_made;

    // Every region holds every object, byte for byte.
    let checks: Vec<(&str, &String, &str)> = uploads
        .iter()
        .flat_map(|(key, origin)| REGIONS.iter().map(move |r| (*r, key, *origin)))
        .collect();
    let lost: usize = stream::iter(checks)
        .map(|(region, key, origin)| {
            let emu = &emu;
            let name = &name;
            async move {
                let object = emu
                    .s3(region)
                    .get_object()
                    .bucket(data_bucket(name, region))
                    .key(key)
                    .send()
                    .await;
                match object {
                    Ok(object) => {
                        let bytes = object.body.collect().await.unwrap().into_bytes();
                        usize::from(bytes.as_ref() != body_of(key, origin, 0).as_slice())
                    }
                    Err(_) => 1,
                }
            }
        })
        .buffer_unordered(16)
        .fold(0, |sum, n| async move { sum + n })
        .await;
    eprintln!(
        "faults: {faulted} S3 calls faulted; {lost_before} replicas missing after the uploads; \
         {dead_lettered} events dead-lettered and replayed; {repaired} copies made by sync; \
         {lost} objects lost"
    );
    assert_eq!(lost, 0, "objects lost or different");
    assert!(faulted > 0, "no fault was injected");
    assert!(
        dead_lettered > 0,
        "no event was dead-lettered: the DLQ path went untested"
    );
    assert!(
        repaired > 0,
        "sync had nothing to repair: the lost-event path went untested"
    );

    emu.teardown(&name);
}

/// Waits until the dead-letter queues stop growing.
async fn wait_for_dead_letters(emu: &Emu, name: &str) {
    let count = || async {
        let mut total = 0u64;
        for region in REGIONS {
            let sqs = emu.sqs(region);
            let url = emu.dlq_url(name, region).await;
            let attributes = sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
                )
                .send()
                .await
                .unwrap();
            total += attributes
                .attributes()
                .and_then(|a| {
                    a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                })
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_default();
        }
        total
    };
    testkit::settled(
        "the dead-letter queues",
        Duration::from_secs(2),
        Duration::from_secs(600),
        count,
    )
    .await;
}

/// A region the repair cannot read: every range of the runs that read it
/// fails, the run says so, `status` reports it, and the next run, with the
/// region readable again, repairs what was left.
#[tokio::test(flavor = "multi_thread")]
async fn a_repair_that_cannot_read_a_region_is_reported_and_retried_by_the_next_run() {
    let rig = Rig::start();
    let emu = Emu::at(&rig.emulator);
    let name = unique_name("denied");
    emu.deploy_with(&name, &["--repair-concurrency", "2"]);

    // 30 uploads to ap-northeast-1 reach no other region.
    for region in ["us-east-1", "eu-west-2"] {
        emu.pause_into(&name, region, true).await;
    }
    let keys: Vec<String> = (0..30)
        .map(|i| format!("{}{i:02}", ["0", "G", "k", "t"][i % 4]))
        .collect();
    for key in &keys {
        emu.put(
            &name,
            "ap-northeast-1",
            key,
            body_of(key, "ap-northeast-1", 0),
        )
        .await;
    }
    emu.settle(&name).await;
    for region in ["us-east-1", "eu-west-2"] {
        emu.pause_into(&name, region, false).await;
    }

    // The functions' calls to ap-northeast-1 are denied.
    rig.set_rules(
        json!([{"service": "s3", "region": "ap-northeast-1", "probability": 1.0,
        "error": {"code": "AccessDenied", "status": 403}}]),
    );
    let (failed, code) = emu.sync(&name, &["--in-cloud"]);
    assert_eq!(code, Some(1), "{failed}");
    assert!(!failed.ok);
    assert!(
        failed
            .unreachable
            .iter()
            .any(|u| u.region == "ap-northeast-1"),
        "{failed}"
    );
    let failed_run = failed.in_cloud.as_ref().unwrap();
    let eu = failed_run
        .executions
        .iter()
        .find(|e| e.region == "eu-west-2")
        .unwrap();
    assert_eq!(eu.status, "FAILED", "{eu:?}");
    assert!(eu.ranges.unwrap().failed > 0, "{eu:?}");
    assert!(rig.faulted() > 0);
    // What only the denied region holds is still missing elsewhere.
    let mut missing = 0;
    for region in ["us-east-1", "eu-west-2"] {
        let listing = emu.listing(&name, region).await;
        missing += keys.iter().filter(|k| !listing.contains_key(*k)).count();
    }
    assert!(missing > 0, "nothing was left to repair");

    // status reports the run that did not finish, and exits 1.
    let out = emu.toastrep(&["status", "--name", &name, "--output", "json"]);
    let status = parse::<StatusResult>(&out);
    assert_eq!(out.status.code(), Some(1), "{status}");
    let region = status
        .regions
        .iter()
        .find(|r| r.region == "eu-west-2")
        .unwrap();
    let last = region.last_repair.as_ref().expect("a last repair");
    assert!(!last.ok, "{region:?}");
    assert_eq!(last.run, failed_run.run);
    assert!(
        region.problems.iter().any(|p| p.contains("did not finish")),
        "{region:?}"
    );

    // The next run, with the region readable again, repairs it all.
    rig.set_rules(json!([]));
    let (repaired, code) = emu.sync(&name, &["--in-cloud"]);
    assert_eq!(code, Some(0), "{repaired}");
    assert_eq!(repaired.copies_made, missing as u64, "{repaired}");
    for region in ["us-east-1", "eu-west-2"] {
        let listing = emu.listing(&name, region).await;
        assert!(
            keys.iter().all(|k| listing.contains_key(k)),
            "{region} lacks a key"
        );
    }
    let out = emu.toastrep(&["status", "--name", &name, "--output", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        parse::<StatusResult>(&out)
    );

    emu.teardown(&name);
}
