//! `toastrep hash-key`: the hash under which the set's functions log an
//! object key (see `toastrep_replication::log_keys`), to find its lines.

use anyhow::Result;
use schemars::JsonSchema;
use serde::Serialize;
use toastrep_replication::log_keys;

use super::{Context, Report};
use crate::ops::discover;
use crate::settings::HashKeySettings;

/// One key and what the logs call it.
#[derive(Serialize, JsonSchema)]
pub struct HashedKey {
    pub key: String,
    pub logged_as: String,
}

pub async fn hash_key(context: &Context, settings: &HashKeySettings) -> Result<Report> {
    let name = &settings.target.name;
    let located = discover::locate(&context.aws, name, &settings.target.regions).await?;
    let regions = discover::require_deployed(&located.found, name)?;
    let marker_key = crate::ops::marker_key::for_set(&located.aws, name, &regions).await?;
    let hashed: Vec<HashedKey> = settings
        .keys
        .iter()
        .map(|key| HashedKey {
            key: key.clone(),
            logged_as: log_keys::hash(&marker_key, key),
        })
        .collect();
    let text = hashed
        .iter()
        .map(|h| format!("{}  {}\n", h.logged_as, h.key))
        .collect();
    Ok(Report::new(&hashed, text, true))
}
