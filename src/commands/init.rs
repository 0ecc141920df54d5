//! `toastrep init`: write the set file from flags. It changes nothing in
//! AWS; `toastrep plan` then shows what a deploy of it would do.

use anyhow::{Context as _, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Report;
use crate::bail_input;
use crate::model::function::SettingsLayer;
use crate::settings::{InitSettings, set_file};

/// The set file written.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct InitResult {
    pub path: String,
    pub name: String,
    // The regions as the file lists them (see `SetFile`).
    pub regions: Vec<String>,
    /// The settings it gives; the rest keep their deployed value (or the
    /// default, for a new set).
    pub settings: SettingsLayer,
}

pub fn init(settings: &InitSettings) -> Result<Report> {
    let path = &settings.path;
    if path.exists() && !settings.force {
        bail_input!(
            "{} exists: edit it, or pass --force to replace it",
            path.display()
        );
    }
    let text = set_file::render(&settings.file);
    std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    let result = InitResult {
        path: path.display().to_string(),
        name: settings.file.name.clone(),
        regions: settings.file.regions.clone(),
        settings: settings.file.settings.clone(),
    };
    let text = format!(
        "Wrote {}:\n{text}\nNext: `toastrep plan` shows what a deploy would do; `toastrep deploy` does it.\n",
        result.path
    );
    Ok(Report::new(&result, text, true))
}
