//! The text every command prints for people, snapshotted from results built
//! by hand: a change to what a user reads is a reviewed change, as a change
//! to the JSON is (`schemas`).

use std::borrow::Cow;

use serde_json::json;
use toastrep_replication::Unreplicable;
use toastrep_replication::protocol::Reason;

use super::{
    deletes, deploy, plan, remove_region, replay, restore, rotate_key, status, sync, teardown,
    verify,
};
use crate::aws::change_set::{PreviewAction, ResourceChange};
use crate::aws::stack::{ResourceFailure, StackAction, StackError};
use crate::model::function::{FunctionSettings, SettingChange, Source};
use crate::model::regions::Region;
use crate::model::rotation::Step;
use crate::ops::breaker::OpenBreaker;
use crate::ops::deletes::{Action, DeletesResult, HeldKey, RegionDeletes};
use crate::ops::health::{
    BreakerStatus, BucketStatus, DeleteSettings, FunctionStatus, QueueStatus, RegionStatus,
    RepairRun, StackStatus, StatusResult,
};
use crate::ops::membership::RemoveResult;
use crate::ops::preview::{self, PackagePlan, PlanResult};
use crate::ops::replay::{LeftMessage, RegionReplay, ReplayResult};
use crate::ops::restore::{RestoreFailure, RestoreResult, RestoredKey};
use crate::ops::rollout::{self, DeployResult, PackageResult};
use crate::ops::rotation::{RotationResult, StepResult};
use crate::ops::sync::{
    CloudRun, MapItems, NotReplicable, RegionRun, SyncCopy, SyncDelete, SyncFailure, SyncReport,
    UnreachableRegion,
};
use crate::ops::teardown::{self as down, BucketRow, TeardownResult};
use crate::ops::verify::{CopyCount, PairResult, VerifyResult};
use crate::package::Package;

const NAME: &str = "media";
const ACCOUNT: &str = "123456789012";
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-2"];

fn regions(items: &[&str]) -> Vec<Region> {
    items.iter().map(|s| (*s).into()).collect()
}

/// A package with a fixed name and size (a real one's hash changes with
/// every build).
fn package() -> Package {
    let mut package = Package::from_bootstrap(b"#!/bin/sh\nexit 0\n").unwrap();
    package.sha256 = "9f3c".repeat(16);
    package.key = format!("toastrep/replicator-{}.zip", package.sha256);
    package.bytes = 4_718_592;
    package
}

/// The stacks of a two-region set, in the order deploy reports them:
/// (stack, region, kind).
fn two_region_stacks() -> Vec<(String, &'static str, &'static str)> {
    vec![
        (format!("toastrep-{NAME}"), "us-east-1", "base"),
        (format!("toastrep-{NAME}"), "eu-west-2", "base"),
        (
            format!("toastrep-{NAME}-from-us-east-1"),
            "eu-west-2",
            "grant",
        ),
        (
            format!("toastrep-{NAME}-to-eu-west-2"),
            "us-east-1",
            "subscription",
        ),
        (
            format!("toastrep-{NAME}-from-eu-west-2"),
            "us-east-1",
            "grant",
        ),
        (
            format!("toastrep-{NAME}-to-us-east-1"),
            "eu-west-2",
            "subscription",
        ),
    ]
}

fn deploy_row(
    stack: &str,
    region: &str,
    kind: &'static str,
    action: StackAction,
) -> rollout::StackRow {
    rollout::StackRow {
        stack_name: stack.to_owned(),
        region: region.into(),
        kind: Cow::Borrowed(kind),
        action: Some(action),
        error: None,
        failures: Vec::new(),
        skipped: false,
    }
}

fn deploy_result(action: StackAction) -> DeployResult {
    DeployResult {
        name: NAME.into(),
        account: ACCOUNT.into(),
        regions: regions(&REGIONS),
        package: PackageResult {
            package: package(),
            uploaded_to: regions(&REGIONS),
        },
        stacks: two_region_stacks()
            .into_iter()
            .map(|(stack, region, kind)| deploy_row(&stack, region, kind, action))
            .collect(),
        added: Vec::new(),
        backfill: None,
        verify: None,
        error: None,
        setting_changes: Vec::new(),
        up_to_date: false,
        ok: true,
    }
}

fn sync_report(names: &[&str]) -> SyncReport {
    SyncReport {
        name: NAME.into(),
        regions: regions(names),
        seconds: 2.4,
        ok: true,
        ..SyncReport::default()
    }
}

fn pair(source: &str, destination: &str, objects: usize, ms: Option<[u64; 3]>) -> PairResult {
    PairResult {
        source: source.into(),
        destination: destination.into(),
        converged: ms.is_some(),
        objects,
        replicated: if ms.is_some() { objects } else { objects / 2 },
        p50_ms: ms.map(|m| m[0]),
        p95_ms: ms.map(|m| m[1]),
        max_ms: ms.map(|m| m[2]),
    }
}

fn verify_result(regions: &[&str], objects: usize, pairs: Vec<PairResult>) -> VerifyResult {
    let failed: Vec<String> = pairs
        .iter()
        .filter(|p| !p.converged)
        .map(|p| format!("{} -> {}", p.source, p.destination))
        .collect();
    let copies = objects * (regions.len() - 1);
    VerifyResult {
        name: NAME.into(),
        regions: self::regions(regions),
        objects,
        timeout_seconds: 60,
        seconds: 3.2,
        replicas_per_second: 37.5,
        copies: CopyCount {
            uploads: objects,
            copies: Some(copies),
            expected: copies,
            per_upload: Some((regions.len() - 1) as f64),
            exact: true,
        },
        ok: failed.is_empty(),
        failed,
        pairs,
    }
}

#[test]
fn deploy_of_a_new_set() {
    insta::assert_snapshot!(
        "deploy-new",
        deploy::summary(&deploy_result(StackAction::Created))
    );
}

#[test]
fn deploy_with_nothing_to_change() {
    let mut result = deploy_result(StackAction::Unchanged);
    result.package.uploaded_to.clear();
    result.up_to_date = true;
    insta::assert_snapshot!("deploy-up-to-date", deploy::summary(&result));
}

#[test]
fn deploy_whose_bucket_name_is_taken() {
    let mut result = deploy_result(StackAction::Created);
    result.ok = false;
    result.stacks.truncate(2);
    let failures = vec![ResourceFailure {
        logical_id: "Bucket".into(),
        resource_type: "AWS::S3::Bucket".into(),
        status: "CREATE_FAILED".into(),
        reason: format!("AWS::S3::Bucket toastrep-{NAME}-eu-west-2-{ACCOUNT} already exists"),
    }];
    let error = StackError::Failed {
        stack: format!("toastrep-{NAME}"),
        region: "eu-west-2".into(),
        status: "ROLLBACK_COMPLETE".into(),
        failures: failures.clone(),
    };
    let failed = &mut result.stacks[1];
    failed.action = None;
    failed.error = Some(error.to_string());
    failed.failures = failures;
    for (stack, region, kind) in two_region_stacks().into_iter().skip(2) {
        let mut row = deploy_row(&stack, region, kind, StackAction::Created);
        row.action = None;
        row.skipped = true;
        result.stacks.push(row);
    }
    insta::assert_snapshot!("deploy-failed", deploy::summary(&result));
}

/// add-region prints deploy's summary: the new region's stacks, the
/// backfill and the verify.
#[test]
fn add_region_with_its_backfill_and_verify() {
    let third = "ap-northeast-1";
    let mut result = deploy_result(StackAction::Unchanged);
    result.regions.push(third.into());
    result.package.uploaded_to = regions(&[third]);
    result.stacks.push(deploy_row(
        &format!("toastrep-{NAME}"),
        third,
        "base",
        StackAction::Created,
    ));
    result.stacks[1].action = Some(StackAction::Updated);
    result.added = regions(&[third]);
    let mut backfill = sync_report(&["us-east-1", "eu-west-2", third]);
    backfill.only_into = Some(regions(&[third]));
    backfill.keys_scanned = 120;
    backfill.keys_examined = 120;
    backfill.copies_made = 120;
    backfill.bytes_copied = 3_145_728;
    result.backfill = Some(backfill);
    let everywhere = ["us-east-1", "eu-west-2", third];
    let pairs = everywhere
        .iter()
        .flat_map(|s| everywhere.iter().map(move |d| (*s, *d)))
        .filter(|(s, d)| s != d)
        .map(|(s, d)| pair(s, d, 1, Some([210, 240, 240])))
        .collect();
    result.verify = Some(verify_result(&everywhere, 3, pairs));
    insta::assert_snapshot!("add-region", deploy::summary(&result));
}

fn plan_row(
    stack: &str,
    region: &str,
    kind: &'static str,
    action: PreviewAction,
) -> preview::StackRow {
    preview::StackRow {
        stack_name: stack.to_owned(),
        region: region.into(),
        kind: Cow::Borrowed(kind),
        action: Some(action),
        status: None,
        changes: Vec::new(),
        error: None,
    }
}

fn plan_result(action: PreviewAction) -> PlanResult {
    PlanResult {
        name: NAME.into(),
        account: ACCOUNT.into(),
        regions: regions(&REGIONS),
        package: PackagePlan {
            package: package(),
            upload_to: Vec::new(),
        },
        settings: FunctionSettings::default(),
        setting_changes: Vec::new(),
        stacks: two_region_stacks()
            .into_iter()
            .map(|(stack, region, kind)| plan_row(&stack, region, kind, action))
            .collect(),
        added: Vec::new(),
        changes: action != PreviewAction::NoChange,
        ok: true,
    }
}

#[test]
fn plan_of_an_up_to_date_set() {
    insta::assert_snapshot!(
        "plan-no-change",
        plan::summary(&plan_result(PreviewAction::NoChange))
    );
}

#[test]
fn plan_of_a_code_and_setting_change() {
    let mut result = plan_result(PreviewAction::NoChange);
    result.package.upload_to = regions(&REGIONS);
    result.settings.log_retention_days = 7;
    result.setting_changes = vec![SettingChange {
        setting: "log-retention-days".into(),
        deployed: "30".into(),
        planned: "7".into(),
        source: Source::SetFile,
    }];
    for row in result.stacks.iter_mut().filter(|r| r.kind == "base") {
        row.action = Some(PreviewAction::Update);
        row.changes = vec![
            ResourceChange {
                action: "Modify".into(),
                logical_id: "Function".into(),
                resource_type: "AWS::Lambda::Function".into(),
                replacement: Some("False".into()),
            },
            ResourceChange {
                action: "Modify".into(),
                logical_id: "LogGroup".into(),
                resource_type: "AWS::Logs::LogGroup".into(),
                replacement: Some("Conditional".into()),
            },
        ];
    }
    result.changes = true;
    insta::assert_snapshot!("plan-changes", plan::summary(&result));
}

#[test]
fn plan_of_a_new_region_next_to_a_blocked_stack() {
    let third = "ap-northeast-1";
    let mut result = plan_result(PreviewAction::NoChange);
    result.regions.push(third.into());
    result.package.upload_to = regions(&[third]);
    result.settings.replicate_deletes = true;
    result.settings.keep_noncurrent_days = 0;
    result.stacks[0].action = Some(PreviewAction::Blocked);
    result.stacks[0].status = Some("UPDATE_IN_PROGRESS".into());
    result.stacks.push(plan_row(
        &format!("toastrep-{NAME}"),
        third,
        "base",
        PreviewAction::Create,
    ));
    let mut failed = plan_row(
        &format!("toastrep-{NAME}-from-{third}"),
        "us-east-1",
        "grant",
        PreviewAction::Create,
    );
    failed.action = None;
    failed.error = Some("the change set could not be made: Throttling: Rate exceeded".into());
    result.stacks.push(failed);
    result.added = regions(&[third]);
    result.changes = true;
    result.ok = false;
    insta::assert_snapshot!("plan-new-region", plan::summary(&result));
}

fn healthy_region(region: &str) -> RegionStatus {
    RegionStatus {
        region: region.into(),
        healthy: true,
        problems: Vec::new(),
        joining: false,
        stacks: [
            format!("toastrep-{NAME}"),
            format!("toastrep-{NAME}-from-{region}"),
            format!("toastrep-{NAME}-to-{region}"),
        ]
        .into_iter()
        .map(|stack_name| StackStatus {
            stack_name,
            status: "CREATE_COMPLETE".into(),
            healthy: true,
        })
        .collect(),
        function: Some(FunctionStatus {
            function_name: format!("toastrep-{NAME}-replicator"),
            state: "Active".into(),
            last_update_status: "Successful".into(),
            code_sha256: "n/ItbT1wrrHgnzzSW3EKCkYOxNMcCt+W1Z0pFajUbCU=".into(),
            expected_sha256: Some("n/ItbT1wrrHgnzzSW3EKCkYOxNMcCt+W1Z0pFajUbCU=".into()),
            code_matches: true,
        }),
        dead_letter_queue: Some(QueueStatus {
            queue_name: format!("toastrep-{NAME}-dlq"),
            messages: 0,
            in_flight: 0,
        }),
        delete_breaker: Some(BreakerStatus {
            open_for: Vec::new(),
            held: 0,
            alarm: Some("OK".into()),
        }),
        bucket: Some(BucketStatus {
            bucket: format!("toastrep-{NAME}-{region}-{ACCOUNT}"),
            objects: 1_204,
            bytes: 5_368_709_120,
        }),
        last_repair: Some(RepairRun {
            run: "scheduled-20260101T000000Z".into(),
            finished_ms: 0,
            seconds: 42.5,
            ranges: 16,
            ranges_failed: 0,
            keys_examined: 3,
            copies_made: 1,
            failures: 0,
            not_replicable: 0,
            not_replicable_objects: Vec::new(),
            ok: true,
        }),
    }
}

fn status_result(regions: Vec<RegionStatus>) -> StatusResult {
    let healthy = regions.iter().all(|r| r.healthy);
    StatusResult {
        name: NAME.into(),
        account: ACCOUNT.into(),
        deletes: Some(DeleteSettings {
            replicated: true,
            keep_noncurrent_days: 30,
        }),
        regions,
        healthy,
        ok: healthy,
    }
}

/// Snapshots status's text; how long ago a repair ended is the clock's.
macro_rules! assert_status_snapshot {
    ($name:literal, $result:expr) => {
        insta::with_settings!({filters => vec![(r"\d+ s ago", "[N] s ago")]}, {
            insta::assert_snapshot!($name, status::summary($result));
        })
    };
}

#[test]
fn status_of_a_healthy_set() {
    let result = status_result(vec![
        healthy_region("us-east-1"),
        healthy_region("eu-west-2"),
    ]);
    assert_status_snapshot!("status-healthy", &result);
}

#[test]
fn status_of_a_set_with_a_broken_region() {
    let mut broken = healthy_region("eu-west-2");
    broken.healthy = false;
    broken.stacks[2].status = "MISSING".into();
    broken.stacks[2].healthy = false;
    let function = broken.function.as_mut().unwrap();
    function.code_sha256 = "Zm9yZ2VkIGNvZGUgaGVyZSwgbm90IHRvYXN0cmVwJ3M=".into();
    function.code_matches = false;
    broken.dead_letter_queue.as_mut().unwrap().messages = 3;
    broken.dead_letter_queue.as_mut().unwrap().in_flight = 1;
    broken.delete_breaker = Some(BreakerStatus {
        open_for: vec![OpenBreaker {
            source: "us-east-1".into(),
            record: json!({"opened_ms": 1_767_225_600_000_u64, "deletes": 1500}),
        }],
        held: 500,
        alarm: Some("ALARM".into()),
    });
    let run = broken.last_repair.as_mut().unwrap();
    run.ok = false;
    run.ranges_failed = 2;
    run.failures = 1;
    run.not_replicable = 3;
    run.not_replicable_objects = vec![
        NotReplicable {
            key: "cold/2019/archive.tar".into(),
            region: "eu-west-2".into(),
            why: Unreplicable::Archived,
        },
        NotReplicable {
            key: "secret/payroll.csv".into(),
            region: "eu-west-2".into(),
            why: Unreplicable::CustomerKey,
        },
    ];
    broken.problems = vec![
        format!("stack {} is MISSING", broken.stacks[2].stack_name),
        format!(
            "the last repair run (scheduled-20260101T000000Z) did not finish: 2 of 16 ranges failed, 1 keys failed, e.g. photos/locked.jpg in eu-west-2: AccessDenied; the next run repairs them again (now: `toastrep sync --name {NAME} --in-cloud`)"
        ),
        format!(
            "delete breaker OPEN for deletes from us-east-1: they are held, not carried here; look with `toastrep deletes --name {NAME}`, then --release or --discard them"
        ),
        "function code Zm9yZ2VkIGNvZGUgaGVyZSwgbm90IHRvYXN0cmVwJ3M= is not the deployed package n/ItbT1wrrHgnzzSW3EKCkYOxNMcCt+W1Z0pFajUbCU=: redeploy with `toastrep deploy`".into(),
        "dead-letter queue holds 3 messages (1 in flight): events the function failed on".into(),
    ];
    let mut joining = healthy_region("ap-northeast-1");
    joining.joining = true;
    joining.healthy = false;
    joining.last_repair = None;
    joining.bucket.as_mut().unwrap().objects = 0;
    joining.bucket.as_mut().unwrap().bytes = 0;
    joining.problems = vec![format!(
        "being added: the backfill and verify have not finished; run `toastrep add-region --name {NAME} --region ap-northeast-1` again"
    )];
    let result = status_result(vec![healthy_region("us-east-1"), broken, joining]);
    assert_status_snapshot!("status-unhealthy", &result);
}

#[test]
fn verify_with_latencies_per_pair() {
    let pairs = vec![
        pair("us-east-1", "eu-west-2", 30, Some([180, 260, 310])),
        pair("eu-west-2", "us-east-1", 30, Some([175, 240, 290])),
    ];
    insta::assert_snapshot!(
        "verify-ok",
        verify::summary(&verify_result(&REGIONS, 60, pairs))
    );
}

#[test]
fn verify_that_times_out_into_a_region() {
    let three = ["us-east-1", "eu-west-2", "ap-northeast-1"];
    let mut pairs = Vec::new();
    for source in three {
        for destination in three.iter().filter(|d| **d != source) {
            let into_tokyo = *destination == "ap-northeast-1";
            pairs.push(pair(
                source,
                destination,
                1,
                (!into_tokyo).then_some([190, 190, 190]),
            ));
        }
    }
    let mut result = verify_result(&three, 3, pairs);
    result.copies.copies = Some(4);
    result.copies.per_upload = Some(4.0 / 3.0);
    result.copies.exact = false;
    insta::assert_snapshot!("verify-timeout", verify::summary(&result));
}

#[test]
fn verify_that_converges_with_a_copy_too_many() {
    let pairs = vec![
        pair("us-east-1", "eu-west-2", 1, Some([150, 150, 150])),
        pair("eu-west-2", "us-east-1", 1, Some([160, 160, 160])),
    ];
    let mut result = verify_result(&REGIONS, 2, pairs);
    result.copies.copies = Some(3);
    result.copies.per_upload = Some(1.5);
    result.copies.exact = false;
    result.ok = false;
    insta::assert_snapshot!("verify-copies", verify::summary(&result));
}

#[test]
fn sync_dry_run() {
    let mut report = sync_report(&REGIONS);
    report.dry_run = true;
    report.carry_deletes = true;
    report.keys_scanned = 100;
    report.keys_examined = 3;
    report.copies_planned = 2;
    report.copies = vec![
        SyncCopy {
            key: "photos/2024/cat.jpg".into(),
            source: "us-east-1".into(),
            destination: "eu-west-2".into(),
            reason: Reason::Missing,
            bytes: 48_213,
        },
        SyncCopy {
            key: "notes/today.md".into(),
            source: "eu-west-2".into(),
            destination: "us-east-1".into(),
            reason: Reason::Stale,
            bytes: 512,
        },
    ];
    report.deletes_planned = 1;
    report.deletes = vec![SyncDelete {
        key: "old/draft.txt".into(),
        region: "us-east-1".into(),
    }];
    insta::assert_snapshot!("sync-dry-run", sync::render_text(&report));
}

#[test]
fn sync_with_failures_held_deletes_and_an_unreachable_region() {
    let three = ["us-east-1", "eu-west-2", "ap-northeast-1"];
    let mut report = sync_report(&three);
    report.keys_scanned = 5_000;
    report.keys_examined = 12;
    report.copies_made = 9;
    report.copies_skipped = 1;
    report.bytes_copied = 1_048_576;
    report.deletes_held = 2;
    report.held = vec![
        SyncDelete {
            key: "burst/1".into(),
            region: "eu-west-2".into(),
        },
        SyncDelete {
            key: "burst/2".into(),
            region: "eu-west-2".into(),
        },
    ];
    report.not_replicable = vec![NotReplicable {
        key: "big-metadata.bin".into(),
        region: "us-east-1".into(),
        why: Unreplicable::MetadataTooLarge,
    }];
    report.keys_differing_by_delete = 4;
    report.failures = vec![SyncFailure {
        key: "photos/locked.jpg".into(),
        region: "eu-west-2".into(),
        source: Some("us-east-1".into()),
        error: "CopyObject: AccessDenied: Access Denied".into(),
    }];
    report.unreachable = vec![UnreachableRegion {
        region: "ap-northeast-1".into(),
        error: "ListObjectVersions: dispatch failure: connection refused".into(),
    }];
    report.ok = false;
    insta::assert_snapshot!("sync-failures", sync::render_text(&report));
}

#[test]
fn sync_in_the_cloud() {
    let mut report = sync_report(&REGIONS);
    report.keys_scanned = 100;
    report.keys_examined = 66;
    report.copies_made = 66;
    report.bytes_copied = 67_584;
    report.in_cloud = Some(CloudRun {
        run: "sync-20260101T120000Z".into(),
        executions: vec![
            RegionRun {
                region: "us-east-1".into(),
                execution_arn: format!(
                    "arn:aws:states:us-east-1:{ACCOUNT}:execution:toastrep-{NAME}-repair:sync-20260101T120000Z"
                ),
                status: "SUCCEEDED".into(),
                ranges: Some(MapItems {
                    total: 16,
                    succeeded: 16,
                    failed: 0,
                    running: 0,
                }),
                invocations: 17,
                longest_invocation_ms: 2_350,
                error: None,
            },
            RegionRun {
                region: "eu-west-2".into(),
                execution_arn: format!(
                    "arn:aws:states:eu-west-2:{ACCOUNT}:execution:toastrep-{NAME}-repair:sync-20260101T120000Z"
                ),
                status: "FAILED".into(),
                ranges: None,
                invocations: 1,
                longest_invocation_ms: 800,
                error: Some("States.TaskFailed".into()),
            },
        ],
    });
    insta::assert_snapshot!("sync-in-cloud", sync::render_text(&report));
}

fn bucket_row(region: &str, kind: &'static str, action: &'static str, versions: u64) -> BucketRow {
    let suffix = if kind == "artifact" { "-code" } else { "" };
    BucketRow {
        bucket: format!("toastrep-{NAME}-{region}-{ACCOUNT}{suffix}"),
        region: region.into(),
        kind: Cow::Borrowed(kind),
        action: Cow::Borrowed(action),
        versions,
        error: None,
    }
}

fn teardown_stack_row(stack: &str, region: &str) -> down::StackRow {
    down::StackRow {
        stack_name: stack.into(),
        region: region.into(),
        action: Some(StackAction::Deleted),
        error: None,
        note: None,
    }
}

#[test]
fn teardown_that_keeps_the_data() {
    let mut stacks: Vec<down::StackRow> = two_region_stacks()
        .iter()
        .rev()
        .map(|(stack, region, _)| teardown_stack_row(stack, region))
        .collect();
    // Set `media-from-us-east-1`'s base stack has the name of this set's
    // grant stack.
    let grant = &mut stacks[3];
    grant.action = Some(StackAction::LeftAlone);
    grant.note = Some(
        StackError::NotOursToDelete {
            stack: grant.stack_name.clone(),
            region: grant.region,
            found: format!("set '{NAME}-from-us-east-1', base stack"),
            wanted: format!("set '{NAME}', grant stack"),
        }
        .to_string(),
    );
    let result = TeardownResult {
        name: NAME.into(),
        account: ACCOUNT.into(),
        regions: regions(&REGIONS),
        stacks,
        buckets: vec![
            bucket_row("us-east-1", "data", "kept", 10_000),
            bucket_row("us-east-1", "artifact", "deleted", 3),
            bucket_row("eu-west-2", "data", "deleted", 0),
            bucket_row("eu-west-2", "artifact", "deleted", 3),
        ],
        ok: true,
    };
    insta::assert_snapshot!("teardown-kept", teardown::summary(&result, true));
}

#[test]
fn teardown_whose_stack_cannot_be_deleted() {
    let mut stacks: Vec<down::StackRow> = two_region_stacks()
        .iter()
        .rev()
        .map(|(stack, region, _)| teardown_stack_row(stack, region))
        .collect();
    stacks[5].action = None;
    stacks[5].error = Some(
        StackError::Failed {
            stack: format!("toastrep-{NAME}"),
            region: "us-east-1".into(),
            status: "DELETE_FAILED".into(),
            failures: vec![ResourceFailure {
                logical_id: "Role".into(),
                resource_type: "AWS::IAM::Role".into(),
                status: "DELETE_FAILED".into(),
                reason: "Cannot delete entity, must detach all policies first. (Service: Iam, Status Code: 409)".into(),
            }],
        }
        .to_string(),
    );
    let result = TeardownResult {
        name: NAME.into(),
        account: ACCOUNT.into(),
        regions: regions(&REGIONS),
        stacks,
        buckets: Vec::new(),
        ok: false,
    };
    insta::assert_snapshot!("teardown-failed", teardown::summary(&result, false));
}

#[test]
fn teardown_of_a_set_that_is_not_there() {
    let result = TeardownResult {
        name: NAME.into(),
        account: ACCOUNT.into(),
        regions: Vec::new(),
        stacks: Vec::new(),
        buckets: Vec::new(),
        ok: true,
    };
    insta::assert_snapshot!("teardown-nothing", teardown::summary(&result, true));
}

#[test]
fn remove_region_with_its_data() {
    let leaving = "ap-northeast-1";
    let mut sync = sync_report(&["us-east-1", "eu-west-2", leaving]);
    sync.only_into = Some(regions(&REGIONS));
    sync.keys_scanned = 40;
    sync.keys_examined = 2;
    sync.copies_made = 2;
    let stacks = [
        (format!("toastrep-{NAME}-to-{leaving}"), "us-east-1"),
        (format!("toastrep-{NAME}-to-{leaving}"), "eu-west-2"),
        (format!("toastrep-{NAME}-from-us-east-1"), leaving),
        (format!("toastrep-{NAME}-from-eu-west-2"), leaving),
        (format!("toastrep-{NAME}"), leaving),
    ];
    let mut stacks: Vec<down::StackRow> = stacks
        .iter()
        .map(|(stack, region)| teardown_stack_row(stack, region))
        .collect();
    stacks[0].action = Some(StackAction::Updated);
    stacks[0].note = Some("the dashboard no longer shows ap-northeast-1".into());
    let result = RemoveResult {
        name: NAME.into(),
        account: ACCOUNT.into(),
        region: leaving.into(),
        remaining: regions(&REGIONS),
        stacks,
        sync: Some(sync),
        buckets: vec![
            bucket_row(leaving, "data", "deleted", 40),
            bucket_row(leaving, "artifact", "deleted", 3),
        ],
        ok: true,
    };
    insta::assert_snapshot!("remove-region", remove_region::summary(&result, true));
}

#[test]
fn replay_that_leaves_what_still_fails() {
    let left = |id: &str, outcome: &'static str, reason: &str| LeftMessage {
        message_id: id.into(),
        outcome: Cow::Borrowed(outcome),
        reason: reason.into(),
        function_error: None,
    };
    let result = ReplayResult {
        name: NAME.into(),
        dry_run: false,
        regions: vec![
            RegionReplay {
                region: "us-east-1".into(),
                queue: format!("toastrep-{NAME}-dlq"),
                messages: 2,
                replayed: 2,
                ..RegionReplay::new("us-east-1".into(), String::new())
            },
            RegionReplay {
                region: "eu-west-2".into(),
                queue: format!("toastrep-{NAME}-dlq"),
                messages: 4,
                replayed: 1,
                failing: 1,
                unparseable: 1,
                refused: 1,
                error: None,
                left: vec![
                    left(
                        "5fea7756-0ea4-451a-a703-a558b933e274",
                        "failing",
                        "photos/a.jpg: CopyObject: AccessDenied",
                    ),
                    left(
                        "9d1c7a9e-3c1b-4b8e-9a52-6f0c1f1a7b3d",
                        "unparseable",
                        "not JSON: expected value at line 1 column 1",
                    ),
                    left(
                        "2b7e1516-28ae-4d2a-abf7-158809cf4f3c",
                        "refused",
                        "from arn:aws:sns:us-east-1:999999999999:someone-elses-topic, not a topic of the set",
                    ),
                ],
            },
            RegionReplay {
                region: "ap-northeast-1".into(),
                queue: format!("toastrep-{NAME}-dlq"),
                error: Some("ReceiveMessage: AccessDenied".into()),
                ..RegionReplay::new("us-east-1".into(), String::new())
            },
        ],
        replayed: 3,
        failing: 1,
        unparseable: 1,
        refused: 1,
        ok: false,
    };
    insta::assert_snapshot!("replay", replay::render_text(&result));
}

#[test]
fn restore_dry_run() {
    let restored = |key: &str, source: &str, version: &str| RestoredKey {
        key: key.into(),
        source: source.into(),
        version: version.into(),
        bytes: 2_048,
        regions: regions(&["us-east-1", "eu-west-2", "ap-northeast-1"]),
    };
    let result = RestoreResult {
        name: NAME.into(),
        prefix: "docs/".into(),
        at: "2026-01-01T09:30:00Z".into(),
        dry_run: true,
        keys: 5,
        restored: vec![
            restored(
                "docs/0.csv",
                "us-east-1",
                "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrH",
            ),
            restored("docs/1.csv", "eu-west-2", "null"),
        ],
        unchanged: 1,
        none_then: 1,
        failures: vec![RestoreFailure {
            key: "docs/2.csv".into(),
            error: "GetObject: NoSuchVersion".into(),
        }],
        seconds: 0.8,
        ok: false,
    };
    insta::assert_snapshot!("restore-dry-run", restore::render_text(&result));
}

fn deletes_result(action: Action, done: bool, outcome: Option<&str>) -> DeletesResult {
    let held = (0..23)
        .map(|i| HeldKey {
            key: format!("burst/{i:02}"),
            source: "us-east-1".into(),
            marker: format!("marker-{i:02}"),
            outcome: outcome.map(str::to_owned),
        })
        .collect();
    DeletesResult {
        name: NAME.into(),
        action,
        done,
        regions: vec![RegionDeletes {
            region: "eu-west-2".into(),
            open_for: vec![OpenBreaker {
                source: "us-east-1".into(),
                record: json!({"opened_ms": 1_767_225_600_000_u64, "deletes": 1023}),
            }],
            held,
        }],
        failures: Vec::new(),
        refused: Vec::new(),
        ok: true,
    }
}

#[test]
fn deletes_held_by_an_open_breaker() {
    let mut result = deletes_result(Action::Look, false, None);
    result.refused =
        vec!["message 7f7a…: not written by the set's function (no valid seal)".into()];
    insta::assert_snapshot!("deletes-look", deletes::render_text(&result));
}

#[test]
fn deletes_discard_without_yes() {
    let result = deletes_result(Action::Discard, false, None);
    insta::assert_snapshot!("deletes-discard-dry", deletes::render_text(&result));
}

#[test]
fn deletes_released() {
    let mut result = deletes_result(Action::Release, true, Some("released"));
    result.failures = vec!["burst/07 in eu-west-2: DeleteObject: SlowDown".into()];
    result.ok = false;
    insta::assert_snapshot!("deletes-released", deletes::render_text(&result));
}

#[test]
fn rotate_key_that_reseals_every_copy() {
    let step = |step, drained_seconds| StepResult {
        step,
        drained_seconds,
        deploy: deploy_result(StackAction::Updated),
    };
    let mut resealed = sync_report(&REGIONS);
    resealed.keys_scanned = 250;
    resealed.copies_made = 250;
    let result = RotationResult {
        name: NAME.into(),
        regions: regions(&REGIONS),
        old_key_id: "1a2b3c4d".into(),
        new_key_id: "5e6f7a8b".into(),
        steps: vec![
            step(Step::Accept, 900),
            step(Step::Seal, 900),
            step(Step::Retire, 0),
        ],
        resealed: Some(resealed),
        ok: true,
    };
    insta::assert_snapshot!("rotate-key", rotate_key::summary(&result));
}

/// What `--output json` prints reads back as the same result: the tests
/// read every command's JSON as its type.
fn assert_reads_back<T: serde::Serialize + serde::de::DeserializeOwned>(result: &T) {
    let printed = serde_json::to_value(result).unwrap();
    let read: T =
        serde_json::from_value(printed.clone()).unwrap_or_else(|e| panic!("{e}: {printed:#}"));
    assert_eq!(serde_json::to_value(&read).unwrap(), printed);
}

#[test]
fn every_result_reads_back_from_its_json() {
    let mut deploy = deploy_result(StackAction::Created);
    deploy.stacks[0].failures = vec![ResourceFailure {
        logical_id: "Bucket".into(),
        resource_type: "AWS::S3::Bucket".into(),
        status: "CREATE_FAILED".into(),
        reason: "taken".into(),
    }];
    deploy.stacks[1].skipped = true;
    deploy.backfill = Some(sync_report(&REGIONS));
    assert_reads_back(&deploy);
    let mut plan = plan_result(PreviewAction::Update);
    plan.stacks[0].changes = vec![ResourceChange {
        action: "Modify".into(),
        logical_id: "Function".into(),
        resource_type: "AWS::Lambda::Function".into(),
        replacement: None,
    }];
    assert_reads_back(&plan);
    assert_reads_back(&status_result(vec![healthy_region("us-east-1")]));
    let pairs = vec![pair("us-east-1", "eu-west-2", 1, None)];
    assert_reads_back(&verify_result(&REGIONS, 1, pairs));
    assert_reads_back(&deletes_result(Action::Release, true, Some("released")));
    let mut sync = sync_report(&REGIONS);
    sync.copies = vec![SyncCopy {
        key: "k".into(),
        source: "us-east-1".into(),
        destination: "eu-west-2".into(),
        reason: Reason::Missing,
        bytes: 1,
    }];
    sync.not_replicable = vec![NotReplicable {
        key: "k".into(),
        region: "eu-west-2".into(),
        why: Unreplicable::Archived,
    }];
    assert_reads_back(&sync);
}
