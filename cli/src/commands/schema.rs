//! `wpkg schema`: prints the JSON schema of wpkg.toml.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

/// Print the JSON schema of wpkg.toml (for editors and CI validation)
#[derive(Args)]
pub struct SchemaArgs {}

impl SchemaArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        super::out(&wpkg_spec::manifest::json_schema())?;
        super::ok()
    }
}
