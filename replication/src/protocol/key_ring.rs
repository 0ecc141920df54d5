//! The deployed form of a [`MarkerKeys`] ring: the current key in one
//! variable (`MARKER_KEY`, as every release had it) and the rest of the ring
//! in a second (`MARKER_KEY_RING`), both set by the base stack from NoEcho
//! parameters. The function and the CLI read both through this one parser,
//! so they can never disagree on what a ring holds.
//!
//! The ring's text is `;`-separated fields, each optional, and empty for a
//! set that never rotated (which is what a release before rotation deploys):
//! - `names`: new markers name their key (v3);
//! - `rotation=accepting` or `rotation=sealing`: the step of `rotate-key` the
//!   region is at, so an interrupted rotation resumes where it stopped;
//! - `accept=HEX,HEX`: keys whose markers verify too;
//! - `retired=HEX@SECONDS,...`: keys that verify only versions S3 wrote
//!   before that time (see [`MarkerKeys::retiring`]).
//!
//! No error names a key's value.

use super::marker::{MarkerKey, MarkerKeyError, MarkerKeys};

/// The environment variable holding the current key.
pub const KEY_VARIABLE: &str = "MARKER_KEY";
/// The environment variable holding the rest of the ring.
pub const RING_VARIABLE: &str = "MARKER_KEY_RING";

/// Where a region is in a key rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rotation {
    /// No rotation under way.
    #[default]
    Steady,
    /// The new key is accepted, the old one still seals.
    Accepting,
    /// The new key seals, the old one is still accepted.
    Sealing,
}

#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("{RING_VARIABLE}: a key in field {field}: {source}")]
    Key {
        field: &'static str,
        source: MarkerKeyError,
    },
    #[error("{RING_VARIABLE}: a retired key is HEX@SECONDS; the time of one is not a number")]
    RetiredAt,
    #[error("{RING_VARIABLE}: unknown field {0:?} (a newer release's ring?)")]
    Field(String),
}

impl MarkerKeys {
    /// The ring a region deploys: `current` (the `MARKER_KEY` value) and
    /// the `MARKER_KEY_RING` text.
    pub fn from_config(current: MarkerKey, ring: &str) -> Result<MarkerKeys, RingError> {
        let key = |field: &'static str, hex: &str| {
            MarkerKey::from_hex(hex).map_err(|source| RingError::Key { field, source })
        };
        let mut accepted = Vec::new();
        let mut retired = Vec::new();
        let mut names = false;
        let mut rotation = Rotation::Steady;
        for field in ring.split(';').map(str::trim).filter(|f| !f.is_empty()) {
            match field.split_once('=') {
                None if field == "names" => names = true,
                Some(("rotation", "accepting")) => rotation = Rotation::Accepting,
                Some(("rotation", "sealing")) => rotation = Rotation::Sealing,
                Some(("accept", keys)) => {
                    for hex in keys.split(',').filter(|k| !k.is_empty()) {
                        accepted.push(key("accept", hex)?);
                    }
                }
                Some(("retired", keys)) => {
                    for entry in keys.split(',').filter(|k| !k.is_empty()) {
                        let (hex, at) = entry.split_once('@').ok_or(RingError::RetiredAt)?;
                        let at = at.parse().map_err(|_| RingError::RetiredAt)?;
                        retired.push((key("retired", hex)?, at));
                    }
                }
                _ => {
                    let name = field.split_once('=').map_or(field, |(name, _)| name);
                    return Err(RingError::Field(name.to_owned()));
                }
            }
        }
        let mut keys = MarkerKeys::new(current, accepted).rotating(rotation);
        for (key, at) in retired {
            keys = keys.retiring(key, at);
        }
        Ok(if names { keys.naming_keys() } else { keys })
    }

    /// `(MARKER_KEY, MARKER_KEY_RING)` for this ring: what
    /// [`MarkerKeys::from_config`] reads back.
    pub fn to_config(&self) -> (String, String) {
        let mut fields = Vec::new();
        if self.names_keys() {
            fields.push("names".to_owned());
        }
        match self.rotation() {
            Rotation::Steady => {}
            Rotation::Accepting => fields.push("rotation=accepting".to_owned()),
            Rotation::Sealing => fields.push("rotation=sealing".to_owned()),
        }
        let accepted: Vec<String> = self.accepted().map(MarkerKey::to_hex).collect();
        if !accepted.is_empty() {
            fields.push(format!("accept={}", accepted.join(",")));
        }
        let retired: Vec<String> = self
            .retired()
            .map(|(key, at)| format!("{}@{at}", key.to_hex()))
            .collect();
        if !retired.is_empty() {
            fields.push(format!("retired={}", retired.join(",")));
        }
        (self.current().to_hex(), fields.join(";"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_reads_back_what_it_deploys() {
        let (a, b, c) = (
            MarkerKey::for_tests("a"),
            MarkerKey::for_tests("b"),
            MarkerKey::for_tests("c"),
        );
        let rings = [
            MarkerKeys::from(a.clone()),
            MarkerKeys::new(a.clone(), vec![b.clone()]).rotating(Rotation::Accepting),
            MarkerKeys::new(b.clone(), vec![a.clone()])
                .naming_keys()
                .rotating(Rotation::Sealing),
            MarkerKeys::from(b.clone())
                .naming_keys()
                .retiring(a.clone(), 1_800_000_000)
                .retiring(c, 1_700_000_000),
        ];
        for ring in rings {
            let (current, text) = ring.to_config();
            let read = MarkerKeys::from_config(MarkerKey::from_hex(&current).unwrap(), &text)
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(read, ring, "{text}");
        }
        // A set that never rotated deploys an empty ring.
        assert_eq!(MarkerKeys::from(a.clone()).to_config().1, "");
        assert_eq!(
            MarkerKeys::from_config(a.clone(), "").unwrap(),
            MarkerKeys::from(a)
        );
    }

    #[test]
    fn a_malformed_ring_is_an_error_that_shows_no_key() {
        let a = MarkerKey::for_tests("a");
        let secret = "ab".repeat(31);
        for text in [
            format!("accept={secret}"),
            format!("retired={}", "ab".repeat(32)),
            format!("retired={}@soon", "ab".repeat(32)),
            "colour=blue".to_owned(),
        ] {
            let error = MarkerKeys::from_config(a.clone(), &text)
                .expect_err(&text)
                .to_string();
            assert!(!error.contains(&secret[..16]), "{error}");
            assert!(error.contains(RING_VARIABLE), "{error}");
        }
    }
}
