//! The [`services`](super::services) traits on the AWS SDK: what the
//! function runs on.

use aws_sdk_cloudwatch::types::StateValue;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::MessageAttributeValue;

use super::services::{
    Alarm, Artifacts, ControlPlane, Execution, HeldDeletes, HeldMessage, ServiceError,
    ServiceResult,
};

/// The region's artifact bucket, owned by the set's account.
#[derive(Debug, Clone)]
pub struct S3Artifacts {
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    /// The set's account: every call names it as the expected owner, so a
    /// bucket of the same name elsewhere is never read or written.
    pub account: String,
}

impl S3Artifacts {
    fn target(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    fn failed<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
        &self,
        operation: &'static str,
        key: &str,
    ) -> impl FnOnce(
        aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> ServiceError {
        let target = self.target(key);
        move |error| {
            let message = match error.code() {
                Some(code) => format!("{code}: {}", error.message().unwrap_or_default()),
                None => aws_sdk_s3::error::DisplayErrorContext(&error).to_string(),
            };
            ServiceError::new(operation, target, message)
        }
    }
}

impl Artifacts for S3Artifacts {
    async fn put_empty(&self, key: &str) -> ServiceResult<()> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .expected_bucket_owner(&self.account)
            .key(key)
            .body(ByteStream::from_static(b""))
            .send()
            .await
            .map_err(self.failed("PutObject", key))?;
        Ok(())
    }

    async fn count(&self, prefix: &str, at_most: u32) -> ServiceResult<u32> {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .expected_bucket_owner(&self.account)
            .prefix(prefix)
            .max_keys(i32::try_from(at_most).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(self.failed("ListObjectsV2", prefix))?;
        Ok(u32::try_from(listed.key_count.unwrap_or_default()).unwrap_or_default())
    }

    async fn exists(&self, key: &str) -> ServiceResult<bool> {
        match self
            .s3
            .head_object()
            .bucket(&self.bucket)
            .expected_bucket_owner(&self.account)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
            Err(error) => Err(self.failed("HeadObject", key)(error)),
        }
    }

    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> ServiceResult<()> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .expected_bucket_owner(&self.account)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(self.failed("PutObject", key))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> ServiceResult<Option<Vec<u8>>> {
        let got = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .expected_bucket_owner(&self.account)
            .key(key)
            .send()
            .await;
        let object = match got {
            Ok(object) => object,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(self.failed("GetObject", key)(e)),
        };
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| ServiceError::new("GetObject", self.target(key), e))?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    async fn list(&self, prefix: &str) -> ServiceResult<Vec<String>> {
        let mut keys = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .expected_bucket_owner(&self.account)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(self.failed("ListObjectsV2", prefix))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        Ok(keys)
    }

    async fn create(&self, key: &str, body: Vec<u8>, content_type: &str) -> ServiceResult<bool> {
        let created = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .expected_bucket_owner(&self.account)
            .key(key)
            .if_none_match("*")
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await;
        match created {
            Ok(_) => Ok(true),
            // Another writer created it first.
            Err(error) if error.code() == Some("PreconditionFailed") => Ok(false),
            Err(error) => Err(self.failed("PutObject", key)(error)),
        }
    }
}

/// The held-deletes queue.
#[derive(Debug, Clone)]
pub struct SqsHeldDeletes {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
}

impl HeldDeletes for SqsHeldDeletes {
    async fn send(&self, message: HeldMessage) -> ServiceResult<()> {
        let failed = |message: String| ServiceError::new("SendMessage", &self.queue_url, message);
        let mut request = self
            .sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(message.body);
        for (name, value) in message.attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| failed(e.to_string()))?;
            request = request.message_attributes(name, value);
        }
        request
            .send()
            .await
            .map_err(|e| failed(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string()))?;
        Ok(())
    }
}

/// A CloudWatch alarm, set to ALARM by hand.
#[derive(Debug, Clone)]
pub struct CloudWatchAlarm {
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub name: String,
}

impl Alarm for CloudWatchAlarm {
    async fn raise(&self, reason: &str) -> ServiceResult<()> {
        self.cloudwatch
            .set_alarm_state()
            .alarm_name(&self.name)
            .state_value(StateValue::Alarm)
            // The API takes at most 1,023 characters of reason.
            .state_reason(reason.chars().take(1023).collect::<String>())
            .send()
            .await
            .map_err(|e| {
                ServiceError::new(
                    "SetAlarmState",
                    &self.name,
                    aws_sdk_cloudwatch::error::DisplayErrorContext(&e).to_string(),
                )
            })?;
        Ok(())
    }
}

/// Lambda and Step Functions, as the repair steps ask them.
#[derive(Debug, Clone)]
pub struct SdkControlPlane {
    pub lambda: aws_sdk_lambda::Client,
    pub sfn: aws_sdk_sfn::Client,
}

impl ControlPlane for SdkControlPlane {
    async fn function_policy(&self, function: &str) -> ServiceResult<String> {
        let policy = self
            .lambda
            .get_policy()
            .function_name(function)
            .send()
            .await
            .map_err(|e| {
                ServiceError::new(
                    "GetPolicy",
                    function,
                    aws_sdk_lambda::error::DisplayErrorContext(&e).to_string(),
                )
            })?;
        Ok(policy.policy().unwrap_or("{}").to_owned())
    }

    async fn execution(&self, arn: &str) -> ServiceResult<Execution> {
        let described = self
            .sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .map_err(|e| {
                ServiceError::new(
                    "DescribeExecution",
                    arn,
                    aws_sdk_sfn::error::DisplayErrorContext(&e).to_string(),
                )
            })?;
        Ok(Execution {
            running: described.status() == &aws_sdk_sfn::types::ExecutionStatus::Running,
            status: described.status().as_str().to_owned(),
            state_machine_arn: described.state_machine_arn().to_owned(),
        })
    }
}
