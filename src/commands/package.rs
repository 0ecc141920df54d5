//! `toastrep package`: build the replicator and write its zip, e.g. for a
//! pipeline that deploys with `--lambda-zip`.

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::{Context, Report};
use crate::cli::PackageArgs;
use crate::package::Package;

#[derive(Serialize)]
struct PackageResult<'a> {
    path: String,
    #[serde(flatten)]
    package: &'a Package,
}

pub async fn package(context: &Context, args: &PackageArgs) -> Result<Report> {
    let package = Package::build(
        args.architecture,
        args.source.function_source.as_deref(),
        context.reporter.as_ref(),
    )
    .await?;
    std::fs::write(&args.out, &package.zip)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let result = PackageResult {
        path: args.out.display().to_string(),
        package: &package,
    };
    let text = format!(
        "{} ({} bytes, {}, sha256 {})\n",
        result.path, package.bytes, args.architecture, package.sha256
    );
    Ok(Report::new(&result, text, true))
}
