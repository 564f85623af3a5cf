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
Formats:\n  \
artifact  the CNCF Wasm OCI artifact, capabilities in its config (wpkg run, wkg, registries)\n  \
image     a wasi/wasm container image that containerd unpacks and containerd-shim-wpkg-v1 runs\n            \
(Kubernetes: docs/kubernetes.md); the capabilities travel in its files at /.wpkg/capabilities.json,\n            \
covered by the same digest and signature; wpkg run reads it too\n\n\
Examples:\n  \
wpkg build examples/hello -t hello:dev\n  \
wpkg build examples/http-hello --format image -t registry.example/team/hello:1"
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
    /// The layout: `artifact` (default) or `image` (for containerd and Kubernetes).
    #[arg(long, value_enum, default_value = "artifact")]
    pub format: Format,
    /// Print only the digest.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `--format`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    /// The CNCF Wasm OCI artifact.
    Artifact,
    /// A wasi/wasm container image for containerd.
    Image,
}

impl BuildArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let b = crate::project::build(
            &self.path,
            self.tag.as_deref(),
            !self.no_build_command,
            match self.format {
                Format::Artifact => wpkg_pipeline::project::BuildFormat::Artifact,
                Format::Image => wpkg_pipeline::project::BuildFormat::Image,
            },
            self.quiet,
        )?;
        super::out(&format!("{}\n", b.digest))?;
        super::ok()
    }
}
