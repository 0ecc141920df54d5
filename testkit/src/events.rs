//! Lambda events, built from the recorded fixtures of real AWS shapes in
//! `replication/tests/fixtures` (never written out again by hand), with the
//! fields a test needs changed.

use serde_json::{Value, json};

/// A fixture from `replication/tests/fixtures`.
pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../replication/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A key as S3 puts it into an event: form-encoded, so a space is '+' and
/// '+' is %2B (the S3 event message structure docs).
pub fn event_key(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b' ' => "+".to_owned(),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One S3 record as S3 puts it into a notification: the record of
/// `sns-put.json`, for `key` in `bucket` of `region`, with no version, ETag
/// or size until a test gives them.
pub struct S3Record(Value);

impl S3Record {
    pub fn new(region: &str, bucket: &str, key: &str) -> S3Record {
        let put = fixture("sns-put.json");
        let message: Value =
            serde_json::from_str(put["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
        let mut record = message["Records"][0].clone();
        record["awsRegion"] = json!(region);
        record["s3"]["bucket"]["name"] = json!(bucket);
        record["s3"]["bucket"]["arn"] = json!(format!("arn:aws:s3:::{bucket}"));
        let object = record["s3"]["object"].as_object_mut().unwrap();
        for field in ["versionId", "eTag", "size"] {
            object.remove(field);
        }
        object.insert("key".into(), json!(event_key(key)));
        S3Record(record)
    }

    /// `ObjectCreated:Put` unless changed, e.g. to `ObjectRemoved:Delete`.
    pub fn event_name(mut self, name: &str) -> S3Record {
        self.0["eventName"] = json!(name);
        self
    }

    pub fn version_id(mut self, version: &str) -> S3Record {
        self.0["s3"]["object"]["versionId"] = json!(version);
        self
    }

    /// The ETag, quoted or not: S3 events carry it without quotes.
    pub fn etag(mut self, etag: &str) -> S3Record {
        self.0["s3"]["object"]["eTag"] = json!(etag.trim_matches('"'));
        self
    }

    pub fn size(mut self, size: u64) -> S3Record {
        self.0["s3"]["object"]["size"] = json!(size);
        self
    }

    /// The writer S3 names (`userIdentity.principalId`), e.g.
    /// `AWS:AROA…:session` for an assumed role.
    pub fn principal(mut self, principal: &str) -> S3Record {
        self.0["userIdentity"] = json!({ "principalId": principal });
        self
    }

    pub fn sequencer(mut self, sequencer: &str) -> S3Record {
        self.0["s3"]["object"]["sequencer"] = json!(sequencer);
        self
    }

    pub fn json(self) -> Value {
        self.0
    }
}

impl From<S3Record> for Value {
    fn from(record: S3Record) -> Value {
        record.0
    }
}

/// The Lambda SNS event that delivers one S3 notification holding
/// `records`, from `topic`: `sns-put.json` with its message replaced.
pub fn sns_event(topic: &str, records: Vec<Value>) -> Value {
    let mut event = fixture("sns-put.json");
    let record = &mut event["Records"][0];
    record["EventSubscriptionArn"] = json!(format!("{topic}:21be56ed-a058-49f5-8c98-aedd2564c486"));
    record["Sns"]["TopicArn"] = json!(topic);
    record["Sns"]["Message"] = json!(json!({ "Records": records }).to_string());
    event
}

/// The ARN of set `name`'s event topic in `region`.
pub fn topic_arn(region: &str, name: &str) -> String {
    format!(
        "arn:aws:sns:{region}:{}:toastrep-{name}-events",
        crate::ACCOUNT
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record built for the fixture's own object is the fixture's record.
    #[test]
    fn a_record_with_the_fixtures_fields_is_the_fixtures_record() {
        let put = fixture("sns-put.json");
        let message: Value =
            serde_json::from_str(put["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
        let built = S3Record::new(
            "us-east-1",
            "toastrep-photos-us-east-1",
            "reports/2024/q1.csv",
        )
        .version_id("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")
        .etag("\"d41d8cd98f00b204e9800998ecf8427e\"")
        .size(1024)
        .json();
        assert_eq!(built, message["Records"][0]);
        // The envelope too, but for the message's key order (a string).
        let topic = put["Records"][0]["Sns"]["TopicArn"].as_str().unwrap();
        let mut event = sns_event(topic, vec![built]);
        let sent = event["Records"][0]["Sns"]["Message"].take();
        let mut expected = put.clone();
        expected["Records"][0]["Sns"]["Message"].take();
        assert_eq!(event, expected);
        assert_eq!(
            serde_json::from_str::<Value>(sent.as_str().unwrap()).unwrap(),
            message
        );
    }

    /// Keys are encoded as the recorded event encodes them.
    #[test]
    fn event_keys_are_form_encoded_as_s3_sends_them() {
        let recorded = fixture("sns-encoded-key.json");
        let message: Value =
            serde_json::from_str(recorded["Records"][0]["Sns"]["Message"].as_str().unwrap())
                .unwrap();
        assert_eq!(
            message["Records"][0]["s3"]["object"]["key"],
            event_key("photos/a+b 100%/naïve café.txt")
        );
    }
}
