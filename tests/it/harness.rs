//! Shared test harness: the emulator, the toastrep binary, AWS clients, and
//! unique names so tests can run in parallel against one emulator.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;

pub const ACCOUNT: &str = "000000000000";
pub const REGIONS: [&str; 3] = ["us-east-1", "eu-west-2", "ap-northeast-1"];

/// The emulator's URL. `tools/test` starts one and sets it; without it these
/// tests cannot run, and must fail rather than pass vacuously.
pub fn endpoint() -> String {
    std::env::var("TOASTREP_TEST_ENDPOINT").expect(
        "TOASTREP_TEST_ENDPOINT is not set: run the suite with `tools/test`, which starts the emulator",
    )
}

/// The replicator package `tools/test` built with `toastrep package`.
pub fn lambda_zip() -> PathBuf {
    let path = std::env::var("TOASTREP_TEST_LAMBDA_ZIP").expect(
        "TOASTREP_TEST_LAMBDA_ZIP is not set: run the suite with `tools/test`, which builds the package",
    );
    PathBuf::from(path)
}

/// The same package for arm64 (`toastrep package --architecture arm64`),
/// which `tools/test` builds once: a second target compiles every dependency
/// again.
pub fn lambda_zip_arm64() -> PathBuf {
    let path = std::env::var("TOASTREP_TEST_LAMBDA_ZIP_ARM64").expect(
        "TOASTREP_TEST_LAMBDA_ZIP_ARM64 is not set: run the suite with `tools/test`, which builds the package",
    );
    PathBuf::from(path)
}

/// A set name no other test (or earlier run) uses, at most 21 characters.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = format!("{prefix}-{:x}{n}", nanos ^ std::process::id());
    name.truncate(21);
    name.trim_end_matches('-').to_owned()
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

pub fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn s3(region: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(endpoint())
            .credentials_provider(Credentials::for_tests())
            // A busy emulator can take longer than the SDK's 3.1 s to
            // accept a connection.
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_secs(30))
                    .build(),
            )
            .force_path_style(true)
            .build(),
    )
}

pub fn cloudformation(region: &str) -> aws_sdk_cloudformation::Client {
    aws_sdk_cloudformation::Client::from_conf(
        aws_sdk_cloudformation::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(endpoint())
            .credentials_provider(Credentials::for_tests())
            .build(),
    )
}

pub fn lambda(region: &str) -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(endpoint())
            .credentials_provider(Credentials::for_tests())
            .build(),
    )
}

pub fn logs(region: &str) -> aws_sdk_cloudwatchlogs::Client {
    aws_sdk_cloudwatchlogs::Client::from_conf(
        aws_sdk_cloudwatchlogs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(endpoint())
            .credentials_provider(Credentials::for_tests())
            .build(),
    )
}

pub fn cloudwatch(region: &str) -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::from_conf(
        aws_sdk_cloudwatch::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(endpoint())
            .credentials_provider(Credentials::for_tests())
            .build(),
    )
}

pub fn sfn(region: &str) -> aws_sdk_sfn::Client {
    aws_sdk_sfn::Client::from_conf(
        aws_sdk_sfn::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(endpoint())
            .credentials_provider(Credentials::for_tests())
            .build(),
    )
}

pub fn data_bucket(name: &str, region: &str) -> String {
    format!("toastrep-{name}-{region}-{ACCOUNT}")
}

pub fn artifact_bucket(name: &str, region: &str) -> String {
    format!("toastrep-{name}-{region}-{ACCOUNT}-code")
}

/// Polls `check` until it returns `Some`, or panics with `what` after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
    let tagging = upload
        .tags
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    s3(upload.region)
        .put_object()
        .bucket(data_bucket(name, upload.region))
        .key(&upload.key)
        .body(ByteStream::from(upload.body.clone()))
        .content_type(upload.content_type)
        .set_metadata(Some(upload.metadata.clone()))
        .tagging(tagging)
        .send()
        .await
        .expect("upload");
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
