//! Building the function with cargo-zigbuild, the Rust Lambda ecosystem's
//! cross-build tool: zig links the binary against glibc 2.34, the glibc of
//! provided.al2023, for either architecture, from any host. A plain
//! `cargo build` links against the host's glibc, which a newer distribution
//! makes too new for Lambda, and builds for the host's instruction set.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};

use super::bootstrap::LAMBDA_GLIBC;
use crate::bail_input;
use crate::model::architecture::Architecture;
use crate::progress::Reporter;

/// The cargo profile the function is built with (see the workspace Cargo.toml).
const PROFILE: &str = "lambda";
const CRATE: &str = "toastrep-replicator";

/// Where `tools/setup build` installs the pinned build tools, in a checkout.
const PROJECT_TOOLS: &str = ".tools/build/bin";

/// How to get the tools, for the error that says they are missing.
const INSTALL_HINT: &str = "install it with `pip install cargo-zigbuild ziglang` (or `tools/setup build` in toastrep's checkout), or pass --lambda-zip with a prebuilt package";

/// A cargo-zigbuild to run, and the Python that has the `ziglang` wheel
/// (zig itself) when the two were installed together by pip.
struct Zigbuild {
    program: PathBuf,
    python: Option<PathBuf>,
}

impl Zigbuild {
    /// The project's pinned copy (`tools/setup build`) first, since it is the
    /// version the project is tested with; then any on PATH.
    fn locate(workspace: &Path) -> Result<Self> {
        let pinned = workspace.join(PROJECT_TOOLS).join("cargo-zigbuild");
        let program = if pinned.is_file() {
            pinned
        } else {
            match which::which("cargo-zigbuild") {
                Ok(path) => path,
                Err(_) => bail_input!(
                    "cargo-zigbuild, which builds the function for Lambda, is not on PATH nor in {}: {INSTALL_HINT}",
                    workspace.join(PROJECT_TOOLS).display()
                ),
            }
        };
        // cargo-zigbuild runs zig as `python3 -m ziglang` (CARGO_ZIGBUILD_PYTHON_PATH)
        // or as `zig` from PATH. A pip install puts cargo-zigbuild beside the
        // Python that has the wheel, which need not be the `python3` on PATH
        // (a virtual environment that is not activated).
        let python = program
            .parent()
            .map(|bin| bin.join("python3"))
            .filter(|python| python.is_file());
        Ok(Self { program, python })
    }
}

/// Builds the `bootstrap` of [`CRATE`] in `workspace` for `architecture` and
/// returns its path, read from cargo's own JSON messages rather than guessed
/// from the target directory.
pub async fn build(
    workspace: &Path,
    architecture: Architecture,
    reporter: &dyn Reporter,
) -> Result<PathBuf> {
    let zigbuild = Zigbuild::locate(workspace)?;
    check_rust_target(workspace, architecture).await?;
    reporter.note(&format!(
        "building the replicator ({CRATE}, profile {PROFILE}) for {architecture}, glibc {LAMBDA_GLIBC}"
    ));
    let target = format!("{}.{LAMBDA_GLIBC}", architecture.rust_target());
    let mut command = tokio::process::Command::new(&zigbuild.program);
    command
        .current_dir(workspace)
        .args([
            "zigbuild",
            "--quiet",
            "--profile",
            PROFILE,
            "-p",
            CRATE,
            "--target",
            &target,
            "--message-format",
            "json-render-diagnostics",
        ])
        .stderr(Stdio::inherit());
    // For this child only, and never over a choice the user made.
    if let Some(python) = &zigbuild.python
        && std::env::var_os("CARGO_ZIGBUILD_PYTHON_PATH").is_none()
    {
        command.env("CARGO_ZIGBUILD_PYTHON_PATH", python);
    }
    let output = command
        .output()
        .await
        .with_context(|| format!("running {}", zigbuild.program.display()))?;
    if !output.status.success() {
        bail!(
            "building the replicator for {architecture} failed ({} exited {}): see its output above; if it could not find zig, `pip install ziglang` beside cargo-zigbuild, or run `tools/setup build`",
            zigbuild.program.display(),
            output.status
        );
    }
    bootstrap_path(&output.stdout)
}

/// cargo builds for a target only with that target's standard library, which
/// rustup installs; say so in one line rather than in rustc's many.
async fn check_rust_target(workspace: &Path, architecture: Architecture) -> Result<()> {
    let triple = architecture.rust_target();
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    // In the workspace, so rustup picks the toolchain the workspace asks for.
    let sysroot = tokio::process::Command::new(rustc)
        .current_dir(workspace)
        .args(["--print", "sysroot"])
        .stderr(Stdio::null())
        .output()
        .await;
    let Some(sysroot) = sysroot.ok().filter(|out| out.status.success()) else {
        // No rustc to ask: cargo will say what is wrong.
        return Ok(());
    };
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    let lib = sysroot.join("lib").join("rustlib").join(triple).join("lib");
    if !lib.is_dir() {
        bail_input!(
            "the Rust standard library for {triple} (Lambda's {architecture}) is not installed: run `rustup target add {triple}`"
        );
    }
    Ok(())
}

fn bootstrap_path(stdout: &[u8]) -> Result<PathBuf> {
    for line in String::from_utf8_lossy(stdout).lines() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_bootstrap_in_cargos_messages() {
        let stdout = br#"{"reason":"compiler-artifact","target":{"name":"toastrep_replication"},"executable":null}
{"reason":"compiler-artifact","target":{"name":"bootstrap"},"executable":"/t/x86_64-unknown-linux-gnu/lambda/bootstrap"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            bootstrap_path(stdout).unwrap(),
            PathBuf::from("/t/x86_64-unknown-linux-gnu/lambda/bootstrap")
        );
        assert!(bootstrap_path(b"").is_err());
    }
}
