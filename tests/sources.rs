//! Rules the code keeps, read from the sources themselves: they hold for
//! every change without anyone having to remember them.

use std::path::{Path, PathBuf};

use syn::spanned::Spanned;
use syn::visit::Visit;

/// Longer than this, a function does several things: give each its name.
const MAX_FUNCTION_LINES: usize = 100;

/// The functions over the limit still waiting to be split, at their length
/// when the rule came in. The list may only shrink: a function not on it
/// may not pass the limit, one on it may not grow, and one split below the
/// limit must leave it.
const NOT_YET_SPLIT: &[(&str, &str, usize)] = &[];

/// The crates' sources (not tests, not the test kit).
fn sources() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for dir in ["src", "replication/src", "lambda/src"] {
        walk(&root.join(dir), &mut found);
    }
    found
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// A function or method: where it is, and its length in lines.
struct Function {
    file: String,
    line: usize,
    name: String,
    lines: usize,
}

/// Every function and method with its line count, skipping test code.
struct Functions {
    file: String,
    found: Vec<Function>,
}

/// `#[test]`, `#[tokio::test]` or `#[cfg(test)]`.
fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        let path = attr.path();
        let cfg_test = path.is_ident("cfg")
            && matches!(&attr.meta, syn::Meta::List(list) if list.tokens.to_string().contains("test"));
        cfg_test || path.segments.last().is_some_and(|s| s.ident == "test")
    })
}

impl Functions {
    fn record(&mut self, name: &syn::Ident, span: proc_macro2::Span) {
        self.found.push(Function {
            file: self.file.clone(),
            line: span.start().line,
            name: name.to_string(),
            lines: span.end().line - span.start().line + 1,
        });
    }
}

impl<'ast> Visit<'ast> for Functions {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if !is_test(&item.attrs) {
            syn::visit::visit_item_mod(self, item);
        }
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if !is_test(&item.attrs) {
            self.record(&item.sig.ident, item.span());
            syn::visit::visit_item_fn(self, item);
        }
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        if !is_test(&item.attrs) {
            self.record(&item.sig.ident, item.span());
            syn::visit::visit_impl_item_fn(self, item);
        }
    }

    fn visit_trait_item_fn(&mut self, item: &'ast syn::TraitItemFn) {
        if item.default.is_some() && !is_test(&item.attrs) {
            self.record(&item.sig.ident, item.span());
        }
        syn::visit::visit_trait_item_fn(self, item);
    }
}

fn functions() -> Vec<Function> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = Vec::new();
    for path in sources() {
        let text = std::fs::read_to_string(&path).unwrap();
        let file = syn::parse_file(&text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
        let mut visitor = Functions {
            file: path.strip_prefix(root).unwrap().display().to_string(),
            found: Vec::new(),
        };
        visitor.visit_file(&file);
        all.extend(visitor.found);
    }
    all
}

#[test]
fn no_function_is_longer_than_a_hundred_lines() {
    let all = functions();
    // The walk really saw the code: a rule checked against nothing holds.
    assert!(all.len() > 500, "only {} functions found", all.len());
    assert!(
        all.iter()
            .any(|f| f.file == "lambda/src/main.rs" && f.name == "main"),
        "the function's main was not seen"
    );
    let mut problems = Vec::new();
    for f in &all {
        let listed = NOT_YET_SPLIT
            .iter()
            .find(|(file, name, _)| *file == f.file && *name == f.name);
        let allowed = listed.map_or(MAX_FUNCTION_LINES, |(_, _, lines)| *lines);
        if f.lines > allowed {
            problems.push(format!(
                "{}:{} {} is {} lines (at most {allowed}): split it into steps with names",
                f.file, f.line, f.name, f.lines
            ));
        } else if listed.is_some() && f.lines <= MAX_FUNCTION_LINES {
            problems.push(format!(
                "{}:{} {} is {} lines now: take it off NOT_YET_SPLIT",
                f.file, f.line, f.name, f.lines
            ));
        }
    }
    for (file, name, _) in NOT_YET_SPLIT {
        if !all.iter().any(|f| f.file == *file && f.name == *name) {
            problems.push(format!("{file} {name} is gone: take it off NOT_YET_SPLIT"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Where each crate may name the AWS SDK: the CLI's `src/aws/`, the
/// protocol crate's `store/` and the function's `main`. Everything else
/// works on the project's own types, so a new call has one place to go.
const SDK_BOUNDARY: &[&str] = &["src/aws/", "replication/src/store/", "lambda/src/main.rs"];

#[test]
fn only_the_aws_modules_use_the_sdk() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    let mut outside = Vec::new();
    for path in sources() {
        let relative = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&path).unwrap();
        let uses = ["aws_sdk_", "aws_smithy_", "aws_config::", "aws_types::"]
            .iter()
            .any(|krate| text.contains(krate));
        if !uses {
            continue;
        }
        seen += 1;
        if !SDK_BOUNDARY
            .iter()
            .any(|inside| relative.starts_with(inside))
        {
            outside.push(relative);
        }
    }
    // The rule was checked against the code that does call the SDK.
    assert!(seen >= 10, "only {seen} files use the SDK");
    assert!(
        outside.is_empty(),
        "the AWS SDK used outside src/aws/, replication/src/store/ and lambda/src/main.rs (move the call behind a typed function there): {outside:#?}"
    );
}
