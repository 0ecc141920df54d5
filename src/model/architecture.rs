//! The function's instruction set: Lambda's two, and what each means for the
//! build (the Rust target) and for the binary (its ELF machine).

use std::fmt;
use std::str::FromStr;

use object::elf::{EM_AARCH64, EM_X86_64, Machine};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Lambda architecture, named as Lambda names it (`Architectures` in the
/// base template).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum Architecture {
    /// Lambda's default.
    #[default]
    #[serde(rename = "x86_64")]
    X86_64,
    /// Graviton: about 20 % cheaper per GB-second.
    #[serde(rename = "arm64")]
    Arm64,
}

impl Architecture {
    pub const ALL: [Architecture; 2] = [Self::X86_64, Self::Arm64];

    /// Lambda's name, also the base stack's `Architecture` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Arm64 => "arm64",
        }
    }

    /// The Rust target the function is compiled for (its standard library
    /// is what `rustup target add` installs).
    pub fn rust_target(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64-unknown-linux-gnu",
            Self::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// The ELF `e_machine` of a binary that runs on it.
    fn elf_machine(self) -> Machine {
        match self {
            Self::X86_64 => EM_X86_64,
            Self::Arm64 => EM_AARCH64,
        }
    }

    /// The architecture whose binaries have this ELF machine, if Lambda has one.
    pub fn from_elf_machine(machine: Machine) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.elf_machine() == machine)
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Architecture {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("'{s}' is not a Lambda architecture: use x86_64 or arm64"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_machines_are_distinct() {
        for arch in [Architecture::X86_64, Architecture::Arm64] {
            assert_eq!(arch.as_str().parse::<Architecture>(), Ok(arch));
            assert_eq!(
                Architecture::from_elf_machine(arch.elf_machine()),
                Some(arch)
            );
        }
        assert!("aarch64".parse::<Architecture>().is_err());
        assert_eq!(Architecture::default(), Architecture::X86_64);
    }
}
