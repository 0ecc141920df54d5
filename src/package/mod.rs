//! The function package: the `bootstrap` binary of the `lambda/` crate, zipped,
//! named by its content hash so a changed function is a new S3 key (and an
//! unchanged one uploads nothing). A package for x86_64 and one for arm64 are
//! different bytes, so different keys; which one a binary is for is read from
//! the binary itself, and checked before it ships.

mod bootstrap;
mod build;

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

pub use self::bootstrap::{Bootstrap, GlibcVersion, LAMBDA_GLIBC};
use crate::bail_input;
use crate::error::InputError;
use crate::model::architecture::Architecture;
use crate::progress::Reporter;

/// A zipped function package, in memory: it is a few megabytes.
#[derive(Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Package {
    /// Hex SHA-256 of the zip.
    pub sha256: String,
    /// The S3 key in every artifact bucket.
    pub key: String,
    pub bytes: usize,
    /// The architecture its `bootstrap` runs on (none for a script, which
    /// runs on either).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<Architecture>,
    #[serde(skip, default = "described_only")]
    bootstrap: Bootstrap,
    /// Where it came from, for messages.
    #[serde(skip)]
    origin: String,
    #[serde(skip)]
    pub zip: Vec<u8>,
}

/// The `bootstrap` of a package read back from a command's JSON result (the
/// tests read `--output json`): the JSON describes a package and carries no
/// zip, so a package deserialized from it is never one to deploy.
fn described_only() -> Bootstrap {
    Bootstrap::Script
}

impl Package {
    /// A zip that must hold a `bootstrap` Lambda can run; `origin` names it
    /// in errors (a path, an S3 URL).
    pub fn from_zip(zip: Vec<u8>, origin: &str) -> Result<Self> {
        let not_a_package = || {
            InputError::new(format!(
                "{origin} is not a Lambda package for provided.al2023: it must be a zip with a `bootstrap` executable at its root"
            ))
        };
        let mut archive = zip::ZipArchive::new(Cursor::new(&zip)).map_err(|_| not_a_package())?;
        let mut binary = Vec::new();
        archive
            .by_name("bootstrap")
            .map_err(|_| not_a_package())?
            .read_to_end(&mut binary)
            .with_context(|| format!("reading `bootstrap` from {origin}"))?;
        let bootstrap = Bootstrap::inspect(&binary, &format!("the `bootstrap` in {origin}"))?;
        let sha256 = hex::encode(Sha256::digest(&zip));
        Ok(Self {
            key: format!("toastrep/replicator-{sha256}.zip"),
            bytes: zip.len(),
            sha256,
            architecture: bootstrap.architecture(),
            bootstrap,
            origin: origin.to_owned(),
            zip,
        })
    }

    /// A prebuilt package (`--lambda-zip`).
    pub fn from_file(path: &Path) -> Result<Self> {
        let zip = std::fs::read(path)
            .map_err(|e| InputError::new(format!(
                "cannot read the function package {}: {e}: pass the path of a zip that holds a `bootstrap` executable",
                path.display()
            )))?;
        Self::from_zip(zip, &path.display().to_string())
    }

    /// A `--lambda-zip`, read and checked as far as it can be before the
    /// set's deployed architecture is known: against `asked`, when given.
    pub fn prebuilt(path: Option<&Path>, asked: Option<Architecture>) -> Result<Option<Self>> {
        let Some(path) = path else {
            return Ok(None);
        };
        let package = Self::from_file(path)?;
        if let Some(architecture) = asked {
            package.check_runs_on(architecture)?;
        }
        Ok(Some(package))
    }

    /// Zips a `bootstrap` binary deterministically: fixed timestamp and mode,
    /// so the same binary always gives the same hash.
    pub fn from_bootstrap(binary: &[u8]) -> Result<Self> {
        let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .last_modified_time(DateTime::default())
            .unix_permissions(0o755);
        writer.start_file("bootstrap", options)?;
        writer.write_all(binary)?;
        Self::from_zip(writer.finish()?.into_inner(), "the built package")
    }

    /// Checks that the package runs as a provided.al2023 function on
    /// `architecture`: its machine, and a glibc no newer than Lambda's.
    pub fn check_runs_on(&self, architecture: Architecture) -> Result<(), InputError> {
        self.bootstrap
            .check_runs_on(architecture, &format!("the `bootstrap` in {}", self.origin))
    }

    /// The package a deploy ships to functions on `architecture`: the
    /// prebuilt one if given (checked), else one built from `source`.
    pub async fn for_function(
        prebuilt: Option<Self>,
        architecture: Architecture,
        source: Option<&Path>,
        reporter: &dyn Reporter,
    ) -> Result<Self> {
        let package = match prebuilt {
            Some(package) => package,
            None => Self::build(architecture, source, reporter).await?,
        };
        package.check_runs_on(architecture)?;
        Ok(package)
    }

    /// Builds the `lambda/` crate of `source`, by default the workspace
    /// toastrep was built from, for `architecture`, and checks the binary
    /// before zipping it.
    pub async fn build(
        architecture: Architecture,
        source: Option<&Path>,
        reporter: &dyn Reporter,
    ) -> Result<Self> {
        let workspace = source.map_or_else(workspace_root, Path::to_path_buf);
        if !workspace.join("lambda").join("Cargo.toml").is_file() {
            bail_input!(
                "the replicator's source is not at {}: pass --function-source DIR with a toastrep checkout (or set TOASTREP_FUNCTION_SOURCE), or --lambda-zip with a prebuilt package",
                workspace.display()
            );
        }
        let binary = build::build(&workspace, architecture, reporter).await?;
        let bytes = std::fs::read(&binary)
            .with_context(|| format!("reading the built function {}", binary.display()))?;
        let what = format!("the built function {}", binary.display());
        Bootstrap::inspect(&bytes, &what)?.check_runs_on(architecture, &what)?;
        Self::from_bootstrap(&bytes)
    }
}

/// The workspace this binary was compiled in; the lambda crate lives beside it.
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_binary_same_package() {
        let a = Package::from_bootstrap(b"#!/bin/sh\n").unwrap();
        let b = Package::from_bootstrap(b"#!/bin/sh\n").unwrap();
        let c = Package::from_bootstrap(b"#!/bin/sh\nexit 1\n").unwrap();
        assert_eq!(a.sha256, b.sha256);
        assert_ne!(a.sha256, c.sha256);
        assert!(a.key.starts_with("toastrep/replicator-") && a.key.ends_with(".zip"));
    }
}
