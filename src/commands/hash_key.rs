//! `toastrep hash-key`: the hash under which the set's functions log an
//! object key (see `toastrep_replication::function::log_keys`), to find its lines.

use anyhow::Result;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use toastrep_replication::function::log_keys;

use super::{Context, Report};
use crate::aws::artifacts;
use crate::error::InputError;
use crate::ops::discover;
use crate::settings::HashKeySettings;

/// One key and what the logs call it.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct HashedKey {
    pub key: String,
    pub logged_as: String,
}

pub async fn hash_key(context: &Context, settings: &HashKeySettings) -> Result<Report> {
    let name = &settings.target.name;
    let located = discover::locate(&context.aws, name, &settings.target.regions).await?;
    let regions = located.deployed()?;
    // Only the derived log key, which the artifact bucket keeps: finding a
    // key's log lines needs no right to the marker key (which seals markers).
    let region = &regions[0];
    let bucket = located.set.artifact_bucket(*region);
    let log_key = artifacts::log_key_in(&located.set.aws.objects(*region, &bucket))
        .await?
        .and_then(|hex| {
            let mut key = [0u8; 32];
            hex::decode_to_slice(hex, &mut key).ok().map(|()| key)
        })
        .ok_or_else(|| {
            InputError::new(format!(
                "s3://{bucket}/{} holds no log key: set '{name}' was deployed by an earlier release; run `toastrep deploy --name {name}` once to keep it there",
                artifacts::LOG_KEY_OBJECT
            ))
        })?;
    let hashed: Vec<HashedKey> = settings
        .keys
        .iter()
        .map(|key| HashedKey {
            key: key.clone(),
            logged_as: log_keys::hash_under(&log_key, key),
        })
        .collect();
    let text = hashed
        .iter()
        .map(|h| format!("{}  {}\n", h.logged_as, h.key))
        .collect();
    Ok(Report::new(&hashed, text, true))
}
