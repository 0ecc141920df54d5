//! The one value every operation on a set starts from.

use crate::aws::{Aws, AwsOptions};
use crate::error::InputError;
use crate::model::names::SetName;
use crate::model::regions::Region;

/// A replica set as toastrep reaches it: how to call AWS, the account the
/// credentials belong to (the expected owner of every bucket of the set), and
/// the set's name, from which every resource name derives. Operations take
/// this one value instead of the three loose, so a bucket name is always
/// derived from the same account the requests are checked against.
#[derive(Clone)]
pub struct SetContext {
    pub aws: Aws,
    pub account: String,
    pub name: SetName,
}

impl SetContext {
    /// Loads the AWS configuration and checks the credentials, which yields
    /// the account. `region` is used only where a call needs some region and
    /// the environment names none.
    pub async fn connect(
        options: &AwsOptions,
        name: &SetName,
        region: Region,
    ) -> Result<Self, InputError> {
        let aws = Aws::load(options, region).await;
        let account = aws.account_id().await?;
        Ok(Self {
            aws,
            account,
            name: name.clone(),
        })
    }

    /// The set's data bucket in `region`.
    pub fn data_bucket(&self, region: Region) -> String {
        self.name.data_bucket(region, &self.account)
    }

    /// The set's artifact bucket in `region`.
    pub fn artifact_bucket(&self, region: Region) -> String {
        self.name.artifact_bucket(region, &self.account)
    }
}
