//! `toastrep restore`: every key under a prefix back, in every region, to
//! what the set held at a past time (see [`crate::ops::restore`]).

use std::fmt::Write as _;

use anyhow::Result;

use super::{Context, Report};
use crate::ops::discover;
use crate::ops::restore::{RestoreRequest, RestoreResult};
use crate::settings::RestoreSettings;

pub async fn restore(context: &Context, settings: &RestoreSettings) -> Result<Report> {
    let name = &settings.target.name;
    let located = discover::locate(&context.aws, name, &settings.target.regions).await?;
    let request = RestoreRequest {
        prefix: settings.prefix.clone(),
        at: settings.at,
        dry_run: settings.dry_run,
        concurrency: settings.concurrency,
    };
    let result =
        crate::ops::restore::restore(&located, &request, context.reporter.as_ref()).await?;
    let text = render_text(&result);
    Ok(Report::new(&result, text, result.ok))
}

pub(super) fn render_text(result: &RestoreResult) -> String {
    let mut text = String::new();
    let verb = if result.dry_run {
        "would restore"
    } else {
        "restored"
    };
    for key in &result.restored {
        let _ = writeln!(
            text,
            "{verb} {} from {} version {} ({} bytes) into {}",
            key.key,
            key.source,
            key.version,
            key.bytes,
            key.regions.join(", ")
        );
    }
    for failure in &result.failures {
        let _ = writeln!(text, "FAILED {}: {}", failure.key, failure.error);
    }
    let _ = writeln!(
        text,
        "set '{}', {} at {}: {} keys, {} {verb}, {} unchanged, {} with no object then (left as they are), {} failed{}, in {:.1} s",
        result.name,
        result.prefix,
        result.at,
        result.keys,
        result.restored.len(),
        result.unchanged,
        result.none_then,
        result.failures.len(),
        if result.dry_run {
            "; nothing was changed"
        } else {
            ""
        },
        result.seconds
    );
    text
}
