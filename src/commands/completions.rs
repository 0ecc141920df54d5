//! `toastrep completions SHELL` and `toastrep man` (roff, or Markdown for
//! docs/commands.md): generated from the clap definitions, so they never
//! drift from `--help`.

use std::path::Path;

use anyhow::{Context as _, Result};
use clap::CommandFactory;
use schemars::JsonSchema;
use serde::Serialize;

use super::Report;
use crate::cli::Cli;
use crate::settings::ManSettings;

/// A completion script or man page, printed or written.
#[derive(Serialize, JsonSchema)]
pub struct Generated {
    /// The script or page (when printed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The files written (with `man --out`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
}

pub fn completions(shell: clap_complete::Shell) -> Result<Report> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "toastrep", &mut script);
    let text = String::from_utf8(script).context("the completion script is UTF-8")?;
    Ok(Report::new(
        &Generated {
            text: Some(text.clone()),
            files: Vec::new(),
        },
        text,
        true,
    ))
}

pub fn man(man: &ManSettings) -> Result<Report> {
    let command = Cli::command();
    match man {
        ManSettings::Roff(None) => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command).render(&mut page)?;
            let text = String::from_utf8(page).context("the man page is UTF-8")?;
            Ok(printed(text))
        }
        ManSettings::Roff(Some(dir)) => {
            // Building propagates the global flags into every subcommand's page.
            let mut command = command;
            command.build();
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut files = Vec::new();
            write_pages(command, "toastrep", dir, &mut files)?;
            let text = files.iter().map(|f| format!("{f}\n")).collect();
            Ok(Report::new(&Generated { text: None, files }, text, true))
        }
        ManSettings::Markdown => Ok(printed(markdown(&command))),
    }
}

fn printed(text: String) -> Report {
    Report::new(
        &Generated {
            text: Some(text.clone()),
            files: Vec::new(),
        },
        text,
        true,
    )
}

/// The command reference in Markdown, as docs/commands.md holds it.
fn markdown(command: &clap::Command) -> String {
    let options = clap_markdown::MarkdownOptions::new()
        .title("The toastrep command reference".to_owned())
        .show_footer(false);
    let reference = clap_markdown::help_markdown_command_custom(command, &options);
    format!("{GENERATED_NOTE}\n\n{reference}")
}

const GENERATED_NOTE: &str = "<!-- Generated from the clap definitions in src/cli.rs: \
     `cargo run -q -- man --markdown > docs/commands.md`. Do not edit by hand. -->";

/// One page per command, named like git's: toastrep-deploy.1.
fn write_pages(
    command: clap::Command,
    name: &str,
    dir: &Path,
    files: &mut Vec<String>,
) -> Result<()> {
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .title(name.to_owned())
        .render(&mut page)?;
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    files.push(path.display().to_string());
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(
            sub.clone(),
            &format!("{name}-{}", sub.get_name()),
            dir,
            files,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/commands.md is the reference the README links to: it must say
    /// what `--help` says, so it is generated, and this fails when it drifts.
    #[test]
    fn docs_commands_md_is_the_generated_command_reference() {
        let checked_in = include_str!("../../docs/commands.md");
        let generated = markdown(&Cli::command());
        let line = 1 + checked_in
            .lines()
            .zip(generated.lines())
            .take_while(|(a, b)| a == b)
            .count();
        assert!(
            checked_in == generated,
            "docs/commands.md is not the command reference src/cli.rs gives (they differ \
             from line {line}); regenerate it: `cargo run -q -- man --markdown > docs/commands.md`"
        );
    }
}
