//! Command-line definitions. The doc comments are the `--help` text, and so
//! the reference; the work lives in `commands/`.

use std::path::PathBuf;

use clap::{Arg, Args, Parser, Subcommand, ValueEnum};

use crate::error::InputError;
use crate::model::architecture::Architecture;
use crate::model::function::SettingsLayer;
use crate::model::regions::{self, Region, RegionSearch};

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
    #[command(flatten)]
    pub settings: SettingsLayer,
}

/// The regions of a set to deploy (or to write in a set file).
#[derive(Debug, Args)]
pub struct RegionsArgs {
    /// The regions of the set, comma-separated (at least two), e.g.
    /// us-east-1,eu-west-2,ap-northeast-1. Default: the set file's.
    #[arg(long, value_delimiter = ',', value_name = "REGIONS", value_parser = region)]
    pub regions: Vec<Region>,
}

/// Where to look for a deployed set.
#[derive(Debug, Args)]
pub struct LookInArgs {
    /// Only look for the set in these regions (default: every region of the partition).
    #[arg(long, value_delimiter = ',', value_name = "REGIONS", value_parser = region)]
    pub regions: Vec<Region>,
}

impl LookInArgs {
    /// Where to look: the regions given (each once), else, with none
    /// given, every region of the partition.
    pub fn search(&self) -> Result<RegionSearch, InputError> {
        if self.regions.is_empty() {
            return Ok(RegionSearch::WholePartition);
        }
        Ok(RegionSearch::These(regions::distinct(
            self.regions.clone(),
        )?))
    }
}

/// How much of the work runs at once.
#[derive(Debug, Args)]
pub struct ConcurrencyArgs {
    /// How many stacks to deploy at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
}

impl ConcurrencyArgs {
    pub fn get(&self) -> usize {
        usize::from(self.concurrency)
    }
}

/// What removing a set, or a region of one, may also delete.
#[derive(Debug, Args)]
pub struct RemovalArgs {
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

/// Changes the argument `id` of a shared group in one command, where it
/// says a little more or less there; in place (`mut_arg` would move it last
/// in the command reference).
fn adjust(id: &'static str, change: impl Fn(Arg) -> Arg) -> impl FnMut(Arg) -> Arg {
    move |arg| {
        if arg.get_id() == id { change(arg) } else { arg }
    }
}

fn architecture(value: &str) -> Result<Architecture, String> {
    value.parse()
}

fn region(value: &str) -> Result<Region, InputError> {
    Region::parse(value)
}

#[derive(Debug, Args)]
#[command(mut_args(adjust("regions", |a| a
    .required(true)
    .help("The regions of the set, comma-separated (at least two)"))))]
pub struct InitArgs {
    /// The replica set's name: lowercase letters, digits and single hyphens,
    /// starting with a letter.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub regions: RegionsArgs,
    #[command(flatten)]
    pub settings: SettingsLayer,
    /// Replace a set file that exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub set: SetArgs,
    #[command(flatten)]
    pub regions: RegionsArgs,
    #[command(flatten)]
    pub function: FunctionArgs,
    #[command(flatten)]
    pub concurrency: ConcurrencyArgs,
    /// Show what would be done, as `toastrep plan` does, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct AddRegionArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// The region to add.
    #[arg(long, value_name = "REGION", value_parser = region)]
    pub region: Region,
    #[command(flatten)]
    pub concurrency: ConcurrencyArgs,
}

#[derive(Debug, Args)]
#[command(mut_args(adjust("delete_data", |a| a.help(
    "Also delete every object version and delete marker in the region's data bucket, \
     and the bucket. Needs --yes or a confirmation typed at a terminal"))))]
pub struct RemoveRegionArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// The region to remove.
    #[arg(long, value_name = "REGION", value_parser = region)]
    pub region: Region,
    #[command(flatten)]
    pub removal: RemovalArgs,
}

#[derive(Debug, Args)]
#[command(
    mut_args(adjust("regions", |a| a.help(
        "The regions the set should have, comma-separated (default: the set file's, \
         else the regions it is deployed in)"))),
    mut_args(adjust("concurrency", |a| a.help("How many stacks to examine at once"))),
)]
pub struct PlanArgs {
    #[command(flatten)]
    pub set: SetArgs,
    #[command(flatten)]
    pub regions: RegionsArgs,
    #[command(flatten)]
    pub function: FunctionArgs,
    #[command(flatten)]
    pub concurrency: ConcurrencyArgs,
}

#[derive(Debug, Args)]
pub struct RotateKeyArgs {
    #[command(flatten)]
    pub set: SetArgs,
    #[command(flatten)]
    pub regions: RegionsArgs,
    #[command(flatten)]
    pub function: FunctionArgs,
    #[command(flatten)]
    pub concurrency: ConcurrencyArgs,
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
    #[command(flatten)]
    pub regions: LookInArgs,
    /// The object keys to hash.
    #[arg(required = true, value_name = "KEY")]
    pub keys: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub set: SetArgs,
    #[command(flatten)]
    pub regions: LookInArgs,
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
    #[command(flatten)]
    pub regions: RegionsArgs,
    /// The directory to write the stacks, the package and `deploy.sh` to.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub function: FunctionArgs,
}

#[derive(Debug, Args)]
#[command(
    mut_args(adjust("regions", |a| a.help(
        "Only these regions of the set (default: every region it is deployed in)"))),
    mut_args(adjust("concurrency", |a| a.help("Probe uploads in flight at once").default_value("16"))),
)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub set: SetArgs,
    #[command(flatten)]
    pub regions: LookInArgs,
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
    #[command(flatten)]
    pub concurrency: ConcurrencyArgs,
}

#[derive(Debug, Args)]
pub struct TeardownArgs {
    #[command(flatten)]
    pub set: SetArgs,
    #[command(flatten)]
    pub regions: LookInArgs,
    #[command(flatten)]
    pub removal: RemovalArgs,
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
    #[arg(long, value_name = "REGION", value_parser = region)]
    pub region: Option<Region>,
    /// Read and parse the messages and say what would be replayed; copy and
    /// delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct DeletesArgs {
    #[command(flatten)]
    pub set: SetArgs,
    #[command(flatten)]
    pub regions: LookInArgs,
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
#[command(mut_args(adjust("concurrency", |a| a.help("Keys restored at once").default_value("16"))))]
pub struct RestoreArgs {
    #[command(flatten)]
    pub set: SetArgs,
    #[command(flatten)]
    pub regions: LookInArgs,
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
    #[command(flatten)]
    pub concurrency: ConcurrencyArgs,
}

#[derive(Debug, Args)]
#[command(mut_args(adjust("concurrency", |a| a.help("Keys examined and copied at once").default_value("32"))))]
pub struct SyncArgs {
    #[command(flatten)]
    pub set: SetArgs,
    #[command(flatten)]
    pub regions: LookInArgs,
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
    #[command(flatten)]
    pub concurrency: ConcurrencyArgs,
}
