//! `wpkg rm REF...`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

/// Remove images from the local store (blobs no other image uses are deleted)
#[derive(Args)]
pub struct RmArgs {
    /// Images to remove: NAME[:TAG] or NAME@sha256:...
    #[arg(required = true)]
    references: Vec<String>,
}

impl RmArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let refs = super::parse_refs(&self.references)?;
        let store = crate::settings::open_store()?;
        for r in refs {
            let removed = store.remove(&r)?;
            super::out(&format!("untagged: {}\n", r.familiar()))?;
            if removed > 0 {
                eprintln!("deleted {removed} unused blob(s)");
            }
        }
        super::ok()
    }
}
