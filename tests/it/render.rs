//! `toastrep render`: the files and commands of a plan, and the lint gates
//! every rendered template must pass.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::toastrep;

/// render's result, read untyped: unlike every other command's, it cannot
/// be read back as its type (`RenderResult`), since the plan it holds is
/// printed with its secret parameters masked, and a plan read back from
/// that would not be the plan.
fn render_into(dir: &Path) -> serde_json::Value {
    let zip = dir.join("fake.zip");
    write_fake_package(&zip);
    let output = toastrep(&[
        "render",
        "--name",
        "demo",
        "--regions",
        "us-east-1,eu-west-2,ap-northeast-1",
        "--out",
        dir.join("out").to_str().unwrap(),
        "--lambda-zip",
        zip.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert!(output.status.success());
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

/// A tiny stand-in package, so the plan (which names the package by its hash)
/// is the same on every machine.
fn write_fake_package(path: &Path) {
    let package = toastrep::package::Package::from_bootstrap(b"#!/bin/sh\nexit 0\n").unwrap();
    std::fs::write(path, package.zip).unwrap();
}

fn rendered_templates(out: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for region in std::fs::read_dir(out.join("stacks")).unwrap() {
        for file in std::fs::read_dir(region.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn render_writes_every_stack_and_the_commands_in_dependency_order() {
    let dir = tempdir();
    let result = render_into(&dir);
    let out = dir.join("out");
    // 3 bases + 6 grants + 6 subscriptions.
    assert_eq!(rendered_templates(&out).len(), 15);
    assert!(out.join("plan.json").is_file());
    assert!(out.join("deploy.sh").is_file());
    let commands: Vec<String> = result["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().replace(out.to_str().unwrap(), "OUT"))
        .collect();
    let deploys: Vec<&String> = commands
        .iter()
        .filter(|c| c.contains("aws cloudformation deploy"))
        .collect();
    assert_eq!(deploys.len(), 15);
    // Bases before every grant, grants before every subscription.
    let last_base = commands
        .iter()
        .rposition(|c| c.contains("toastrep:stack=base"))
        .unwrap();
    let first_grant = commands
        .iter()
        .position(|c| c.contains("toastrep:stack=grant"))
        .unwrap();
    let last_grant = commands
        .iter()
        .rposition(|c| c.contains("toastrep:stack=grant"))
        .unwrap();
    let first_subscription = commands
        .iter()
        .position(|c| c.contains("toastrep:stack=subscription"))
        .unwrap();
    assert!(last_base < first_grant && last_grant < first_subscription);
    // The package hash follows the zip library's output; the commands are what matter.
    insta::with_settings!({filters => vec![(r"[0-9a-f]{64}", "<sha256>")]}, {
        insta::assert_snapshot!(commands.join("\n"));
    });
}

#[test]
fn render_keeps_the_marker_key_in_one_private_file_and_keeps_it_when_rendered_again() {
    let dir = tempdir();
    let result = render_into(&dir);
    let out = dir.join("out");
    let file = out.join("marker-key");
    let key = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(
        key.len() == 64 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "not a marker key: {} characters",
        key.len()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    // Nothing else holds it: the plan shows ****, the script reads the file.
    assert!(!result.to_string().contains(&key));
    let mut written = vec![out.join("plan.json"), out.join("deploy.sh")];
    for template in rendered_templates(&out) {
        written.push(template.with_extension("json"));
        written.push(template.with_extension("parameters.json"));
    }
    for path in &written {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(!text.contains(&key), "{} holds the key", path.display());
    }
    let base = std::fs::read_to_string(out.join("stacks/us-east-1/toastrep-demo.json")).unwrap();
    assert!(base.contains(r#""MarkerKey": "****""#), "{base}");

    // Rendered again into the same directory (after a deploy by hand, say):
    // the same key, or the set would get a second one.
    render_into(&dir);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), key);
}

/// The rendered script run with a stand-in `aws` that records what every
/// call was given: the marker key is never an argument (which any user of
/// the machine can read in the process list), each base stack gets it through
/// a parameters file only its owner can read, and no copy is left behind.
#[cfg(unix)]
#[test]
fn the_rendered_script_passes_the_marker_key_in_a_private_file_never_as_an_argument() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    render_into(&dir);
    let out = dir.join("out");
    let key = std::fs::read_to_string(out.join("marker-key"))
        .unwrap()
        .trim()
        .to_owned();
    let log = dir.join("log");
    std::fs::create_dir_all(&log).unwrap();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let aws = bin.join("aws");
    std::fs::write(
        &aws,
        r#"#!/bin/sh
printf '%s\n' "$*" >> "$LOG/calls"
case "$*" in *"sts get-caller-identity"*) echo 123456789012 ;; esac
for a in "$@"; do
  case $a in file://*)
    f=${a#file://}
    n=$(ls "$LOG" | wc -l)
    cp "$f" "$LOG/parameters.$n"
    printf '%s %s\n' "$f" "$(stat -c %a "$f")" >> "$LOG/files"
  ;; esac
done
"#,
    )
    .unwrap();
    std::fs::set_permissions(&aws, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let run = Command::new("sh")
        .arg(out.join("deploy.sh"))
        .env("PATH", path)
        .env("LOG", &log)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let calls = std::fs::read_to_string(log.join("calls")).unwrap();
    assert_eq!(calls.matches("cloudformation deploy").count(), 15);
    assert!(
        !calls.contains(&key),
        "a command was given the key:\n{calls}"
    );
    let mut with_key = 0;
    for entry in std::fs::read_dir(&log).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("parameters.")
        {
            continue;
        }
        let parameters: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let values: Vec<(&str, &str)> = parameters
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["ParameterKey"].as_str().unwrap(),
                    p["ParameterValue"].as_str().unwrap(),
                )
            })
            .collect();
        assert!(values.iter().any(|(k, v)| *k == "SetName" && *v == "demo"));
        if let Some((_, value)) = values.iter().find(|(k, _)| *k == "MarkerKey") {
            assert_eq!(*value, key, "a base stack deploys with the set's key");
            with_key += 1;
        }
    }
    assert_eq!(with_key, 3, "one base stack per region");
    // The filled-in copy was readable by its owner only, and is gone.
    let files = std::fs::read_to_string(log.join("files")).unwrap();
    let private: Vec<&str> = files.lines().filter(|l| !l.contains("/stacks/")).collect();
    assert_eq!(private.len(), 3, "{files}");
    for line in private {
        let (file, mode) = line.rsplit_once(' ').unwrap();
        assert_eq!(mode, "600", "{line}");
        assert!(!Path::new(file).exists(), "{file} was left behind");
    }
}

#[test]
fn every_rendered_template_passes_cfn_lint_without_warnings() {
    let dir = tempdir();
    render_into(&dir);
    let templates = rendered_templates(&dir.join("out"));
    let output = Command::new(lint_tool("cfn-lint"))
        .args(&templates)
        .output()
        .expect("cfn-lint runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cfn-lint found errors or warnings:\n{report}"
    );
    assert!(
        report.trim().is_empty(),
        "cfn-lint printed findings:\n{report}"
    );
}

#[test]
fn every_rendered_template_passes_checkov() {
    let dir = tempdir();
    render_into(&dir);
    let output = Command::new(lint_tool("checkov"))
        .args(["--directory"])
        .arg(dir.join("out").join("stacks"))
        .args([
            "--framework",
            "cloudformation",
            "--compact",
            "--output",
            "json",
        ])
        // No telemetry or platform calls: the machine may be offline.
        .env("BC_SKIP_MAPPING", "TRUE")
        .env("CHECKOV_RUN_SCA_PACKAGE_SCAN_V2", "false")
        .output()
        .expect("checkov runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "checkov failed checks:\n{report}");
    let parsed: serde_json::Value = serde_json::from_str(&report).expect("checkov prints JSON");
    let summary = &parsed["summary"];
    assert_eq!(summary["failed"], 0, "{report}");
    assert!(
        summary["passed"].as_u64().unwrap() > 0,
        "checkov checked nothing: {report}"
    );
    // Every skip must carry its reason in the template.
    let skipped = parsed["results"]["skipped_checks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for skipped in skipped {
        let reason = skipped["check_result"]["suppress_comment"]
            .as_str()
            .unwrap_or_default();
        assert!(
            reason.len() > 20,
            "skip without a written reason: {skipped}"
        );
    }
}

// The lint gates above prove the policies are well formed, not that they say
// what the set needs (the emulator enforces none of them): these pin what each
// policy admits, so a regression fails here rather than on AWS.

#[test]
fn the_key_admits_s3_and_sns_only_for_the_sets_own_bucket_and_topic() {
    let dir = tempdir();
    render_into(&dir);
    let base = rendered_template(&dir.join("out"), "us-east-1", "toastrep-demo");
    let resources = &base["Resources"];
    // The ARNs of the bucket and topic this template makes, from their names.
    let bucket_arn = format!(
        "arn:${{AWS::Partition}}:s3:::{}",
        tagged(&resources["Bucket"]["Properties"]["BucketName"], "Sub")
    );
    let topic_arn = format!(
        "arn:${{AWS::Partition}}:sns:${{AWS::Region}}:${{AWS::AccountId}}:{}",
        tagged(&resources["Topic"]["Properties"]["TopicName"], "Sub")
    );
    let policy = &resources["Key"]["Properties"]["KeyPolicy"];

    let s3 = &statement(policy, "S3PublishesToEncryptedTopic")["Condition"];
    assert_eq!(tagged(&s3["ArnLike"]["aws:SourceArn"], "Sub"), bucket_arn);
    assert_eq!(
        tagged(&s3["StringEquals"]["aws:SourceAccount"], "Ref"),
        "AWS::AccountId"
    );
    assert_eq!(
        tagged(
            &s3["StringEquals"]["kms:EncryptionContext:aws:sns:topicArn"],
            "Sub"
        ),
        topic_arn
    );
    let sns = &statement(policy, "SnsUsesKeyForTopic")["Condition"];
    assert_eq!(
        tagged(
            &sns["StringEquals"]["kms:EncryptionContext:aws:sns:topicArn"],
            "Sub"
        ),
        topic_arn
    );

    // Administration is a list of management actions: no wildcard, no grant
    // (which would let its grantee use the key), and kms:PutKeyPolicy, without
    // which KMS refuses the policy.
    let admin = actions(statement(policy, "AccountAdministers"));
    assert!(admin.iter().all(|a| !a.contains('*')), "{admin:?}");
    assert!(admin.contains(&"kms:PutKeyPolicy"), "{admin:?}");
    assert!(!admin.contains(&"kms:CreateGrant"), "{admin:?}");
}

#[test]
fn only_the_replicators_role_may_send_to_its_queues() {
    let dir = tempdir();
    render_into(&dir);
    let base = rendered_template(&dir.join("out"), "us-east-1", "toastrep-demo");
    let resources = &base["Resources"];
    for (policy, queue) in [
        ("DeadLetterQueuePolicy", "DeadLetterQueue"),
        ("HeldDeletesQueuePolicy", "HeldDeletesQueue"),
    ] {
        let document = &resources[policy]["Properties"]["PolicyDocument"];
        let deny = statement(document, "OnlyReplicatorSends");
        assert_eq!(deny["Effect"], "Deny", "{policy}");
        assert_eq!(deny["Principal"], "*", "{policy}");
        assert_eq!(actions(deny), ["sqs:SendMessage"], "{policy}");
        assert_eq!(tagged(&deny["Resource"], "GetAtt"), format!("{queue}.Arn"));
        assert_eq!(
            tagged(
                &deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"],
                "GetAtt"
            ),
            "Role.Arn",
            "{policy}"
        );
        // Beside, not instead of, the TLS-only statement.
        assert_eq!(
            statement(document, "DenyInsecureTransport")["Effect"],
            "Deny"
        );
    }
}

#[test]
fn every_s3_permission_of_the_replicator_is_for_buckets_of_its_own_account() {
    let dir = tempdir();
    render_into(&dir);
    let out = dir.join("out");
    let base = rendered_template(&out, "us-east-1", "toastrep-demo");
    let grant = rendered_template(&out, "eu-west-2", "toastrep-demo-from-us-east-1");
    let documents = [
        &base["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"],
        &grant["Resources"]["SourceReadPolicy"]["Properties"]["PolicyDocument"],
        &base["Resources"]["RepairStateMachineRole"]["Properties"]["Policies"][0]["PolicyDocument"],
    ];
    let mut checked = 0;
    for document in documents {
        for statement in document["Statement"].as_sequence().unwrap() {
            if actions(statement).iter().any(|a| a.starts_with("s3:")) {
                assert_eq!(
                    tagged(
                        &statement["Condition"]["StringEquals"]["s3:ResourceAccount"],
                        "Ref"
                    ),
                    "AWS::AccountId",
                    "{statement:?}"
                );
                checked += 1;
            }
        }
    }
    // Six in the role (its bucket's objects and listing, the breaker's and
    // the repair's records and their listings), two in the grant (the
    // source's objects, listing), one in the repair state machine's role
    // (the manifest of ranges).
    assert_eq!(checked, 9);
}

#[test]
fn the_log_group_and_its_key_outlive_the_stack_under_a_name_of_the_stacks_own() {
    let dir = tempdir();
    render_into(&dir);
    let base = rendered_template(&dir.join("out"), "us-east-1", "toastrep-demo");
    let resources = &base["Resources"];
    for kept in ["LogGroup", "Key"] {
        assert_eq!(
            resources[kept]["DeletionPolicy"], "RetainExceptOnCreate",
            "{kept}"
        );
        assert_eq!(resources[kept]["UpdateReplacePolicy"], "Retain", "{kept}");
    }
    // A kept group keeps its name: the stack id in it lets the set be deployed
    // again beside it.
    let (name, variables) =
        sub_with_variables(&resources["LogGroup"]["Properties"]["LogGroupName"]);
    assert_eq!(
        name,
        "/aws/lambda/toastrep-${SetName}-replicator/${StackUuid}"
    );
    let uuid = serde_yaml::to_string(&variables["StackUuid"]).unwrap();
    assert!(uuid.contains("AWS::StackId"), "{uuid}");
    // The function logs there, the output names it, and the key lets
    // CloudWatch Logs use it for exactly that group.
    assert_eq!(
        tagged(
            &resources["Function"]["Properties"]["LoggingConfig"]["LogGroup"],
            "Ref"
        ),
        "LogGroup"
    );
    assert_eq!(
        tagged(&base["Outputs"]["LogGroupName"]["Value"], "Ref"),
        "LogGroup"
    );
    let logs = statement(
        &resources["Key"]["Properties"]["KeyPolicy"],
        "LogsEncryptsReplicatorLogGroup",
    );
    let arns = logs["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]
        .as_sequence()
        .unwrap();
    let (arn, arn_variables) = sub_with_variables(&arns[0]);
    assert_eq!(
        arn,
        format!(
            "arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{name}"
        )
    );
    assert_eq!(arn_variables, variables);
}

/// A rendered template, parsed; CloudFormation's short forms (`!Sub`, `!Ref`,
/// `!GetAtt`) stay tagged values.
fn rendered_template(out: &Path, region: &str, stack: &str) -> serde_yaml::Value {
    let path = out
        .join("stacks")
        .join(region)
        .join(format!("{stack}.yaml"));
    serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The statement of a policy document with this `Sid`.
fn statement<'a>(policy: &'a serde_yaml::Value, sid: &str) -> &'a serde_yaml::Value {
    policy["Statement"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| s["Sid"].as_str() == Some(sid))
        .unwrap_or_else(|| panic!("no statement {sid}"))
}

/// A statement's actions, whether one or a list.
fn actions(statement: &serde_yaml::Value) -> Vec<&str> {
    match &statement["Action"] {
        serde_yaml::Value::String(action) => vec![action.as_str()],
        serde_yaml::Value::Sequence(list) => list.iter().map(|a| a.as_str().unwrap()).collect(),
        other => panic!("no actions: {other:?}"),
    }
}

/// The text of a short-form intrinsic such as `!Sub text` or `!Ref name`.
fn tagged<'a>(value: &'a serde_yaml::Value, tag: &str) -> &'a str {
    match value {
        serde_yaml::Value::Tagged(tagged) if tagged.tag == tag => tagged
            .value
            .as_str()
            .unwrap_or_else(|| panic!("!{tag} of a non-string: {value:?}")),
        other => panic!("not a !{tag}: {other:?}"),
    }
}

/// The text and the variables of a `!Sub [text, {variables}]`.
fn sub_with_variables(value: &serde_yaml::Value) -> (&str, &serde_yaml::Value) {
    match value {
        serde_yaml::Value::Tagged(tagged) if tagged.tag == "Sub" => {
            let parts = tagged.value.as_sequence().expect("!Sub [text, variables]");
            (parts[0].as_str().unwrap(), &parts[1])
        }
        other => panic!("not a !Sub: {other:?}"),
    }
}

/// The pinned linters `tools/setup lint` installs.
fn lint_tool(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".tools/lint/bin")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run the suite with `tools/test`",
        path.display()
    );
    path
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(crate::harness::unique_name("render"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
