//! `toastrep package`: build the replicator and write its zip, e.g. for a
//! pipeline that deploys with `--lambda-zip`.

use anyhow::{Context as _, Result};
use schemars::JsonSchema;
use serde::Serialize;

use super::{Context, Report};
use crate::package::Package;
use crate::settings::PackageSettings;

/// The package written, and where.
#[derive(Serialize, JsonSchema)]
pub struct PackageResult {
    pub path: String,
    #[serde(flatten)]
    pub package: Package,
}

pub async fn package(context: &Context, settings: &PackageSettings) -> Result<Report> {
    let package = Package::build(
        settings.architecture,
        settings.function_source.as_deref(),
        context.reporter.as_ref(),
    )
    .await?;
    std::fs::write(&settings.out, &package.zip)
        .with_context(|| format!("writing {}", settings.out.display()))?;
    let result = PackageResult {
        path: settings.out.display().to_string(),
        package,
    };
    let package = &result.package;
    let text = format!(
        "{} ({} bytes, {}, sha256 {})\n",
        result.path, package.bytes, settings.architecture, package.sha256
    );
    Ok(Report::new(&result, text, true))
}
