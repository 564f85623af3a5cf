//! `wpkg tag SRC DST`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

/// Give a local image another name
#[derive(Args)]
#[command(after_help = "Example: wpkg tag hello:0.1.0 ghcr.io/acme/hello:0.1.0")]
pub struct TagArgs {
    /// The existing image.
    source: String,
    /// The new name, NAME[:TAG].
    target: String,
}

impl TagArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let src = super::parse_ref(&self.source)?;
        let dst = super::parse_ref(&self.target)?;
        if dst.digest.is_some() {
            anyhow::bail!(
                "the new name `{}` cannot contain a digest: give NAME[:TAG]",
                self.target
            );
        }
        let store = crate::settings::open_store()?;
        let desc = store.resolve(&src)?;
        store.set_tag(&dst, &desc)?;
        eprintln!("tagged {} as {}", src.familiar(), dst.familiar());
        super::ok()
    }
}
