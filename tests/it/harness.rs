//! The CLI tests' harness: the toastrep binary and what it deploys (a set's
//! stacks and buckets). The emulator's clients, unique names and condition
//! waits are the shared `testkit`'s, re-exported here.

use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use serde::de::DeserializeOwned;

pub use testkit::emulator::endpoint;
pub use testkit::emulator::shared::{
    cloudformation, cloudwatch, lambda, logs, s3, scheduler, sfn, sqs,
};
pub use testkit::{ACCOUNT, eventually, unique_name};

pub const REGIONS: [&str; 3] = ["us-east-1", "eu-west-2", "ap-northeast-1"];

/// The replicator package `tools/test` built with `toastrep package`.
pub fn lambda_zip() -> PathBuf {
    package_from("TOASTREP_TEST_LAMBDA_ZIP")
}

/// The same package for arm64 (`toastrep package --architecture arm64`),
/// which `tools/test` builds once: a second target compiles every dependency
/// again.
pub fn lambda_zip_arm64() -> PathBuf {
    package_from("TOASTREP_TEST_LAMBDA_ZIP_ARM64")
}

fn package_from(variable: &str) -> PathBuf {
    let path = std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: run the suite with `tools/test`, which builds the package")
    });
    PathBuf::from(path)
}

/// The environment every toastrep run gets: the emulator, test credentials,
/// and nothing from the developer's own AWS setup.
pub fn toastrep_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_toastrep"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    command
}

pub fn toastrep(args: &[&str]) -> Output {
    run(toastrep_command().args(args))
}

pub fn run(command: &mut Command) -> Output {
    let output = command.output().expect("toastrep runs");
    eprintln!(
        "--- toastrep {:?} exited {:?}\n--- stderr:\n{}\n--- stdout:\n{}",
        command.get_args().collect::<Vec<_>>(),
        output.status.code(),
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    output
}

/// A command's `--output json` result, read as the library's own result
/// type (`ops::sync::SyncReport`, `ops::health::StatusResult`, ...): a field
/// the command no longer prints fails to compile, not to match. It shows as
/// the JSON the command printed, for assertion messages.
pub struct Json<T> {
    value: T,
    text: String,
}

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> fmt::Display for Json<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What a command printed on stdout, read as its result type `T`.
pub fn parse<T: DeserializeOwned>(output: &Output) -> Json<T> {
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "stdout is not a {}: {e}\n{text}",
            std::any::type_name::<T>()
        )
    });
    Json { value, text }
}

/// As [`parse`], `None` when stdout is not a `T` (a failure's JSON): for a
/// test that waits for a command to succeed.
pub fn try_parse<T: DeserializeOwned>(output: &Output) -> Option<Json<T>> {
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let value = serde_json::from_str(&text).ok()?;
    Some(Json { value, text })
}

/// Runs toastrep with `args` and `--output json`: its result and exit code.
pub fn run_json<T: DeserializeOwned>(args: &[&str]) -> (Json<T>, Option<i32>) {
    let out = toastrep(&[args, &["--output", "json"]].concat());
    (parse(&out), out.status.code())
}

/// Tears set `name` down, data, dead letters and all, when dropped: also
/// when the test panics, so that a failing test leaves nothing behind in
/// the emulator the other tests share. Made before the set is deployed, so
/// that a deploy that fails half way is cleaned up too.
pub struct Cleanup {
    name: String,
    endpoint: String,
    regions: Option<String>,
    armed: bool,
}

impl Cleanup {
    /// Set `name` of the shared emulator.
    pub fn new(name: &str) -> Cleanup {
        Cleanup::at(&endpoint(), name)
    }

    /// Set `name` of the emulator at `endpoint`.
    pub fn at(endpoint: &str, name: &str) -> Cleanup {
        Cleanup {
            name: name.to_owned(),
            endpoint: endpoint.to_owned(),
            regions: None,
            armed: true,
        }
    }

    /// The set's regions, when teardown is not to look for them.
    pub fn regions(mut self, regions: &[&str]) -> Cleanup {
        self.regions = Some(regions.join(","));
        self
    }

    /// Tears the set down now, and fails the test unless that succeeds.
    pub fn teardown(mut self) {
        self.armed = false;
        let out = self.run();
        assert!(out.status.success(), "teardown {} failed", self.name);
    }

    /// The test has torn the set down itself: nothing is left to do.
    pub fn disarm(mut self) {
        self.armed = false;
    }

    fn run(&self) -> Output {
        let mut command = toastrep_command();
        command
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .args(["teardown", "--name", &self.name]);
        if let Some(regions) = &self.regions {
            command.args(["--regions", regions]);
        }
        // A test's cleanup: whatever a test left in the queues goes too.
        command.args(["--delete-data", "--yes", "--discard-dead-letters"]);
        run(&mut command)
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Never a second panic while unwinding: the run's output says why.
        if !self.run().status.success() {
            eprintln!("--- cleanup: teardown of {} failed", self.name);
        }
    }
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn data_bucket(name: &str, region: &str) -> String {
    format!("toastrep-{name}-{region}-{ACCOUNT}")
}

pub fn artifact_bucket(name: &str, region: &str) -> String {
    format!("toastrep-{name}-{region}-{ACCOUNT}-code")
}

/// Whether a bucket exists.
pub async fn bucket_exists(region: &str, bucket: &str) -> bool {
    s3(region).head_bucket().bucket(bucket).send().await.is_ok()
}

/// The names of the set's stacks that exist in a region.
pub async fn set_stacks(region: &str, name: &str) -> Vec<String> {
    let out = cloudformation(region)
        .describe_stacks()
        .send()
        .await
        .expect("DescribeStacks");
    out.stacks()
        .iter()
        .filter(|s| s.stack_status().map(|s| s.as_str()) != Some("DELETE_COMPLETE"))
        .filter_map(|s| s.stack_name())
        .filter(|n| *n == format!("toastrep-{name}") || n.starts_with(&format!("toastrep-{name}-")))
        .map(str::to_owned)
        .collect()
}

/// Asserts that nothing of set `name` exists anywhere in the emulator.
pub async fn assert_nothing_created(name: &str) {
    for region in REGIONS {
        assert!(
            set_stacks(region, name).await.is_empty(),
            "stacks of {name} exist in {region}"
        );
    }
    let buckets = s3("us-east-1")
        .list_buckets()
        .send()
        .await
        .expect("ListBuckets");
    let prefix = format!("toastrep-{name}-");
    let ours: Vec<_> = buckets
        .buckets()
        .iter()
        .filter_map(|b| b.name())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(ours.is_empty(), "buckets of {name} exist: {ours:?}");
}

/// An object as a user writes it, with every attribute a copy must keep.
pub struct Upload {
    pub region: &'static str,
    pub key: String,
    pub body: Vec<u8>,
    pub content_type: &'static str,
    pub metadata: HashMap<String, String>,
    pub tags: Vec<(String, String)>,
}

/// Uploads the object into its region's bucket of set `name`, with its
/// content type, user metadata and tags.
pub async fn put(name: &str, upload: &Upload) {
    s3(upload.region)
        .put_object()
        .bucket(data_bucket(name, upload.region))
        .key(&upload.key)
        .body(ByteStream::from(upload.body.clone()))
        .content_type(upload.content_type)
        .set_metadata(Some(upload.metadata.clone()))
        .tagging(testkit::upload::tagging(&upload.tags))
        .send()
        .await
        .expect("upload");
}

/// Uploads every object, then waits until each is in every region of
/// `regions` (its own included), faithfully.
pub async fn put_and_assert_replicated(name: &str, uploads: &[Upload], regions: &[&str]) {
    for upload in uploads {
        put(name, upload).await;
    }
    for upload in uploads {
        for region in regions {
            assert_replica(name, region, upload).await;
        }
    }
}

/// Waits until `region` holds the object, then checks bytes, content type,
/// user metadata (toastrep's own origin keys aside) and tags.
pub async fn assert_replica(name: &str, region: &str, upload: &Upload) {
    let client = s3(region);
    let bucket = data_bucket(name, region);
    let what = format!("{} from {} in {region}", upload.key, upload.region);
    let object = eventually(&what, Duration::from_secs(30), || async {
        client
            .get_object()
            .bucket(&bucket)
            .key(&upload.key)
            .send()
            .await
            .ok()
    })
    .await;
    assert_eq!(object.content_type(), Some(upload.content_type), "{what}");
    let metadata: HashMap<String, String> = object
        .metadata()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("toastrep-"))
        .collect();
    assert_eq!(metadata, upload.metadata, "{what}");
    let body = object.body.collect().await.unwrap().into_bytes();
    assert!(
        body.as_ref() == upload.body.as_slice(),
        "{what}: bytes differ"
    );
    let tags = client
        .get_object_tagging()
        .bucket(&bucket)
        .key(&upload.key)
        .send()
        .await
        .unwrap();
    let mut tags: Vec<(String, String)> = tags
        .tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    tags.sort();
    assert_eq!(tags, upload.tags, "{what}");
}
