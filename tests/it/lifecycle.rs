//! The walking skeleton, end to end on the emulator: deploy three regions,
//! replicate real uploads, redeploy with nothing changed, verify, break a
//! region and see verify fail, tear down keeping data, then delete it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use toastrep::aws::stack::StackAction;
use toastrep::ops::rollout::DeployResult;
use toastrep::ops::teardown::TeardownResult;
use toastrep::ops::verify::VerifyResult;

use crate::harness::{
    self, Cleanup, REGIONS, Upload, artifact_bucket, bucket_exists, data_bucket, parse,
    put_and_assert_replicated, s3, set_stacks, toastrep, unique_name,
};

fn uploads() -> Vec<Upload> {
    let mut uploads = Vec::new();
    for (i, region) in REGIONS.iter().enumerate() {
        for (j, key) in ["plain/object.txt", "dir/a b+c%d/ü ß.json"]
            .iter()
            .enumerate()
        {
            uploads.push(Upload {
                region,
                key: format!("{region}/{key}"),
                body: format!("body {i}-{j} from {region} ")
                    .repeat(100 + i * 7 + j)
                    .into_bytes(),
                content_type: if j == 0 {
                    "text/plain"
                } else {
                    "application/json"
                },
                metadata: HashMap::from([
                    ("owner".to_owned(), format!("team-{i}")),
                    ("purpose".to_owned(), "replication test".to_owned()),
                ]),
                tags: vec![
                    ("env".to_owned(), "test".to_owned()),
                    ("n".to_owned(), j.to_string()),
                ],
            });
        }
    }
    uploads
}

fn deploy_args<'a>(name: &'a str, zip: &'a str) -> Vec<&'a str> {
    vec![
        "deploy",
        "--name",
        name,
        "--regions",
        "us-east-1,eu-west-2,ap-northeast-1",
        "--lambda-zip",
        zip,
        "--output",
        "json",
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn three_region_set_deploys_replicates_verifies_and_tears_down() {
    let name = unique_name("life");
    let cleanup = Cleanup::new(&name);
    let zip = harness::lambda_zip();
    let zip = zip.to_str().unwrap();

    // Deploy: 3 bases, 6 grants, 6 subscriptions, all created.
    let first = toastrep(&deploy_args(&name, zip));
    assert!(first.status.success());
    let result = parse::<DeployResult>(&first);
    let stacks = &result.stacks;
    assert_eq!(stacks.len(), 15);
    assert!(
        stacks
            .iter()
            .all(|s| s.action == Some(StackAction::Created)),
        "{result}"
    );
    assert_eq!(result.package.uploaded_to.len(), 3);

    replicates_every_upload_exactly_once(&name).await;

    // Deploy again with nothing changed: nothing created, updated or uploaded.
    let second = toastrep(&deploy_args(&name, zip));
    assert!(second.status.success());
    let result = parse::<DeployResult>(&second);
    assert!(result.up_to_date, "{result}");
    assert!(
        result
            .stacks
            .iter()
            .all(|s| s.action == Some(StackAction::Unchanged))
    );
    assert!(result.package.uploaded_to.is_empty());

    // A healthy set verifies.
    let verify = toastrep(&[
        "verify",
        "--name",
        &name,
        "--timeout",
        "30",
        "--output",
        "json",
    ]);
    assert_eq!(verify.status.code(), Some(0));
    let result = parse::<VerifyResult>(&verify);
    assert_eq!(result.pairs.len(), 6);
    assert!(result.failed.is_empty());
    assert_no_probes_left(&name).await;

    // Break ap-northeast-1's function: verify fails and names the pairs into it.
    break_function(&name, "ap-northeast-1").await;
    let verify = toastrep(&[
        "verify",
        "--name",
        &name,
        "--timeout",
        "5",
        "--output",
        "json",
    ]);
    assert_eq!(verify.status.code(), Some(1));
    let failed = parse::<VerifyResult>(&verify).into_inner().failed;
    assert_eq!(
        failed,
        ["eu-west-2 -> ap-northeast-1", "us-east-1 -> ap-northeast-1"]
    );
    assert_no_probes_left(&name).await;

    // Teardown without --delete-data: every stack gone, every object kept.
    let teardown = toastrep(&["teardown", "--name", &name, "--output", "json"]);
    assert!(teardown.status.success());
    for region in REGIONS {
        assert!(
            set_stacks(region, &name).await.is_empty(),
            "stacks left in {region}"
        );
        assert!(!bucket_exists(region, &artifact_bucket(&name, region)).await);
        let keys = keys_in(region, &data_bucket(&name, region)).await;
        assert_eq!(
            keys.len(),
            6,
            "objects in {region} after teardown: {keys:?}"
        );
    }
    let result = parse::<TeardownResult>(&teardown);
    let kept = result
        .buckets
        .iter()
        .filter(|b| b.kind == "data" && b.action == "kept")
        .count();
    assert_eq!(kept, 3, "{result}");

    // Again, with --delete-data --yes: nothing is left.
    let purge = toastrep(&["teardown", "--name", &name, "--delete-data", "--yes"]);
    assert!(purge.status.success());
    for region in REGIONS {
        assert!(!bucket_exists(region, &data_bucket(&name, region)).await);
    }
    harness::assert_nothing_created(&name).await;

    // And once more: a set that is gone tears down to nothing, successfully.
    let again = toastrep(&["teardown", "--name", &name]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to do"));
    cleanup.disarm();
}

async fn replicates_every_upload_exactly_once(name: &str) {
    let uploads = uploads();
    put_and_assert_replicated(name, &uploads, &REGIONS).await;
    // Exactly once: one version of every key in every region (the original
    // where it was written, one copy elsewhere), once the copies have stopped.
    let versions = testkit::settled(
        "the set's versions",
        Duration::from_secs(2),
        Duration::from_secs(600),
        || async {
            let mut all = BTreeMap::new();
            for region in REGIONS {
                let versions = s3(region)
                    .list_object_versions()
                    .bucket(data_bucket(name, region))
                    .send()
                    .await
                    .unwrap();
                let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
                for version in versions.versions() {
                    *per_key
                        .entry(version.key().unwrap().to_owned())
                        .or_default() += 1;
                }
                all.insert(region, per_key);
            }
            all
        },
    )
    .await;
    for (region, per_key) in versions {
        assert_eq!(
            per_key.len(),
            uploads.len(),
            "keys in {region}: {per_key:?}"
        );
        assert!(
            per_key.values().all(|n| *n == 1),
            "versions per key in {region}: {per_key:?}"
        );
    }
}

/// Replaces a region's function code with one that fails every invocation.
async fn break_function(name: &str, region: &str) {
    let failing = b"#!/bin/sh\n\
        # Fails every invocation through the Lambda Runtime API.\n\
        api=\"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation\"\n\
        while true; do\n\
          id=$(curl -sS -D - -o /dev/null \"$api/next\" | tr -d '\\r' | awk 'tolower($1)==\"lambda-runtime-aws-request-id:\" {print $2}')\n\
          curl -sS -X POST \"$api/$id/error\" -d '{\"errorMessage\":\"broken on purpose\",\"errorType\":\"Broken\"}' >/dev/null\n\
        done\n";
    let package = toastrep::package::Package::from_bootstrap(failing).unwrap();
    harness::lambda(region)
        .update_function_code()
        .function_name(format!("toastrep-{name}-replicator"))
        .zip_file(aws_sdk_lambda::primitives::Blob::new(package.zip))
        .send()
        .await
        .expect("UpdateFunctionCode");
}

async fn keys_in(region: &str, bucket: &str) -> Vec<String> {
    let out = s3(region)
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

async fn assert_no_probes_left(name: &str) {
    for region in REGIONS {
        let out = s3(region)
            .list_object_versions()
            .bucket(data_bucket(name, region))
            .prefix(".toastrep/")
            .send()
            .await
            .unwrap();
        assert!(out.versions().is_empty(), "probe versions left in {region}");
        assert!(
            out.delete_markers().is_empty(),
            "probe delete markers left in {region}"
        );
    }
}

/// A stack that fails prints each failed resource with CloudFormation's
/// reason and exits 1; once the cause is gone, the next deploy finishes the
/// set (the failed base stack, left ROLLBACK_COMPLETE, is created again).
#[tokio::test(flavor = "multi_thread")]
async fn failed_stack_is_reported_with_its_reason_and_a_rerun_completes_the_set() {
    let name = unique_name("fail");
    let zip = harness::lambda_zip();
    let zip = zip.to_str().unwrap();
    // The cause: another account already holds the (global) name of
    // eu-west-2's data bucket. The emulator picks the account from a
    // 12-digit access key.
    let squatter = other_account_s3("eu-west-2");
    let bucket = data_bucket(&name, "eu-west-2");
    squatter
        .create_bucket()
        .bucket(&bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest2)
                .build(),
        )
        .send()
        .await
        .expect("CreateBucket in the other account");
    let regions = "us-east-1,eu-west-2";
    let cleanup = Cleanup::new(&name).regions(&["us-east-1", "eu-west-2"]);
    let args = [
        "deploy",
        "--name",
        &name,
        "--regions",
        regions,
        "--lambda-zip",
        zip,
    ];

    let failed = toastrep(&args);
    assert_eq!(failed.status.code(), Some(1));
    let report = String::from_utf8_lossy(&failed.stdout);
    assert!(report.contains("Bucket (AWS::S3::Bucket)"), "{report}");
    assert!(report.contains("already exists"), "{report}");
    assert!(report.contains("hint: bucket names are global"), "{report}");
    // The other region's base stack is there; no pair was attempted.
    assert_eq!(
        set_stacks("us-east-1", &name).await,
        [format!("toastrep-{name}")]
    );
    assert!(
        report.contains("skipped (a stack it needs failed)"),
        "{report}"
    );

    squatter
        .delete_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("DeleteBucket");
    let fixed = toastrep(&[&args[..], &["--output", "json"]].concat());
    assert_eq!(fixed.status.code(), Some(0));
    let result = parse::<DeployResult>(&fixed);
    let action = |stack: &str, region: &str| {
        result
            .stacks
            .iter()
            .find(|s| s.stack_name == stack && s.region == region)
            .map(|s| s.action)
    };
    let base = format!("toastrep-{name}");
    assert_eq!(
        action(&base, "eu-west-2"),
        Some(Some(StackAction::Recreated))
    );
    assert_eq!(
        action(&base, "us-east-1"),
        Some(Some(StackAction::Unchanged))
    );
    assert_eq!(result.stacks.len(), 6);

    let teardown = toastrep(&[
        "teardown",
        "--name",
        &name,
        "--regions",
        regions,
        "--delete-data",
        "--yes",
    ]);
    assert!(teardown.status.success());
    harness::assert_nothing_created(&name).await;
    cleanup.disarm();
}

fn other_account_s3(region: &str) -> aws_sdk_s3::Client {
    testkit::Emulator::shared().s3_as(region, "111111111111")
}
