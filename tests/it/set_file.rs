//! The set file: `init` writes it, deploy and plan read it, flags override
//! it, plan shows a change before deploy makes it, a redeploy never reverts
//! a setting, and add-region keeps it true to the set. And what the
//! commands print on stderr: nothing with --quiet, a line per stack state
//! change in a log.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde::de::DeserializeOwned;
use toastrep::commands::InitResult;
use toastrep::model::function::{SettingChange, Source};
use toastrep::ops::preview::PlanResult;
use toastrep::ops::rollout::DeployResult;

use crate::harness::{self, Cleanup, Json, parse, run, stderr, toastrep_command, unique_name};

/// Runs toastrep in `dir`, where the set file is.
fn toastrep_in(dir: &Path, args: &[&str]) -> Output {
    run(toastrep_command().current_dir(dir).args(args))
}

fn ok_json<T: DeserializeOwned>(dir: &Path, args: &[&str]) -> Json<T> {
    let out = toastrep_in(dir, &[args, &["--output", "json"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    parse(&out)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("set-file-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn settings_of(changes: &[SettingChange]) -> Vec<(String, String, String, Source)> {
    changes
        .iter()
        .map(|c| {
            (
                c.setting.clone(),
                c.deployed.clone(),
                c.planned.clone(),
                c.source,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_set_file_is_what_deploy_and_plan_read_and_no_redeploy_reverts_a_setting() {
    let name = unique_name("file");
    let cleanup = Cleanup::new(&name);
    let dir = scratch(&name);
    let zip = harness::lambda_zip();
    let zip = zip.to_str().unwrap();
    let file = dir.join("toastrep.toml");

    let init: Json<InitResult> = ok_json(
        &dir,
        &[
            "init",
            "--name",
            &name,
            "--regions",
            "us-east-1,eu-west-2",
            "--part-size",
            "8388608",
        ],
    );
    assert_eq!(init.settings.part_size, Some(8388608), "{init}");
    let written = std::fs::read_to_string(&file).unwrap();
    // A second init would lose the first: refused, and the file is as it was.
    let again = toastrep_in(
        &dir,
        &["init", "--name", &name, "--regions", "us-east-1,eu-west-2"],
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), written);

    // No name, no regions: the file's.
    let deployed: Json<DeployResult> = ok_json(&dir, &["deploy", "--lambda-zip", zip, "--quiet"]);
    assert_eq!(deployed.name, name, "{deployed}");
    assert_eq!(deployed.regions, ["us-east-1", "eu-west-2"]);
    let plan: Json<PlanResult> = ok_json(&dir, &["plan", "--lambda-zip", zip]);
    assert!(!plan.changes, "{plan}");
    assert_eq!(plan.settings.part_size, 8388608, "{plan}");

    // A flag the file does not name: deployed, then kept by the next deploy
    // that leaves it out.
    ok_json::<DeployResult>(
        &dir,
        &[
            "deploy",
            "--lambda-zip",
            zip,
            "--keep-noncurrent-days",
            "7",
            "--quiet",
        ],
    );
    let plan: Json<PlanResult> = ok_json(&dir, &["plan", "--lambda-zip", zip]);
    assert_eq!(settings_of(&plan.setting_changes), [], "{plan}");
    assert_eq!(plan.settings.keep_noncurrent_days, 7, "{plan}");

    // A reviewed change to the file: plan shows it, from the file, before
    // deploy makes it; a flag still wins over the file.
    std::fs::write(
        &file,
        written.replace("[settings]\n", "[settings]\nlog-retention-days = 7\n"),
    )
    .unwrap();
    let plan = toastrep_in(&dir, &["plan", "--lambda-zip", zip]);
    assert_eq!(plan.status.code(), Some(0));
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("Setting to change: log-retention-days 30 -> 7 (from the set file)"),
        "{text}"
    );
    let flagged: Json<PlanResult> = ok_json(
        &dir,
        &["plan", "--lambda-zip", zip, "--log-retention-days", "14"],
    );
    assert_eq!(
        settings_of(&flagged.setting_changes),
        [(
            "log-retention-days".into(),
            "30".into(),
            "14".into(),
            Source::Flag
        )]
    );
    let deployed: Json<DeployResult> = ok_json(&dir, &["deploy", "--lambda-zip", zip, "--quiet"]);
    assert_eq!(
        settings_of(&deployed.setting_changes),
        [(
            "log-retention-days".into(),
            "30".into(),
            "7".into(),
            Source::SetFile
        )]
    );
    let plan: Json<PlanResult> = ok_json(&dir, &["plan", "--lambda-zip", zip]);
    assert!(!plan.changes, "{plan}");

    // The file follows the set when a region is added.
    let added: Json<DeployResult> = ok_json(
        &dir,
        &["add-region", "--region", "ap-northeast-1", "--quiet"],
    );
    assert_eq!(added.added, ["ap-northeast-1"]);
    let file_now = std::fs::read_to_string(&file).unwrap();
    assert!(
        file_now.contains(r#"regions = ["us-east-1", "eu-west-2", "ap-northeast-1"]"#),
        "{file_now}"
    );
    assert!(file_now.contains("log-retention-days = 7"), "{file_now}");
    let plan: Json<PlanResult> = ok_json(&dir, &["plan", "--lambda-zip", zip]);
    assert!(!plan.changes, "{plan}");

    // Teardown of three regions in a log: a line per stack state change,
    // none per resource event.
    let teardown = toastrep_in(&dir, &["teardown"]);
    assert_eq!(teardown.status.code(), Some(0));
    cleanup.disarm();
    let lines: Vec<String> = stderr(&teardown).lines().map(str::to_owned).collect();
    let stacks = 3 + 6 + 6;
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("toastrep-{name}: done: deleted"))),
        "{lines:#?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains("DELETE_COMPLETE")),
        "resource events in the log: {lines:#?}"
    );
    // Start and end of each stack and bucket, and a few notes.
    assert!(lines.len() <= 2 * (stacks + 6) + 5, "{lines:#?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_command_without_a_set_says_how_to_name_one_and_a_bad_set_file_is_named() {
    let dir = scratch(&unique_name("none"));
    let out = toastrep_in(&dir, &["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("pass --name NAME"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("toastrep init"), "{}", stderr(&out));

    std::fs::write(
        dir.join("toastrep.toml"),
        "name = \"media\"\nregions = [\"us-east-1\", \"eu-west-2\"]\n[settings]\npart-sise = 5\n",
    )
    .unwrap();
    let out = toastrep_in(&dir, &["plan"]);
    assert_eq!(out.status.code(), Some(2));
    let error = stderr(&out);
    assert!(error.contains("toastrep.toml"), "{error}");
    assert!(error.contains("part-sise"), "{error}");

    std::fs::write(
        dir.join("toastrep.toml"),
        "name = \"media\"\nregions = [\"us-east-1\", \"us-east1\"]\n",
    )
    .unwrap();
    let out = toastrep_in(&dir, &["deploy"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("did you mean 'us-east-1'"),
        "{}",
        stderr(&out)
    );

    // --name of another set than the file's: refused before anything, and
    // the file is left as it was (add-region would have rewritten it).
    let file = "name = \"media\"\nregions = [\"us-east-1\", \"eu-west-2\"]\n";
    std::fs::write(dir.join("toastrep.toml"), file).unwrap();
    for args in [
        &["deploy", "--name", "photos"][..],
        &[
            "add-region",
            "--name",
            "photos",
            "--region",
            "ap-northeast-1",
        ],
        &["status", "--name", "photos"],
    ] {
        let out = toastrep_in(&dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let error = stderr(&out);
        assert!(
            error.contains("--name photos") && error.contains("describes set media"),
            "{args:?}: {error}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("toastrep.toml")).unwrap(),
            file
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
