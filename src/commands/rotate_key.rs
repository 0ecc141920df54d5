//! `toastrep rotate-key`: the set's marker key replaced, in the steps of
//! [`crate::ops::rotation`].

use std::fmt::Write as _;

use anyhow::Result;

use super::{Context, Report};
use crate::ops::rotation::{self, RotationResult};
use crate::settings::RotateKeySettings;

pub async fn rotate_key(context: &Context, settings: &RotateKeySettings) -> Result<Report> {
    let result = rotation::rotate(
        &context.aws,
        &settings.deploy,
        settings.drain,
        context.reporter.as_ref(),
    )
    .await?;
    let text = summary(&result);
    Ok(Report::new(&result, text, result.ok))
}

pub(super) fn summary(result: &RotationResult) -> String {
    let mut text = String::new();
    for step in &result.steps {
        let _ = writeln!(
            text,
            "{:<8} deployed to {} regions{}{}",
            format!("{:?}", step.step).to_lowercase(),
            step.deploy.regions.len(),
            if step.deploy.ok { "" } else { ", FAILED" },
            if step.drained_seconds > 0 {
                format!(", then waited {} s", step.drained_seconds)
            } else {
                String::new()
            }
        );
    }
    if let Some(sync) = &result.resealed {
        let _ = writeln!(
            text,
            "resealed {} copies over {} keys{}",
            sync.copies_made,
            sync.keys_scanned,
            if sync.ok {
                ""
            } else {
                ", with failures: run rotate-key again"
            }
        );
    }
    let _ = writeln!(
        text,
        "set '{}': marker key {} -> {}{}",
        result.name,
        result.old_key_id,
        result.new_key_id,
        if result.ok {
            ""
        } else {
            " (not finished: run rotate-key again)"
        }
    );
    text
}
