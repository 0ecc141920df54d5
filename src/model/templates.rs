//! The CloudFormation templates, compiled into the binary so an installed
//! `toastrep` needs no checkout. The files in `templates/` are the source.

use std::sync::OnceLock;

use serde::Serialize;

/// The most TemplateBody CloudFormation takes.
pub const MAX_BODY: usize = 51_200;

/// `source` without its full-line comments. No block scalar of the
/// templates holds a line starting with `#` (a test checks that the YAML
/// is the same value either way).
fn without_comment_lines(source: &str) -> String {
    source
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// One of the three templates a replica set is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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
    /// The template as CloudFormation gets it: without its comment lines.
    /// The source explains every choice at length, and CloudFormation takes
    /// at most 51,200 bytes of TemplateBody.
    pub fn body(self) -> &'static str {
        static BODIES: [OnceLock<String>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        BODIES[self as usize].get_or_init(|| without_comment_lines(self.source()))
    }

    /// The template file as written, comments and all.
    fn source(self) -> &'static str {
        match self {
            Template::Base => include_str!("../../templates/base.yaml"),
            Template::Grant => include_str!("../../templates/grant.yaml"),
            Template::Subscription => include_str!("../../templates/subscription.yaml"),
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

/// The base template's function's environment, as the template writes it
/// (values are the template's `!Ref`s and `!Sub`s).
#[cfg(test)]
pub(crate) fn function_variables() -> serde_yaml::Mapping {
    let body: serde_yaml::Value = serde_yaml::from_str(Template::Base.body()).unwrap();
    let functions: Vec<&serde_yaml::Value> = body["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::Lambda::Function")
        .collect();
    assert_eq!(functions.len(), 1, "the base template has one function");
    functions[0]["Properties"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap()
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployed_body_is_the_same_template_and_fits() {
        for template in [Template::Base, Template::Grant, Template::Subscription] {
            let source: serde_yaml::Value = serde_yaml::from_str(template.source()).unwrap();
            let body: serde_yaml::Value = serde_yaml::from_str(template.body()).unwrap();
            assert_eq!(source, body, "{template:?}");
            assert!(
                template.body().len() <= MAX_BODY,
                "{template:?}: {} bytes",
                template.body().len()
            );
        }
    }

    /// The function reads its configuration in one place
    /// (`toastrep_replication::function::config`): the base stack must set
    /// exactly the variables it names, or a setting would be deployed that
    /// the function never reads.
    #[test]
    fn the_function_gets_exactly_the_variables_its_configuration_reads() {
        use toastrep_replication::function::config::FROM_THE_STACK;
        let variables = function_variables();
        let mut set: Vec<&str> = variables.keys().map(|k| k.as_str().unwrap()).collect();
        let mut read: Vec<&str> = FROM_THE_STACK.to_vec();
        set.sort_unstable();
        read.sort_unstable();
        assert_eq!(set, read);
    }
}
