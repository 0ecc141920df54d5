//! Operating a deployed set: add-region with its backfill, remove-region,
//! plan, status, a deploy resumed after being killed, and the bad input these
//! commands refuse without changing anything.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use toastrep::aws::change_set::PreviewAction;
use toastrep::aws::stack::StackAction;
use toastrep::model::architecture::Architecture;
use toastrep::model::function::{SettingChange, Source};
use toastrep::ops::health::StatusResult;
use toastrep::ops::membership::RemoveResult;
use toastrep::ops::preview::PlanResult;
use toastrep::ops::rollout::DeployResult;

use crate::harness::{
    self, ACCOUNT, Cleanup, REGIONS, Upload, artifact_bucket, assert_replica, bucket_exists,
    data_bucket, eventually, parse, put, put_and_assert_replicated, run_json, s3, set_stacks, sqs,
    stderr, toastrep, unique_name,
};

const FOURTH: &str = "eu-central-1";

pub(crate) fn upload(region: &'static str, key: &str, n: usize) -> Upload {
    Upload {
        region,
        key: key.to_owned(),
        body: format!("{key} from {region} #{n} ")
            .repeat(50 + n)
            .into_bytes(),
        content_type: if n.is_multiple_of(2) {
            "text/plain"
        } else {
            "application/json"
        },
        metadata: HashMap::from([("owner".to_owned(), format!("team-{n}"))]),
        tags: vec![
            ("env".to_owned(), "test".to_owned()),
            ("n".to_owned(), n.to_string()),
        ],
    }
}

pub(crate) fn deploy(name: &str, regions: &str, zip: &str) -> std::process::Output {
    toastrep(&[
        "deploy",
        "--name",
        name,
        "--regions",
        regions,
        "--lambda-zip",
        zip,
        "--output",
        "json",
    ])
}

pub(crate) fn zip_path() -> String {
    harness::lambda_zip().to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fourth_region_is_backfilled_and_replicates_and_removing_it_keeps_its_data() {
    let name = unique_name("grow");
    let cleanup = Cleanup::new(&name);
    let zip = zip_path();
    assert!(deploy(&name, &REGIONS.join(","), &zip).status.success());

    // The set holds objects before the region is added.
    let existing: Vec<Upload> = REGIONS
        .iter()
        .enumerate()
        .flat_map(|(i, region)| {
            [
                upload(region, &format!("old/{region}/plain.txt"), 2 * i),
                upload(region, &format!("old/{region}/dir/a b+ü.json"), 2 * i + 1),
            ]
        })
        .collect();
    put_and_assert_replicated(&name, &existing, &REGIONS).await;

    let added = toastrep(&[
        "add-region",
        "--name",
        &name,
        "--region",
        FOURTH,
        "--output",
        "json",
    ]);
    assert_eq!(added.status.code(), Some(0));
    let result = parse::<DeployResult>(&added);
    assert_eq!(result.added, [FOURTH], "{result}");
    assert_eq!(
        result.backfill.as_ref().map(|b| b.copies_made),
        Some(6),
        "{result}"
    );
    assert_eq!(result.verify.as_ref().map(|v| v.ok), Some(true), "{result}");
    // The members' stacks were not touched: only the new base and its
    // pairs, and the dashboard's stack (the region that sorted first), whose
    // dashboard now shows the new region.
    let home = "ap-northeast-1";
    for stack in &result.stacks {
        let involves_new = stack.region == FOURTH || stack.stack_name.ends_with(FOURTH);
        let expected = if involves_new {
            StackAction::Created
        } else if stack.kind == "base" && stack.region == home {
            StackAction::Updated
        } else {
            StackAction::Unchanged
        };
        assert_eq!(stack.action, Some(expected), "{stack:?}");
    }
    let dashboard = crate::harness::cloudwatch(home)
        .get_dashboard()
        .dashboard_name(format!("toastrep-{name}"))
        .send()
        .await
        .expect("the set's dashboard");
    assert!(dashboard.dashboard_body().unwrap().contains(FOURTH));

    // Every existing object is in the new region, byte-identical, with its
    // metadata and tags.
    for object in &existing {
        assert_replica(&name, FOURTH, object).await;
    }

    // New uploads in any region reach all four.
    let all = [REGIONS[0], REGIONS[1], REGIONS[2], FOURTH];
    let fresh: Vec<Upload> = all
        .iter()
        .enumerate()
        .map(|(i, region)| upload(region, &format!("new/{region}.txt"), i))
        .collect();
    put_and_assert_replicated(&name, &fresh, &all).await;

    // status sees four healthy regions, and the backfilled objects.
    let (status, code) = run_json::<StatusResult>(&["status", "--name", &name]);
    assert_eq!(code, Some(0));
    let regions = &status.regions;
    assert_eq!(regions.len(), 4, "{status}");
    let fourth = regions.iter().find(|r| r.region == FOURTH).unwrap();
    assert_eq!(
        fourth.bucket.as_ref().map(|b| b.objects),
        Some(10),
        "{fourth:?}"
    );
    assert_eq!(fourth.stacks.len(), 7, "{fourth:?}");

    // Remove it again.
    let removed = toastrep(&[
        "remove-region",
        "--name",
        &name,
        "--region",
        FOURTH,
        "--output",
        "json",
    ]);
    assert_eq!(removed.status.code(), Some(0));
    let result = parse::<RemoveResult>(&removed);
    // 3 subscriptions and 3 grants each way, and the base.
    assert_eq!(result.stacks.len(), 13, "{result}");
    assert!(set_stacks(FOURTH, &name).await.is_empty());
    for region in REGIONS {
        let left: Vec<String> = set_stacks(region, &name)
            .await
            .into_iter()
            .filter(|s| s.ends_with(FOURTH))
            .collect();
        assert!(left.is_empty(), "pair stacks with {FOURTH} left: {left:?}");
    }
    // Its objects are still there; its artifact bucket is gone.
    assert!(!bucket_exists(FOURTH, &artifact_bucket(&name, FOURTH)).await);
    for object in existing.iter().chain(&fresh) {
        assert_replica(&name, FOURTH, object).await;
    }

    // The other three still replicate, and verify passes.
    let after: Vec<Upload> = REGIONS
        .iter()
        .enumerate()
        .map(|(i, region)| upload(region, &format!("after/{region}.txt"), i))
        .collect();
    put_and_assert_replicated(&name, &after, &REGIONS).await;
    let verify = toastrep(&["verify", "--name", &name, "--timeout", "30"]);
    assert_eq!(verify.status.code(), Some(0));

    cleanup.teardown();
    assert!(!bucket_exists(FOURTH, &data_bucket(&name, FOURTH)).await);
}

/// The replicator package with a different hash that still works: an ELF
/// binary ignores bytes appended to it.
fn changed_package() -> PathBuf {
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(harness::lambda_zip()).unwrap()).unwrap();
    let mut bootstrap = Vec::new();
    archive
        .by_name("bootstrap")
        .unwrap()
        .read_to_end(&mut bootstrap)
        .unwrap();
    bootstrap.extend_from_slice(b"\0a code change");
    let package = toastrep::package::Package::from_bootstrap(&bootstrap).unwrap();
    let path = std::env::temp_dir().join(format!("toastrep-changed-{}.zip", std::process::id()));
    std::fs::write(&path, &package.zip).unwrap();
    path
}

/// What a plan says per stack: (stack, region) → (action, [(change, type, logical id)]).
type PlanView = BTreeMap<(String, String), (PreviewAction, Vec<(String, String, String)>)>;

fn plan_view(result: &PlanResult) -> PlanView {
    result
        .stacks
        .iter()
        .map(|s| {
            let changes = s
                .changes
                .iter()
                .map(|c| {
                    (
                        c.action.clone(),
                        c.resource_type.clone(),
                        c.logical_id.clone(),
                    )
                })
                .collect();
            let action = s.action.unwrap_or_else(|| panic!("no action for {s:?}"));
            (
                (s.stack_name.clone(), s.region.to_string()),
                (action, changes),
            )
        })
        .collect()
}

/// Every stack of the set as the emulator holds it: status, parameters,
/// and the change sets that exist.
pub(crate) async fn stack_state(name: &str, regions: &[&str]) -> Vec<String> {
    let mut state = Vec::new();
    for region in regions {
        let cfn = harness::cloudformation(region);
        for stack in set_stacks(region, name).await {
            let described = cfn
                .describe_stacks()
                .stack_name(&stack)
                .send()
                .await
                .unwrap();
            let s = &described.stacks()[0];
            let mut parameters: Vec<String> = s
                .parameters()
                .iter()
                .map(|p| {
                    format!(
                        "{}={}",
                        p.parameter_key().unwrap(),
                        p.parameter_value().unwrap()
                    )
                })
                .collect();
            parameters.sort();
            let change_sets = cfn
                .list_change_sets()
                .stack_name(&stack)
                .send()
                .await
                .map(|c| c.summaries().len())
                .unwrap_or(0);
            state.push(format!(
                "{region} {stack} {:?} {parameters:?} change sets: {change_sets}",
                s.stack_status()
            ));
        }
    }
    state.sort();
    state
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_shows_no_change_then_exactly_what_a_code_or_template_change_changes() {
    let name = unique_name("plan");
    let cleanup = Cleanup::new(&name);
    let zip = zip_path();
    let regions = ["us-east-1", "eu-west-2"];
    assert!(deploy(&name, &regions.join(","), &zip).status.success());
    let before = stack_state(&name, &regions).await;

    // Up to date: no change anywhere, nothing to upload.
    let plan = toastrep(&[
        "plan",
        "--name",
        &name,
        "--lambda-zip",
        &zip,
        "--output",
        "json",
    ]);
    assert_eq!(plan.status.code(), Some(0));
    let result = parse::<PlanResult>(&plan);
    assert!(!result.changes, "{result}");
    assert!(result.package.upload_to.is_empty());
    let view = plan_view(&result);
    assert_eq!(view.len(), 6);
    assert!(
        view.values()
            .all(|(a, c)| *a == PreviewAction::NoChange && c.is_empty()),
        "{view:?}"
    );

    // A code change: the base stacks' function, in every region, and nothing else.
    let changed = changed_package();
    let changed = changed.to_str().unwrap();
    let plan = toastrep(&[
        "plan",
        "--name",
        &name,
        "--lambda-zip",
        changed,
        "--output",
        "json",
    ]);
    assert_eq!(plan.status.code(), Some(0));
    let result = parse::<PlanResult>(&plan);
    assert!(result.changes);
    let mut upload_to: Vec<&str> = result
        .package
        .upload_to
        .iter()
        .map(|region| region.as_str())
        .collect();
    upload_to.sort();
    assert_eq!(upload_to, ["eu-west-2", "us-east-1"]);
    let code_view = plan_view(&result);
    for ((stack, region), (action, changes)) in &code_view {
        if *stack == format!("toastrep-{name}") {
            assert_eq!(*action, PreviewAction::Update, "{stack} in {region}");
            let function = (
                "Modify".to_owned(),
                "AWS::Lambda::Function".to_owned(),
                "Function".to_owned(),
            );
            assert_eq!(changes, &vec![function], "{stack} in {region}");
        } else {
            assert_eq!(
                (*action, changes.len()),
                (PreviewAction::NoChange, 0),
                "{stack}"
            );
        }
    }
    // deploy --dry-run is the same plan.
    let dry = toastrep(&[
        "deploy",
        "--dry-run",
        "--name",
        &name,
        "--regions",
        &regions.join(","),
        "--lambda-zip",
        changed,
        "--output",
        "json",
    ]);
    assert_eq!(dry.status.code(), Some(0));
    assert_eq!(plan_view(&parse(&dry)), code_view);

    // A template change (a parameter of the base template): the log group, in
    // the base stacks only.
    let plan = toastrep(&[
        "plan",
        "--name",
        &name,
        "--regions",
        &regions.join(","),
        "--lambda-zip",
        &zip,
        "--log-retention-days",
        "7",
        "--output",
        "json",
    ]);
    assert_eq!(plan.status.code(), Some(0));
    let result = parse::<PlanResult>(&plan);
    assert!(result.package.upload_to.is_empty());
    for ((stack, region), (action, changes)) in plan_view(&result) {
        if stack == format!("toastrep-{name}") {
            assert_eq!(action, PreviewAction::Update, "{stack} in {region}");
            assert!(
                changes
                    .iter()
                    .any(|(a, t, _)| a == "Modify" && t == "AWS::Logs::LogGroup"),
                "{changes:?}"
            );
        } else {
            assert_eq!(action, PreviewAction::NoChange, "{stack}");
        }
    }

    // A move to arm64, with a package built for it: the function changes,
    // and the plan says from what.
    let arm = harness::lambda_zip_arm64();
    let plan = toastrep(&[
        "plan",
        "--name",
        &name,
        "--lambda-zip",
        arm.to_str().unwrap(),
        "--architecture",
        "arm64",
        "--output",
        "json",
    ]);
    assert_eq!(plan.status.code(), Some(0));
    let result = parse::<PlanResult>(&plan);
    assert_eq!(
        result.setting_changes,
        [SettingChange {
            setting: "architecture".into(),
            deployed: "x86_64".into(),
            planned: "arm64".into(),
            source: Source::Flag,
        }]
    );
    assert_eq!(result.settings.repair_schedule, "rate(1 day)");
    assert_eq!(
        result.package.package.architecture,
        Some(Architecture::Arm64)
    );
    for ((stack, region), (action, changes)) in plan_view(&result) {
        if stack == format!("toastrep-{name}") {
            assert_eq!(action, PreviewAction::Update, "{stack} in {region}");
            assert!(
                changes
                    .iter()
                    .any(|(a, t, _)| a == "Modify" && t == "AWS::Lambda::Function"),
                "{changes:?}"
            );
        } else {
            assert_eq!(action, PreviewAction::NoChange, "{stack}");
        }
    }

    // None of it changed anything: same stacks, parameters, statuses, no
    // change set left behind, the changed package not uploaded.
    assert_eq!(stack_state(&name, &regions).await, before);
    for region in regions {
        // Packages only: the bucket also keeps the set's log key.
        let listed = s3(region)
            .list_objects_v2()
            .bucket(artifact_bucket(&name, region))
            .prefix("toastrep/replicator-")
            .send()
            .await
            .unwrap();
        assert_eq!(listed.contents().len(), 1, "packages in {region}");
    }

    // Deploying the code change updates only the base stacks, and the
    // function in every region runs the new package.
    let deployed = deploy(&name, &regions.join(","), changed);
    assert!(deployed.status.success());
    let result = parse::<DeployResult>(&deployed);
    for stack in &result.stacks {
        let expected = if stack.kind == "base" {
            StackAction::Updated
        } else {
            StackAction::Unchanged
        };
        assert_eq!(stack.action, Some(expected), "{stack:?}");
    }
    // CloudFormation on AWS completes a code update only once the function
    // is Active again; the emulator completes it while the function is still
    // Pending, which status rightly flags. So wait for it here.
    eventually(
        "every function running the new code, healthy",
        Duration::from_secs(30),
        || async {
            let status = toastrep(&[
                "status",
                "--name",
                &name,
                "--lambda-zip",
                changed,
                "--output",
                "json",
            ]);
            (status.status.code() == Some(0)).then_some(())
        },
    )
    .await;
    // And the new code replicates.
    let object = upload("us-east-1", "after-code-change.txt", 1);
    put(&name, &object).await;
    assert_replica(&name, "eu-west-2", &object).await;

    cleanup.teardown();
}

#[tokio::test(flavor = "multi_thread")]
async fn status_flags_a_broken_function_and_a_non_empty_dead_letter_queue() {
    let name = unique_name("stat");
    let cleanup = Cleanup::new(&name);
    let zip = zip_path();
    let (good, bad) = ("us-east-1", "eu-west-2");
    assert!(
        deploy(&name, &format!("{good},{bad}"), &zip)
            .status
            .success()
    );
    let (healthy, code) = run_json::<StatusResult>(&["status", "--name", &name]);
    assert_eq!(code, Some(0));
    assert!(healthy.healthy);

    let function = format!("toastrep-{name}-replicator");
    let lambda = harness::lambda(bad);
    // ministack drops the template's DeadLetterConfig on create (see
    // docs/emulator.md); on AWS the base stack sets it. Set it here as AWS would have.
    lambda
        .update_function_configuration()
        .function_name(&function)
        .dead_letter_config(
            aws_sdk_lambda::types::DeadLetterConfig::builder()
                .target_arn(format!("arn:aws:sqs:{bad}:{ACCOUNT}:toastrep-{name}-dlq"))
                .build(),
        )
        .send()
        .await
        .expect("UpdateFunctionConfiguration");
    // Break the function: code that fails every invocation.
    let failing = b"#!/bin/sh\n\
        api=\"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation\"\n\
        while true; do\n\
          id=$(curl -sS -D - -o /dev/null \"$api/next\" | tr -d '\\r' | awk 'tolower($1)==\"lambda-runtime-aws-request-id:\" {print $2}')\n\
          curl -sS -X POST \"$api/$id/error\" -d '{\"errorMessage\":\"broken on purpose\",\"errorType\":\"Broken\"}' >/dev/null\n\
        done\n";
    let package = toastrep::package::Package::from_bootstrap(failing).unwrap();
    lambda
        .update_function_code()
        .function_name(&function)
        .zip_file(aws_sdk_lambda::primitives::Blob::new(package.zip))
        .send()
        .await
        .expect("UpdateFunctionCode");
    // ministack's SNS delivery makes one attempt and never dead-letters; an
    // asynchronous Invoke takes the dead-letter path (docs/emulator.md).
    lambda
        .invoke()
        .function_name(&function)
        .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
        .payload(aws_sdk_lambda::primitives::Blob::new(r#"{"Records":[]}"#))
        .send()
        .await
        .expect("Invoke");
    let queue = crate::sync::Emu::shared().dlq_url(&name, bad).await;
    eventually("a dead letter", Duration::from_secs(30), || async {
        let out = sqs(bad)
            .get_queue_attributes()
            .queue_url(&queue)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .ok()?;
        let n: u64 = out
            .attributes()?
            .get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)?
            .parse()
            .ok()?;
        (n > 0).then_some(())
    })
    .await;

    let status = toastrep(&["status", "--name", &name, "--output", "json"]);
    assert_eq!(status.status.code(), Some(1));
    let result = parse::<StatusResult>(&status);
    assert!(!result.healthy);
    let region = |r: &str| result.regions.iter().find(|x| x.region == r).unwrap();
    let broken = region(bad);
    assert!(!broken.healthy, "{broken:?}");
    assert_eq!(
        broken.function.as_ref().map(|f| f.code_matches),
        Some(false),
        "{broken:?}"
    );
    assert!(
        broken.dead_letter_queue.as_ref().unwrap().messages >= 1,
        "{broken:?}"
    );
    let problems = broken.problems.join("\n");
    assert!(problems.contains("dead-letter queue holds"), "{problems}");
    assert!(problems.contains("not the deployed package"), "{problems}");
    let fine = region(good);
    assert!(fine.healthy, "{fine:?}");
    // The text flags it too.
    let text = toastrep(&["status", "--name", &name]);
    assert_eq!(text.status.code(), Some(1));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("{bad} UNHEALTHY")), "{text}");
    assert!(text.contains("  ! dead-letter queue holds"), "{text}");

    cleanup.teardown();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_killed_after_its_base_stacks_completes_on_the_next_run() {
    let name = unique_name("kill");
    let cleanup = Cleanup::new(&name);
    let zip = zip_path();
    let regions = "us-east-1,eu-west-2";
    // One stack at a time, so the kill lands between stacks.
    let child = harness::toastrep_command()
        .args([
            "deploy",
            "--name",
            &name,
            "--regions",
            regions,
            "--lambda-zip",
            &zip,
            "--concurrency",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("toastrep starts");
    kill_at_first_pair_stack(child, &name);
    let mut subscriptions = 0;
    for region in ["us-east-1", "eu-west-2"] {
        let stacks = set_stacks(region, &name).await;
        assert!(
            stacks.contains(&format!("toastrep-{name}")),
            "no base in {region}"
        );
        subscriptions += stacks.iter().filter(|s| s.contains("-to-")).count();
    }
    assert!(
        subscriptions < 2,
        "the kill came after every pair was deployed"
    );

    let again = deploy(&name, regions, &zip);
    assert_eq!(again.status.code(), Some(0));
    let result = parse::<DeployResult>(&again);
    for stack in &result.stacks {
        if stack.kind == "base" {
            assert_eq!(stack.action, Some(StackAction::Unchanged), "{stack:?}");
        }
    }
    assert!(
        result
            .stacks
            .iter()
            .any(|s| s.action == Some(StackAction::Created)),
        "{result}"
    );
    let verify = toastrep(&["verify", "--name", &name, "--timeout", "30"]);
    assert_eq!(verify.status.code(), Some(0));

    // add-region killed once the new base stack is there: status flags the
    // region as being added, and add-region run again finishes the job,
    // backfill included.
    let object = upload("us-east-1", "before-add.txt", 0);
    put(&name, &object).await;
    assert_replica(&name, "eu-west-2", &object).await;
    let third = "ap-northeast-1";
    let child = harness::toastrep_command()
        .args([
            "add-region",
            "--name",
            &name,
            "--region",
            third,
            "--concurrency",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("toastrep starts");
    kill_at_first_pair_stack(child, &name);
    assert!(
        set_stacks(third, &name)
            .await
            .contains(&format!("toastrep-{name}"))
    );
    let status = toastrep(&["status", "--name", &name, "--output", "json"]);
    assert_eq!(status.status.code(), Some(1));
    let result = parse::<StatusResult>(&status);
    let joining: Vec<_> = result.regions.iter().filter(|r| r.joining).collect();
    assert_eq!(joining.len(), 1, "{result}");
    assert_eq!(joining[0].region, third);

    let again = toastrep(&[
        "add-region",
        "--name",
        &name,
        "--region",
        third,
        "--output",
        "json",
    ]);
    assert_eq!(again.status.code(), Some(0));
    let result = parse::<DeployResult>(&again);
    assert_eq!(
        result.backfill.as_ref().map(|b| b.copies_made),
        Some(1),
        "{result}"
    );
    assert_eq!(result.verify.as_ref().map(|v| v.ok), Some(true), "{result}");
    assert_replica(&name, third, &object).await;
    let status = toastrep(&["status", "--name", &name]);
    assert_eq!(
        status.status.code(),
        Some(0),
        "healthy once the add finished"
    );
    cleanup.teardown();
}

/// Reads a running deploy's progress (stderr, one line per event) and kills
/// it as the first pair stack starts: every base stack is done by then.
fn kill_at_first_pair_stack(mut child: std::process::Child, name: &str) {
    let grant = format!("toastrep-{name}-from-");
    let mut seen = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains(&grant) && line.ends_with(": creating") {
            child.kill().expect("kill toastrep");
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "toastrep finished before it was killed: {seen:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_for_region_commands_exits_2_and_changes_nothing() {
    // A set that is not deployed.
    let ghost = unique_name("ghost");
    let zip = zip_path();
    for args in [
        vec!["add-region", "--name", &ghost, "--region", "eu-west-2"],
        vec!["remove-region", "--name", &ghost, "--region", "eu-west-2"],
        vec!["status", "--name", &ghost],
        vec!["plan", "--name", &ghost, "--lambda-zip", &zip],
    ] {
        let out = toastrep(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("no replica set named '{ghost}'")),
            "{args:?}: {err}"
        );
    }
    harness::assert_nothing_created(&ghost).await;

    let name = unique_name("bad");
    let cleanup = Cleanup::new(&name);
    let regions = ["us-east-1", "eu-west-2"];
    assert!(deploy(&name, &regions.join(","), &zip).status.success());
    let before = stack_state(&name, &["us-east-1", "eu-west-2", "ap-northeast-1"]).await;

    // The set runs on x86_64; a redeploy that leaves --architecture out
    // keeps it, so an arm64 package does not fit.
    let arm = harness::lambda_zip_arm64();
    let arm = arm.to_str().unwrap();
    let cases: [(Vec<&str>, &str); 7] = [
        (
            vec![
                "deploy",
                "--name",
                &name,
                "--regions",
                "us-east-1,eu-west-2",
                "--lambda-zip",
                arm,
            ],
            "built for arm64, but the function is to run on x86_64",
        ),
        (
            vec!["plan", "--name", &name, "--lambda-zip", arm],
            "built for arm64, but the function is to run on x86_64",
        ),
        (
            vec!["add-region", "--name", &name, "--region", "us-east-1"],
            "already a region of set",
        ),
        (
            vec!["add-region", "--name", &name, "--region", "us-east1"],
            "did you mean 'us-east-1'",
        ),
        (
            vec![
                "remove-region",
                "--name",
                &name,
                "--region",
                "ap-northeast-1",
            ],
            "ap-northeast-1 is not a region of set",
        ),
        (
            vec!["remove-region", "--name", &name, "--region", "eu-west-2"],
            "toastrep teardown --name",
        ),
        (
            vec![
                "deploy",
                "--name",
                &name,
                "--regions",
                "us-east-1,ap-northeast-1",
                "--lambda-zip",
                &zip,
            ],
            "toastrep remove-region --name",
        ),
    ];
    for (args, message) in cases {
        let out = toastrep(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(message), "{args:?}: {err}");
    }
    assert_eq!(
        stack_state(&name, &["us-east-1", "eu-west-2", "ap-northeast-1"]).await,
        before
    );
    assert!(!bucket_exists("ap-northeast-1", &artifact_bucket(&name, "ap-northeast-1")).await);
    assert!(bucket_exists("eu-west-2", &data_bucket(&name, "eu-west-2")).await);
    cleanup.teardown();
}

#[test]
fn completions_and_man_page_cover_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = toastrep(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        for command in ["add-region", "remove-region", "status", "plan", "deploy"] {
            assert!(script.contains(command), "{shell} completes {command}");
        }
        assert!(script.contains("dry-run"), "{shell} completes --dry-run");
    }
    let man = toastrep(&["man"]);
    assert!(man.status.success());
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH toastrep"),
        "{page}"
    );
    assert!(page.contains("add\\-region"), "{page}");
}

/// `remove-region --delete-data` loses no write that never replicated: it
/// is refused while another region holds dead letters (copies from the
/// leaving region may be among them), and it syncs the leaving region's
/// objects into the others before its data goes, the sync in its result.
#[tokio::test(flavor = "multi_thread")]
async fn removing_a_region_with_its_data_first_syncs_what_only_it_holds() {
    use crate::deletes::notifications_off;
    use crate::replicator::{Set, THREE, WAIT};

    let set = Set::deploy("rm-data", &THREE, &[]);
    let leaving = THREE[2];
    set.put(THREE[0], "shared", b"shared").await;
    set.wait_everywhere("shared", b"shared").await;
    // A write whose events were lost: only the leaving bucket holds it.
    notifications_off(&set, leaving).await;
    set.put(leaving, "only-here", b"only here").await;

    // A dead letter in a remaining region: refused, nothing changed.
    let sqs = harness::sqs(THREE[1]);
    let url = crate::sync::Emu::shared()
        .dlq_url(&set.name, THREE[1])
        .await;
    sqs.send_message()
        .queue_url(&url)
        .message_body("{}")
        .send()
        .await
        .expect("SendMessage");
    let remove = [
        "remove-region",
        "--name",
        set.name.as_str(),
        "--region",
        leaving,
        "--delete-data",
        "--yes",
        "--output",
        "json",
    ];
    let refused = toastrep(&remove);
    assert_eq!(refused.status.code(), Some(2));
    let error = stderr(&refused);
    assert!(
        error.contains(&format!("in {}", THREE[1])) && error.contains("toastrep replay"),
        "{error}"
    );
    assert_eq!(
        set.body(leaving, "only-here").await.as_deref(),
        Some(&b"only here"[..])
    );
    assert!(!set_stacks(leaving, &set.name).await.is_empty());

    sqs.purge_queue()
        .queue_url(&url)
        .send()
        .await
        .expect("PurgeQueue");
    eventually("the dead letter gone", WAIT, || async {
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .ok()?;
        let count = attributes
            .attributes()?
            .get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)?
            .clone();
        (count == "0").then_some(())
    })
    .await;

    let removed = toastrep(&remove);
    assert_eq!(removed.status.code(), Some(0), "{}", stderr(&removed));
    let result = parse::<RemoveResult>(&removed);
    assert_eq!(result.sync.as_ref().map(|s| s.ok), Some(true), "{result}");
    assert_eq!(
        result.sync.as_ref().map(|s| s.copies_made),
        Some(2),
        "{result}"
    );
    for region in &THREE[..2] {
        assert_eq!(
            set.body(region, "only-here").await.as_deref(),
            Some(&b"only here"[..]),
            "{region}"
        );
    }
    assert!(!bucket_exists(leaving, &data_bucket(&set.name, leaving)).await);
}
