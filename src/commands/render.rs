//! `toastrep render`: the plan as files, and the stock `aws` commands that
//! would deploy it by hand, in dependency order.

use std::path::Path;

use anyhow::{Context as _, Result};
use schemars::JsonSchema;
use serde::Serialize;

use super::{Context, Report};
use crate::aws::artifacts;
use crate::model::topology::{DeployPlan, StackPlan, shown_parameters};
use crate::ops::marker_key::{self, MarkerKey};
use crate::package::Package;
use crate::settings::RenderSettings;

/// The file in OUT that holds the rendered set's marker key.
const MARKER_KEY_FILE: &str = "marker-key";

/// Stands for the marker key in a stack's parameters file; the script puts
/// the key in its place, in a private temporary file, as it deploys.
const MARKER_KEY_PLACEHOLDER: &str = "@MARKER_KEY@";

/// The files written, and the commands that deploy them.
#[derive(Serialize, JsonSchema)]
pub struct RenderResult {
    pub out: String,
    pub plan: DeployPlan,
    pub package: Package,
    pub commands: Vec<String>,
}

pub async fn render(context: &Context, settings: &RenderSettings) -> Result<Report> {
    let function = &settings.function;
    // A new set's settings: render deploys nothing, so nothing is kept.
    let resolved = function.requested.resolve(None);
    resolved.check()?;
    let package = Package::for_function(
        Package::prebuilt(function.lambda_zip.as_deref(), function.architecture())?,
        resolved.architecture,
        function.function_source.as_deref(),
        context.reporter.as_ref(),
    )
    .await?;
    let out = &settings.out;
    let marker_key = rendered_marker_key(out)?;
    let plan = DeployPlan::new(
        settings.spec.clone(),
        package.key.clone(),
        &resolved,
        Some(&marker_key.into()),
    );
    write_files(&plan, &package, out)?;
    let commands = shell_commands(&plan, &package, out);
    let script = format!("#!/bin/sh\nset -eu\n{}\n", commands.join("\n"));
    write(&out.join("deploy.sh"), script.as_bytes())?;
    let result = RenderResult {
        out: out.display().to_string(),
        plan,
        package,
        commands,
    };
    let text = result.commands.join("\n");
    Ok(Report::new(&result, text, true))
}

/// The set's key in `OUT/marker-key`: the one already there (a set rendered
/// again, maybe deployed by hand from the first rendering, must keep its
/// key), or a new one, written readable by the owner only. The plan files and
/// the script never hold it: they show `****` and read the file.
fn rendered_marker_key(out: &Path) -> Result<MarkerKey> {
    let path = out.join(MARKER_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return MarkerKey::from_hex(&text).with_context(|| {
                format!(
                    "{} is not a marker key: restore the key the set was deployed with, or delete the file to render a new set",
                    path.display()
                )
            });
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| format!("reading {}", path.display()));
        }
    }
    let key = marker_key::generate()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{}\n", key.to_hex()).as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(key)
}

/// `OUT/plan.json`, `OUT/package/<zip>` and, per stack,
/// `OUT/stacks/<region>/<stack>.yaml`, `.json` (parameters and tags, as
/// shown) and `.parameters.json` (what `aws cloudformation deploy
/// --parameter-overrides file://` reads, the key as a placeholder).
fn write_files(plan: &DeployPlan, package: &Package, out: &Path) -> Result<()> {
    write(
        &out.join("plan.json"),
        serde_json::to_string_pretty(plan)?.as_bytes(),
    )?;
    write(&out.join(package_path(package)), &package.zip)?;
    for stack in plan.stacks() {
        let base = out.join("stacks").join(stack.region.as_str());
        write(
            &base.join(format!("{}.yaml", stack.stack_name)),
            stack.template.body().as_bytes(),
        )?;
        let values = serde_json::json!({
            "StackName": stack.stack_name,
            "Region": stack.region,
            "Parameters": shown_parameters(&stack.parameters),
            "Tags": stack.tags,
        });
        write(
            &base.join(format!("{}.json", stack.stack_name)),
            serde_json::to_string_pretty(&values)?.as_bytes(),
        )?;
        write(
            &parameters_path(stack, out),
            serde_json::to_string_pretty(&parameters_file(stack))?.as_bytes(),
        )?;
    }
    Ok(())
}

/// A stack's parameters in CloudFormation's own file format, which `aws
/// cloudformation deploy --parameter-overrides file://` takes (AWS CLI v2).
fn parameters_file(stack: &StackPlan) -> serde_json::Value {
    stack
        .parameters
        .iter()
        .map(|(k, v)| {
            let value = if k == marker_key::PARAMETER {
                MARKER_KEY_PLACEHOLDER
            } else {
                v.as_str()
            };
            serde_json::json!({ "ParameterKey": k, "ParameterValue": value })
        })
        .collect()
}

fn parameters_path(stack: &StackPlan, out: &Path) -> std::path::PathBuf {
    out.join("stacks")
        .join(stack.region.as_str())
        .join(format!("{}.parameters.json", stack.stack_name))
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
    let key_file = q(&out.join(MARKER_KEY_FILE).display().to_string());
    let mut lines = vec![
        format!(
            "# Replica set '{name}': {} regions, {} base stacks, then {} pairs (a grant stack in the destination region, then a subscription stack in the source region).",
            plan.spec.regions.len(),
            plan.bases.len(),
            plan.pairs.len()
        ),
        "ACCOUNT=$(aws sts get-caller-identity --query Account --output text)".to_owned(),
        format!(
            "# The set's marker key, made by toastrep render: a secret (it authenticates the origin marker on every replica), the same in every region and for every later deploy of this set. Keep {key_file} private, and keep it."
        ),
        format!("{}=$(cat {key_file})", marker_key::VARIABLE),
        "# A stack's parameters with the key filled in, in a file only its owner can read, removed at the end: the key is never a command's argument, which every user of the machine can read.".to_owned(),
        "umask 077".to_owned(),
        "PARAMETERS=$(mktemp)".to_owned(),
        "trap 'rm -f \"$PARAMETERS\"' EXIT".to_owned(),
        format!(
            "with_marker_key() {{ p=$(cat \"$1\"); printf '%s\\n' \"${{p%%{MARKER_KEY_PLACEHOLDER}*}}${{{v}}}${{p#*{MARKER_KEY_PLACEHOLDER}}}\" > \"$PARAMETERS\"; }}",
            v = marker_key::VARIABLE
        ),
        "# 1. An artifact bucket per region, holding the function package: public access blocked, TLS only (as deploy makes it).".to_owned(),
    ];
    for region in &plan.spec.regions {
        let bucket = name.artifact_bucket(*region, "${ACCOUNT}");
        lines.push(format!("aws s3 mb \"s3://{bucket}\" --region {region}"));
        lines.push(format!(
            "aws s3api put-public-access-block --bucket \"{bucket}\" --region {region} --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true"
        ));
        // The policy names the bucket, so it holds ${ACCOUNT}: double quotes,
        // which the shell expands, around JSON whose own quotes are escaped.
        let writer =
            artifacts::state_writer(&plan.spec.name, *region, "${ACCOUNT}", plan.spec.partition);
        let policy = artifacts::artifact_policy(&bucket, plan.spec.partition, &writer).to_string();
        lines.push(format!(
            "aws s3api put-bucket-policy --bucket \"{bucket}\" --region {region} --policy \"{}\"",
            escape_double_quoted(&policy)
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

/// `text` for the inside of a double-quoted shell word: `"`, `\`, `` ` ``
/// and nothing else escaped, so `${ACCOUNT}` still expands. Only for text
/// whose `$` are meant for the shell (here, the names toastrep derives).
fn escape_double_quoted(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '"' | '\\' | '`') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn deploy_command(stack: &StackPlan, out: &Path, q: &dyn Fn(&str) -> String) -> String {
    let template = out
        .join("stacks")
        .join(stack.region.as_str())
        .join(format!("{}.yaml", stack.stack_name));
    let parameters = q(&parameters_path(stack, out).display().to_string());
    // A stack that takes the key deploys from the private copy with the
    // key filled in; the others from their parameters file as written.
    let (prefix, overrides) = if stack.parameters.contains_key(marker_key::PARAMETER) {
        (
            format!("with_marker_key {parameters} && "),
            "\"file://$PARAMETERS\"".to_owned(),
        )
    } else {
        (String::new(), format!("file://{parameters}"))
    };
    let tags: Vec<String> = stack
        .tags
        .iter()
        .map(|(k, v)| q(&format!("{k}={v}")))
        .collect();
    format!(
        "{prefix}aws cloudformation deploy --region {} --stack-name {} --template-file {} --capabilities CAPABILITY_NAMED_IAM --no-fail-on-empty-changeset --parameter-overrides {overrides} --tags {}",
        stack.region,
        stack.stack_name,
        q(&template.display().to_string()),
        tags.join(" ")
    )
}
