//! The mass-delete breaker: deletes carried into this region from another
//! are counted per source region and calendar minute. Past the limit the
//! breaker for that source opens: from then on its deletes are held in the
//! held-deletes queue, untouched, until `toastrep deletes` releases or
//! discards them (and closes the breaker). Writes are never held.
//!
//! State lives in this region's artifact bucket, under `breaker/`:
//! - `breaker/deletes/SOURCE/MINUTE/MARKER`: one empty object per delete
//!   (named by its delete marker, so a notice delivered twice counts once);
//!   a listing counts them;
//! - `breaker/open/SOURCE`: the open breaker, with when and why.

use aws_sdk_cloudwatch::types::StateValue;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::MessageAttributeValue;
use std::future::Future;
use std::pin::Pin;

use lambda_runtime::Error;
use toastrep_replication::engine::KeyNames as _;
use toastrep_replication::function::breaker_keys::{self, open_key};
use toastrep_replication::function::log_keys::LogKeys;
use toastrep_replication::{DeleteGate, Gate, S3Notice};

/// Where the breaker keeps its state and its held deletes.
#[derive(Debug)]
pub struct Breaker {
    pub per_minute: u32,
    /// This function's region: the only destination its breaker keeps.
    pub region: String,
    /// The set's marker key: held deletes carry its seal, so `toastrep
    /// deletes` acts only on messages this function wrote.
    pub key: toastrep_replication::MarkerKey,
    /// How the held delete's line names its key.
    pub log_keys: LogKeys,
    /// The artifact bucket, where the counts are kept.
    pub bucket: String,
    /// The set's account: the expected owner of the bucket.
    pub account: String,
    pub queue_url: String,
    pub alarm: String,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

impl Breaker {
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
    async fn allows(&self, notice: &S3Notice, now: i64) -> Result<bool, Error> {
        let source = &notice.region;
        if self.is_open(source).await? {
            return Ok(false);
        }
        let minute = now.div_euclid(60) * 60;
        let prefix = breaker_keys::count_prefix(source, minute);
        let marker = notice.version_id.as_deref().unwrap_or("unversioned");
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .expected_bucket_owner(&self.account)
            .key(format!("{prefix}{marker}"))
            .body(ByteStream::from_static(b""))
            .send()
            .await?;
        let counted = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .expected_bucket_owner(&self.account)
            .prefix(&prefix)
            .max_keys(i32::try_from(self.per_minute.saturating_add(1)).unwrap_or(i32::MAX))
            .send()
            .await?
            .key_count
            .unwrap_or_default();
        let counted = u32::try_from(counted).unwrap_or_default();
        if counted <= self.per_minute {
            return Ok(true);
        }
        self.open(source, minute, counted).await?;
        Ok(false)
    }

    async fn is_open(&self, source: &str) -> Result<bool, Error> {
        match self
            .s3
            .head_object()
            .bucket(&self.bucket)
            .expected_bucket_owner(&self.account)
            .key(open_key(source))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Opens the breaker for `source` (the first opener writes it) and sets
    /// the alarm.
    async fn open(&self, source: &str, minute: i64, counted: u32) -> Result<(), Error> {
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
        let created = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .expected_bucket_owner(&self.account)
            .key(open_key(source))
            .if_none_match("*")
            .content_type("application/json")
            .body(ByteStream::from(body.to_string().into_bytes()))
            .send()
            .await;
        match created {
            Ok(_) => {}
            // Another invocation opened it first.
            Err(error) if error.code() == Some("PreconditionFailed") => {}
            Err(error) => return Err(error.into()),
        }
        tracing::warn!(target: "toastrep::breaker", source, counted, "{reason}");
        self.cloudwatch
            .set_alarm_state()
            .alarm_name(&self.alarm)
            .state_value(StateValue::Alarm)
            .state_reason(reason.chars().take(1023).collect::<String>())
            .send()
            .await?;
        Ok(())
    }

    /// Keeps `notice` in the held-deletes queue.
    async fn hold(&self, notice: &S3Notice) -> Result<(), Error> {
        let body = notice.to_s3_message();
        let seal = breaker_keys::seal(&self.key, &self.region, &body);
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes(
                breaker_keys::SEAL_ATTRIBUTE,
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(seal)
                    .build()?,
            )
            .message_attributes(
                "source_region",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(&notice.region)
                    .build()?,
            )
            .send()
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
}

impl DeleteGate for Breaker {
    fn admit<'a>(
        &'a self,
        notice: &'a S3Notice,
    ) -> Pin<Box<dyn Future<Output = Result<Gate, String>> + Send + 'a>> {
        Box::pin(async move {
            let now = toastrep_replication::clock::now_ms().div_euclid(1000);
            if self.allows(notice, now).await.map_err(|e| e.to_string())? {
                return Ok(Gate::Carry);
            }
            self.hold(notice).await.map_err(|e| e.to_string())?;
            Ok(Gate::Held)
        })
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
                return Err(format!(
                    "the breaker of {} cannot say whether {destination} holds deletes",
                    self.region
                ));
            }
            self.is_open(source).await.map_err(|e| e.to_string())
        })
    }
}
