//! AWS clients for every region of a set, from the standard credential chain.
//!
//! `--profile`, `--endpoint-url` and the standard environment variables
//! (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`, ...) are honoured through
//! `aws-config`; toastrep only overrides the region per client.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region as SdkRegion, SdkConfig, timeout::TimeoutConfig};
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_sts::config::ProvideCredentials;
use aws_sdk_sts::error::{DisplayErrorContext, SdkError};
use aws_smithy_runtime_api::client::orchestrator::Metadata;

use crate::error::InputError;
use crate::model::regions::Region;

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
    /// The account of the credentials, once [`Aws::account_id`] has asked:
    /// every S3 request then names it as the expected bucket owner.
    account: Arc<OnceLock<String>>,
}

impl Aws {
    /// Loads the configuration. `region` is used only where a call needs some
    /// region and the environment names none (STS, for the account id).
    pub async fn load(options: &AwsOptions, region: Region) -> Self {
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
                .region(SdkRegion::new(region.as_str()))
                .build();
        }
        Self {
            config,
            configured_region,
            account: Arc::default(),
        }
    }

    /// The region the environment or profile names, if toastrep knows it.
    pub fn region(&self) -> Option<Region> {
        self.configured_region
            .as_deref()
            .and_then(|region| Region::parse(region).ok())
    }

    pub fn endpoint_url(&self) -> Option<&str> {
        self.config.endpoint_url()
    }

    /// The S3 configuration for a region. A custom endpoint (an emulator, an
    /// S3-compatible store, a VPC endpoint by IP) gets path-style addressing:
    /// virtual-hosted names do not resolve against an IP address.
    fn s3_config(&self, region: Region) -> aws_sdk_s3::Config {
        aws_sdk_s3::config::Builder::from(&self.config)
            .region(SdkRegion::new(region.as_str()))
            .force_path_style(self.endpoint_url().is_some())
            .interceptor(ExpectedOwner(self.account.clone()))
            .build()
    }

    pub(in crate::aws) fn s3(&self, region: Region) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(self.s3_config(region))
    }

    /// The replication engine's S3 clients, one per region on first use,
    /// each made like [`Aws::s3`]'s.
    pub fn replication_clients(
        &self,
        region: Region,
    ) -> toastrep_replication::store::s3::RegionalClients {
        toastrep_replication::store::s3::RegionalClients::new(self.s3_config(region))
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
                let account = identity
                    .account
                    .ok_or_else(|| InputError::new("STS returned no account id"))?;
                // One set of credentials, one account: the first answer holds.
                let _ = self.account.set(account.clone());
                return Ok(account);
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

/// The clients of the services other than S3: the shared configuration in
/// one region, nothing else of their own.
macro_rules! regional_clients {
    ($($method:ident => $sdk:ident),* $(,)?) => {
        impl Aws {
            $(
                pub(in crate::aws) fn $method(&self, region: Region) -> $sdk::Client {
                    let config = $sdk::config::Builder::from(&self.config)
                        .region(SdkRegion::new(region.as_str()))
                        .build();
                    $sdk::Client::from_conf(config)
                }
            )*
        }
    };
}

regional_clients! {
    cloudformation => aws_sdk_cloudformation,
    lambda => aws_sdk_lambda,
    cloudwatch => aws_sdk_cloudwatch,
    sfn => aws_sdk_sfn,
    sqs => aws_sdk_sqs,
}

/// Puts `x-amz-expected-bucket-owner` (and, on a copy, the source's
/// `x-amz-source-expected-bucket-owner`) on every S3 request that names a
/// bucket, once the account is known. S3 then refuses the request if the
/// bucket belongs to another account: a set's bucket name taken by someone
/// else can neither receive the set's data nor feed it. Every bucket name of
/// a set holds the account id, so the account is known before any request
/// on one of them.
#[derive(Debug)]
struct ExpectedOwner(Arc<OnceLock<String>>);

impl Intercept for ExpectedOwner {
    fn name(&self) -> &'static str {
        "ExpectedOwner"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(account) = self.0.get() else {
            return Ok(());
        };
        // The calls that name no existing bucket take no owner.
        if let Some("CreateBucket" | "ListBuckets") = cfg.load::<Metadata>().map(Metadata::name) {
            return Ok(());
        }
        let headers = context.request_mut().headers_mut();
        headers.insert("x-amz-expected-bucket-owner", account.clone());
        if headers.contains_key("x-amz-copy-source") {
            headers.insert("x-amz-source-expected-bucket-owner", account.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    use super::*;

    /// A local endpoint that answers every request with an empty 200 and
    /// hands over each request's head (request line and headers).
    fn recording_endpoint() -> (String, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (sent, received) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = n.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; length];
                let _ = std::io::Read::read_exact(&mut reader, &mut body);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                if sent.send(head.to_ascii_lowercase()).is_err() {
                    return;
                }
            }
        });
        (url, received)
    }

    #[tokio::test]
    async fn every_s3_request_names_the_account_as_the_expected_bucket_owner() {
        let (url, requests) = recording_endpoint();
        let aws = Aws {
            config: SdkConfig::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(SdkRegion::new("us-east-1"))
                .endpoint_url(&url)
                .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
                    aws_sdk_sts::config::Credentials::for_tests(),
                ))
                .build(),
            configured_region: None,
            account: Arc::default(),
        };
        let _ = aws.account.set("111122223333".to_owned());
        let s3 = aws.s3(Region::US_EAST_1);
        let next = || requests.recv_timeout(Duration::from_secs(10)).unwrap();

        let _ = s3.head_object().bucket("b").key("k").send().await;
        let head = next();
        assert!(
            head.contains("x-amz-expected-bucket-owner: 111122223333"),
            "{head}"
        );
        assert!(
            !head.contains("x-amz-source-expected-bucket-owner"),
            "{head}"
        );

        let _ = s3
            .copy_object()
            .bucket("b")
            .key("k2")
            .copy_source("b/k")
            .send()
            .await;
        let copy = next();
        assert!(
            copy.contains("x-amz-expected-bucket-owner: 111122223333"),
            "{copy}"
        );
        assert!(
            copy.contains("x-amz-source-expected-bucket-owner: 111122223333"),
            "{copy}"
        );

        // CreateBucket names no existing bucket, and takes no owner.
        let _ = s3.create_bucket().bucket("c").send().await;
        let create = next();
        assert!(create.starts_with("put /c"), "{create}");
        assert!(!create.contains("expected-bucket-owner"), "{create}");
    }
}
