//! Bad input gets a clear error naming the problem and the fix, exit status 2,
//! and creates nothing.

use crate::harness::{
    self, assert_nothing_created, stderr, toastrep, toastrep_command, unique_name,
};

/// Runs a deploy that must be refused, and checks the error and that nothing
/// of the set was created.
async fn refused(name: &str, regions: &str, expected: &[&str]) {
    let zip = harness::lambda_zip();
    let output = toastrep(&[
        "deploy",
        "--name",
        name,
        "--regions",
        regions,
        "--lambda-zip",
        zip.to_str().unwrap(),
    ]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "exit status for {name} / {regions}"
    );
    let message = stderr(&output);
    for word in expected {
        assert!(
            message.contains(word),
            "{message:?} does not mention {word:?}"
        );
    }
    if let Ok(valid) = toastrep::names::SetName::parse(name) {
        assert_nothing_created(valid.as_str()).await;
    }
}

#[tokio::test]
async fn upper_case_name_is_refused() {
    refused(
        "Media",
        "us-east-1,eu-west-2",
        &["'Media'", "upper case", "lowercase"],
    )
    .await;
}

#[tokio::test]
async fn name_too_long_for_derived_names_is_refused() {
    let name = "a".repeat(30);
    refused(
        &name,
        "us-east-1,ap-northeast-1",
        &["too long", "at most 21 characters"],
    )
    .await;
}

#[tokio::test]
async fn characters_s3_forbids_are_refused() {
    for name in ["media_eu", "media.eu", "media eu", "médias"] {
        refused(
            name,
            "us-east-1,eu-west-2",
            &["contains", "lowercase letters, digits"],
        )
        .await;
    }
}

#[tokio::test]
async fn fewer_than_two_regions_is_refused() {
    let name = unique_name("one");
    refused(&name, "us-east-1", &["at least two regions"]).await;
}

#[tokio::test]
async fn duplicate_region_is_refused() {
    let name = unique_name("dup");
    refused(
        &name,
        "us-east-1,eu-west-2,us-east-1",
        &["'us-east-1'", "listed twice"],
    )
    .await;
}

#[tokio::test]
async fn string_that_is_not_a_region_is_refused() {
    let name = unique_name("nreg");
    refused(
        &name,
        "us-east-1,eu-wset-2",
        &[
            "'eu-wset-2' is not an AWS region",
            "did you mean 'eu-west-2'",
        ],
    )
    .await;
    refused(
        &name,
        "us-east-1,banana",
        &["'banana' is not an AWS region"],
    )
    .await;
}

#[tokio::test]
async fn unreachable_endpoint_is_refused() {
    let name = unique_name("unr");
    let zip = harness::lambda_zip();
    // Port 9 (discard) on loopback: nothing listens there.
    let output = harness::run(toastrep_command().args([
        "deploy",
        "--name",
        &name,
        "--regions",
        "us-east-1,eu-west-2",
        "--lambda-zip",
        zip.to_str().unwrap(),
        "--endpoint-url",
        "http://127.0.0.1:9",
    ]));
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("cannot reach http://127.0.0.1:9"),
        "{message}"
    );
    assert!(message.contains("--endpoint-url"), "{message}");
    assert_nothing_created(&name).await;
}

#[tokio::test]
async fn missing_credentials_are_refused() {
    let name = unique_name("nocred");
    let zip = harness::lambda_zip();
    let output = harness::run(
        toastrep_command()
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .args([
                "deploy",
                "--name",
                &name,
                "--regions",
                "us-east-1,eu-west-2",
                "--lambda-zip",
                zip.to_str().unwrap(),
            ]),
    );
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("no AWS credentials"), "{message}");
    assert!(message.contains("--profile"), "{message}");
    assert_nothing_created(&name).await;
}

#[tokio::test]
async fn a_set_that_is_not_deployed_cannot_be_verified() {
    let name = unique_name("ghost");
    let output = toastrep(&[
        "verify",
        "--name",
        &name,
        "--regions",
        "us-east-1,eu-west-2",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains(&format!("no replica set named '{name}' is deployed")));
}

#[tokio::test]
async fn delete_data_without_confirmation_is_refused() {
    let name = unique_name("conf");
    let output = toastrep(&["teardown", "--name", &name, "--delete-data"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("add --yes"));
}
