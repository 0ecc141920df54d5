use std::process::ExitCode;

use clap::Parser;
use toastrep::cli::{Cli, Command, OutputFormat};
use toastrep::commands::{self, Context, Report};
use toastrep::{aws::AwsOptions, error, progress};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.verbose);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let output = cli.global.output;
    match runtime.block_on(run(cli)) {
        Ok(report) => {
            print_report(&report, output);
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            if output == OutputFormat::Json {
                let json = serde_json::json!({"ok": false, "error": format!("{error:#}")});
                println!("{json}");
            }
            ExitCode::from(error::exit_code(&error) as u8)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<Report> {
    let context = Context {
        aws: AwsOptions {
            profile: cli.global.profile.clone(),
            endpoint_url: cli.global.endpoint_url.clone(),
        },
        reporter: progress::reporter(cli.global.verbose > 0),
    };
    match &cli.command {
        Command::Deploy(args) => commands::deploy(&context, args).await,
        Command::Render(args) => commands::render(&context, args).await,
        Command::Verify(args) => commands::verify(&context, args).await,
        Command::Teardown(args) => commands::teardown(&context, args).await,
        Command::Package(args) => commands::package(&context, args).await,
        Command::Replay(args) => commands::replay(&context, args).await,
        Command::Sync(args) => commands::sync(&context, args).await,
        Command::Restore(args) => commands::restore(&context, args).await,
        Command::Deletes(args) => commands::deletes(&context, args).await,
        Command::AddRegion(args) => commands::add_region(&context, args).await,
        Command::RemoveRegion(args) => commands::remove_region(&context, args).await,
        Command::Plan(args) => commands::plan(&context, args).await,
        Command::Status(args) => commands::status(&context, args).await,
        Command::HashKey(args) => commands::hash_key(&context, args).await,
        Command::Completions(args) => commands::completions(args),
        Command::Man(args) => commands::man(args),
    }
}

fn print_report(report: &Report, output: OutputFormat) {
    match output {
        OutputFormat::Text => print!("{}", report.text),
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report.json).expect("JSON values print")
        ),
    }
}

/// Logs go to stderr; -v shows toastrep's own, -vv the AWS SDK's too.
/// RUST_LOG, when set, wins.
fn init_logging(verbose: u8) {
    let default = match verbose {
        // aws-config warns on every command where no region is configured
        // (it asks the instance metadata service); toastrep sets the region itself.
        0 => "warn,aws_config=error",
        1 => "toastrep=debug,toastrep_replication=debug,info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
