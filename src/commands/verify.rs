//! `toastrep verify`: prove the set replicates, pair by pair (see
//! [`crate::ops::verify`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;

use super::{Context, Report};
use crate::ops::discover;
use crate::ops::verify::{PairResult, VerifyResult};
use crate::settings::VerifySettings;

pub async fn verify(context: &Context, settings: &VerifySettings) -> Result<Report> {
    let name = &settings.target.name;
    let located = discover::locate(&context.aws, name, &settings.target.regions).await?;
    let result =
        crate::ops::verify::verify(&located, &settings.options, context.reporter.as_ref()).await?;
    let text = summary(&result);
    Ok(Report::new(&result, text, result.ok))
}

pub(super) fn summary(result: &VerifyResult) -> String {
    let mut text = format!(
        "Replication latency in ms (max per pair), source (rows) to destination (columns), set '{}':\n",
        result.name
    );
    let width = result
        .regions
        .iter()
        .map(|region| region.len())
        .max()
        .unwrap_or(8)
        + 2;
    let _ = write!(text, "{:width$}", "");
    for region in &result.regions {
        let _ = write!(text, "{region:>width$}");
    }
    text.push('\n');
    let cells: BTreeMap<(&str, &str), &PairResult> = result
        .pairs
        .iter()
        .map(|p| ((p.source.as_str(), p.destination.as_str()), p))
        .collect();
    for source in &result.regions {
        let _ = write!(text, "{source:width$}");
        for destination in &result.regions {
            let cell = match cells.get(&(source.as_str(), destination.as_str())) {
                None => "-".to_owned(),
                Some(pair) if pair.converged => pair.max_ms.unwrap_or_default().to_string(),
                Some(pair) => format!("TIMEOUT {}/{}", pair.replicated, pair.objects),
            };
            let _ = write!(text, "{cell:>width$}");
        }
        text.push('\n');
    }
    if result.objects > result.regions.len() {
        let _ = writeln!(
            text,
            "\n{:<34} {:>8} {:>8} {:>8} {:>8}",
            "PAIR", "OBJECTS", "P50 MS", "P95 MS", "MAX MS"
        );
        for pair in &result.pairs {
            let ms = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
            let _ = writeln!(
                text,
                "{:<34} {:>8} {:>8} {:>8} {:>8}",
                format!("{} -> {}", pair.source, pair.destination),
                format!("{}/{}", pair.replicated, pair.objects),
                ms(pair.p50_ms),
                ms(pair.p95_ms),
                ms(pair.max_ms)
            );
        }
        let _ = writeln!(
            text,
            "{} objects, {:.1} s, {:.1} replicas/s",
            result.objects, result.seconds, result.replicas_per_second
        );
    }
    let copies = &result.copies;
    match (copies.copies, copies.per_upload) {
        (Some(count), Some(per_upload)) => {
            let _ = writeln!(
                text,
                "Copies per upload: {per_upload:.2} ({count} copies of {} uploads, from the buckets' version history; expected {} = regions - 1){}",
                copies.uploads,
                result.regions.len() - 1,
                if copies.exact { "" } else { " MISMATCH" }
            );
        }
        _ => {
            let _ = writeln!(
                text,
                "Copies per upload: unknown (the probes' versions could not be listed)"
            );
        }
    }
    if result.ok {
        let _ = writeln!(text, "All {} pairs converged.", result.pairs.len());
    } else if result.failed.is_empty() {
        let _ = writeln!(
            text,
            "All {} pairs converged, but the copies are not exactly {} per upload.",
            result.pairs.len(),
            result.regions.len() - 1
        );
    } else {
        let _ = writeln!(
            text,
            "Not converged within {} s: {}",
            result.timeout_seconds,
            result.failed.join(", ")
        );
    }
    text
}
