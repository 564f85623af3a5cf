//! `wpkg keygen`, `wpkg sign`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use wpkg_signing::PrivateKey;
use wpkg_spec::Reference;

use crate::env_vars;
use crate::signing::{password, write_new, SignWith};

/// Make a signing key pair in cosign's format
#[derive(Args)]
#[command(
    after_help = "Writes PREFIX.key (encrypted, mode 0600) and PREFIX.pub, the same files \
`cosign generate-key-pair` writes; each tool reads the other's. The password comes from \
COSIGN_PASSWORD (or WPKG_PASSWORD) or a prompt, never from a flag. Existing files are not \
overwritten.\n\nExample:\n  COSIGN_PASSWORD=... wpkg keygen --output-key-prefix release"
)]
pub struct KeygenArgs {
    /// File name prefix of the pair.
    #[arg(long, default_value = "cosign", value_name = "PREFIX")]
    pub output_key_prefix: PathBuf,
}

impl KeygenArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let key_path = self.output_key_prefix.with_extension("key");
        let pub_path = self.output_key_prefix.with_extension("pub");
        for p in [&key_path, &pub_path] {
            if p.exists() {
                bail!(
                    "{} exists; remove it or pick another --output-key-prefix",
                    p.display()
                );
            }
        }
        let pw = password(true)?;
        let key = PrivateKey::generate();
        let pem = key.to_encrypted_pem(&pw)?;
        write_new(&key_path, pem.as_bytes(), 0o600)?;
        if let Err(e) = write_new(&pub_path, key.public().to_pem().as_bytes(), 0o644) {
            let _ = std::fs::remove_file(&key_path);
            return Err(e);
        }
        eprintln!(
            "Private key written to {}\nPublic key written to {} (fingerprint sha256:{})",
            key_path.display(),
            pub_path.display(),
            key.public().fingerprint()
        );
        super::ok()
    }
}

/// Sign an image in the local store (cosign-compatible), with a key or keyless
#[derive(Args)]
#[command(
    after_help = "The signature covers the manifest digest, so the code and the \
capabilities in the config are signed together, and goes to the registry with the image on \
`wpkg push`.\n\n\
With --key: a classic cosign signature (a `sha256-<hex>.sig` manifest with a simple-signing \
layer); the key password comes from COSIGN_PASSWORD or a prompt.\n\n\
Keyless (--keyless, or by default when an identity token is at hand): an ephemeral key that \
never touches disk, a 10-minute Fulcio certificate naming your OIDC identity (in GitHub \
Actions, the workflow: https://github.com/OWNER/REPO/.github/workflows/FILE@REF), the \
signature logged in Rekor, stored as a cosign v3 bundle attached as an OCI referrer — what \
`cosign sign` makes. The token comes from --identity-token, SIGSTORE_ID_TOKEN, or GitHub \
Actions (needs `permissions: id-token: write`). The bundle is verified against the trust \
root before it is stored.\n\n\
Examples:\n  wpkg sign ghcr.io/acme/hello:1.0 --key cosign.key && wpkg push ghcr.io/acme/hello:1.0\n  \
wpkg sign ghcr.io/acme/hello:1.0 --keyless            # in GitHub Actions\n  \
wpkg push --sign --keyless hello:0.1.0 ghcr.io/acme/hello:0.1.0"
)]
pub struct SignArgs {
    /// The image (in the local store; `wpkg pull` it first if it is only in a registry).
    pub reference: String,
    #[command(flatten)]
    pub with: SignWith,
    /// Trust this CA certificate (PEM) for Fulcio, Rekor and the token endpoint.
    #[arg(long, value_name = "FILE", env = env_vars::WPKG_CA_FILE)]
    pub ca_file: Option<PathBuf>,
}

impl SignArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let r = super::parse_ref(&self.reference)?;
        let store = crate::settings::open_store()?;
        let desc = store.resolve(&r)?;
        let ca: Vec<PathBuf> = self.ca_file.iter().cloned().collect();
        let made = self.with.sign(&store, &desc, &r, &ca)?;
        eprintln!(
            "signed {}@{} {made}",
            Reference {
                digest: None,
                ..r.clone()
            }
            .familiar(),
            desc.digest,
        );
        super::ok()
    }
}
