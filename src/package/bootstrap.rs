//! What a `bootstrap` needs from the machine it runs on: the instruction set
//! (its ELF machine) and, when it links glibc dynamically, the newest glibc
//! symbol version it calls. Read with the `object` crate, before a package is
//! zipped or shipped, so a binary Lambda cannot start is refused here rather
//! than failing on its first event.

use object::elf;
use object::read::elf::{FileHeader, SectionHeader};
use object::{Endianness, FileKind};

use crate::error::InputError;
use crate::model::architecture::Architecture;

/// The glibc of Lambda's provided.al2023 runtime (Amazon Linux 2023).
pub const LAMBDA_GLIBC: GlibcVersion = GlibcVersion(2, 34);

/// A glibc symbol version, `GLIBC_major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GlibcVersion(pub u32, pub u32);

impl std::fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// What a `bootstrap` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrap {
    /// A 64-bit ELF executable for one of Lambda's architectures.
    Elf {
        architecture: Architecture,
        /// The newest `GLIBC_x.y` it needs; `None` when it needs none
        /// (statically linked).
        glibc: Option<GlibcVersion>,
    },
    /// A `#!` script: Lambda runs it with its interpreter on either
    /// architecture (the tests' stand-in packages are scripts).
    Script,
}

impl Bootstrap {
    /// Reads a `bootstrap` executable; `what` names it in errors.
    pub fn inspect(binary: &[u8], what: &str) -> Result<Self, InputError> {
        if binary.starts_with(b"#!") {
            return Ok(Self::Script);
        }
        let not_lambda = |detail: &str| {
            InputError::new(format!(
                "{what} is not a Linux executable Lambda can run ({detail}): build it with `toastrep package`, or pass a package built for provided.al2023"
            ))
        };
        match FileKind::parse(binary) {
            Ok(FileKind::Elf64) => {}
            Ok(FileKind::Elf32) => return Err(not_lambda("a 32-bit ELF file")),
            _ => return Err(not_lambda("neither an ELF binary nor a #! script")),
        }
        let header = elf::FileHeader64::<Endianness>::parse(binary)
            .map_err(|e| not_lambda(&format!("unreadable ELF header: {e}")))?;
        let endian = header
            .endian()
            .map_err(|e| not_lambda(&format!("unreadable ELF header: {e}")))?;
        let machine = header.e_machine(endian);
        let Some(architecture) = Architecture::from_elf_machine(machine) else {
            return Err(not_lambda(&format!(
                "ELF machine {}, neither x86_64 nor AArch64",
                machine.0
            )));
        };
        let glibc = newest_glibc(header, endian, binary)
            .map_err(|e| not_lambda(&format!("unreadable symbol versions: {e}")))?;
        Ok(Self::Elf {
            architecture,
            glibc,
        })
    }

    /// Checks that it runs as a provided.al2023 function on `architecture`.
    pub fn check_runs_on(&self, architecture: Architecture, what: &str) -> Result<(), InputError> {
        let Self::Elf {
            architecture: built_for,
            glibc,
        } = *self
        else {
            return Ok(());
        };
        if built_for != architecture {
            return Err(InputError::new(format!(
                "{what} is built for {built_for}, but the function is to run on {architecture}: pass --architecture {built_for}, or a package built with `toastrep package --architecture {architecture}`"
            )));
        }
        if let Some(glibc) = glibc.filter(|v| *v > LAMBDA_GLIBC) {
            return Err(InputError::new(format!(
                "{what} needs glibc {glibc}, newer than provided.al2023's {LAMBDA_GLIBC}: build it with `toastrep package` (cargo-zigbuild, pinned to glibc {LAMBDA_GLIBC}), not a plain cargo build"
            )));
        }
        Ok(())
    }

    /// The architecture it needs, if it needs one.
    pub fn architecture(&self) -> Option<Architecture> {
        match self {
            Self::Elf { architecture, .. } => Some(*architecture),
            Self::Script => None,
        }
    }
}

/// The newest `GLIBC_x.y` among the versions the binary requires
/// (`.gnu.version_r`, the section the dynamic loader checks at start-up).
fn newest_glibc(
    header: &elf::FileHeader64<Endianness>,
    endian: Endianness,
    data: &[u8],
) -> object::Result<Option<GlibcVersion>> {
    let sections = header.sections(endian, data)?;
    let mut newest = None;
    for section in sections.iter() {
        let Some((mut needs, link)) = section.gnu_verneed(endian, data)? else {
            continue;
        };
        let strings = sections.strings(endian, data, link)?;
        while let Some((_, mut aux)) = needs.next()? {
            while let Some(version) = aux.next()? {
                let name = version.name(endian, strings)?;
                newest = newest.max(parse_glibc(name));
            }
        }
    }
    Ok(newest)
}

fn parse_glibc(name: &[u8]) -> Option<GlibcVersion> {
    let version = std::str::from_utf8(name).ok()?.strip_prefix("GLIBC_")?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some(GlibcVersion(major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_names_parse_and_others_do_not() {
        assert_eq!(parse_glibc(b"GLIBC_2.34"), Some(GlibcVersion(2, 34)));
        assert_eq!(parse_glibc(b"GLIBC_2.2.5"), Some(GlibcVersion(2, 2)));
        assert_eq!(parse_glibc(b"GLIBC_2"), Some(GlibcVersion(2, 0)));
        assert_eq!(parse_glibc(b"GLIBC_PRIVATE"), None);
        assert_eq!(parse_glibc(b"GCC_3.0"), None);
        assert!(GlibcVersion(2, 35) > LAMBDA_GLIBC && GlibcVersion(2, 9) < LAMBDA_GLIBC);
    }

    #[test]
    fn scripts_run_anywhere_and_garbage_is_refused() {
        let script = Bootstrap::inspect(b"#!/bin/sh\nexit 0\n", "bootstrap").unwrap();
        assert_eq!(script, Bootstrap::Script);
        assert!(
            script
                .check_runs_on(Architecture::Arm64, "bootstrap")
                .is_ok()
        );
        let err = Bootstrap::inspect(b"MZ\x90\0", "bootstrap").unwrap_err();
        assert!(err.to_string().contains("neither an ELF binary"), "{err}");
    }

    /// The test binary itself is an ELF executable of the host.
    #[cfg(target_os = "linux")]
    #[test]
    fn reads_the_running_binary() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let found = Bootstrap::inspect(&me, "this test").unwrap();
        let host = if cfg!(target_arch = "aarch64") {
            Architecture::Arm64
        } else {
            Architecture::X86_64
        };
        assert_eq!(found.architecture(), Some(host));
        let other = match host {
            Architecture::X86_64 => Architecture::Arm64,
            Architecture::Arm64 => Architecture::X86_64,
        };
        let err = found
            .check_runs_on(other, "this test")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("pass --architecture {host}")),
            "{err}"
        );
    }
}
