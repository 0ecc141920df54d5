//! The set's SQS queues (dead letters, held deletes) as the CLI works them:
//! take messages for a while, delete the ones acted on, show the rest again.

use std::collections::BTreeMap;

use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;

use super::{Aws, CallError};
use crate::model::regions::Region;

/// A failed SQS call.
pub type QueueError = super::CallError;

/// One queue of one region.
#[derive(Debug, Clone)]
pub struct Queue {
    pub url: String,
    client: aws_sdk_sqs::Client,
}

/// A message taken off a queue: hidden from others until it is deleted or
/// shown again, or its visibility timeout ends.
#[derive(Debug, Clone, Default)]
pub struct Received {
    pub id: String,
    pub receipt: String,
    pub body: String,
    /// String message attributes, by name.
    pub attributes: BTreeMap<String, String>,
}

/// How to take messages.
#[derive(Debug, Clone, Copy)]
pub struct Take<'a> {
    /// Seconds the messages stay hidden from others.
    pub hide_seconds: i32,
    /// Long polling asks every SQS server, so an empty answer means an
    /// empty queue (short polling, 0, samples only some).
    pub wait_seconds: i32,
    /// The message attributes wanted ("All" for every one).
    pub attributes: &'a [&'a str],
}

impl Aws {
    /// The URL of queue `name` in `region`.
    async fn queue_url(&self, region: Region, name: &str) -> Result<String, QueueError> {
        let target = || format!("{name} in {region}");
        self.sqs(region)
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| CallError::of("GetQueueUrl", target(), e))?
            .queue_url
            .ok_or_else(|| CallError::answered("GetQueueUrl", target(), "no URL in the answer"))
    }

    /// [`Aws::queue_depth`] of a queue that may not exist: `None` if it
    /// does not.
    pub async fn queue_depth_if_exists(
        &self,
        region: Region,
        name: &str,
    ) -> Result<Option<(String, u64, u64)>, QueueError> {
        let found = self
            .sqs(region)
            .get_queue_url()
            .queue_name(name)
            .send()
            .await;
        match found {
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_queue_does_not_exist()) =>
            {
                Ok(None)
            }
            _ => self.queue_depth(region, name).await.map(Some),
        }
    }

    /// The URL of queue `name` in `region`, and its depth: messages waiting,
    /// and messages received but not yet deleted.
    pub async fn queue_depth(
        &self,
        region: Region,
        name: &str,
    ) -> Result<(String, u64, u64), QueueError> {
        use aws_sdk_sqs::types::QueueAttributeName;
        let url = self.queue_url(region, name).await?;
        let out = self
            .sqs(region)
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| CallError::of("GetQueueAttributes", format!("{name} in {region}"), e))?;
        let number = |attribute: QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(&attribute))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            url,
            number(QueueAttributeName::ApproximateNumberOfMessages),
            number(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        ))
    }

    /// Queue `name` in `region`.
    pub async fn queue(&self, region: Region, name: &str) -> Result<Queue, QueueError> {
        Ok(Queue {
            url: self.queue_url(region, name).await?,
            client: self.sqs(region),
        })
    }
}

impl Queue {
    /// Up to 10 messages (SQS's most for one call).
    pub async fn take(&self, how: Take<'_>) -> Result<Vec<Received>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .wait_time_seconds(how.wait_seconds)
            .visibility_timeout(how.hide_seconds)
            .set_message_attribute_names(Some(
                how.attributes.iter().map(|a| (*a).to_owned()).collect(),
            ))
            .send()
            .await
            .map_err(|e| CallError::of("ReceiveMessage", &self.url, e))?;
        Ok(out
            .messages()
            .iter()
            .map(|m| Received {
                id: m.message_id().unwrap_or_default().to_owned(),
                receipt: m.receipt_handle().unwrap_or_default().to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
                attributes: m
                    .message_attributes()
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, v)| Some((k.clone(), v.string_value()?.to_owned())))
                    .collect(),
            })
            .collect())
    }

    /// Deletes a message taken: it was acted on.
    pub async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| CallError::of("DeleteMessage", &self.url, e))
    }

    /// Makes messages taken visible again now, rather than when their
    /// visibility timeout ends, so the next look (or a person) sees them.
    pub async fn show_again<'a>(
        &self,
        receipts: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), QueueError> {
        let receipts: std::collections::BTreeSet<&str> =
            receipts.into_iter().filter(|r| !r.is_empty()).collect();
        let receipts: Vec<&str> = receipts.into_iter().collect();
        for chunk in receipts.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, receipt)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(*receipt)
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect::<Vec<_>>();
            self.client
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| CallError::of("ChangeMessageVisibilityBatch", &self.url, e))?;
        }
        Ok(())
    }
}
