//! The set file, `toastrep.toml`: a set's name, regions and settings, kept
//! in a repository so that a reviewed change to it is what `toastrep plan`
//! shows and `toastrep deploy` makes.
//!
//! ```toml
//! name = "media"
//! regions = ["us-east-1", "eu-west-2", "ap-northeast-1"]
//!
//! [settings]
//! architecture = "arm64"
//! replicate-deletes = true
//! ```
//!
//! The settings are named as the flags are; a flag overrides the file, and
//! a setting neither gives keeps its deployed value.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::InputError;
use crate::model::function::SettingsLayer;
use crate::model::regions::Region;

/// The file's name, looked for in the working directory.
pub const FILE_NAME: &str = "toastrep.toml";

/// What a set file holds. Its regions stay as written: they are checked
/// when a command takes them (so a typo in the list stops only the
/// commands that use the list, and is reported with the file's name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetFile {
    pub name: String,
    pub regions: Vec<String>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub settings: SettingsLayer,
}

fn is_empty(layer: &SettingsLayer) -> bool {
    *layer == SettingsLayer::default()
}

/// A set file read from disk, with where it was.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub file: SetFile,
}

/// The set file to use: `explicit` (which must exist), else
/// `./toastrep.toml` when there is one, else none.
pub fn locate(explicit: Option<&Path>) -> Result<Option<Loaded>, InputError> {
    let path = match explicit {
        Some(path) => path.to_owned(),
        None => {
            let default = PathBuf::from(FILE_NAME);
            if !default.exists() {
                return Ok(None);
            }
            default
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|error| {
        InputError::new(format!(
            "cannot read the set file {}: {error}; write one with `toastrep init`, or leave out --set-file",
            path.display()
        ))
    })?;
    let file = parse(&text).map_err(|error| {
        InputError::new(format!(
            "the set file {} is not valid: {error}",
            path.display()
        ))
    })?;
    Ok(Some(Loaded { path, file }))
}

/// Parses a set file's text; the error says where and what.
pub fn parse(text: &str) -> Result<SetFile, String> {
    toml::from_str(text).map_err(|error| error.to_string().trim_end().to_owned())
}

/// The text `toastrep init` writes.
pub fn render(file: &SetFile) -> String {
    let body = toml::to_string(file).expect("a set file serialises");
    format!(
        "# The replica set toastrep deploys. `toastrep plan` shows what a deploy\n\
         # would change; `toastrep deploy` makes it so. Flags override this file,\n\
         # and a setting left out keeps its deployed value.\n{body}"
    )
}

/// Adds `region` to the regions of the set file at `path` (last), or
/// takes it out, keeping the file's order, comments and layout:
/// add-region and remove-region keep the file true to the set. Returns the
/// regions it lists now.
pub fn edit_regions(path: &Path, region: Region, member: bool) -> Result<Vec<String>, InputError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        InputError::new(format!(
            "cannot read the set file {}: {error}",
            path.display()
        ))
    })?;
    let mut regions = parse(&text)
        .map_err(|error| {
            InputError::new(format!(
                "the set file {} is not valid: {error}",
                path.display()
            ))
        })?
        .regions;
    regions.retain(|r| *r != region);
    if member {
        regions.push(region.to_string());
    }
    write_regions(path, &regions)?;
    Ok(regions)
}

/// Rewrites the `regions` of the set file at `path`, keeping the rest.
fn write_regions(path: &Path, regions: &[String]) -> Result<(), InputError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        InputError::new(format!(
            "cannot read the set file {}: {error}",
            path.display()
        ))
    })?;
    let mut document: toml_edit::DocumentMut = text.parse().map_err(|error| {
        InputError::new(format!(
            "the set file {} is not valid: {error}",
            path.display()
        ))
    })?;
    let list: toml_edit::Array = regions.iter().map(String::as_str).collect();
    document["regions"] = toml_edit::value(list);
    std::fs::write(path, document.to_string()).map_err(|error| {
        InputError::new(format!(
            "cannot write the set file {}: {error}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::function::LogKeys;

    #[test]
    fn what_init_writes_reads_back() {
        let file = SetFile {
            name: "media".into(),
            regions: vec!["us-east-1".into(), "eu-west-2".into()],
            settings: SettingsLayer {
                part_size: Some(8 * 1024 * 1024),
                log_keys: Some(LogKeys::Plain),
                replicate_deletes: Some(true),
                ..SettingsLayer::default()
            },
        };
        let text = render(&file);
        assert!(text.contains("part-size = 8388608"), "{text}");
        assert!(text.contains(r#"log-keys = "plain""#), "{text}");
        assert_eq!(parse(&text).unwrap(), file);
    }

    #[test]
    fn a_mistyped_setting_is_named() {
        let error = parse("name = \"a1\"\nregions = []\n[settings]\npart-sise = 5\n").unwrap_err();
        assert!(error.contains("part-sise"), "{error}");
        assert!(error.contains("part-size"), "{error}");
    }

    #[test]
    fn regions_are_rewritten_keeping_comments() {
        let path = std::env::temp_dir().join(format!("toastrep-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "# ours\nname = \"media\"\nregions = [\"us-east-1\", \"eu-west-2\"]\n\n[settings]\n# why\npart-size = 8388608\n",
        )
        .unwrap();
        let listed = edit_regions(&path, "ap-northeast-1".into(), true).unwrap();
        assert_eq!(listed, ["us-east-1", "eu-west-2", "ap-northeast-1"]);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(text.starts_with("# ours\n"), "{text}");
        assert!(text.contains("# why\npart-size = 8388608"), "{text}");
        assert_eq!(
            parse(&text).unwrap().regions,
            ["us-east-1", "eu-west-2", "ap-northeast-1"]
        );
    }
}
