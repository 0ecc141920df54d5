//! The mass-delete breaker as the operator sees it: which regions hold
//! deletes from which, in their held-deletes queue, and the breakers that
//! are open (see the function's `breaker` module for how they open).

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use toastrep_replication::function::breaker_keys;
use toastrep_replication::{DeleteGate, Gate, S3Notice, parse_s3_message};

use crate::aws::queues::{Queue, Take};
use crate::model::regions::Region;
use crate::ops::context::SetContext;

/// The set's breakers as `sync` and the CLI's repairs see them: a delete a
/// repair would carry into a region is held there while that region's
/// breaker holds the region that made it, read when the delete would be
/// made. (The function counts and holds the deletes its notices carry; the
/// CLI carries none from a notice.)
#[derive(Clone)]
pub struct OpenBreakers(pub SetContext);

impl std::fmt::Debug for OpenBreakers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenBreakers")
            .field("name", &self.0.name)
            .finish_non_exhaustive()
    }
}

impl OpenBreakers {
    async fn is_open(&self, region: Region, source: &str) -> Result<bool> {
        let bucket = self.0.artifact_bucket(region);
        Ok(self
            .0
            .aws
            .objects(region, bucket)
            .holds(&breaker_keys::open_key(source))
            .await?)
    }
}

impl DeleteGate for OpenBreakers {
    fn admit<'a>(
        &'a self,
        _notice: &'a S3Notice,
    ) -> Pin<Box<dyn Future<Output = Result<Gate, String>> + Send + 'a>> {
        Box::pin(async {
            Err("toastrep carries the delete of a notice only in the set's function, where the breaker counts it".to_owned())
        })
    }

    fn holds<'a>(
        &'a self,
        destination: &'a str,
        source: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async move {
            // The engine names regions as strings; they are the set's own.
            let destination = Region::parse(destination).map_err(|e| e.to_string())?;
            self.is_open(destination, source)
                .await
                .map_err(|e| format!("{e:#}"))
        })
    }
}

/// An open breaker: deletes from `source` are held in the region.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OpenBreaker {
    pub source: String,
    /// What opened it, as the function recorded it.
    pub record: serde_json::Value,
}

/// One held delete.
#[derive(Debug, Clone)]
pub struct HeldDelete {
    pub notice: S3Notice,
    pub receipt: String,
    /// The message as it is in the queue, and the function's seal of it
    /// (`None`: the message carries none).
    pub body: String,
    pub seal: Option<String>,
}

/// The breakers open in `region`.
pub async fn open_breakers(set: &SetContext, region: Region) -> Result<Vec<OpenBreaker>> {
    let SetContext { aws, name, account } = set;
    let bucket = aws.objects(region, name.artifact_bucket(region, account));
    let listed = match bucket.list(breaker_keys::OPEN).await {
        Ok(listed) => listed,
        Err(error) if error.code() == Some("NoSuchBucket") => return Ok(Vec::new()),
        Err(error) => return Err(error).context("listing the open breakers"),
    };
    let mut open = Vec::new();
    for object in listed {
        // Closed since it was listed: not open.
        let Some(body) = bucket.get(&object.key).await? else {
            continue;
        };
        open.push(OpenBreaker {
            source: object.key.trim_start_matches(breaker_keys::OPEN).to_owned(),
            record: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        });
    }
    Ok(open)
}

/// Closes the breaker for deletes from `source` in `region`: its deletes
/// are carried again. Only toastrep's own state object goes.
pub async fn close(set: &SetContext, region: Region, source: &str) -> Result<()> {
    let SetContext { aws, name, account } = set;
    aws.objects(region, name.artifact_bucket(region, account))
        .delete(&breaker_keys::open_key(source))
        .await
        .with_context(|| format!("closing the breaker for {source} in {region}"))
}

/// How many deletes `region` holds (visible and in flight).
pub async fn held_count(set: &SetContext, region: Region) -> Result<u64> {
    let SetContext { aws, name, .. } = set;
    let (_, waiting, in_flight) = aws.queue_depth(region, &name.held_deletes_queue()).await?;
    Ok(waiting + in_flight)
}

/// Takes every held delete off `region`'s queue for `hide` seconds (they
/// come back unless deleted): to look at them, or to act on them.
pub async fn receive_held(
    set: &SetContext,
    region: Region,
    hide: i32,
) -> Result<(Queue, Vec<HeldDelete>)> {
    let SetContext { aws, name, .. } = set;
    let queue = aws.queue(region, &name.held_deletes_queue()).await?;
    let how = Take {
        hide_seconds: hide,
        wait_seconds: 0,
        attributes: &[breaker_keys::SEAL_ATTRIBUTE],
    };
    let mut held = Vec::new();
    loop {
        let messages = queue.take(how).await?;
        if messages.is_empty() {
            return Ok((queue, held));
        }
        for message in messages {
            let notices = parse_s3_message(&message.body).with_context(|| {
                format!(
                    "a held delete in {region} is not an S3 event: {}",
                    message.body
                )
            })?;
            let seal = message
                .attributes
                .get(breaker_keys::SEAL_ATTRIBUTE)
                .cloned();
            for notice in notices {
                held.push(HeldDelete {
                    notice,
                    receipt: message.receipt.clone(),
                    body: message.body.clone(),
                    seal: seal.clone(),
                });
            }
        }
    }
}

/// The state of `region`'s delete breaker alarm, when it can be read.
pub async fn alarm_state(set: &SetContext, region: Region) -> Option<String> {
    let SetContext { aws, name, .. } = set;
    aws.alarm_state(region, &name.breaker_alarm(region))
        .await
        .ok()
        .flatten()
}

/// Makes held deletes visible again at once (after a look).
pub async fn show_again(queue: &Queue, held: &[HeldDelete]) -> Result<()> {
    Ok(queue
        .show_again(held.iter().map(|h| h.receipt.as_str()))
        .await?)
}
