//! The function package: the `bootstrap` binary of the `lambda/` crate, zipped,
//! named by its content hash so a changed function is a new S3 key (and an
//! unchanged one uploads nothing).

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::bail_input;
use crate::progress::Reporter;

/// The cargo profile the function is built with (see the workspace Cargo.toml).
const PROFILE: &str = "lambda";
const CRATE: &str = "toastrep-replicator";

/// A zipped function package, in memory: it is a few megabytes.
#[derive(Clone, Serialize)]
pub struct Package {
    /// Hex SHA-256 of the zip.
    pub sha256: String,
    /// The S3 key in every artifact bucket.
    pub key: String,
    pub bytes: usize,
    #[serde(skip)]
    pub zip: Vec<u8>,
}

impl Package {
    fn from_zip(zip: Vec<u8>) -> Self {
        let sha256 = hex(&Sha256::digest(&zip));
        Self {
            key: format!("toastrep/replicator-{sha256}.zip"),
            bytes: zip.len(),
            sha256,
            zip,
        }
    }

    /// A prebuilt package (`--lambda-zip`): it must hold an executable `bootstrap`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let zip = std::fs::read(path)
            .map_err(|e| crate::error::InputError::new(format!(
                "cannot read the function package {}: {e}: pass the path of a zip that holds a `bootstrap` executable",
                path.display()
            )))?;
        let archive = zip::ZipArchive::new(Cursor::new(&zip));
        match archive {
            Ok(archive) if archive.index_for_name("bootstrap").is_some() => Ok(Self::from_zip(zip)),
            _ => bail_input!(
                "{} is not a Lambda package for provided.al2023: it must be a zip with a `bootstrap` executable at its root",
                path.display()
            ),
        }
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
        Ok(Self::from_zip(writer.finish()?.into_inner()))
    }

    /// Builds the `lambda/` crate of the workspace toastrep was built from.
    pub async fn build(reporter: &dyn Reporter) -> Result<Self> {
        let workspace = workspace_root();
        if !workspace.join("lambda").join("Cargo.toml").is_file() {
            bail_input!(
                "the replicator's source is not at {}: build toastrep from its repository, or pass --lambda-zip with a prebuilt package",
                workspace.display()
            );
        }
        reporter.note(&format!(
            "building the replicator ({CRATE}, profile {PROFILE})"
        ));
        let binary = cargo_build(&workspace).await?;
        let bytes = std::fs::read(&binary)
            .with_context(|| format!("reading the built function {}", binary.display()))?;
        Self::from_bootstrap(&bytes)
    }
}

/// The workspace this binary was compiled in; the lambda crate lives beside it.
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs cargo and returns the path of the `bootstrap` it built, read from
/// cargo's own JSON messages rather than guessed from the target directory.
async fn cargo_build(workspace: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = tokio::process::Command::new(cargo)
        .current_dir(workspace)
        .args([
            "build",
            "--quiet",
            "--profile",
            PROFILE,
            "-p",
            CRATE,
            "--message-format",
            "json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .await
        .context("running cargo to build the replicator (is cargo on PATH?)")?;
    if !output.status.success() {
        bail!(
            "building the replicator failed (cargo exited {}); see the compiler output above",
            output.status
        );
    }
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] == "compiler-artifact"
            && message["target"]["name"] == "bootstrap"
            && let Some(path) = message["executable"].as_str()
        {
            return Ok(PathBuf::from(path));
        }
    }
    bail!("cargo built {CRATE} but reported no `bootstrap` executable")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
