//! Command-line definitions. The doc comments are the `--help` text, and so
//! the reference; the work lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::model::architecture::Architecture;

/// Provision and run an active-active, multi-region S3 replica set.
///
/// Every region gets a bucket; an object written to any of them is copied to
/// all the others by a replicator function in each region. toastrep deploys
/// the set with CloudFormation, verifies that it replicates, and tears it down.
#[derive(Debug, Parser)]
#[command(
    name = "toastrep",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Send every AWS call to this endpoint instead of AWS's (e.g. a local emulator).
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Use this profile from the AWS config and credentials files.
    #[arg(long, global = true, env = "AWS_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    /// How to print the result on stdout: text for people, json for scripts.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Log what toastrep does (AWS calls, decisions) on stderr; -vv for more.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Print no progress on stderr: only the result (and errors).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// The set file: the set's name, regions and settings, which flags
    /// override (default: ./toastrep.toml when it exists; `toastrep init`
    /// writes one).
    #[arg(long, global = true, env = "TOASTREP_SET_FILE", value_name = "PATH")]
    pub set_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a set file (toastrep.toml) from flags: the set's name, regions
    /// and settings, for `deploy` and `plan` to read and a repository to keep.
    ///
    /// Changes nothing in AWS. Refuses to overwrite a file unless --force.
    Init(InitArgs),
    /// Deploy a replica set, or bring a deployed one up to date.
    ///
    /// Builds the replicator (or takes --lambda-zip), uploads it to an artifact
    /// bucket in every region, deploys every base stack in parallel, then every
    /// pair of stacks linking one region's topic to another region's function.
    /// Running it again with nothing changed changes nothing. A setting
    /// neither a flag nor the set file gives keeps its deployed value.
    Deploy(DeployArgs),
    /// Write every stack of a set (template and parameters) to a directory and
    /// print the `aws` commands that would deploy the same by hand.
    Render(RenderArgs),
    /// Upload a probe object into every region, wait until every other region
    /// holds it byte-identical, and print the replication latency per pair.
    ///
    /// Exits 0 only if every pair converged within the timeout.
    Verify(VerifyArgs),
    /// Delete a set: pair stacks, then base stacks, then artifact buckets.
    ///
    /// Buckets that hold objects are kept and listed, unless --delete-data is given.
    Teardown(TeardownArgs),
    /// Build the replicator package and write it to a file.
    Package(PackageArgs),
    /// Replay the events in the dead-letter queues through the replicator's
    /// own code, and delete each message once all of its records succeeded.
    ///
    /// Messages whose records still fail, or that cannot be parsed, stay in
    /// the queue; the command then exits 1 and says why.
    Replay(ReplayArgs),
    /// Anti-entropy: copy the winning version of every key into every region
    /// that lacks it or holds a losing write. Never deletes.
    ///
    /// Lists every region's bucket in key order and merges the listings, so
    /// memory does not grow with the number of objects. A region that cannot
    /// be reached is named, the others are still repaired, and the exit
    /// status is 1.
    Sync(SyncArgs),
    /// Bring every key under a prefix back, in every region, to the object
    /// the set held at a past time: deletes and overwrites made since are
    /// undone by new writes of the old objects (bytes, metadata, headers
    /// and tags). No version is deleted; a key with no object then is left
    /// as it is.
    Restore(RestoreArgs),
    /// Show the deletes the mass-delete breaker holds, and release them
    /// (carry them) or discard them (undo them where they were made) with
    /// --release or --discard and --yes; without --yes it shows what it
    /// would do. Either closes the breakers.
    Deletes(DeletesArgs),
    /// Add a region to a deployed set: its base stack, the pair stacks between
    /// it and every member (both ways), a backfill of every existing object,
    /// then a verify.
    ///
    /// The new region gets the package and function settings the members run.
    /// Interrupted at any point, running it again finishes the job.
    AddRegion(AddRegionArgs),
    /// Remove a region from a deployed set: its pair stacks (both ways), then
    /// its base stack. Its data bucket is kept unless --delete-data is given.
    ///
    /// A set keeps at least two regions; to delete it all, use `teardown`.
    RemoveRegion(RemoveRegionArgs),
    /// Show what `deploy` would do, changing nothing: for every stack create,
    /// update (with the resource-level changes of a CloudFormation change set)
    /// or no change, where the package would be uploaded, and every setting
    /// whose deployed value it would change (from a flag or the set file).
    Plan(PlanArgs),
    /// Per region: each stack's status, the function's state and whether its
    /// code is the deployed package, the dead-letter queue depth, and the
    /// bucket's object count and size.
    ///
    /// Exits 1 if anything is unhealthy, and flags it.
    Status(StatusArgs),
    /// Replace the set's marker key with a new one, without a marker ever
    /// failing to verify.
    ///
    /// In steps, each a deploy of every region: the new key is accepted
    /// while the old one still seals; after the functions' timeout, the new
    /// key seals and the old one is still accepted; a deep sync seals again
    /// every copy the old key sealed; then the old key is retired: it seals
    /// and verifies nothing written from then on. Object keys hash
    /// differently in the logs afterwards (`hash-key` follows). Run again
    /// after an interruption to resume where it stopped.
    RotateKey(RotateKeyArgs),
    /// Print the hash under which the set's functions log an object key.
    ///
    /// Unless the set was deployed with `--log-keys plain`, its functions
    /// log a keyed hash of each object key instead of the key (keys often
    /// hold personal data): grep the logs for the hash this prints.
    HashKey(HashKeyArgs),
    /// Print a shell completion script, e.g. `toastrep completions bash > /etc/bash_completion.d/toastrep`.
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write one page per command with --out.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The replica set's name: lowercase letters, digits and single hyphens,
    /// starting with a letter. Every AWS resource name is derived from it.
    /// Default: the set file's.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct FunctionArgs {
    /// Use this prebuilt function package (a zip with a `bootstrap` executable)
    /// instead of building the `lambda/` crate. Its binary must be built for
    /// the function's architecture and glibc 2.34, as `toastrep package` builds it.
    #[arg(long, value_name = "PATH")]
    pub lambda_zip: Option<PathBuf>,
    #[command(flatten)]
    pub source: SourceArgs,
    /// The instruction set the function runs on: x86_64 (Lambda's default)
    /// or arm64 (Graviton, about 20 % cheaper per GB-second). Left out, a
    /// deployed set keeps its architecture and a new set gets x86_64.
    #[arg(long, value_name = "ARCH", value_parser = architecture)]
    pub architecture: Option<Architecture>,
    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// The set's settings, each kept as deployed when left out (and taken from
/// the set file when it has them).
#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// Objects larger than this many bytes are copied in parts (S3's single
    /// copy limit is 5 GiB). Left out: kept, or 5368709120 (5 GiB) for a new set.
    #[arg(long, value_name = "BYTES")]
    pub multipart_threshold: Option<u64>,
    /// The part size of multipart copies, in bytes (S3's minimum is 5 MiB).
    /// Left out: kept, or 268435456 (256 MiB) for a new set.
    #[arg(long, value_name = "BYTES")]
    pub part_size: Option<u64>,
    /// Parts copied at once by one multipart copy. Left out: kept, or 8.
    #[arg(long, value_name = "N")]
    pub copy_concurrency: Option<u32>,
    /// How many days the function's logs are kept. Left out: kept, or 30.
    #[arg(long, value_name = "DAYS")]
    pub log_retention_days: Option<u32>,
    /// Carry deletes to every other region: `on` (the flag alone says on)
    /// or `off`. A delete carried removes the write it deleted, or one that
    /// loses to it, never a write that raced it. Left out, a deployed set
    /// keeps its setting and a new set keeps deletes where they are made.
    #[arg(long, value_name = "on|off", num_args = 0..=1, default_missing_value = "on")]
    pub replicate_deletes: Option<Switch>,
    /// Days an overwritten or deleted version is kept, for `restore`, before
    /// it expires (expired delete markers are cleaned up too); 0 keeps every
    /// version forever. Left out, a deployed set keeps its setting and a
    /// new set keeps them 30 days.
    #[arg(long, value_name = "DAYS")]
    pub keep_noncurrent_days: Option<u32>,
    /// The mass-delete breaker: past this many deletes a minute from one
    /// region, its deletes are held (writes still replicate) until
    /// `toastrep deletes` releases or discards them. Left out, a deployed
    /// set keeps its setting and a new set gets 1000.
    #[arg(long, value_name = "PER_MINUTE")]
    pub delete_breaker: Option<u32>,
    /// How the function's log lines name object keys: `hashed` (a keyed
    /// hash; `toastrep hash-key` finds a key's lines) or `plain`. Keys often
    /// hold personal data. Left out, a deployed set keeps its setting and a
    /// new set logs them hashed.
    #[arg(long, value_name = "hashed|plain")]
    pub log_keys: Option<LogKeys>,
    /// When each region's repair runs in the cloud: an EventBridge Scheduler
    /// expression ('rate(6 hours)', 'cron(0 3 * * ? *)') or 'off'. Left
    /// out, a deployed set keeps its schedule and a new set repairs daily.
    #[arg(long, value_name = "EXPRESSION|off")]
    pub repair_schedule: Option<String>,
    /// Ranges one repair run repairs at once (its Distributed Map's
    /// MaxConcurrency). Left out: kept, or 10 for a new set.
    #[arg(long, value_name = "N")]
    pub repair_concurrency: Option<u32>,
    /// The latency alarm fires when the p99 from an object's event to its
    /// copy exceeds this many seconds over 15 minutes. Left out: kept, or
    /// 900 (S3 Replication Time Control's 15 minutes) for a new set.
    #[arg(long, value_name = "SECONDS")]
    pub latency_alarm_seconds: Option<u32>,
    /// The repair alarm fires when one run copies more than this many
    /// objects into a region. Left out: kept, or 1000 for a new set.
    #[arg(long, value_name = "COPIES")]
    pub repair_copies_alarm: Option<u64>,
    /// An SNS topic (ARN) every alarm of the set notifies; '' for none.
    /// Left out: kept.
    #[arg(long, value_name = "ARN")]
    pub alarm_topic: Option<String>,
    /// An email address every alarm of the set notifies (it must confirm
    /// the subscription); '' for none. Left out: kept.
    #[arg(long, value_name = "ADDRESS")]
    pub alarm_email: Option<String>,
}

/// How log lines name object keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogKeys {
    Hashed,
    Plain,
}

/// A setting switched on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

fn architecture(value: &str) -> Result<Architecture, String> {
    value.parse()
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The replica set's name: lowercase letters, digits and single hyphens,
    /// starting with a letter.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// The regions of the set, comma-separated (at least two).
    #[arg(long, value_delimiter = ',', required = true, value_name = "REGIONS")]
    pub regions: Vec<String>,
    /// The instruction set the function runs on: x86_64 or arm64.
    #[arg(long, value_name = "ARCH", value_parser = architecture)]
    pub architecture: Option<Architecture>,
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Replace a set file that exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// The regions of the set, comma-separated (at least two), e.g.
    /// us-east-1,eu-west-2,ap-northeast-1. Default: the set file's.
    #[arg(long, value_delimiter = ',', value_name = "REGIONS")]
    pub regions: Vec<String>,
    #[command(flatten)]
    pub function: FunctionArgs,
    /// How many stacks to deploy at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Show what would be done, as `toastrep plan` does, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct AddRegionArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// The region to add.
    #[arg(long, value_name = "REGION")]
    pub region: String,
    /// How many stacks to deploy at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
}

#[derive(Debug, Args)]
pub struct RemoveRegionArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// The region to remove.
    #[arg(long, value_name = "REGION")]
    pub region: String,
    /// Also delete every object version and delete marker in the region's
    /// data bucket, and the bucket. Needs --yes or a confirmation typed at a terminal.
    #[arg(long)]
    pub delete_data: bool,
    /// Confirm --delete-data without asking.
    #[arg(long, requires = "delete_data")]
    pub yes: bool,
    /// Delete the set's dead-letter and held-deletes queues even if they
    /// hold messages (failed replications, deletes the breaker held).
    /// Without it, such messages stop the command before it changes anything.
    #[arg(long)]
    pub discard_dead_letters: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// The regions the set should have, comma-separated (default: the set
    /// file's, else the regions it is deployed in).
    #[arg(long, value_delimiter = ',', value_name = "REGIONS")]
    pub regions: Vec<String>,
    #[command(flatten)]
    pub function: FunctionArgs,
    /// How many stacks to examine at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
}

#[derive(Debug, Args)]
pub struct RotateKeyArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// The regions of the set, comma-separated. Default: the set file's.
    #[arg(long, value_delimiter = ',', value_name = "REGIONS")]
    pub regions: Vec<String>,
    #[command(flatten)]
    pub function: FunctionArgs,
    /// How many stacks to deploy at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Seconds to wait after each of the first two steps, for invocations
    /// under the earlier keys to end. Default: the functions' timeout. A
    /// shorter wait risks copies that pass for original writes elsewhere.
    #[arg(long, value_name = "SECONDS")]
    pub drain_seconds: Option<u64>,
}

#[derive(Debug, Args)]
pub struct HashKeyArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// Only look for the set in these regions (default: every region of the partition).
    #[arg(long, value_delimiter = ',', value_name = "REGIONS")]
    pub regions: Vec<String>,
    /// The object keys to hash.
    #[arg(required = true, value_name = "KEY")]
    pub keys: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// Only look for the set in these regions (default: every region of the partition).
    #[arg(long, value_delimiter = ',', value_name = "REGIONS")]
    pub regions: Vec<String>,
    /// Compare the functions' code with this package instead of the one the
    /// base stacks name (e.g. the package a deploy would ship).
    #[arg(long, value_name = "PATH")]
    pub lambda_zip: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write toastrep.1 and one page per command (toastrep-deploy.1, ...) into
    /// this directory instead of printing toastrep.1.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the command reference as Markdown instead (docs/commands.md).
    #[arg(long, conflicts_with = "out")]
    pub markdown: bool,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// The regions of the set, comma-separated (at least two). Default: the
    /// set file's.
    #[arg(long, value_delimiter = ',', value_name = "REGIONS")]
    pub regions: Vec<String>,
    /// The directory to write the stacks, the package and `deploy.sh` to.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub function: FunctionArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// Only these regions of the set (default: every region it is deployed in).
    #[arg(long, value_delimiter = ',', value_name = "REGIONS")]
    pub regions: Vec<String>,
    /// Seconds to wait for every pair to converge.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
    /// The size of each probe object, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    pub probe_size: usize,
    /// Upload this many probe objects, spread evenly over the regions, and
    /// report throughput and latency percentiles: a load check. Default: one
    /// probe per region.
    #[arg(long, value_name = "K")]
    pub objects: Option<usize>,
    /// Probe uploads in flight at once.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
}

#[derive(Debug, Args)]
pub struct TeardownArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// Only look for the set in these regions (default: every region of the partition).
    #[arg(long, value_delimiter = ',', value_name = "REGIONS")]
    pub regions: Vec<String>,
    /// Also delete every object version and delete marker in the set's
    /// buckets, and the buckets. Needs --yes or a confirmation typed at a terminal.
    #[arg(long)]
    pub delete_data: bool,
    /// Confirm --delete-data without asking.
    #[arg(long, requires = "delete_data")]
    pub yes: bool,
    /// Delete the set's dead-letter and held-deletes queues even if they
    /// hold messages (failed replications, deletes the breaker held).
    /// Without it, such messages stop the command before it changes anything.
    #[arg(long)]
    pub discard_dead_letters: bool,
}

/// Where the function is built from.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// The toastrep checkout whose `lambda/` crate is the function (default:
    /// the one this toastrep was built from).
    #[arg(long, env = "TOASTREP_FUNCTION_SOURCE", value_name = "DIR")]
    pub function_source: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PackageArgs {
    /// Where to write the zip.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// The instruction set to build for: x86_64 (Lambda's default) or arm64
    /// (Graviton, about 20 % cheaper per GB-second).
    #[arg(long, value_name = "ARCH", value_parser = architecture, default_value = "x86_64")]
    pub architecture: Architecture,
    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// Only this region's dead-letter queue (default: every region of the set).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Read and parse the messages and say what would be replayed; copy and
    /// delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct DeletesArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// Only look for the set in these regions (default: every region of the partition).
    #[arg(long, value_delimiter = ',', value_name = "REGIONS")]
    pub regions: Vec<String>,
    /// Carry the held deletes to the regions that hold them.
    #[arg(long, conflicts_with = "discard")]
    pub release: bool,
    /// Undo the held deletes: each key gets back, in the region that
    /// deleted it, the object the set held just before the delete.
    #[arg(long)]
    pub discard: bool,
    /// Do it; without this, only show what would be done.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// Only look for the set in these regions (default: every region of the partition).
    #[arg(long, value_delimiter = ',', value_name = "REGIONS")]
    pub regions: Vec<String>,
    /// The keys to restore: those starting with this prefix, as S3 prefixes
    /// go: `reports/2024` also takes `reports/2024-old/...`; end it with `/`
    /// (`reports/2024/`) for one folder only.
    #[arg(long, value_name = "PREFIX")]
    pub prefix: String,
    /// The time to restore to, RFC 3339 in UTC, e.g. 2026-11-27T09:30:00Z.
    #[arg(long, value_name = "TIME")]
    pub at: String,
    /// Print what would be restored (as JSON with --output json) and change
    /// nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keys restored at once.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// Only look for the set in these regions (default: every region of the partition).
    #[arg(long, value_delimiter = ',', value_name = "REGIONS")]
    pub regions: Vec<String>,
    /// Only keys that start with this prefix, as S3 prefixes go:
    /// `reports/2024` also takes `reports/2024-old/...`; end it with `/` for
    /// one folder only.
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// Print the copies that would be made (as JSON with --output json) and
    /// change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Examine every key (a HeadObject per region and key), not only the
    /// keys whose listings differ: finds a later write of the very same
    /// bytes (new metadata or tags) whose every event was lost.
    #[arg(long)]
    pub deep: bool,
    /// Run the repair in the cloud now: every region's repair state machine
    /// (a Distributed Map over key ranges) repairs its own bucket, and this
    /// follows the runs to the end. The result has the local sync's shape.
    #[arg(long)]
    pub in_cloud: bool,
    /// With --in-cloud: start the runs and return; `toastrep status` shows
    /// each region's last run.
    #[arg(long, requires = "in_cloud")]
    pub no_wait: bool,
    /// Keys examined and copied at once.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
}
