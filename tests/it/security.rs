//! What toastrep refuses so that it cannot be turned against its user: a set
//! name whose stacks could be another set's, a teardown that would delete
//! another set's stack or the record of failed replications, and a function
//! package planted under the name of the real one.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use sha2::{Digest, Sha256};

use std::time::Duration;

use toastrep::aws::stack::StackAction;
use toastrep::commands::HashedKey;
use toastrep::ops::teardown::TeardownResult;

use crate::harness::{
    ACCOUNT, Cleanup, artifact_bucket, assert_nothing_created, cloudformation, eventually, parse,
    s3, set_stacks, stderr, toastrep, unique_name,
};
use crate::operate::{deploy, zip_path};
use crate::sync::Emu;

const PAIR: [&str; 2] = ["us-east-1", "eu-west-2"];
/// A copy's decision line, as the function's JSON log has it.
const COPIED: &str = r#""decision":"copied""#;

#[tokio::test]
async fn a_set_name_whose_stacks_could_be_another_sets_is_refused() {
    // `x-from-us-east-1`'s base stack would be set `x`'s grant stack.
    let name = format!("{}-from-us-east-1", unique_name("clash"));
    let output = toastrep(&["deploy", "--name", &name, "--regions", &PAIR.join(",")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("pair stacks"),
        "{}",
        stderr(&output)
    );
    assert_nothing_created(&name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn teardown_keeps_dead_letters_unless_told_and_leaves_another_sets_stack_alone() {
    let name = unique_name("keep");
    let cleanup = Cleanup::new(&name);
    let regions = PAIR.join(",");
    assert!(deploy(&name, &regions, &zip_path()).status.success());

    // A failed replication, dead-lettered in eu-west-2.
    let emu = Emu::shared();
    let sqs = emu.sqs(PAIR[1]);
    let queue = format!("toastrep-{name}-dlq");
    let url = sqs
        .get_queue_url()
        .queue_name(&queue)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    sqs.send_message()
        .queue_url(&url)
        .message_body(r#"{"Records":[]}"#)
        .send()
        .await
        .unwrap();
    let refused = toastrep(&["teardown", "--name", &name]);
    assert_eq!(refused.status.code(), Some(2));
    let said = stderr(&refused);
    assert!(said.contains(&queue) && said.contains(PAIR[1]), "{said}");
    assert!(said.contains("--discard-dead-letters"), "{said}");
    for region in PAIR {
        assert_eq!(
            set_stacks(region, &name).await.len(),
            3,
            "teardown refused, yet changed stacks in {region}"
        );
    }
    let refused = toastrep(&["remove-region", "--name", &name, "--region", PAIR[1]]);
    assert_eq!(refused.status.code(), Some(2), "remove-region too");

    // Another set's stack under the name of this set's grant stack: a set
    // named `NAME-from-us-east-1`, made before such names were refused.
    let cfn = cloudformation(PAIR[1]);
    let grant = format!("toastrep-{name}-from-{}", PAIR[0]);
    cfn.delete_stack().stack_name(&grant).send().await.unwrap();
    eventually(
        "the grant stack is gone",
        Duration::from_secs(120),
        || async {
            let stacks = set_stacks(PAIR[1], &name).await;
            (!stacks.contains(&grant)).then_some(())
        },
    )
    .await;
    let other_set = format!("{name}-from-{}", PAIR[0]);
    cfn.create_stack()
        .stack_name(&grant)
        .template_body(format!(
            "Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n    Properties:\n      TopicName: {other_set}-events\n"
        ))
        .tags(tag("toastrep:set", &other_set))
        .tags(tag("toastrep:stack", "base"))
        .send()
        .await
        .unwrap();

    let out = toastrep(&[
        "teardown",
        "--name",
        &name,
        "--delete-data",
        "--yes",
        "--discard-dead-letters",
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "teardown failed");
    cleanup.disarm();
    let result = parse::<TeardownResult>(&out);
    let row = result
        .stacks
        .iter()
        .find(|row| row.stack_name == grant)
        .expect("the other set's stack is reported");
    assert_eq!(row.action, Some(StackAction::LeftAlone), "{row:?}");
    assert!(row.note.as_ref().unwrap().contains(&other_set), "{row:?}");
    let left = cfn
        .describe_stacks()
        .stack_name(&grant)
        .send()
        .await
        .unwrap();
    assert_eq!(
        left.stacks()[0].stack_status().map(|s| s.as_str()),
        Some("CREATE_COMPLETE"),
        "the other set's stack is untouched"
    );
    assert_eq!(set_stacks(PAIR[0], &name).await, Vec::<String>::new());
    cfn.delete_stack().stack_name(&grant).send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_package_planted_under_the_expected_key_is_refused() {
    let name = unique_name("plant");
    let cleanup = Cleanup::new(&name);
    let regions = PAIR.join(",");
    let zip = zip_path();
    assert!(deploy(&name, &regions, &zip).status.success());

    // Other code under the package's own name, with a SHA-256 of its own.
    let package = std::fs::read(&zip).unwrap();
    let key = format!(
        "toastrep/replicator-{}.zip",
        hex::encode(Sha256::digest(&package))
    );
    let bucket = artifact_bucket(&name, PAIR[1]);
    // The bucket is versioned, and the function's code is pinned to the
    // version of the package deploy checked.
    let versioning = s3(PAIR[1])
        .get_bucket_versioning()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(
        versioning.status(),
        Some(&aws_sdk_s3::types::BucketVersioningStatus::Enabled)
    );
    let checked = s3(PAIR[1])
        .head_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .unwrap()
        .version_id()
        .expect("a version id")
        .to_owned();
    assert_eq!(code_version(&name, PAIR[1]).await, checked);
    // Only the region's replicator role writes the set's state (breakers,
    // repair runs) there; the role is the one the base stack made.
    let state_writer = |policy: &serde_json::Value| {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == "OnlyTheReplicatorWritesSetState")
            .map(|s| {
                assert_eq!(s["Effect"], "Deny");
                assert_eq!(s["Principal"], "*");
                assert_eq!(s["Action"], "s3:PutObject");
                assert_eq!(
                    s["Resource"],
                    serde_json::json!([
                        format!("arn:aws:s3:::{bucket}/breaker/*"),
                        format!("arn:aws:s3:::{bucket}/repair/*")
                    ])
                );
                s["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
    };
    let role = cloudformation(PAIR[1])
        .describe_stack_resource()
        .stack_name(format!("toastrep-{name}"))
        .logical_resource_id("Role")
        .send()
        .await
        .unwrap()
        .stack_resource_detail()
        .and_then(|r| r.physical_resource_id())
        .unwrap()
        .to_owned();
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/{role}");
    assert_eq!(
        state_writer(&bucket_policy(&bucket).await).as_deref(),
        Some(role_arn.as_str())
    );
    // A policy without it (an earlier release's, or changed by hand) is put
    // back by the next deploy, below.
    s3(PAIR[1])
        .put_bucket_policy()
        .bucket(&bucket)
        .policy(
            serde_json::json!({"Version": "2012-10-17", "Statement": [{
                "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*",
                "Action": "s3:*", "Resource": format!("arn:aws:s3:::{bucket}/*"),
                "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(state_writer(&bucket_policy(&bucket).await), None);
    let planted = s3(PAIR[1])
        .put_object()
        .bucket(&bucket)
        .key(&key)
        .body(ByteStream::from_static(b"PK planted"))
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .unwrap();
    // What a rollback or an update would fetch is still the checked one.
    assert_ne!(planted.version_id(), Some(checked.as_str()));
    assert_eq!(code_version(&name, PAIR[1]).await, checked);
    let stacks_before = stack_updates(&name).await;
    let refused = deploy(&name, &regions, &zip);
    assert_eq!(refused.status.code(), Some(2));
    let said = stderr(&refused);
    assert!(
        said.contains("is not this function package") && said.contains(&bucket),
        "{said}"
    );
    assert_eq!(
        stack_updates(&name).await,
        stacks_before,
        "nothing was deployed"
    );

    // An object without a SHA-256 (as an older toastrep put it) is put again.
    s3(PAIR[1])
        .put_object()
        .bucket(&bucket)
        .key(&key)
        .body(ByteStream::from(package.clone()))
        .send()
        .await
        .unwrap();
    assert!(deploy(&name, &regions, &zip).status.success());
    assert_eq!(
        state_writer(&bucket_policy(&bucket).await).as_deref(),
        Some(role_arn.as_str())
    );
    cleanup.teardown();
}

async fn bucket_policy(bucket: &str) -> serde_json::Value {
    let policy = s3(PAIR[1])
        .get_bucket_policy()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    serde_json::from_str(policy.policy().unwrap()).unwrap()
}

/// The package version the base stack in `region` pins the code to.
async fn code_version(name: &str, region: &str) -> String {
    let stacks = cloudformation(region)
        .describe_stacks()
        .stack_name(format!("toastrep-{name}"))
        .send()
        .await
        .unwrap();
    stacks.stacks()[0]
        .parameters()
        .iter()
        .find(|p| p.parameter_key() == Some("CodeVersion"))
        .and_then(|p| p.parameter_value())
        .unwrap_or_default()
        .to_owned()
}

/// Each stack of the set with its last update time: what a deploy changes.
async fn stack_updates(name: &str) -> Vec<(String, String)> {
    let mut all = Vec::new();
    for region in PAIR {
        let stacks = cloudformation(region)
            .describe_stacks()
            .send()
            .await
            .unwrap();
        for stack in stacks.stacks() {
            let stack_name = stack.stack_name().unwrap_or_default();
            if stack_name.starts_with(&format!("toastrep-{name}")) {
                all.push((
                    stack_name.to_owned(),
                    format!("{:?} {:?}", stack.last_updated_time(), stack.stack_status()),
                ));
            }
        }
    }
    all.sort();
    all
}

fn tag(key: &str, value: &str) -> aws_sdk_cloudformation::types::Tag {
    aws_sdk_cloudformation::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_functions_log_a_keyed_hash_of_object_keys_not_the_keys() {
    let set = crate::replicator::Set::deploy("hashlog", &PAIR, &[]);
    let key = "customers/jane.doe@example.com/invoice.pdf";
    set.put(PAIR[0], key, b"invoice").await;
    set.wait_everywhere(key, b"invoice").await;

    let out = toastrep(&["hash-key", "--name", &set.name, key, "--output", "json"]);
    assert!(out.status.success());
    let hashed = parse::<Vec<HashedKey>>(&out).into_inner()[0]
        .logged_as
        .clone();
    assert!(hashed.starts_with("k:"), "{hashed}");

    // eu-west-2's function copied it: its decision line names the hash.
    let lambda = crate::harness::lambda(PAIR[1]);
    let config = lambda
        .get_function_configuration()
        .function_name(set.function())
        .send()
        .await
        .unwrap();
    let group = config
        .logging_config()
        .and_then(|c| c.log_group())
        .map_or_else(|| format!("/aws/lambda/{}", set.function()), str::to_owned);
    let logs = crate::harness::logs(PAIR[1]);
    let lines = eventually(
        "the copy's decision line",
        Duration::from_secs(60),
        || async {
            let events = logs
                .filter_log_events()
                .log_group_name(&group)
                .send()
                .await
                .ok()?;
            let lines: Vec<String> = events
                .events()
                .iter()
                .filter_map(|e| e.message().map(str::to_owned))
                .collect();
            lines.iter().any(|l| l.contains(COPIED)).then_some(lines)
        },
    )
    .await;
    let copied: Vec<&String> = lines.iter().filter(|l| l.contains(COPIED)).collect();
    assert!(
        copied.iter().any(|l| l.contains(&hashed)),
        "no decision line names {hashed}: {copied:#?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains("jane.doe")),
        "a log line names the key: {lines:#?}"
    );

    // hash-key reads only the derived log key that deploy keeps in the
    // artifact bucket, never the marker key: a log reader needs no right to
    // the function's configuration. It is not the marker key, and it gives
    // the function's hashes.
    let marker_key = config
        .environment()
        .and_then(|e| e.variables())
        .and_then(|v| v.get("MARKER_KEY"))
        .unwrap()
        .to_owned();
    let marker_key = toastrep_replication::MarkerKey::from_hex(&marker_key).unwrap();
    for region in PAIR {
        let object = s3(region)
            .get_object()
            .bucket(artifact_bucket(&set.name, region))
            .key("toastrep/log-key")
            .send()
            .await
            .unwrap();
        let kept = object.body.collect().await.unwrap().into_bytes();
        let kept = String::from_utf8(kept.to_vec()).unwrap();
        assert_ne!(kept.trim(), marker_key.to_hex());
        assert_eq!(
            kept.trim(),
            hex::encode(toastrep_replication::function::log_keys::log_key(
                &marker_key
            ))
        );
    }
    assert_eq!(
        hashed,
        toastrep_replication::function::log_keys::hash(&marker_key, key)
    );
    // Without it (a set deployed by an earlier release): exit 2, and the fix.
    for region in PAIR {
        s3(region)
            .delete_object()
            .bucket(artifact_bucket(&set.name, region))
            .key("toastrep/log-key")
            .send()
            .await
            .unwrap();
    }
    let out = toastrep(&["hash-key", "--name", &set.name, key]);
    assert_eq!(out.status.code(), Some(2));
    let said = stderr(&out);
    assert!(
        said.contains("holds no log key") && said.contains("toastrep deploy --name"),
        "{said}"
    );
}
