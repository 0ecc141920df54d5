//! `toastrep add-region`: grow a deployed set by one region.
//!
//! The new region runs exactly what the members run: the package their base
//! stacks name (copied from a member's artifact bucket, not rebuilt) and the
//! same function settings, so no member changes. Then it is the deploy of
//! the grown set ([`super::deploy::roll_out`]): the new base stack, every pair
//! in both directions, the backfill of the objects the set already holds, and
//! a verify. Running it again after an interruption finishes the job.

use anyhow::{Context as _, Result};

use super::deploy;
use super::{Context, Report};
use crate::aws::stack;
use crate::bail_input;
use crate::cli::AddRegionArgs;
use crate::model::function::FunctionSettings;
use crate::model::names::SetName;
use crate::model::regions;
use crate::model::topology::{DeployPlan, SetSpec, parse_regions};
use crate::ops::discover;
use crate::ops::marker_key;
use crate::package::Package;

pub async fn add_region(context: &Context, args: &AddRegionArgs) -> Result<Report> {
    let name = SetName::parse(&args.set.name)?;
    let region = parse_regions(std::slice::from_ref(&args.region))?.remove(0);
    crate::model::names::check_lengths(&name, [region.as_str()])?;
    let aws = context.aws(&region).await;
    let account = aws.account_id().await?;
    let partition = regions::partition_of(&region).expect("regions are checked");
    let found = deploy::discover_in_partition(&aws, &name, &account, partition).await?;
    let deployed = discover::require_deployed(&found, &name)?;
    let members = deploy::complete_members(&aws, &name, &account, &found).await?;
    if members.contains(&region) {
        bail_input!(
            "{region} is already a region of set '{name}' (it is deployed in {}): to bring it up to date run `toastrep deploy`, to see its health `toastrep status --name {name}`",
            deployed.join(", ")
        );
    }
    // A member to copy from: the package and settings the set runs.
    let Some(source) = members.iter().next() else {
        bail_input!(
            "set '{name}' has no region whose deployment finished (only {}, being added): finish it with `toastrep deploy --name {name} --regions ...` listing its regions",
            deployed.join(", ")
        );
    };
    let mut regions: Vec<String> = deployed.clone();
    if !regions.contains(&region) {
        regions.push(region.clone());
    }
    let spec = SetSpec::parse(name.as_str(), &regions)?;
    deploy::check_no_leftover_buckets(&found, &spec, &account)?;

    let base = &found.bases[source];
    let parameters = stack::parameters_of(base);
    let mut settings = FunctionSettings::from_parameters(&parameters);
    settings.dashboard_home = found.dashboard_home();
    let Some(code_key) = parameters.get("CodeKey") else {
        bail_input!(
            "the base stack of '{name}' in {source} has no CodeKey parameter, so it was not made by this toastrep: redeploy the set with `toastrep deploy`"
        );
    };
    let package = deployed_package(&aws, &name, &account, source, code_key).await?;
    // Older toastreps shipped packages unchecked; the new region must run it.
    package.check_runs_on(settings.architecture)?;
    // The members' key, read before any stack changes: the new region must
    // hold the same one.
    let marker_key = marker_key::for_deploy(&aws, &name, &deployed).await?;
    let plan = DeployPlan::new(spec, package.key.clone(), &settings, &marker_key);
    deploy::roll_out(
        context,
        &aws,
        &account,
        &plan,
        &package,
        &members,
        args.concurrency,
    )
    .await
}

/// The package a member runs, read from its artifact bucket and checked
/// against the hash in its name.
async fn deployed_package(
    aws: &crate::aws::Aws,
    name: &SetName,
    account: &str,
    region: &str,
    key: &str,
) -> Result<Package> {
    let bucket = name.artifact_bucket(region, account);
    let object = aws
        .s3(region)
        .get_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .map_err(anyhow::Error::new)
        .with_context(|| {
            format!(
                "reading the deployed package s3://{bucket}/{key} in {region} (if it is gone, `toastrep deploy` with the set's regions and the new one uploads it again)"
            )
        })?;
    let zip = object
        .body
        .collect()
        .await
        .with_context(|| format!("reading s3://{bucket}/{key}"))?
        .into_bytes()
        .to_vec();
    let mut package = Package::from_zip(zip, &format!("s3://{bucket}/{key}"))?;
    if !key.contains(&package.sha256) {
        anyhow::bail!(
            "s3://{bucket}/{key} in {region} does not hash to the SHA-256 in its name (it is {}): redeploy the set with `toastrep deploy`",
            package.sha256
        );
    }
    // The key the members' stacks name, whatever toastrep named it.
    key.clone_into(&mut package.key);
    Ok(package)
}
