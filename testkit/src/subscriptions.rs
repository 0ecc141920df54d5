//! Pausing the delivery of one region's events to another region's
//! function, so a test can make regions differ as lost events would.

use crate::emulator::{ACCOUNT, Emulator};
use crate::events::topic_arn;

/// A filter policy no S3 event matches: S3 events carry no message
/// attributes, and SNS drops what a policy filters out.
const PAUSED: &str = r#"{"toastrep-test-paused":["yes"]}"#;

/// Stops (or restarts) the delivery of `source`'s events to
/// `destination`'s function of set `name`, with a filter policy on the
/// one subscription between them. Events filtered out are lost, as on AWS.
pub async fn pause_delivery(
    emulator: &Emulator,
    name: &str,
    source: &str,
    destination: &str,
    paused: bool,
) {
    let sns = emulator.sns(source);
    let topic = topic_arn(source, name);
    let function = format!(":{destination}:{ACCOUNT}:function:toastrep-{name}-replicator");
    let subscriptions = sns
        .list_subscriptions_by_topic()
        .topic_arn(&topic)
        .send()
        .await
        .expect("ListSubscriptionsByTopic");
    let subscription = subscriptions
        .subscriptions()
        .iter()
        .find(|s| s.endpoint().is_some_and(|e| e.ends_with(&function)))
        .unwrap_or_else(|| panic!("no subscription of {topic} into {destination}"));
    sns.set_subscription_attributes()
        .subscription_arn(subscription.subscription_arn().unwrap())
        .attribute_name("FilterPolicy")
        .attribute_value(if paused { PAUSED } else { "{}" })
        .send()
        .await
        .expect("SetSubscriptionAttributes");
}

/// As [`pause_delivery`], for every region of `regions` into `destination`.
pub async fn pause_delivery_into(
    emulator: &Emulator,
    name: &str,
    regions: &[&str],
    destination: &str,
    paused: bool,
) {
    for source in regions.iter().filter(|r| **r != destination) {
        pause_delivery(emulator, name, source, destination, paused).await;
    }
}
