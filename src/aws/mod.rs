//! The AWS side: clients from the standard credential chain, CloudFormation
//! stacks, and the set's buckets.

pub mod alarms;
pub mod artifacts;
pub mod buckets;
pub mod change_set;
mod clients;
mod error;
pub mod functions;
pub mod lifecycle;
pub mod objects;
pub mod queues;
pub mod stack;
pub mod state_machines;

pub use clients::{Aws, AwsOptions};
pub use error::{AwsError, CallError};

#[cfg(test)]
mod boundary {
    use std::path::Path;

    /// Every `.rs` file under `dir`, with its text.
    fn sources(dir: &Path, found: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                found.push((path.display().to_string(), text));
            }
        }
    }

    /// `src/aws/` is the CLI's only way to AWS: every other module works
    /// with the project's own types, so an SDK change (or a test double)
    /// touches one directory.
    #[test]
    fn only_src_aws_names_the_aws_sdk() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let aws = src.join("aws").display().to_string();
        let outside: Vec<_> = files.iter().filter(|(p, _)| !p.starts_with(&aws)).collect();
        assert!(
            outside.len() > 20,
            "the sources were found: {}",
            outside.len()
        );
        let mut offenders = Vec::new();
        for (path, text) in outside {
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                let names_sdk = ["aws_sdk_", "aws_smithy_", "aws_config::", "aws_types::"]
                    .iter()
                    .any(|crate_name| code.contains(crate_name));
                if names_sdk || code.contains(".send()") {
                    offenders.push(format!("{path}:{}: {}", n + 1, line.trim()));
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "these lines use the AWS SDK outside src/aws/; give src/aws/ a typed call for it:\n{}",
            offenders.join("\n")
        );
    }
}
