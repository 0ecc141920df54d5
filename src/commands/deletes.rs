//! `toastrep deletes`: what the mass-delete breaker holds, and the
//! operator's decision on it (see [`crate::ops::deletes`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;

use super::{Context, Report};
use crate::ops::deletes::{Action, DeletesResult, HeldKey};
use crate::ops::discover;
use crate::settings::DeletesSettings;

pub async fn deletes(context: &Context, settings: &DeletesSettings) -> Result<Report> {
    let name = &settings.target.name;
    let located = discover::locate(&context.aws, name, &settings.target.regions).await?;
    let result = crate::ops::deletes::deletes(&located, settings.action, settings.yes).await?;
    let text = render_text(&result);
    Ok(Report::new(&result, text, result.ok))
}

pub(super) fn render_text(result: &DeletesResult) -> String {
    let mut text = String::new();
    let mut total = 0;
    for region in &result.regions {
        for open in &region.open_for {
            let _ = writeln!(
                text,
                "{}: breaker OPEN for deletes from {} ({})",
                region.region, open.source, open.record
            );
        }
        let mut by_source: BTreeMap<&str, Vec<&HeldKey>> = BTreeMap::new();
        for key in &region.held {
            by_source.entry(&key.source).or_default().push(key);
        }
        for (source, keys) in by_source {
            total += keys.len();
            let _ = writeln!(
                text,
                "{}: {} deletes from {source} held",
                region.region,
                keys.len()
            );
            for key in keys.iter().take(20) {
                let _ = writeln!(
                    text,
                    "  {}{}",
                    key.key,
                    key.outcome
                        .as_deref()
                        .map(|o| format!(": {o}"))
                        .unwrap_or_default()
                );
            }
            if keys.len() > 20 {
                let _ = writeln!(
                    text,
                    "  and {} more (all of them with --output json)",
                    keys.len() - 20
                );
            }
        }
    }
    for failure in &result.failures {
        let _ = writeln!(text, "FAILED {failure}");
    }
    for refused in &result.refused {
        let _ = writeln!(
            text,
            "REFUSED {refused} (look at it, then delete it from the queue by hand)"
        );
    }
    let _ = match (result.action, result.done) {
        (Action::Look, _) => writeln!(
            text,
            "{total} deletes held. To carry them: `toastrep deletes --name {} --release --yes`; to undo them where they were made: `--discard --yes`.",
            result.name
        ),
        (action, false) => writeln!(
            text,
            "Would {} {total} held deletes{}. Nothing was changed: run again with --yes to do it.",
            action.as_str(),
            if action == Action::Discard {
                " (each key gets back, where it was deleted, the object it held just before)"
            } else {
                " (each is carried as the function would have)"
            }
        ),
        (action, true) => writeln!(
            text,
            "{total} held deletes: {}d, {} failed; {}",
            action.as_str(),
            result.failures.len(),
            if result.failures.is_empty() {
                "the breakers are closed"
            } else {
                "the breakers stay open until every held delete is done"
            }
        ),
    };
    text
}
