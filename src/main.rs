use std::process::ExitCode;

use clap::Parser;
use toastrep::cli::Cli;
use toastrep::commands::{self, Context, Report};
use toastrep::settings::{self, Settings};
use toastrep::{error, progress};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.verbose);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let json = cli.global.output == toastrep::cli::OutputFormat::Json;
    match runtime.block_on(run(cli)) {
        Ok(report) => {
            print_report(&report, json);
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            if json {
                let failure = commands::Failure::new(&error);
                println!(
                    "{}",
                    serde_json::to_string(&failure).expect("a failure prints")
                );
            }
            ExitCode::from(error::exit_code(&error) as u8)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<Report> {
    let Settings { global, command } = settings::resolve(cli)?;
    let context = Context {
        aws: global.aws,
        reporter: progress::reporter(global.verbose > 0, global.quiet),
    };
    commands::run(&context, command).await
}

fn print_report(report: &Report, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.json).expect("JSON values print")
        );
    } else {
        print!("{}", report.text);
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
