//! Resolves the command line once: flags over the set file over defaults,
//! every name and region checked, into one typed value per command. Nothing
//! below this module sees a command-line type, and no command parses a name
//! or a region again.
//!
//! What is deployed is the last layer, under the flags and the set file: a
//! setting neither gives keeps its deployed value. That layer needs AWS, so
//! [`Requested`] carries the two upper layers to the operation that reads it.

pub mod set_file;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::aws::AwsOptions;
use crate::cli::{
    self, Cli, Command, ConcurrencyArgs, DeletesArgs, FunctionArgs, GlobalArgs, LookInArgs,
    OutputFormat, PlanArgs, RegionsArgs, RestoreArgs, SetArgs, SyncArgs, VerifyArgs,
};
use crate::error::InputError;
use crate::model::architecture::Architecture;
use crate::model::function::{FunctionRequest, Requested};
use crate::model::names::SetName;
use crate::model::regions::{Region, RegionSearch};
use crate::model::topology::{SetSpec, parse_regions};
use crate::ops::deletes::Action;
use crate::ops::restore::parse_time;
use crate::ops::sync::SyncOptions;
use crate::ops::verify::VerifyOptions;
use set_file::{Loaded, SetFile};

/// What every command shares.
pub struct GlobalSettings {
    pub aws: AwsOptions,
    pub json: bool,
    pub verbose: u8,
    pub quiet: bool,
}

/// A deployed set to find: its name, and where to look for it.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: SetName,
    pub regions: RegionSearch,
}

pub struct InitSettings {
    pub path: PathBuf,
    pub file: SetFile,
    pub force: bool,
}

pub struct DeploySettings {
    pub spec: SetSpec,
    pub function: FunctionRequest,
    pub concurrency: usize,
    pub dry_run: bool,
}

pub struct PlanSettings {
    pub name: SetName,
    /// The regions the set should have; none: the ones it is deployed in.
    pub spec: Option<SetSpec>,
    pub function: FunctionRequest,
    pub concurrency: usize,
}

pub struct RenderSettings {
    pub spec: SetSpec,
    pub function: FunctionRequest,
    pub out: PathBuf,
}

pub struct AddRegionSettings {
    pub name: SetName,
    pub region: Region,
    pub concurrency: usize,
    /// The set file to add the region to, when one is in use.
    pub set_file: Option<PathBuf>,
}

pub struct RemoveRegionSettings {
    pub name: SetName,
    pub region: Region,
    pub delete_data: bool,
    pub yes: bool,
    pub discard_dead_letters: bool,
    pub set_file: Option<PathBuf>,
}

pub struct VerifySettings {
    pub target: Target,
    pub options: VerifyOptions,
}

pub struct TeardownSettings {
    pub target: Target,
    pub delete_data: bool,
    pub yes: bool,
    pub discard_dead_letters: bool,
}

pub struct PackageSettings {
    pub out: PathBuf,
    pub architecture: Architecture,
    pub function_source: Option<PathBuf>,
}

pub struct ReplaySettings {
    pub name: SetName,
    pub region: Option<Region>,
    pub dry_run: bool,
}

pub struct SyncSettings {
    pub target: Target,
    pub options: SyncOptions,
    pub in_cloud: bool,
    pub no_wait: bool,
}

pub struct RestoreSettings {
    pub target: Target,
    pub prefix: String,
    pub at: jiff::Timestamp,
    pub dry_run: bool,
    pub concurrency: usize,
}

pub struct DeletesSettings {
    pub target: Target,
    pub action: Action,
    pub yes: bool,
}

pub struct StatusSettings {
    pub target: Target,
    pub lambda_zip: Option<PathBuf>,
}

pub struct RotateKeySettings {
    /// The set and its settings, deployed again at each step.
    pub deploy: DeploySettings,
    /// The wait after each step; none: the functions' timeout.
    pub drain: Option<std::time::Duration>,
}

pub struct HashKeySettings {
    pub target: Target,
    pub keys: Vec<String>,
}

/// What `man` prints or writes.
pub enum ManSettings {
    /// The roff page toastrep.1, printed; or, with a directory, one page per
    /// command written into it.
    Roff(Option<PathBuf>),
    /// The command reference as Markdown (docs/commands.md), printed.
    Markdown,
}

/// One command, resolved.
pub enum CommandSettings {
    Init(InitSettings),
    Deploy(DeploySettings),
    Plan(PlanSettings),
    Render(RenderSettings),
    AddRegion(AddRegionSettings),
    RemoveRegion(RemoveRegionSettings),
    Verify(VerifySettings),
    Teardown(TeardownSettings),
    Package(PackageSettings),
    Replay(ReplaySettings),
    Sync(SyncSettings),
    Restore(RestoreSettings),
    Deletes(DeletesSettings),
    Status(StatusSettings),
    RotateKey(RotateKeySettings),
    HashKey(HashKeySettings),
    Completions(clap_complete::Shell),
    Man(ManSettings),
}

pub struct Settings {
    pub global: GlobalSettings,
    pub command: CommandSettings,
}

/// The settings for a command line.
pub fn resolve(cli: Cli) -> Result<Settings> {
    let global = global(&cli.global);
    // `init` writes the file; every other command reads it when present.
    let loaded = match &cli.command {
        Command::Init(_) | Command::Completions(_) | Command::Man(_) | Command::Package(_) => None,
        _ => set_file::locate(cli.global.set_file.as_deref())?,
    };
    let file = Layers { loaded };
    let command = file.command(cli.command, cli.global.set_file)?;
    Ok(Settings { global, command })
}

fn global(args: &GlobalArgs) -> GlobalSettings {
    GlobalSettings {
        aws: AwsOptions {
            profile: args.profile.clone(),
            endpoint_url: args.endpoint_url.clone(),
        },
        json: args.output == OutputFormat::Json,
        verbose: args.verbose,
        quiet: args.quiet,
    }
}

/// The set file (when there is one), under the flags.
struct Layers {
    loaded: Option<Loaded>,
}

impl Layers {
    /// One command's settings: its flags over this set file.
    fn command(&self, command: Command, set_file: Option<PathBuf>) -> Result<CommandSettings> {
        Ok(match command {
            Command::Init(args) => CommandSettings::Init(init(args, set_file)?),
            Command::Deploy(args) => CommandSettings::Deploy(DeploySettings {
                dry_run: args.dry_run,
                ..self.deploy(&args.set, &args.regions, &args.function, &args.concurrency)?
            }),
            Command::Plan(args) => CommandSettings::Plan(self.plan(&args)?),
            Command::Render(args) => CommandSettings::Render(RenderSettings {
                spec: self.spec(&args.set, &args.regions)?,
                function: self.function(&args.function),
                out: args.out,
            }),
            Command::AddRegion(args) => CommandSettings::AddRegion(AddRegionSettings {
                name: self.name(&args.set)?,
                region: args.region,
                concurrency: args.concurrency.get(),
                set_file: self.path(),
            }),
            Command::RemoveRegion(args) => CommandSettings::RemoveRegion(RemoveRegionSettings {
                name: self.name(&args.set)?,
                region: args.region,
                delete_data: args.removal.delete_data,
                yes: args.removal.yes,
                discard_dead_letters: args.removal.discard_dead_letters,
                set_file: self.path(),
            }),
            Command::Verify(args) => CommandSettings::Verify(self.verify(&args)?),
            Command::Teardown(args) => CommandSettings::Teardown(TeardownSettings {
                target: self.target(&args.set, &args.regions)?,
                delete_data: args.removal.delete_data,
                yes: args.removal.yes,
                discard_dead_letters: args.removal.discard_dead_letters,
            }),
            Command::Package(args) => CommandSettings::Package(PackageSettings {
                out: args.out,
                architecture: args.architecture,
                function_source: args.source.function_source,
            }),
            Command::Replay(args) => CommandSettings::Replay(ReplaySettings {
                name: self.name(&args.set)?,
                region: args.region,
                dry_run: args.dry_run,
            }),
            Command::Sync(args) => CommandSettings::Sync(self.sync(args)?),
            Command::Restore(args) => CommandSettings::Restore(self.restore(args)?),
            Command::Deletes(args) => CommandSettings::Deletes(self.deletes(&args)?),
            Command::Status(args) => CommandSettings::Status(StatusSettings {
                target: self.target(&args.set, &args.regions)?,
                lambda_zip: args.lambda_zip,
            }),
            Command::RotateKey(args) => CommandSettings::RotateKey(RotateKeySettings {
                deploy: self.deploy(&args.set, &args.regions, &args.function, &args.concurrency)?,
                drain: args.drain_seconds.map(Duration::from_secs),
            }),
            Command::HashKey(args) => CommandSettings::HashKey(HashKeySettings {
                target: self.target(&args.set, &args.regions)?,
                keys: args.keys,
            }),
            Command::Completions(args) => CommandSettings::Completions(args.shell),
            Command::Man(args) => CommandSettings::Man(if args.markdown {
                ManSettings::Markdown
            } else {
                ManSettings::Roff(args.out)
            }),
        })
    }

    /// A deploy's settings (rotate-key deploys at each step): not a dry run.
    fn deploy(
        &self,
        set: &SetArgs,
        regions: &RegionsArgs,
        function: &FunctionArgs,
        concurrency: &ConcurrencyArgs,
    ) -> Result<DeploySettings, InputError> {
        Ok(DeploySettings {
            spec: self.spec(set, regions)?,
            function: self.function(function),
            concurrency: concurrency.get(),
            dry_run: false,
        })
    }

    fn plan(&self, args: &PlanArgs) -> Result<PlanSettings, InputError> {
        let name = self.name(&args.set)?;
        let spec = if args.regions.regions.is_empty() && self.regions().is_none() {
            None
        } else {
            Some(self.spec(&args.set, &args.regions)?)
        };
        Ok(PlanSettings {
            name,
            spec,
            function: self.function(&args.function),
            concurrency: args.concurrency.get(),
        })
    }

    fn verify(&self, args: &VerifyArgs) -> Result<VerifySettings, InputError> {
        if args.timeout == 0 {
            return Err(InputError::new(
                "--timeout 0 leaves no time to replicate: give a number of seconds, e.g. --timeout 60",
            ));
        }
        if args.objects == Some(0) {
            return Err(InputError::new(
                "--objects 0 uploads nothing to check: give at least 1",
            ));
        }
        Ok(VerifySettings {
            target: self.target(&args.set, &args.regions)?,
            options: VerifyOptions {
                timeout: Duration::from_secs(args.timeout),
                probe_size: args.probe_size,
                objects: args.objects,
                concurrency: args.concurrency.get(),
            },
        })
    }

    fn sync(&self, args: SyncArgs) -> Result<SyncSettings, InputError> {
        if args.prefix.as_deref() == Some("") {
            return Err(InputError::new(
                "--prefix is empty: leave it out to sync every key, or give the start of the keys to sync",
            ));
        }
        if args.in_cloud && (args.dry_run || args.prefix.is_some()) {
            return Err(InputError::new(
                "--in-cloud repairs every key and changes what it finds: leave out --dry-run and --prefix, or run the local `toastrep sync` for those",
            ));
        }
        Ok(SyncSettings {
            target: self.target(&args.set, &args.regions)?,
            options: SyncOptions {
                prefix: args.prefix,
                dry_run: args.dry_run,
                deep: args.deep,
                concurrency: args.concurrency.get(),
                only_into: None,
                // Read from the deployed set by the sync itself.
                carry_deletes: false,
            },
            in_cloud: args.in_cloud,
            no_wait: args.no_wait,
        })
    }

    fn restore(&self, args: RestoreArgs) -> Result<RestoreSettings> {
        if args.prefix.is_empty() {
            return Err(InputError::new(
                "--prefix is empty: give the start of the keys to restore (restore never runs over a whole set by accident)",
            )
            .into());
        }
        Ok(RestoreSettings {
            target: self.target(&args.set, &args.regions)?,
            at: parse_time(&args.at)?,
            prefix: args.prefix,
            dry_run: args.dry_run,
            concurrency: args.concurrency.get(),
        })
    }

    fn deletes(&self, args: &DeletesArgs) -> Result<DeletesSettings, InputError> {
        Ok(DeletesSettings {
            target: self.target(&args.set, &args.regions)?,
            action: if args.release {
                Action::Release
            } else if args.discard {
                Action::Discard
            } else {
                Action::Look
            },
            yes: args.yes,
        })
    }

    fn path(&self) -> Option<PathBuf> {
        self.loaded.as_ref().map(|l| l.path.clone())
    }

    fn regions(&self) -> Option<&[String]> {
        self.loaded.as_ref().map(|l| l.file.regions.as_slice())
    }

    fn name(&self, set: &SetArgs) -> Result<SetName, InputError> {
        match (&set.name, &self.loaded) {
            // Another set's file would lend this one its regions and
            // settings, and add-region or remove-region would rewrite it.
            (Some(name), Some(loaded)) if *name != loaded.file.name => {
                Err(InputError::new(format!(
                    "--name {name}, but {} describes set {}: run where no set file is, pass --set-file with set {name}'s own file, or leave out --name to act on set {}",
                    loaded.path.display(),
                    loaded.file.name,
                    loaded.file.name
                )))
            }
            (Some(name), _) => SetName::parse(name),
            (None, Some(loaded)) => SetName::parse(&loaded.file.name)
                .map_err(|error| InputError::new(format!("in {}: {error}", loaded.path.display()))),
            (None, None) => Err(InputError::new(format!(
                "which set? pass --name NAME, or run where a {} names it (`toastrep init` writes one), or pass --set-file PATH",
                set_file::FILE_NAME
            ))),
        }
    }

    /// A set's name and its regions: the flag's, else the set file's.
    fn spec(&self, set: &SetArgs, regions: &RegionsArgs) -> Result<SetSpec, InputError> {
        let name = self.name(set)?;
        if !regions.regions.is_empty() {
            return SetSpec::new(name, regions.regions.clone());
        }
        match &self.loaded {
            Some(loaded) => parse_regions(&loaded.file.regions)
                .and_then(|regions| SetSpec::new(name, regions))
                .map_err(|error| InputError::new(format!("in {}: {error}", loaded.path.display()))),
            None => Err(InputError::new(
                "which regions? pass --regions with two or more, e.g. --regions us-east-1,eu-west-2, or write them in a set file with `toastrep init`",
            )),
        }
    }

    fn target(&self, set: &SetArgs, regions: &LookInArgs) -> Result<Target, InputError> {
        Ok(Target {
            name: self.name(set)?,
            regions: regions.search()?,
        })
    }

    fn function(&self, args: &FunctionArgs) -> FunctionRequest {
        FunctionRequest {
            requested: Requested {
                flags: args.settings.clone(),
                set_file: self
                    .loaded
                    .as_ref()
                    .map(|l| l.file.settings.clone())
                    .unwrap_or_default(),
            },
            lambda_zip: args.lambda_zip.clone(),
            function_source: args.source.function_source.clone(),
        }
    }
}

/// `init`: the file's content, checked as deploy would check it.
fn init(args: cli::InitArgs, path: Option<PathBuf>) -> Result<InitSettings> {
    let spec = SetSpec::new(SetName::parse(&args.name)?, args.regions.regions)?;
    let settings = args.settings;
    // The values a new set would get, checked before anything is written.
    settings
        .applied_to(Default::default())
        .check()
        .map_err(anyhow::Error::from)?;
    Ok(InitSettings {
        path: path.unwrap_or_else(|| PathBuf::from(set_file::FILE_NAME)),
        file: SetFile {
            name: spec.name.to_string(),
            regions: spec.regions.iter().map(ToString::to_string).collect(),
            settings,
        },
        force: args.force,
    })
}
