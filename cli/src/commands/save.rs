//! `wpkg save` and `wpkg load`: artifacts as OCI layout tarballs, for air-gapped moves.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

/// Write images, with their signatures, to an OCI layout tar file
#[derive(Args)]
#[command(
    after_help = "The archive carries the signatures the store holds for each image (classic `.sig` \
and v3 bundles), so the machine that loads it verifies before running, as after a pull.\n\n\
Example: wpkg save hello:0.1.0 -o hello.tar   (then on another machine: wpkg load -i hello.tar)"
)]
pub struct SaveArgs {
    /// Images to save.
    #[arg(required = true)]
    references: Vec<String>,
    /// The tar file to write (written atomically).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
}

impl SaveArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let refs = super::parse_refs(&self.references)?;
        let store = crate::settings::open_store()?;
        let tar = wpkg_store::archive::save(&store, &refs)?;
        let dir = self
            .output
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        wpkg_store::layout::write_atomic(&dir, &self.output, &tar)
            .with_context(|| format!("cannot write {}", self.output.display()))?;
        eprintln!(
            "saved {} image(s) to {} ({})",
            refs.len(),
            self.output.display(),
            super::human_size(tar.len() as u64)
        );
        super::ok()
    }
}

/// Load images (and their signatures) from an OCI layout tar file (plain or gzip)
#[derive(Args)]
#[command(
    after_help = "A loaded image is content from elsewhere: `wpkg run` verifies it under the trust \
policy by the name it was loaded as (`--name`, or the archive's), as after a pull; \
--insecure-skip-verify is the explicit way out."
)]
pub struct LoadArgs {
    /// The tar file to read.
    #[arg(short, long, value_name = "FILE")]
    input: PathBuf,
    /// Repository for images the archive names only by a tag (as other tools write).
    #[arg(long, value_name = "REPOSITORY")]
    name: Option<String>,
}

impl LoadArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let bytes = std::fs::read(&self.input)
            .with_context(|| format!("cannot read {}", self.input.display()))?;
        let store = crate::settings::open_store()?;
        let loaded = wpkg_store::archive::load(&store, &bytes, self.name.as_deref())?;
        let mut out = String::new();
        let mut signatures = 0;
        for (r, digest) in loaded.images {
            if r.tag
                .as_deref()
                .is_some_and(wpkg_store::associated::is_signature_tag)
            {
                signatures += 1;
                continue;
            }
            out.push_str(&format!("loaded {} {digest}\n", r.familiar()));
        }
        if signatures > 0 {
            eprintln!("with the signature material the archive holds for them ({signatures} attached manifest(s)); `wpkg run` verifies it under the trust policy");
        } else {
            eprintln!("the archive holds no signatures for them: `wpkg run` refuses them unless given --insecure-skip-verify");
        }
        super::out(&out)?;
        super::ok()
    }
}
