//! The set's marker key: made once for a new set, held by every region's
//! function, kept by redeploys, plans and added regions, and never mixed.

use std::collections::HashMap;

use toastrep::aws::stack::StackAction;
use toastrep::model::rotation::Step;
use toastrep::ops::preview::PlanResult;
use toastrep::ops::rollout::DeployResult;
use toastrep::ops::rotation::RotationResult;
use toastrep::ops::sync::SyncReport;

use crate::harness::{self, ACCOUNT, Cleanup, parse, stderr, toastrep, unique_name};
use crate::operate::{deploy, stack_state, zip_path};

/// The environment of the set's function in a region.
async fn function_environment(name: &str, region: &str) -> HashMap<String, String> {
    harness::lambda(region)
        .get_function_configuration()
        .function_name(format!("toastrep-{name}-replicator"))
        .send()
        .await
        .expect("GetFunctionConfiguration")
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default()
}

/// The key every region's function holds, checked to be one well-formed key,
/// with the set name and account the replicator names buckets from.
async fn the_one_key(name: &str, regions: &[&str]) -> String {
    let mut keys = Vec::new();
    for region in regions {
        let environment = function_environment(name, region).await;
        let key = environment
            .get("MARKER_KEY")
            .unwrap_or_else(|| panic!("no MARKER_KEY in {region}"))
            .clone();
        assert!(
            key.len() == 64 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "MARKER_KEY in {region} is not 64 lowercase hex characters"
        );
        assert_eq!(environment.get("SET_NAME").map(String::as_str), Some(name));
        assert_eq!(
            environment.get("ACCOUNT_ID").map(String::as_str),
            Some(ACCOUNT)
        );
        keys.push(key);
    }
    assert!(
        keys.windows(2).all(|w| w[0] == w[1]),
        "the regions' functions hold different keys"
    );
    keys.remove(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_set_keeps_one_marker_key_through_redeploy_plan_and_add_region() {
    let name = unique_name("key");
    let cleanup = Cleanup::new(&name);
    let zip = zip_path();
    let regions = ["us-east-1", "eu-west-2"];
    let first = deploy(&name, &regions.join(","), &zip);
    assert!(first.status.success());
    // Secret: not in deploy's result, not in the base stacks' parameters.
    let key = the_one_key(&name, &regions).await;
    assert!(!String::from_utf8_lossy(&first.stdout).contains(&key));
    for line in stack_state(&name, &regions).await {
        assert!(!line.contains(&key), "{line}");
    }

    // A redeploy changes nothing, the key included.
    let again = deploy(&name, &regions.join(","), &zip);
    assert_eq!(again.status.code(), Some(0));
    let result = parse::<DeployResult>(&again);
    assert!(result.up_to_date, "{result}");
    assert_eq!(the_one_key(&name, &regions).await, key);

    // plan and deploy --dry-run of the unchanged set: no change anywhere, the
    // NoEcho key included.
    for args in [
        vec!["plan", "--name", &name],
        vec!["deploy", "--dry-run", "--name", &name],
    ] {
        let regions = regions.join(",");
        let mut args = args;
        args.extend([
            "--regions",
            &regions,
            "--lambda-zip",
            &zip,
            "--output",
            "json",
        ]);
        let plan = toastrep(&args);
        assert_eq!(plan.status.code(), Some(0), "{args:?}");
        let result = parse::<PlanResult>(&plan);
        assert!(!result.changes, "{args:?}: {result}");
        assert!(!result.to_string().contains(&key));
    }

    // An added region gets the members' key, and the members are untouched
    // but for the set's dashboard, which now shows the new region too (it
    // stays in the stack of the region that sorted first, eu-west-2).
    let third = "ap-northeast-1";
    let added = toastrep(&[
        "add-region",
        "--name",
        &name,
        "--region",
        third,
        "--output",
        "json",
    ]);
    assert_eq!(added.status.code(), Some(0));
    for stack in &parse::<DeployResult>(&added).stacks {
        if stack.kind == "base" && stack.region != third {
            let expected = if stack.region == "eu-west-2" {
                StackAction::Updated
            } else {
                StackAction::Unchanged
            };
            assert_eq!(stack.action, Some(expected), "{stack:?}");
        }
    }
    let all = [regions[0], regions[1], third];
    assert_eq!(the_one_key(&name, &all).await, key);

    cleanup.teardown();
}

#[tokio::test(flavor = "multi_thread")]
async fn regions_whose_functions_hold_different_marker_keys_are_refused_with_the_fix() {
    let name = unique_name("keys");
    let cleanup = Cleanup::new(&name);
    let zip = zip_path();
    let regions = ["us-east-1", "eu-west-2"];
    assert!(deploy(&name, &regions.join(","), &zip).status.success());
    let key = the_one_key(&name, &regions).await;

    // eu-west-2's function gets another key behind the stack's back.
    let odd = "eu-west-2";
    let mut environment = function_environment(&name, odd).await;
    let other: String = key
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    environment.insert("MARKER_KEY".to_owned(), other.clone());
    harness::lambda(odd)
        .update_function_configuration()
        .function_name(format!("toastrep-{name}-replicator"))
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .set_variables(Some(environment))
                .build(),
        )
        .send()
        .await
        .expect("UpdateFunctionConfiguration");
    let before = stack_state(&name, &regions).await;

    let regions_arg = regions.join(",");
    for args in [
        vec![
            "deploy",
            "--name",
            &name,
            "--regions",
            &regions_arg,
            "--lambda-zip",
            &zip,
        ],
        vec!["add-region", "--name", &name, "--region", "ap-northeast-1"],
    ] {
        let out = toastrep(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains("hold different marker keys"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("us-east-1") && err.contains(odd),
            "{args:?}: {err}"
        );
        assert!(
            err.contains(&format!("toastrep-{name}")) && err.contains("ParameterKey=MarkerKey"),
            "{args:?}: the fix: {err}"
        );
        assert!(!err.contains(&key) && !err.contains(&other), "{err}");
    }
    // plan never reads the key (a pull request's CI may run it): it keeps
    // the deployed one, whatever the functions hold, and sees no change.
    let plan = toastrep(&[
        "plan",
        "--name",
        &name,
        "--lambda-zip",
        &zip,
        "--output",
        "json",
    ]);
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    let result = parse::<PlanResult>(&plan);
    assert!(!result.changes, "{result}");
    let shown = format!("{result}{}", stderr(&plan));
    assert!(!shown.contains(&key) && !shown.contains(&other));
    // Nothing was changed.
    assert_eq!(stack_state(&name, &regions).await, before);
    assert!(
        harness::set_stacks("ap-northeast-1", &name)
            .await
            .is_empty()
    );

    cleanup.teardown();
}

/// The marker on `key`'s current object in `region`.
async fn marker(name: &str, region: &str, key: &str) -> String {
    harness::s3(region)
        .head_object()
        .bucket(harness::data_bucket(name, region))
        .key(key)
        .send()
        .await
        .expect("HeadObject")
        .metadata()
        .and_then(|m| m.get("toastrep-origin"))
        .cloned()
        .unwrap_or_else(|| panic!("{key} in {region} has no marker"))
}

fn rotate_key(name: &str, regions: &[&str], zip: &str) -> std::process::Output {
    toastrep(&[
        "rotate-key",
        "--name",
        name,
        "--regions",
        &regions.join(","),
        "--lambda-zip",
        zip,
        // The emulator's functions finish each invocation before the
        // deploy that follows returns: nothing to drain.
        "--drain-seconds",
        "0",
        "--output",
        "json",
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_key_replaces_the_key_reseals_every_copy_and_replication_goes_on() {
    let name = unique_name("rot");
    let cleanup = Cleanup::new(&name);
    let zip = zip_path();
    let regions = ["us-east-1", "eu-west-2"];
    assert!(deploy(&name, &regions.join(","), &zip).status.success());
    let old = the_one_key(&name, &regions).await;
    let before = crate::operate::upload("us-east-1", "before/rotation.txt", 1);
    harness::put_and_assert_replicated(&name, std::slice::from_ref(&before), &regions).await;
    // A set that never rotated seals markers every release reads.
    let sealed = marker(&name, "eu-west-2", &before.key).await;
    assert!(sealed.starts_with("v2;"), "{sealed}");

    let rotated = rotate_key(&name, &regions, &zip);
    assert_eq!(rotated.status.code(), Some(0), "{}", stderr(&rotated));
    let result = parse::<RotationResult>(&rotated);
    let steps: Vec<Step> = result.steps.iter().map(|s| s.step).collect();
    assert_eq!(steps, [Step::Accept, Step::Seal, Step::Retire], "{result}");
    assert!(
        result.resealed.as_ref().unwrap().copies_made >= 1,
        "{result}"
    );
    let new = the_one_key(&name, &regions).await;
    assert_ne!(new, old);
    let out = String::from_utf8_lossy(&rotated.stdout);
    assert!(
        !out.contains(&new) && !out.contains(&old),
        "a key in the output"
    );
    let new_id = result.new_key_id.clone();
    assert_ne!(result.old_key_id, result.new_key_id);
    for region in regions {
        let ring = function_environment(&name, region).await["MARKER_KEY_RING"].clone();
        assert!(
            ring.starts_with("names;retired="),
            "{region}: ring has no retirement"
        );
        assert!(
            !ring.contains("accept="),
            "{region}: the old key is still accepted"
        );
        assert!(ring.contains(&old) && !ring.contains(&new), "{region}");
    }
    // The copy the old key sealed is sealed again, naming the new key.
    let resealed = marker(&name, "eu-west-2", &before.key).await;
    assert!(
        resealed.starts_with(&format!("v3;kid={new_id};")),
        "{resealed}"
    );
    harness::assert_replica(&name, "eu-west-2", &before).await;

    // Replication goes on under the new key, in both directions.
    let after = crate::operate::upload("eu-west-2", "after/rotation.txt", 2);
    harness::put_and_assert_replicated(&name, std::slice::from_ref(&after), &regions).await;
    let copy = marker(&name, "us-east-1", &after.key).await;
    assert!(copy.starts_with(&format!("v3;kid={new_id};")), "{copy}");
    // And nothing is left to repair: no copy reads as an original.
    let sync = toastrep(&[
        "sync",
        "--name",
        &name,
        "--deep",
        "--dry-run",
        "--output",
        "json",
    ]);
    assert_eq!(sync.status.code(), Some(0), "{}", stderr(&sync));
    let report = parse::<SyncReport>(&sync);
    assert_eq!(report.copies_planned, 0, "{report}");

    // Run again: a new rotation, from the key the last one made.
    let again = rotate_key(&name, &regions, &zip);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(parse::<RotationResult>(&again).old_key_id, new_id);
    harness::assert_replica(&name, "us-east-1", &after).await;

    cleanup.teardown();
}
