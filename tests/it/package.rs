//! The function package runs on Lambda's provided.al2023, whose glibc is 2.34:
//! the binary must not need a newer symbol version.

use std::io::Read;
use std::process::Command;

use crate::harness::lambda_zip;

#[test]
fn bootstrap_needs_no_glibc_newer_than_al2023s() {
    let file = std::fs::File::open(lambda_zip()).unwrap();
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
    let path = std::env::temp_dir().join(crate::harness::unique_name("bootstrap"));
    std::fs::write(&path, &binary).unwrap();

    let output = Command::new("objdump")
        .arg("-T")
        .arg(&path)
        .output()
        .expect("objdump runs");
    assert!(
        output.status.success(),
        "objdump failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let symbols = String::from_utf8_lossy(&output.stdout);
    let mut versions: Vec<(u32, u32)> = symbols
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut parts = v.split('.');
            Some((
                parts.next()?.parse().ok()?,
                parts.next().unwrap_or("0").parse().ok()?,
            ))
        })
        .collect();
    versions.sort();
    let newest = versions
        .last()
        .copied()
        .expect("a dynamically linked binary names glibc versions");
    assert!(
        newest <= (2, 34),
        "bootstrap needs GLIBC_{}.{}, newer than provided.al2023's 2.34",
        newest.0,
        newest.1
    );
    std::fs::remove_file(path).ok();
}
