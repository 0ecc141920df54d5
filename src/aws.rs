//! AWS clients for every region of a set, from the standard credential chain.
//!
//! `--profile`, `--endpoint-url` and the standard environment variables
//! (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`, ...) are honoured through
//! `aws-config`; toastrep only overrides the region per client.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig, timeout::TimeoutConfig};
use aws_sdk_sts::config::ProvideCredentials;
use aws_sdk_sts::error::{DisplayErrorContext, SdkError};

use crate::error::InputError;

/// Where and as whom to call AWS.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
}

/// A loaded AWS configuration; cheap to clone.
#[derive(Clone)]
pub struct Aws {
    config: SdkConfig,
    /// The region the environment or profile names, if any.
    configured_region: Option<String>,
}

impl Aws {
    /// Loads the configuration. `region` is used only where a call needs some
    /// region and the environment names none (STS, for the account id).
    pub async fn load(options: &AwsOptions, region: &str) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
            TimeoutConfig::builder()
                // Fail fast on an endpoint that does not answer, instead of the
                // default, which waits for the operating system.
                .connect_timeout(Duration::from_secs(5))
                .build(),
        );
        if let Some(profile) = &options.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &options.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let mut config = loader.load().await;
        let configured_region = config.region().map(|r| r.to_string());
        if configured_region.is_none() {
            config = config
                .into_builder()
                .region(Region::new(region.to_owned()))
                .build();
        }
        Self {
            config,
            configured_region,
        }
    }

    /// The region the environment or profile names, if any.
    pub fn region(&self) -> Option<&str> {
        self.configured_region.as_deref()
    }

    pub fn endpoint_url(&self) -> Option<&str> {
        self.config.endpoint_url()
    }

    pub fn cloudformation(&self, region: &str) -> aws_sdk_cloudformation::Client {
        let config = aws_sdk_cloudformation::config::Builder::from(&self.config)
            .region(Region::new(region.to_owned()))
            .build();
        aws_sdk_cloudformation::Client::from_conf(config)
    }

    /// The S3 configuration for a region. A custom endpoint (an emulator, an
    /// S3-compatible store, a VPC endpoint by IP) gets path-style addressing:
    /// virtual-hosted names do not resolve against an IP address.
    pub fn s3_config(&self, region: &str) -> aws_sdk_s3::Config {
        aws_sdk_s3::config::Builder::from(&self.config)
            .region(Region::new(region.to_owned()))
            .force_path_style(self.endpoint_url().is_some())
            .build()
    }

    pub fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(self.s3_config(region))
    }

    pub fn lambda(&self, region: &str) -> aws_sdk_lambda::Client {
        let config = aws_sdk_lambda::config::Builder::from(&self.config)
            .region(Region::new(region.to_owned()))
            .build();
        aws_sdk_lambda::Client::from_conf(config)
    }

    pub fn cloudwatch(&self, region: &str) -> aws_sdk_cloudwatch::Client {
        let config = aws_sdk_cloudwatch::config::Builder::from(&self.config)
            .region(Region::new(region.to_owned()))
            .build();
        aws_sdk_cloudwatch::Client::from_conf(config)
    }

    pub fn sqs(&self, region: &str) -> aws_sdk_sqs::Client {
        let config = aws_sdk_sqs::config::Builder::from(&self.config)
            .region(Region::new(region.to_owned()))
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    /// The URL of queue `name` in `region`.
    pub async fn queue_url(&self, region: &str, name: &str) -> anyhow::Result<String> {
        use anyhow::Context as _;
        self.sqs(region)
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .with_context(|| format!("finding queue {name} in {region}"))?
            .queue_url
            .with_context(|| format!("GetQueueUrl for {name} in {region} returned no URL"))
    }

    /// The URL of queue `name` in `region`, and its depth: messages waiting,
    /// and messages received but not yet deleted.
    pub async fn queue_depth(
        &self,
        region: &str,
        name: &str,
    ) -> anyhow::Result<(String, u64, u64)> {
        use anyhow::Context as _;
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
            .map_err(anyhow::Error::new)
            .with_context(|| format!("GetQueueAttributes {name} in {region}"))?;
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

    /// Checks that credentials exist and are accepted, and returns the account
    /// id. Every command calls this first, so a bad environment is reported
    /// before anything is changed.
    pub async fn account_id(&self) -> Result<String, InputError> {
        let provider = self.config.credentials_provider().ok_or_else(|| {
            InputError::new("no AWS credentials provider is configured: set AWS_PROFILE or pass --profile, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        })?;
        if let Err(error) = provider.provide_credentials().await {
            return Err(InputError::new(format!(
                "no AWS credentials found ({}): set AWS_PROFILE or pass --profile, or set \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                DisplayErrorContext(&error)
            )));
        }
        let sts = aws_sdk_sts::Client::new(&self.config);
        let error = match sts.get_caller_identity().send().await {
            Ok(identity) => {
                return identity
                    .account
                    .ok_or_else(|| InputError::new("STS returned no account id"));
            }
            Err(error) => error,
        };
        let endpoint = self.endpoint_url().unwrap_or("the AWS endpoints");
        Err(InputError::new(match &error {
            SdkError::DispatchFailure(_) => format!(
                "cannot reach {endpoint} ({}): check --endpoint-url / AWS_ENDPOINT_URL and the network",
                DisplayErrorContext(&error)
            ),
            SdkError::TimeoutError(_) => format!(
                "{endpoint} did not answer in time: check --endpoint-url / AWS_ENDPOINT_URL and the network"
            ),
            _ => format!(
                "AWS rejected the credentials ({}): check the profile or the access keys",
                DisplayErrorContext(&error)
            ),
        }))
    }
}
