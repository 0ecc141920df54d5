//! The CloudFormation templates, compiled into the binary so an installed
//! `toastrep` needs no checkout. The files in `templates/` are the source.

use serde::Serialize;

/// One of the three templates a replica set is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Template {
    /// Per region: bucket, topic, dead-letter queue, function, role, log group.
    Base,
    /// Per ordered pair, in the destination region: invoke permission and read policy.
    Grant,
    /// Per ordered pair, in the source region: the function's subscription to the topic.
    Subscription,
}

impl Template {
    pub fn body(self) -> &'static str {
        match self {
            Template::Base => include_str!("../templates/base.yaml"),
            Template::Grant => include_str!("../templates/grant.yaml"),
            Template::Subscription => include_str!("../templates/subscription.yaml"),
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            Template::Base => "base.yaml",
            Template::Grant => "grant.yaml",
            Template::Subscription => "subscription.yaml",
        }
    }

    /// The tag value that marks a stack's kind, used to find a set's stacks again.
    pub fn kind(self) -> &'static str {
        match self {
            Template::Base => "base",
            Template::Grant => "grant",
            Template::Subscription => "subscription",
        }
    }
}
