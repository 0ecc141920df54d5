//! `toastrep render`: the plan as files, and the stock `aws` commands that
//! would deploy it by hand, in dependency order.

use std::path::Path;

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::{Context, Report};
use crate::cli::RenderArgs;
use crate::package::Package;
use crate::plan::{DeployPlan, SetSpec, StackPlan};

#[derive(Serialize)]
struct RenderResult<'a> {
    out: String,
    plan: &'a DeployPlan,
    package: &'a Package,
    commands: Vec<String>,
}

pub async fn render(context: &Context, args: &RenderArgs) -> Result<Report> {
    let spec = SetSpec::parse(&args.set.name, &args.regions)?;
    let settings = args.function.settings();
    settings.check()?;
    let package = match &args.function.lambda_zip {
        Some(path) => Package::from_file(path)?,
        None => Package::build(context.reporter.as_ref()).await?,
    };
    let plan = DeployPlan::new(spec, package.key.clone(), &settings);
    let out = &args.out;
    write_files(&plan, &package, out)?;
    let commands = shell_commands(&plan, &package, out);
    let script = format!("#!/bin/sh\nset -eu\n{}\n", commands.join("\n"));
    write(&out.join("deploy.sh"), script.as_bytes())?;
    let result = RenderResult {
        out: out.display().to_string(),
        plan: &plan,
        package: &package,
        commands,
    };
    let text = result.commands.join("\n");
    Ok(Report::new(&result, text, true))
}

/// `OUT/plan.json`, `OUT/package/<zip>` and, per stack,
/// `OUT/stacks/<region>/<stack>.yaml` and `.json` (parameters and tags).
fn write_files(plan: &DeployPlan, package: &Package, out: &Path) -> Result<()> {
    write(
        &out.join("plan.json"),
        serde_json::to_string_pretty(plan)?.as_bytes(),
    )?;
    write(&out.join(package_path(package)), &package.zip)?;
    for stack in plan.stacks() {
        let base = out.join("stacks").join(&stack.region);
        write(
            &base.join(format!("{}.yaml", stack.stack_name)),
            stack.template.body().as_bytes(),
        )?;
        let values = serde_json::json!({
            "StackName": stack.stack_name,
            "Region": stack.region,
            "Parameters": stack.parameters,
            "Tags": stack.tags,
        });
        write(
            &base.join(format!("{}.json", stack.stack_name)),
            serde_json::to_string_pretty(&values)?.as_bytes(),
        )?;
    }
    Ok(())
}

fn package_path(package: &Package) -> String {
    format!("package/replicator-{}.zip", package.sha256)
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// The by-hand equivalent of `toastrep deploy`, as one command per line.
fn shell_commands(plan: &DeployPlan, package: &Package, out: &Path) -> Vec<String> {
    let name = &plan.spec.name;
    let q = |s: &str| shlex::try_quote(s).map_or_else(|_| s.to_owned(), |q| q.into_owned());
    let zip = out.join(package_path(package));
    let mut lines = vec![
        format!(
            "# Replica set '{name}': {} regions, {} base stacks, then {} pairs (a grant stack in the destination region, then a subscription stack in the source region).",
            plan.spec.regions.len(),
            plan.bases.len(),
            plan.pairs.len()
        ),
        "ACCOUNT=$(aws sts get-caller-identity --query Account --output text)".to_owned(),
        "# 1. An artifact bucket per region, holding the function package.".to_owned(),
    ];
    for region in &plan.spec.regions {
        let bucket = name.artifact_bucket(region, "${ACCOUNT}");
        lines.push(format!("aws s3 mb \"s3://{bucket}\" --region {region}"));
        lines.push(format!(
            "aws s3api put-public-access-block --bucket \"{bucket}\" --region {region} --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true"
        ));
        lines.push(format!(
            "aws s3 cp {} \"s3://{bucket}/{}\" --region {region}",
            q(&zip.display().to_string()),
            package.key
        ));
    }
    lines.push("# 2. Base stacks (independent of each other).".to_owned());
    lines.extend(plan.bases.iter().map(|s| deploy_command(s, out, &q)));
    lines.push("# 3. Grant stacks, in each pair's destination region.".to_owned());
    lines.extend(plan.pairs.iter().map(|p| deploy_command(&p.grant, out, &q)));
    lines.push("# 4. Subscription stacks, in each pair's source region.".to_owned());
    lines.extend(
        plan.pairs
            .iter()
            .map(|p| deploy_command(&p.subscription, out, &q)),
    );
    lines
}

fn deploy_command(stack: &StackPlan, out: &Path, q: &dyn Fn(&str) -> String) -> String {
    let template = out
        .join("stacks")
        .join(&stack.region)
        .join(format!("{}.yaml", stack.stack_name));
    let parameters: Vec<String> = stack
        .parameters
        .iter()
        .map(|(k, v)| q(&format!("{k}={v}")))
        .collect();
    let tags: Vec<String> = stack
        .tags
        .iter()
        .map(|(k, v)| q(&format!("{k}={v}")))
        .collect();
    format!(
        "aws cloudformation deploy --region {} --stack-name {} --template-file {} --capabilities CAPABILITY_NAMED_IAM --no-fail-on-empty-changeset --parameter-overrides {} --tags {}",
        stack.region,
        stack.stack_name,
        q(&template.display().to_string()),
        parameters.join(" "),
        tags.join(" ")
    )
}
