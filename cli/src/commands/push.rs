//! `wpkg push` and `wpkg pull`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use wpkg_pipeline::publish;
use wpkg_spec::Reference;

use crate::remote::{RemoteArgs, TtyProgress};

/// Push an image from the local store to a registry
#[derive(Args)]
#[command(
    after_help = "Blobs the registry already has are not sent again. Credentials come from \
`wpkg login` / `docker login` (Docker's config.json and credential helpers) or, in CI, \
WPKG_REGISTRY + WPKG_REGISTRY_USERNAME + WPKG_REGISTRY_PASSWORD. Plain HTTP is used only for \
loopback registries and those named with --insecure.\n\n\
The pushed reference with its digest is printed on stdout.\n\n\
Examples:\n  wpkg push ghcr.io/acme/hello:1.0\n  wpkg push hello:0.1.0 ghcr.io/acme/hello:0.1.0\n  \
wpkg push hello:0.1.0 localhost:5000/hello:0.1.0"
)]
pub struct PushArgs {
    /// The image in the local store.
    pub local: String,
    /// Where to push it (default: the local reference itself).
    pub remote: Option<String>,
    /// No progress display.
    #[arg(short, long)]
    pub quiet: bool,
    /// Sign the image (as the remote reference) before pushing: with --key, or keyless
    /// (--keyless, or by default when an identity token is at hand).
    #[arg(long)]
    pub sign: bool,
    #[command(flatten)]
    pub with: crate::signing::SignWith,
    #[command(flatten)]
    pub remote_args: RemoteArgs,
}

impl PushArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let local = super::parse_ref(&self.local)?;
        let remote = match &self.remote {
            Some(r) => super::parse_ref(r)?,
            None => local.clone(),
        };
        wpkg_pipeline::resolve::check_remote(&remote)?;
        let store = crate::settings::open_store()?;
        let desc = store.resolve(&local)?;
        if (self.with.key.is_some() || self.with.keyless) && !self.sign {
            anyhow::bail!("--key and --keyless are for --sign; add --sign to sign while pushing");
        }
        // Sign first: when signing fails, nothing is pushed.
        let signed = if self.sign {
            let ca: Vec<_> = self.remote_args.ca_file.iter().cloned().collect();
            Some(self.with.sign(&store, &desc, &remote, &ca)?)
        } else {
            None
        };
        let client = self.remote_args.client()?;
        let progress = TtyProgress::for_stderr("pushing", self.quiet);
        let pushed = publish::push(&client, &store, &desc, &remote, &progress)?;
        let (report, sigs) = (pushed.report, pushed.signatures);
        if let Some(made) = &signed {
            eprintln!("signed {}@{} {made}", remote.familiar(), desc.digest);
        }
        if !self.quiet {
            eprintln!(
                "pushed {} ({} blob(s) uploaded, {}; {} already there){}",
                remote.familiar(),
                report.uploaded,
                super::human_size(report.bytes),
                report.skipped,
                if sigs > 0 {
                    format!("; {sigs} signature(s)")
                } else {
                    String::new()
                }
            );
        }
        let name = Reference {
            digest: None,
            ..remote.clone()
        };
        super::out(&format!("{}@{}\n", name.familiar(), report.digest))?;
        super::ok()
    }
}

/// Pull an image from a registry into the local store
#[derive(Args)]
#[command(
    after_help = "Every blob is checked against its digest and size before it enters the \
store; the tag is written last, so an interrupted pull leaves nothing half-visible. Only Wasm \
artifacts (config application/vnd.wasm.config.v0+json with an application/wasm layer, or an index \
with a wasm platform entry) are accepted.\n\n\
Examples:\n  wpkg pull ghcr.io/acme/hello:1.0\n  wpkg pull localhost:5000/hello@sha256:..."
)]
pub struct PullArgs {
    /// The image to pull.
    pub reference: String,
    /// No progress display.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub remote_args: RemoteArgs,
}

impl PullArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let remote = super::parse_ref(&self.reference)?;
        wpkg_pipeline::resolve::check_remote(&remote)?;
        let store = crate::settings::open_store()?;
        let client = self.remote_args.client()?;
        let digest = crate::remote::pull(&client, &store, &remote, self.quiet)?.digest;
        let name = Reference {
            digest: None,
            ..remote.clone()
        };
        super::out(&format!("{}@{digest}\n", name.familiar()))?;
        super::ok()
    }
}
