//! Uploads that carry every attribute a copy must keep.

use aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder;
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::StorageClass;

/// The `Expires` of a decorated upload: 2030-01-01T00:00:00Z.
pub const EXPIRES: i64 = 1_893_456_000;
/// [`EXPIRES`] as HeadObject shows it.
pub const EXPIRES_HTTP: &str = "Tue, 01 Jan 2030 00:00:00 GMT";
/// The tags of a decorated upload, sorted, as GetObjectTagging returns them.
pub const TAGS: [(&str, &str); 2] = [("note", "a b&c"), ("team", "data")];

/// A PutObject with every header S3 (and the emulator) keeps, user metadata
/// (a value with a space) and tags (a value that needs form-encoding).
pub fn decorate(put: PutObjectFluentBuilder) -> PutObjectFluentBuilder {
    put.content_type("text/csv; charset=utf-8")
        .cache_control("max-age=60, public")
        .content_disposition("attachment; filename=\"q1.csv\"")
        .content_encoding("identity")
        .content_language("fr-CA")
        .expires(DateTime::from_secs(EXPIRES))
        .website_redirect_location("/reports/latest.csv")
        .storage_class(StorageClass::StandardIa)
        .metadata("colour", "blue")
        .metadata("owner-team", "data platform")
        .tagging(tagging(&TAGS))
}

/// Tags as PutObject's `x-amz-tagging` takes them: a form-encoded query.
pub fn tagging<K: AsRef<str>, V: AsRef<str>>(tags: &[(K, V)]) -> String {
    tags.iter()
        .map(|(k, v)| format!("{}={}", form_encode(k.as_ref()), form_encode(v.as_ref())))
        .collect::<Vec<_>>()
        .join("&")
}

fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_form_encoded() {
        assert_eq!(tagging(&TAGS), "note=a%20b%26c&team=data");
    }
}
