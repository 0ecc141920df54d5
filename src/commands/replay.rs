//! `toastrep replay`: re-run the replication of dead-lettered events (see
//! [`crate::ops::replay`]).

use std::fmt::Write as _;

use anyhow::Result;

use super::{Context, Report};
use crate::ops::replay::ReplayResult;
use crate::settings::ReplaySettings;

pub async fn replay(context: &Context, settings: &ReplaySettings) -> Result<Report> {
    let result = crate::ops::replay::replay(
        &context.aws,
        &settings.name,
        settings.region,
        settings.dry_run,
        context.reporter.as_ref(),
    )
    .await?;
    let text = render_text(&result);
    Ok(Report::new(&result, text, result.ok))
}

pub(super) fn render_text(result: &ReplayResult) -> String {
    let mut text = String::new();
    let verb = if result.dry_run {
        "would replay"
    } else {
        "replayed"
    };
    for region in &result.regions {
        if let Some(error) = &region.error {
            let _ = writeln!(text, "{}: {}: ERROR {error}", region.region, region.queue);
            continue;
        }
        let _ = writeln!(
            text,
            "{}: {}: {} messages, {verb} {}, {} still failing, {} unparseable, {} refused",
            region.region,
            region.queue,
            region.messages,
            region.replayed,
            region.failing,
            region.unparseable,
            region.refused
        );
        for left in &region.left {
            let _ = writeln!(
                text,
                "  left {} ({}): {}",
                left.message_id, left.outcome, left.reason
            );
        }
    }
    let _ = writeln!(
        text,
        "set '{}': {verb} {}, {} still failing, {} unparseable, {} refused (left in the queues)",
        result.name, result.replayed, result.failing, result.unparseable, result.refused
    );
    text
}
