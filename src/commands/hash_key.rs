//! `toastrep hash-key`: the hash under which the set's functions log an
//! object key (see `toastrep_replication::log_keys`), to find its lines.

use anyhow::Result;
use serde::Serialize;
use toastrep_replication::log_keys;

use super::{Context, Located, Report};
use crate::cli::HashKeyArgs;
use crate::model::names::SetName;
use crate::model::topology::parse_regions;
use crate::ops::discover;

#[derive(Serialize)]
struct HashedKey {
    key: String,
    logged_as: String,
}

pub async fn hash_key(context: &Context, args: &HashKeyArgs) -> Result<Report> {
    let name = SetName::parse(&args.set.name)?;
    let given = parse_regions(&args.regions)?;
    let Located { aws, found, .. } = context.locate(&name, &given).await?;
    let regions = discover::require_deployed(&found, &name)?;
    let marker_key = crate::ops::marker_key::for_set(&aws, &name, &regions).await?;
    let hashed: Vec<HashedKey> = args
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
