//! The set's marker key: made once for a new set, held by every region's
//! function, kept by redeploys, plans and added regions, and never mixed.

use std::collections::HashMap;

use crate::harness::{self, ACCOUNT, json, stderr, toastrep, unique_name};
use crate::operate::{deploy, stack_state, teardown, zip_path};

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
    assert_eq!(json(&again)["up_to_date"], true, "{}", json(&again));
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
        let result = json(&plan);
        assert_eq!(result["changes"], false, "{args:?}: {result}");
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
    for stack in json(&added)["stacks"].as_array().unwrap() {
        if stack["kind"] == "base" && stack["region"] != third {
            let expected = if stack["region"] == "eu-west-2" {
                "updated"
            } else {
                "unchanged"
            };
            assert_eq!(stack["action"], expected, "{stack}");
        }
    }
    let all = [regions[0], regions[1], third];
    assert_eq!(the_one_key(&name, &all).await, key);

    teardown(&name);
}

#[tokio::test(flavor = "multi_thread")]
async fn regions_whose_functions_hold_different_marker_keys_are_refused_with_the_fix() {
    let name = unique_name("keys");
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
    assert_eq!(json(&plan)["changes"], false, "{}", json(&plan));
    let shown = format!("{}{}", json(&plan), stderr(&plan));
    assert!(!shown.contains(&key) && !shown.contains(&other));
    // Nothing was changed.
    assert_eq!(stack_state(&name, &regions).await, before);
    assert!(
        harness::set_stacks("ap-northeast-1", &name)
            .await
            .is_empty()
    );

    teardown(&name);
}
