//! The emulator (ministack) the tests run against, and a client for each
//! service on it.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};

/// The account ministack gives any credentials whose access key is not a
/// 12-digit number.
pub const ACCOUNT: &str = "000000000000";

/// The emulator's URL. `tools/test` starts one and sets it; unset is a
/// failure, never a silent pass: a green run without an emulator would prove
/// nothing.
pub fn endpoint() -> String {
    std::env::var("TOASTREP_TEST_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "TOASTREP_TEST_ENDPOINT is not set: these tests need the local emulator (ministack). \
             Run them with `tools/test`, or start one yourself: \
             eval \"$(tools/emulator start)\" && export TOASTREP_TEST_ENDPOINT=$AWS_ENDPOINT_URL"
        )
    })
}

/// One emulator: the shared one `tools/test` started, or one a test started
/// for itself (the fault tests).
#[derive(Debug, Clone)]
pub struct Emulator {
    pub endpoint: String,
}

impl Emulator {
    /// The emulator named by `TOASTREP_TEST_ENDPOINT`.
    pub fn shared() -> Emulator {
        Emulator::at(endpoint())
    }

    pub fn at(endpoint: impl Into<String>) -> Emulator {
        Emulator {
            endpoint: endpoint.into(),
        }
    }

    /// The SDK configuration of every client: this emulator, in `region`,
    /// with test credentials (account [`ACCOUNT`]).
    pub fn sdk_config(&self, region: &str) -> SdkConfig {
        self.sdk_config_with(region, Credentials::for_tests())
    }

    /// As [`Emulator::sdk_config`], as another account: ministack takes a
    /// 12-digit access key as the account id.
    pub fn sdk_config_as(&self, region: &str, account: &str) -> SdkConfig {
        self.sdk_config_with(
            region,
            Credentials::new(account, "test", None, None, "toastrep-tests"),
        )
    }

    fn sdk_config_with(&self, region: &str, credentials: Credentials) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            // A busy emulator (one Python process, every test's functions)
            // can take longer than the SDK's 3.1 s to accept a connection.
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(30))
                    .build(),
            )
            // It can also pause a response body for seconds (a 50 MiB
            // GetObject stalled there): the SDK's stalled-stream check,
            // meant for a network, would fail the read.
            .stalled_stream_protection(
                aws_config::stalled_stream_protection::StalledStreamProtectionConfig::enabled()
                    .grace_period(Duration::from_secs(120))
                    .build(),
            )
            .build()
    }

    /// The S3 client configuration, for code that builds its own clients
    /// from one (the replication crate's `RegionalClients`).
    pub fn s3_config(&self, region: &str) -> aws_sdk_s3::Config {
        s3_config(&self.sdk_config(region))
    }

    pub fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(self.s3_config(region))
    }

    /// S3 as another account.
    pub fn s3_as(&self, region: &str, account: &str) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(s3_config(&self.sdk_config_as(region, account)))
    }

    pub fn cloudformation(&self, region: &str) -> aws_sdk_cloudformation::Client {
        aws_sdk_cloudformation::Client::new(&self.sdk_config(region))
    }

    pub fn lambda(&self, region: &str) -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::new(&self.sdk_config(region))
    }

    pub fn logs(&self, region: &str) -> aws_sdk_cloudwatchlogs::Client {
        aws_sdk_cloudwatchlogs::Client::new(&self.sdk_config(region))
    }

    pub fn cloudwatch(&self, region: &str) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&self.sdk_config(region))
    }

    pub fn sfn(&self, region: &str) -> aws_sdk_sfn::Client {
        aws_sdk_sfn::Client::new(&self.sdk_config(region))
    }

    pub fn sns(&self, region: &str) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.sdk_config(region))
    }

    pub fn sqs(&self, region: &str) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config(region))
    }

    pub fn scheduler(&self, region: &str) -> aws_sdk_scheduler::Client {
        aws_sdk_scheduler::Client::new(&self.sdk_config(region))
    }
}

fn s3_config(sdk: &SdkConfig) -> aws_sdk_s3::Config {
    aws_sdk_s3::config::Builder::from(sdk)
        // Custom endpoints on an IP address need path-style addressing.
        .force_path_style(true)
        .build()
}

/// Clients of the shared emulator ([`Emulator::shared`]), for tests that
/// use no other.
pub mod shared {
    use super::Emulator;

    pub fn s3(region: &str) -> aws_sdk_s3::Client {
        Emulator::shared().s3(region)
    }

    pub fn cloudformation(region: &str) -> aws_sdk_cloudformation::Client {
        Emulator::shared().cloudformation(region)
    }

    pub fn lambda(region: &str) -> aws_sdk_lambda::Client {
        Emulator::shared().lambda(region)
    }

    pub fn logs(region: &str) -> aws_sdk_cloudwatchlogs::Client {
        Emulator::shared().logs(region)
    }

    pub fn cloudwatch(region: &str) -> aws_sdk_cloudwatch::Client {
        Emulator::shared().cloudwatch(region)
    }

    pub fn sfn(region: &str) -> aws_sdk_sfn::Client {
        Emulator::shared().sfn(region)
    }

    pub fn sns(region: &str) -> aws_sdk_sns::Client {
        Emulator::shared().sns(region)
    }

    pub fn sqs(region: &str) -> aws_sdk_sqs::Client {
        Emulator::shared().sqs(region)
    }

    pub fn scheduler(region: &str) -> aws_sdk_scheduler::Client {
        Emulator::shared().scheduler(region)
    }
}
