//! The set name, and every AWS name derived from it.
//!
//! All names are deterministic, so a set can be found again from its name alone
//! and every template parameter is known before the first AWS call. The templates
//! in `templates/` build the same names with `!Sub`; the two must agree.

use std::fmt;

use crate::error::InputError;
use crate::model::regions::Region;

const PREFIX: &str = "toastrep";
/// S3 bucket names are at most 63 characters.
const BUCKET_MAX: usize = 63;
/// IAM role names are at most 64 characters.
const ROLE_MAX: usize = 64;
/// Lambda function names are at most 64 characters.
const FUNCTION_MAX: usize = 64;
/// A placeholder account id of the real length, for length checks before the
/// account is known.
const ACCOUNT_PLACEHOLDER: &str = "123456789012";
/// What joins a set name and a region in the names of the pair stacks.
const PAIR_INFIXES: [&str; 2] = ["-from-", "-to-"];

/// A validated replica set name: lowercase letters, digits and single hyphens,
/// starting with a letter; short enough for every name derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct SetName(String);

impl SetName {
    /// Checks the characters only; [`check_lengths`] checks the derived names
    /// once the regions are known.
    pub fn parse(input: &str) -> Result<Self, InputError> {
        const FIX: &str = "use lowercase letters, digits and single hyphens, starting with a letter (e.g. 'media-eu')";
        if input.is_empty() {
            return Err(InputError::new(format!("the set name is empty: {FIX}")));
        }
        if let Some(bad) = input
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            let why = if bad.is_ascii_uppercase() {
                "S3 bucket names cannot hold upper case"
            } else {
                "S3 bucket names allow only lowercase letters, digits and hyphens"
            };
            return Err(InputError::new(format!(
                "the set name '{input}' contains '{bad}', and {why}: {FIX}"
            )));
        }
        if !input.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(InputError::new(format!(
                "the set name '{input}' must start with a letter: {FIX}"
            )));
        }
        if input.ends_with('-') || input.contains("--") {
            return Err(InputError::new(format!(
                "the set name '{input}' ends with a hyphen or has two in a row: {FIX}"
            )));
        }
        if input.len() < 2 {
            return Err(InputError::new(format!(
                "the set name '{input}' is too short: use at least 2 characters"
            )));
        }
        // The pair stacks are `toastrep-SET-from-REGION` and
        // `toastrep-SET-to-REGION`: a set named `x-from-us-east-1` would have
        // as its base stack set `x`'s grant stack, and one teardown could
        // reach the other's stacks. No set name may hold a pair-stack infix.
        for infix in PAIR_INFIXES {
            if format!("-{input}-").contains(infix) {
                return Err(InputError::new(format!(
                    "the set name '{input}' contains '{}', which toastrep uses in the names of \
                     its pair stacks (toastrep-NAME{infix}REGION), so its stacks could be another \
                     set's: choose a name without '{}'",
                    infix.trim_matches('-'),
                    infix.trim_matches('-'),
                )));
            }
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The base stack of a region.
    pub fn base_stack(&self) -> String {
        format!("{PREFIX}-{}", self.0)
    }

    /// The grant stack in `destination`'s region that lets `source`'s topic
    /// invoke the local function and the function read `source`'s bucket.
    pub fn grant_stack(&self, source: Region) -> String {
        format!("{PREFIX}-{}{}{source}", self.0, PAIR_INFIXES[0])
    }

    /// The subscription stack in the source region that subscribes
    /// `destination`'s function to the local topic.
    pub fn subscription_stack(&self, destination: Region) -> String {
        format!("{PREFIX}-{}{}{destination}", self.0, PAIR_INFIXES[1])
    }

    /// The replicated bucket of a region. The account id keeps the name
    /// globally unique, as S3 requires.
    ///
    /// The CLI's one statement of this rule. The replicator derives the same
    /// names from SET_NAME and ACCOUNT_ID (its environment, set by the base
    /// stack) in `toastrep-replication`, and the templates with `!Sub`: change
    /// all three together.
    pub fn data_bucket(&self, region: Region, account: &str) -> String {
        format!("{PREFIX}-{}-{region}-{account}", self.0)
    }

    /// The bucket toastrep uploads the function package to, one per region.
    /// The suffix keeps it apart from every data bucket, which ends in the
    /// account id, whatever the set names.
    pub fn artifact_bucket(&self, region: Region, account: &str) -> String {
        format!("{PREFIX}-{}-{region}-{account}-code", self.0)
    }

    /// IAM role names are global to the account, so the region is part of it.
    pub fn role(&self, region: Region) -> String {
        format!("{PREFIX}-{}-{region}", self.0)
    }

    pub fn function(&self) -> String {
        format!("{PREFIX}-{}-replicator", self.0)
    }

    pub fn dead_letter_queue(&self) -> String {
        format!("{PREFIX}-{}-dlq", self.0)
    }

    /// Deletes the mass-delete breaker holds (one queue per region).
    pub fn held_deletes_queue(&self) -> String {
        format!("{PREFIX}-{}-held-deletes", self.0)
    }

    /// In alarm while the region's delete breaker holds deletes.
    pub fn breaker_alarm(&self, region: Region) -> String {
        format!("{PREFIX}-{}-delete-breaker-{region}", self.0)
    }
}

impl fmt::Display for SetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks that every name derived from `name` fits AWS's limits in every
/// region. The error names the tightest limit, so its advice holds for all.
pub fn check_lengths(
    name: &SetName,
    regions: impl IntoIterator<Item = Region>,
) -> Result<(), InputError> {
    let mut worst: Option<(usize, &str, String, usize, Region)> = None;
    for region in regions {
        let derived = [
            (
                "S3 bucket",
                name.data_bucket(region, ACCOUNT_PLACEHOLDER),
                BUCKET_MAX,
            ),
            (
                "S3 artifact bucket",
                name.artifact_bucket(region, ACCOUNT_PLACEHOLDER),
                BUCKET_MAX,
            ),
            ("IAM role", name.role(region), ROLE_MAX),
            ("Lambda function", name.function(), FUNCTION_MAX),
        ];
        for (what, derived, max) in derived {
            let excess = derived.len().saturating_sub(max);
            if excess > 0 && worst.as_ref().is_none_or(|w| excess > w.0) {
                worst = Some((excess, what, derived, max, region));
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((excess, what, derived, max, region)) => Err(InputError::new(format!(
            "the set name '{name}' is too long: in {region} it makes the {what} name \
             '{derived}' ({} characters, the limit is {max}); use a name of at most \
             {} characters",
            derived.len(),
            name.0.len() - excess
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        assert_eq!(SetName::parse("media-eu-2").unwrap().as_str(), "media-eu-2");
    }

    #[test]
    fn rejects_what_s3_forbids() {
        for bad in [
            "Media", "media_eu", "media.eu", "média", "2media", "-a", "a-", "a--b", "", "a", "a b",
        ] {
            assert!(SetName::parse(bad).is_err(), "{bad} was accepted");
        }
        let err = SetName::parse("Media").unwrap_err().to_string();
        assert!(err.contains("upper case"), "{err}");
    }

    #[test]
    fn rejects_names_whose_stacks_could_be_another_sets() {
        // `x-from-us-east-1`'s base stack is `x`'s grant stack from us-east-1.
        let x = SetName::parse("x1").unwrap();
        let colliding = SetName::parse("x1-from-us-east-1");
        assert!(colliding.is_err());
        assert_eq!(
            format!("{PREFIX}-x1-from-us-east-1"),
            x.grant_stack("us-east-1".into())
        );
        for bad in ["x1-to-eu-west-2", "from-a", "a-to", "to-b", "a-from"] {
            let err = SetName::parse(bad).unwrap_err().to_string();
            assert!(err.contains("pair stacks"), "{bad}: {err}");
        }
        for fine in ["photos-tokyo", "fromage", "auto-sync", "a-tofu"] {
            SetName::parse(fine).unwrap();
        }
    }

    #[test]
    fn derived_names_fit_or_the_error_says_how_long_a_name_may_be() {
        let ok = SetName::parse(&"a".repeat(21)).unwrap();
        check_lengths(&ok, ["ap-northeast-1".into()]).unwrap();
        let long = SetName::parse(&"a".repeat(22)).unwrap();
        let err = check_lengths(&long, ["ap-northeast-1".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 21 characters"), "{err}");
        assert!(err.contains("S3 artifact bucket"), "{err}");
    }
}
