//! One S3 client per region, built from a shared base configuration.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_s3::config::Region;
use aws_sdk_s3::{Client, Config};

/// S3 clients per region, created on first use and cached.
///
/// Calls must be signed for, and sent to, the region of the bucket they name:
/// HeadObject and GetObjectTagging go to the source bucket's region, the
/// copy calls to the destination bucket's region (CopyObject is a request to
/// the destination: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html>).
#[derive(Debug)]
pub struct RegionalClients {
    base: Config,
    clients: Mutex<HashMap<String, Client>>,
}

impl RegionalClients {
    /// `base` carries credentials, endpoint, path style, retry settings; its
    /// region is replaced per client.
    pub fn new(base: Config) -> RegionalClients {
        RegionalClients {
            base,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `region` (cheap to clone: clients share their internals).
    pub fn client(&self, region: &str) -> Client {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let config = self
                    .base
                    .to_builder()
                    .region(Region::new(region.to_owned()))
                    .build();
                Client::from_conf(config)
            })
            .clone()
    }
}
