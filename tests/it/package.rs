//! The function packages the suite runs and ships run on Lambda's
//! provided.al2023, whose glibc is 2.34: each binary is for its architecture
//! and needs no newer glibc symbol version, whatever the host's glibc.
//! Checked with toastrep's own reading of the ELF file (the `object` crate),
//! the check a deploy makes.

use std::io::Read;
use std::path::Path;

use toastrep::model::architecture::Architecture;
use toastrep::package::{Bootstrap, LAMBDA_GLIBC};

use crate::harness::{lambda_zip, lambda_zip_arm64};

/// The package's `bootstrap`, which must be executable.
fn bootstrap_of(zip: &Path) -> Vec<u8> {
    let file = std::fs::File::open(zip).unwrap();
    let mut archive = zip::ZipArchive::new(file).unwrap();
    let mut bootstrap = archive
        .by_name("bootstrap")
        .expect("the package holds bootstrap");
    assert_eq!(
        bootstrap.unix_mode().map(|m| m & 0o111),
        Some(0o111),
        "bootstrap is executable"
    );
    let mut binary = Vec::new();
    bootstrap.read_to_end(&mut binary).unwrap();
    binary
}

fn assert_runs_on_lambda(zip: &Path, architecture: Architecture) {
    let found = Bootstrap::inspect(&bootstrap_of(zip), "bootstrap").unwrap();
    let Bootstrap::Elf {
        architecture: built_for,
        glibc,
    } = found
    else {
        panic!("{} holds a script, not the replicator", zip.display());
    };
    assert_eq!(built_for, architecture, "{}", zip.display());
    let newest = glibc.expect("a dynamically linked binary names glibc versions");
    assert!(
        newest <= LAMBDA_GLIBC,
        "bootstrap needs GLIBC_{newest}, newer than provided.al2023's {LAMBDA_GLIBC}"
    );
}

#[test]
fn bootstrap_needs_no_glibc_newer_than_al2023s() {
    assert_runs_on_lambda(&lambda_zip(), Architecture::X86_64);
}

/// `toastrep package --architecture arm64` (built by `tools/test`).
#[test]
fn an_arm64_package_is_an_aarch64_binary_for_al2023s_glibc() {
    assert_runs_on_lambda(&lambda_zip_arm64(), Architecture::Arm64);
}
