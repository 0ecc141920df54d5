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
    if let Ok(valid) = toastrep::model::names::SetName::parse(name) {
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

/// Runs toastrep with `args` and checks it is refused (exit 2) with every
/// one of `expected` in its message, and that set `name` has nothing.
async fn refused_with(name: &str, args: &[&str], expected: &[&str]) {
    let output = toastrep(args);
    assert_eq!(output.status.code(), Some(2), "exit status of {args:?}");
    let message = stderr(&output);
    for word in expected {
        assert!(
            message.contains(word),
            "{message:?} does not mention {word:?}"
        );
    }
    assert_nothing_created(name).await;
}

#[tokio::test]
async fn a_package_for_the_other_architecture_is_refused() {
    let name = unique_name("arch");
    let x86 = harness::lambda_zip();
    let arm = harness::lambda_zip_arm64();
    let (x86, arm) = (x86.to_str().unwrap(), arm.to_str().unwrap());
    let regions = "us-east-1,eu-west-2";
    // A new set runs on x86_64 unless asked: an arm64 package does not fit.
    for command in ["deploy", "plan"] {
        refused_with(
            &name,
            &[
                command,
                "--name",
                &name,
                "--regions",
                regions,
                "--lambda-zip",
                arm,
            ],
            &[
                "built for arm64",
                "to run on x86_64",
                "--architecture arm64",
            ],
        )
        .await;
    }
    refused_with(
        &name,
        &[
            "deploy",
            "--name",
            &name,
            "--regions",
            regions,
            "--lambda-zip",
            x86,
            "--architecture",
            "arm64",
        ],
        &[
            "built for x86_64",
            "to run on arm64",
            "--architecture x86_64",
        ],
    )
    .await;
}

/// A binary that needs a newer glibc than provided.al2023's: the suite's
/// package with its GLIBC_2.34 requirement renamed GLIBC_2.99 (the same
/// length, so the ELF file stays well-formed).
#[tokio::test]
async fn a_package_that_needs_a_newer_glibc_is_refused() {
    let name = unique_name("glibc");
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(harness::lambda_zip()).unwrap()).unwrap();
    let mut binary = Vec::new();
    std::io::Read::read_to_end(&mut archive.by_name("bootstrap").unwrap(), &mut binary).unwrap();
    let at = binary
        .windows(11)
        .position(|w| w == b"GLIBC_2.34\0")
        .expect("the package needs GLIBC_2.34");
    binary[at..at + 11].copy_from_slice(b"GLIBC_2.99\0");
    let package = toastrep::package::Package::from_bootstrap(&binary).unwrap();
    let zip = std::env::temp_dir().join(format!("{name}.zip"));
    std::fs::write(&zip, &package.zip).unwrap();
    refused_with(
        &name,
        &[
            "deploy",
            "--name",
            &name,
            "--regions",
            "us-east-1,eu-west-2",
            "--lambda-zip",
            zip.to_str().unwrap(),
        ],
        &[
            "needs glibc 2.99",
            "newer than provided.al2023's 2.34",
            "toastrep package",
        ],
    )
    .await;
    std::fs::remove_file(zip).ok();
}

/// `toastrep package` in a bare environment: what cannot build the function
/// is named in one line with the fix, before any compiler runs.
fn package_refused(configure: impl FnOnce(&mut std::process::Command), expected: &[&str]) {
    let out = std::env::temp_dir().join(unique_name("pkg"));
    let mut command = toastrep_command();
    command.args(["package", "--out", out.to_str().unwrap()]);
    configure(&mut command);
    let output = harness::run(&mut command);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert_eq!(message.trim().lines().count(), 1, "{message}");
    for word in expected {
        assert!(
            message.contains(word),
            "{message:?} does not mention {word:?}"
        );
    }
    assert!(!out.exists(), "a package was written");
}

#[test]
fn building_without_the_functions_source_says_how_to_point_at_it() {
    let nowhere = std::env::temp_dir().join(unique_name("nosrc"));
    package_refused(
        |c| {
            c.arg("--function-source").arg(&nowhere);
        },
        &["source is not at", "--function-source DIR", "--lambda-zip"],
    );
}

#[test]
fn building_without_cargo_zigbuild_says_how_to_install_it() {
    // A source tree without the project's tools, and a PATH without any.
    let source = std::env::temp_dir().join(unique_name("src"));
    std::fs::create_dir_all(source.join("lambda")).unwrap();
    std::fs::write(source.join("lambda/Cargo.toml"), "").unwrap();
    package_refused(
        |c| {
            c.arg("--function-source")
                .arg(&source)
                .env("PATH", "/usr/bin:/bin");
        },
        &[
            "cargo-zigbuild",
            "pip install cargo-zigbuild ziglang",
            "tools/setup build",
            "--lambda-zip",
        ],
    );
    std::fs::remove_dir_all(source).ok();
}

#[cfg(unix)]
#[test]
fn building_without_the_targets_standard_library_says_which_rustup_target_to_add() {
    use std::os::unix::fs::PermissionsExt;
    // A rustc whose sysroot holds no standard library at all.
    let dir = std::env::temp_dir().join(unique_name("rustc"));
    std::fs::create_dir_all(dir.join("sysroot")).unwrap();
    let rustc = dir.join("rustc");
    std::fs::write(
        &rustc,
        format!("#!/bin/sh\necho {}\n", dir.join("sysroot").display()),
    )
    .unwrap();
    std::fs::set_permissions(&rustc, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The checkout's own cargo-zigbuild (`tools/test` runs `tools/setup build`).
    package_refused(
        |c| {
            c.args(["--architecture", "arm64"]).env("RUSTC", &rustc);
        },
        &["rustup target add aarch64-unknown-linux-gnu"],
    );
    std::fs::remove_dir_all(dir).ok();
}
