//! Object keys that S3, its event notifications and HTTP treat specially:
//! every path a key takes (request URL, copy source, form-encoded event,
//! signed marker) must bring it back unchanged.

/// Keys with spaces, `+`, `%`, `?`, `#`, non-ASCII, runs of slashes, a
/// leading slash and the characters of a query string, and one of 1,024
/// bytes (S3's longest).
pub fn awkward_keys() -> Vec<String> {
    vec![
        // S3 events form-encode keys: a space becomes '+', and '+' becomes %2B.
        "with space/and  two.txt".to_owned(),
        "plus+sign/a+b.txt".to_owned(),
        "percent%25/100%.txt".to_owned(),
        // Not a query string, nor a fragment, when the SDK builds the URL.
        "question?versionId=fake".to_owned(),
        "hash#fragment/x#y".to_owned(),
        "naïve/café/日本語/emoji-🚀.txt".to_owned(),
        "many////slashes//a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/leaf".to_owned(),
        "/leading-slash".to_owned(),
        "photos/a+b 100%/naïve café.txt".to_owned(),
        "amp&equals=semi;colon,comma'quote\"".to_owned(),
        longest_key(),
    ]
}

/// A 1,024-byte key (S3's limit), with two-byte characters near the end.
pub fn longest_key() -> String {
    let mut key = "deep/".repeat(150);
    key.push_str(&"é".repeat((1024 - key.len()) / 2));
    while key.len() < 1024 {
        key.push('x');
    }
    key
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_longest_key_is_s3s_limit() {
        assert_eq!(super::longest_key().len(), 1024);
    }
}
