//! The mass-delete breaker: deletes carried into this region from another
//! are counted per source region and calendar minute. Past the limit the
//! breaker for that source opens: from then on its deletes are held in the
//! held-deletes queue, untouched, until `toastrep deletes` releases or
//! discards them (and closes the breaker). Writes are never held.
//!
//! State lives in this region's artifact bucket ([`breaker_keys`]):
//! - one empty object per delete counted, named by its delete marker, so a
//!   notice delivered twice counts once; a listing counts them;
//! - one object per open breaker, with when and why.
//!
//! It runs on the services' traits: on AWS in the function, in memory in
//! the simulation, where bursts of duplicated and reordered deletes open it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::breaker_keys::{self, open_key};
use super::log_keys::LogKeys;
use crate::clock::Clock;
use crate::engine::{DeleteGate, Gate, KeyNames as _};
use crate::event::S3Notice;
use crate::protocol::MarkerKey;
use crate::store::services::{
    Alarm, Artifacts, HeldDeletes, HeldMessage, ServiceError, ServiceResult,
};

/// The message attribute naming the region a held delete came from.
pub const SOURCE_ATTRIBUTE: &str = "source_region";

/// One region's breaker and where it keeps its state and its held deletes.
#[derive(Debug)]
pub struct Breaker<A, Q, M> {
    pub per_minute: u32,
    /// This function's region: the only destination its breaker keeps.
    pub region: String,
    /// The set's marker key: held deletes carry its seal, so `toastrep
    /// deletes` acts only on messages this function wrote.
    pub key: MarkerKey,
    /// How the held delete's line names its key.
    pub log_keys: LogKeys,
    /// The artifact bucket, where the counts and open breakers are kept.
    pub artifacts: A,
    pub held: Q,
    pub alarm: M,
    /// What "this minute" is read from.
    pub clock: Arc<dyn Clock>,
}

impl<A: Artifacts, Q: HeldDeletes, M: Alarm> Breaker<A, Q, M> {
    /// Whether the delete `notice` reports may be carried now: `false`
    /// when the breaker for its region is open, or this delete opens it.
    /// The engine asks only for a delete that would delete something here.
    ///
    /// Every such delete counts, whoever made it. A delete another of the
    /// set's functions made (carrying one into its own region) echoes here
    /// too and counts under that region: it comes no faster than that
    /// region's breaker lets deletes through, so at worst a breaker holds
    /// sooner during a burst, never later. Nothing in a notice proves it
    /// came from the set (a session name is anyone's to choose, and S3
    /// names the role by an id only IAM can resolve), so nothing is let
    /// past uncounted.
    pub async fn allows(&self, notice: &S3Notice) -> ServiceResult<bool> {
        let source = &notice.region;
        if self.is_open(source).await? {
            return Ok(false);
        }
        let minute = self.clock.now_ms().div_euclid(60_000) * 60;
        let prefix = breaker_keys::count_prefix(source, minute);
        let marker = notice.version_id.as_deref().unwrap_or("unversioned");
        self.artifacts
            .put_empty(&format!("{prefix}{marker}"))
            .await?;
        let counted = self
            .artifacts
            .count(&prefix, self.per_minute.saturating_add(1))
            .await?;
        if counted <= self.per_minute {
            return Ok(true);
        }
        self.open(source, minute, counted).await?;
        Ok(false)
    }

    /// Whether the breaker for deletes from `source` is open.
    pub async fn is_open(&self, source: &str) -> ServiceResult<bool> {
        self.artifacts.exists(&open_key(source)).await
    }

    /// Opens the breaker for `source` (the first opener writes it) and
    /// raises the alarm.
    async fn open(&self, source: &str, minute: i64, counted: u32) -> ServiceResult<()> {
        let reason = format!(
            "more than {} deletes from {source} in the minute from {minute} (unix time): {counted} seen; its deletes are held until `toastrep deletes` releases or discards them",
            self.per_minute
        );
        let body = serde_json::json!({
            "source": source,
            "minute": minute,
            "deletes": counted,
            "per_minute": self.per_minute,
        });
        // Written once: a later opener (another invocation) leaves the
        // first record of when and why.
        self.artifacts
            .create(
                &open_key(source),
                body.to_string().into_bytes(),
                "application/json",
            )
            .await?;
        tracing::warn!(target: "toastrep::breaker", source, counted, "{reason}");
        self.alarm.raise(&reason).await
    }

    /// Keeps `notice` in the held-deletes queue, sealed for this region.
    pub async fn hold(&self, notice: &S3Notice) -> ServiceResult<()> {
        let body = notice.to_s3_message();
        let seal = breaker_keys::seal(&self.key, &self.region, &body);
        self.held
            .send(HeldMessage {
                body,
                attributes: vec![
                    (breaker_keys::SEAL_ATTRIBUTE.to_owned(), seal),
                    (SOURCE_ATTRIBUTE.to_owned(), notice.region.clone()),
                ],
            })
            .await?;
        tracing::info!(
            target: "toastrep::decision",
            decision = "held",
            key = %self.log_keys.name(&notice.key),
            source_region = %notice.region,
            version_id = notice.version_id.as_deref().unwrap_or(""),
        );
        Ok(())
    }

    async fn gate(&self, notice: &S3Notice) -> ServiceResult<Gate> {
        if self.allows(notice).await? {
            return Ok(Gate::Carry);
        }
        self.hold(notice).await?;
        Ok(Gate::Held)
    }
}

impl<A: Artifacts, Q: HeldDeletes, M: Alarm> DeleteGate for Breaker<A, Q, M>
where
    A: std::fmt::Debug,
    Q: std::fmt::Debug,
    M: std::fmt::Debug,
{
    fn admit<'a>(
        &'a self,
        notice: &'a S3Notice,
    ) -> Pin<Box<dyn Future<Output = Result<Gate, String>> + Send + 'a>> {
        Box::pin(async move { self.gate(notice).await.map_err(|e| e.to_string()) })
    }

    fn holds<'a>(
        &'a self,
        destination: &'a str,
        source: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async move {
            // A repair step repairs only this region; a delete into
            // another is never made here.
            if destination != self.region {
                return Err(ServiceError::new(
                    "breaker",
                    destination,
                    format!(
                        "the breaker of {} cannot say whether {destination} holds deletes",
                        self.region
                    ),
                )
                .to_string());
            }
            self.is_open(source).await.map_err(|e| e.to_string())
        })
    }
}
