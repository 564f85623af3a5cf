//! `wpkg build [DIR] [-t NAME:TAG]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

/// Pack a .wasm and its wpkg.toml into an OCI artifact in the local store
#[derive(Args)]
#[command(
    after_help = "Runs `package.build` first when wpkg.toml gives one, then reads `package.wasm`.\n\
The build is reproducible: the same inputs give the same digest (set SOURCE_DATE_EPOCH to stamp a time).\n\n\
Example: wpkg build examples/hello -t hello:dev"
)]
pub struct BuildArgs {
    /// The project directory holding wpkg.toml (or the path of a wpkg.toml).
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Name and tag; default: the package's name and version.
    #[arg(short, long, value_name = "NAME[:TAG]")]
    pub tag: Option<String>,
    /// Do not run `package.build`; use the .wasm as it is.
    #[arg(long)]
    pub no_build_command: bool,
    /// Print only the digest.
    #[arg(short, long)]
    pub quiet: bool,
}

impl BuildArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let b = crate::project::build(
            &self.path,
            self.tag.as_deref(),
            !self.no_build_command,
            self.quiet,
        )?;
        super::out(&format!("{}\n", b.digest))?;
        super::ok()
    }
}
