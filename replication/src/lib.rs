//! toastrep's replication core, shared by the replicator Lambda and the CLI.
//!
//! A notice (an S3 `ObjectCreated` event, delivered through SNS) is
//! replicated in four steps — see [`replicate::Replicator::replicate`]:
//! check the source's current object, stop on replicas (no loops), compare
//! origins with the destination ([`origin::should_copy`]), then server-side
//! copy the exact version decided on ([`copy`]).

pub mod clients;
pub mod copy;
pub mod event;
pub mod handler;
pub mod origin;
pub mod protocol;
pub mod replicate;
pub mod s3_error;
pub mod store;

pub use clients::RegionalClients;
pub use copy::{CopySettings, SettingsError};
pub use event::{EventError, S3Notice, decode_event_key, parse_s3_message, parse_sns_event};
pub use handler::{HandleError, handle_sns_event};
pub use origin::Origin;
pub use protocol::MarkerKey;
pub use replicate::{Decision, Destination, Outcome, ReplicateError, Replicator};
