//! Parsing SNS deliveries of S3 event notifications.
//!
//! The path is S3 → SNS topic → Lambda, so an event is two JSON layers: the
//! Lambda SNS event (`Records[].Sns.Message`) whose `Message` is a *string*
//! holding the S3 notification (`Records[].s3`).
//! Shapes: <https://docs.aws.amazon.com/lambda/latest/dg/with-sns.html> and
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html>.
//!
//! The structs below are deliberately lenient (only the fields replication
//! needs, everything else ignored) rather than `aws_lambda_events`' types,
//! which require every signature field: a delivery that carries what we need
//! must never be dead-lettered over a field we never read. The fixtures are
//! checked against `aws_lambda_events` in the tests, so they stay real shapes.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Deserialize;

/// One S3 object-created notification, with its key already decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Notice {
    /// The S3 event name without the `s3:` prefix, e.g. `ObjectCreated:Put`.
    pub event_name: String,
    /// The region of the bucket that emitted the event.
    pub region: String,
    pub bucket: String,
    /// The object key, decoded (see [`decode_event_key`]).
    pub key: String,
    pub version_id: Option<String>,
    /// The ETag as S3 puts it in events: without the surrounding quotes.
    pub etag: Option<String>,
    pub sequencer: Option<String>,
    pub size: Option<i64>,
    pub event_time: Option<String>,
    /// Who wrote the object (`userIdentity.principalId`): on AWS a role
    /// session is `AWS:<role id>:<session>`.
    pub principal: Option<String>,
}

impl S3Notice {
    fn event(&self) -> &str {
        self.event_name
            .strip_prefix("s3:")
            .unwrap_or(&self.event_name)
    }

    /// `ObjectRemoved:*`: a delete, not a write.
    pub fn is_removal(&self) -> bool {
        self.event().starts_with("ObjectRemoved:")
    }

    /// A delete without a version id, which put a delete marker on top.
    pub fn is_delete_marker(&self) -> bool {
        self.event() == "ObjectRemoved:DeleteMarkerCreated"
    }

    /// The notice as an S3 notification message (`{"Records": [...]}`),
    /// which [`parse_s3_message`] reads back as this notice: how a held
    /// delete is kept until it is released.
    pub fn to_s3_message(&self) -> String {
        // Form-encoded as S3 does: every byte but unreserved ones and '/'.
        const KEY: &AsciiSet = &NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~')
            .remove(b'/');
        serde_json::json!({"Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": self.region,
            "eventTime": self.event_time,
            "eventName": self.event_name,
            "userIdentity": {"principalId": self.principal},
            "s3": {
                "s3SchemaVersion": "1.0",
                "bucket": {"name": self.bucket},
                "object": {
                    "key": utf8_percent_encode(&self.key, KEY).to_string(),
                    "versionId": self.version_id,
                    "eTag": self.etag,
                    "size": self.size,
                    "sequencer": self.sequencer,
                },
            },
        }]})
        .to_string()
    }
}

/// A message that is not a well-formed S3 notification. Permanent: retrying
/// cannot fix it, so it goes to the dead-letter queue for a human to look at.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the event is not a Lambda SNS event: {source}")]
    NotSnsEvent {
        #[source]
        source: serde_json::Error,
    },
    #[error("{}", not_s3_message(*.index, .message_id, .source))]
    NotS3Message {
        index: usize,
        message_id: String,
        #[source]
        source: Box<EventError>,
    },
    #[error("the SNS message is not S3 notification JSON: {source}")]
    InvalidJson {
        #[source]
        source: serde_json::Error,
    },
    #[error("S3 record {index} lacks {field}")]
    MissingField { index: usize, field: &'static str },
    #[error("S3 record {index} has event source {found:?}, not aws:s3")]
    WrongEventSource { index: usize, found: String },
    #[error("{}", invalid_key(.raw))]
    InvalidKey { raw: String },
}

fn not_s3_message(index: usize, message_id: &str, source: impl fmt::Display) -> String {
    format!("SNS record {index} (message {message_id}) is not an S3 notification: {source}")
}

fn invalid_key(key: &str) -> String {
    format!("object key {key:?} is not valid form-encoded UTF-8")
}

impl EventError {
    /// The message, with object keys written as `name` writes them (the
    /// function's logs name keys by a hash: see `engine::KeyNames`).
    pub fn naming_keys(&self, name: &dyn Fn(&str) -> String) -> String {
        match self {
            EventError::NotS3Message {
                index,
                message_id,
                source,
            } => not_s3_message(*index, message_id, source.naming_keys(name)),
            EventError::InvalidKey { raw } => invalid_key(&name(raw)),
            _ => self.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct SnsEvent {
    #[serde(rename = "Records")]
    records: Vec<SnsRecord>,
}

#[derive(Deserialize)]
struct SnsRecord {
    #[serde(rename = "Sns")]
    sns: SnsMessage,
}

#[derive(Deserialize)]
struct SnsMessage {
    #[serde(rename = "MessageId", default)]
    message_id: String,
    #[serde(rename = "Message")]
    message: String,
}

/// The S3 notification body. `s3:TestEvent` has no `Records` but an `Event`.
#[derive(Deserialize)]
struct S3Message {
    #[serde(rename = "Records")]
    records: Option<Vec<S3Record>>,
    #[serde(rename = "Event")]
    event: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Record {
    event_source: Option<String>,
    aws_region: Option<String>,
    event_time: Option<String>,
    event_name: Option<String>,
    user_identity: Option<S3UserIdentity>,
    s3: Option<S3Entity>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3UserIdentity {
    principal_id: Option<String>,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: Option<S3Bucket>,
    object: Option<S3Object>,
}

#[derive(Deserialize)]
struct S3Bucket {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Object {
    key: Option<String>,
    size: Option<i64>,
    version_id: Option<String>,
    e_tag: Option<String>,
    sequencer: Option<String>,
}

/// Parses a whole Lambda SNS event: every SNS record, every S3 record inside.
/// Any record that is not an S3 notification fails the whole event: the
/// event then goes to the dead-letter queue intact, where it can be replayed.
pub fn parse_sns_event(event: &serde_json::Value) -> Result<Vec<S3Notice>, EventError> {
    let sns = SnsEvent::deserialize(event).map_err(|source| EventError::NotSnsEvent { source })?;
    let mut notices = Vec::new();
    for (index, record) in sns.records.into_iter().enumerate() {
        let parsed =
            parse_s3_message(&record.sns.message).map_err(|e| EventError::NotS3Message {
                index,
                message_id: record.sns.message_id.clone(),
                source: Box::new(e),
            })?;
        notices.extend(parsed);
    }
    Ok(notices)
}

/// Parses one SNS `Message` body. `s3:TestEvent` (sent when a notification
/// configuration is saved) yields no notices.
pub fn parse_s3_message(message: &str) -> Result<Vec<S3Notice>, EventError> {
    let parsed: S3Message =
        serde_json::from_str(message).map_err(|source| EventError::InvalidJson { source })?;
    let records = match (parsed.records, parsed.event.as_deref()) {
        (Some(records), _) => records,
        (None, Some("s3:TestEvent")) => return Ok(Vec::new()),
        (None, _) => {
            return Err(EventError::MissingField {
                index: 0,
                field: "Records",
            });
        }
    };
    records
        .into_iter()
        .enumerate()
        .map(|(index, r)| notice_from_record(index, r))
        .collect()
}

fn notice_from_record(index: usize, record: S3Record) -> Result<S3Notice, EventError> {
    let missing = |field| EventError::MissingField { index, field };
    match record.event_source.as_deref() {
        Some("aws:s3") => {}
        other => {
            return Err(EventError::WrongEventSource {
                index,
                found: other.unwrap_or_default().to_owned(),
            });
        }
    }
    let entity = record.s3.ok_or(missing("s3"))?;
    let bucket = entity
        .bucket
        .and_then(|b| b.name)
        .ok_or(missing("s3.bucket.name"))?;
    let object = entity.object.ok_or(missing("s3.object"))?;
    let raw_key = object.key.ok_or(missing("s3.object.key"))?;
    Ok(S3Notice {
        event_name: record.event_name.ok_or(missing("eventName"))?,
        region: record.aws_region.ok_or(missing("awsRegion"))?,
        bucket,
        key: decode_event_key(&raw_key)?,
        version_id: object.version_id.filter(|v| !v.is_empty()),
        etag: object
            .e_tag
            .map(|e| e.trim_matches('"').to_owned())
            .filter(|e| !e.is_empty()),
        sequencer: object.sequencer,
        size: object.size,
        event_time: record.event_time,
        principal: record.user_identity.and_then(|u| u.principal_id),
    })
}

/// Decodes an S3 event key. S3 event keys are form-encoded
/// (`application/x-www-form-urlencoded`): '+' is a space, a literal '+' is
/// `%2B`; then percent-decoding gives UTF-8 bytes.
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html>
/// ("The s3 key provides information about the bucket and object involved in
/// the event. The object key name value is URL encoded.")
pub fn decode_event_key(raw: &str) -> Result<String, EventError> {
    // '+' must become a space *before* percent-decoding, or an encoded "%2B"
    // would turn into '+' and then wrongly into a space.
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| EventError::InvalidKey {
            raw: raw.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_kept_as_a_message_reads_back_the_same() {
        let notice = S3Notice {
            event_name: "ObjectRemoved:DeleteMarkerCreated".into(),
            region: "eu-west-2".into(),
            bucket: "b".into(),
            key: "a b+c/ü%.txt".into(),
            version_id: Some("v1".into()),
            etag: None,
            sequencer: Some("00AB".into()),
            size: None,
            event_time: Some("2024-05-01T12:00:00.000Z".into()),
            principal: Some("AWS:AROA:s".into()),
        };
        let back = parse_s3_message(&notice.to_s3_message()).unwrap();
        assert_eq!(back, vec![notice]);
    }
    use aws_lambda_events::event::s3::S3Event;
    use aws_lambda_events::event::sns::SnsEvent as AwsSnsEvent;

    fn fixture(name: &str) -> serde_json::Value {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    /// The fixtures must be real shapes: they deserialise with the
    /// community's typed events too (which require every AWS field).
    fn assert_real_shape(name: &str, s3_inside: bool) {
        let event: AwsSnsEvent = serde_json::from_value(fixture(name)).expect(name);
        if s3_inside {
            for record in event.records {
                let s3: S3Event = serde_json::from_str(&record.sns.message).expect(name);
                assert!(!s3.records.is_empty());
            }
        }
    }

    #[test]
    fn fixtures_are_real_aws_shapes() {
        for name in ["sns-put.json", "sns-multi.json", "sns-encoded-key.json"] {
            assert_real_shape(name, true);
        }
        for name in [
            "sns-test-event.json",
            "sns-malformed.json",
            "sns-not-s3.json",
        ] {
            assert_real_shape(name, false);
        }
    }

    #[test]
    fn one_put_record() {
        let notices = parse_sns_event(&fixture("sns-put.json")).unwrap();
        assert_eq!(
            notices,
            vec![S3Notice {
                event_name: "ObjectCreated:Put".into(),
                region: "us-east-1".into(),
                bucket: "toastrep-photos-us-east-1".into(),
                key: "reports/2024/q1.csv".into(),
                version_id: Some("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY".into()),
                etag: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
                sequencer: Some("0055AED6DCD90281E5".into()),
                size: Some(1024),
                event_time: Some("2024-05-01T12:00:00.123Z".into()),
                principal: Some("AWS:AIDAJDPLRKLG7UEXAMPLE".into()),
            }]
        );
    }

    #[test]
    fn several_records_in_several_sns_records_keep_their_order() {
        let notices = parse_sns_event(&fixture("sns-multi.json")).unwrap();
        let expected = [
            (
                "ObjectCreated:Post",
                "uploads/form.bin",
                2048,
                "0cc175b9c0f1b6a831c399e269772661",
                "Fz2mvgG3ZWcf3kD8WRMvZq7pmD5uXmWj",
                "0062D5A1F23C7A9B01",
                "2024-05-01T12:00:01.000Z",
            ),
            (
                "ObjectCreated:Copy",
                "uploads/copy.bin",
                4096,
                "92eb5ffee6ae2fec3ad71c777531578f",
                "pR1Uv0hB7xWYd9RKkI7x3cX9ayw9VCVn",
                "0062D5A1F23C7A9B02",
                "2024-05-01T12:00:02.000Z",
            ),
            (
                "ObjectCreated:CompleteMultipartUpload",
                "video/big.mp4",
                12582912,
                "1f5a3f3e4a2b8e1d0c9b8a7f6e5d4c3b-3",
                "kLm0pQ3rStUvWxYz1234567890abcdEF",
                "0062D5A1F23C7A9B03",
                "2024-05-01T12:00:03.000Z",
            ),
        ];
        assert_eq!(notices.len(), expected.len());
        for (notice, (name, key, size, etag, version, sequencer, time)) in
            notices.iter().zip(expected)
        {
            assert_eq!(
                notice,
                &S3Notice {
                    event_name: name.into(),
                    region: "eu-west-2".into(),
                    bucket: "toastrep-photos-eu-west-2".into(),
                    key: key.into(),
                    version_id: Some(version.into()),
                    etag: Some(etag.into()),
                    sequencer: Some(sequencer.into()),
                    size: Some(size),
                    event_time: Some(time.into()),
                    principal: Some("AWS:AIDAJDPLRKLG7UEXAMPLE".into()),
                }
            );
        }
    }

    #[test]
    fn test_event_yields_nothing() {
        assert_eq!(
            parse_sns_event(&fixture("sns-test-event.json")).unwrap(),
            vec![]
        );
        let message = fixture("sns-test-event.json")["Records"][0]["Sns"]["Message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(parse_s3_message(&message).unwrap(), vec![]);
    }

    #[test]
    fn encoded_key_is_decoded() {
        let notices = parse_sns_event(&fixture("sns-encoded-key.json")).unwrap();
        assert_eq!(
            notices,
            vec![S3Notice {
                event_name: "ObjectCreated:Put".into(),
                region: "us-east-1".into(),
                bucket: "toastrep-photos-us-east-1".into(),
                key: "photos/a+b 100%/naïve café.txt".into(),
                // An unversioned bucket: S3 sends no versionId.
                version_id: None,
                etag: Some("5eb63bbbe01eeed093cb22bb8f5acdc3".into()),
                sequencer: Some("0055AED6DCD90281E6".into()),
                size: Some(11),
                event_time: Some("2024-05-01T12:00:04.000Z".into()),
                principal: Some("AWS:AIDAJDPLRKLG7UEXAMPLE".into()),
            }]
        );
    }

    #[test]
    fn malformed_message_is_an_error() {
        let err = parse_sns_event(&fixture("sns-malformed.json")).unwrap_err();
        assert!(
            matches!(&err, EventError::NotS3Message { index: 0, source, .. } if matches!(**source, EventError::InvalidJson { .. })),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("95df01b4-ee98-5cb9-9903-4c221d41eb5e"),
            "{err}"
        );
    }

    #[test]
    fn non_s3_message_is_an_error() {
        let err = parse_sns_event(&fixture("sns-not-s3.json")).unwrap_err();
        assert!(
            matches!(&err, EventError::NotS3Message { source, .. }
                if matches!(&**source, EventError::WrongEventSource { found, .. } if found == "aws:sqs")),
            "{err:?}"
        );
        assert!(matches!(
            parse_s3_message(r#"{"AlarmName":"x"}"#),
            Err(EventError::MissingField { .. })
        ));
    }

    #[test]
    fn non_sns_event_is_an_error() {
        let s3_direct = serde_json::json!({"Records": [{"eventSource": "aws:s3"}]});
        assert!(matches!(
            parse_sns_event(&s3_direct),
            Err(EventError::NotSnsEvent { .. })
        ));
        assert!(matches!(
            parse_sns_event(&serde_json::json!("hi")),
            Err(EventError::NotSnsEvent { .. })
        ));
    }

    #[test]
    fn decode_event_key_cases() {
        assert_eq!(
            decode_event_key("photos/a%2Bb+100%25/na%C3%AFve+caf%C3%A9.txt").unwrap(),
            "photos/a+b 100%/naïve café.txt"
        );
        assert_eq!(decode_event_key("a%3Fb%23c").unwrap(), "a?b#c");
        assert_eq!(decode_event_key("plain/key.txt").unwrap(), "plain/key.txt");
        // %2B must not become a space: '+' is replaced before percent-decoding.
        assert_eq!(decode_event_key("%2B+%2B").unwrap(), "+ +");
        assert!(matches!(
            decode_event_key("bad%FF"),
            Err(EventError::InvalidKey { .. })
        ));
    }
}
