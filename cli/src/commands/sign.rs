//! `wpkg keygen`, `wpkg sign`, `wpkg verify`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use wpkg_pipeline::{publish, verify};
use wpkg_signing::{PrivateKey, PublicKey};
use wpkg_spec::Reference;

use crate::env_vars;
use crate::policy::PolicyArgs;
use crate::remote::RemoteArgs;
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

fn load_public_key(path: &Path) -> Result<PublicKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the public key {}", path.display()))?;
    PublicKey::from_pem(&text).with_context(|| format!("{}", path.display()))
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

/// Verify an image's signatures against keys or the trust policy
#[derive(Args)]
#[command(
    after_help = "Reads cosign's classic signatures (the `sha256-<hex>.sig` tag) and \
cosign v3 bundles attached as referrers. With --key, those keys decide; otherwise the trust \
policy scope that covers the reference (see `wpkg trust`). An image in the local store is \
checked against the signatures stored with it; otherwise the registry is asked.\n\n\
Exit status: 0 verified, 1 not verified, 125 error.\n\n\
With --certificate-identity (or -regexp) and --certificate-oidc-issuer, a keyless \
signature by that identity decides, for a one-off check without a policy file (cosign's flags).\n\n\
Examples:\n  wpkg verify ghcr.io/acme/hello:1.0 --key cosign.pub\n  wpkg verify ghcr.io/acme/hello:1.0\n  \
wpkg verify ghcr.io/acme/hello:1.0 --certificate-oidc-issuer https://token.actions.githubusercontent.com \\\n    \
--certificate-identity-regexp '^https://github.com/acme/hello/\\.github/workflows/release\\.yml@refs/tags/v.*$'"
)]
pub struct VerifyArgs {
    /// The image.
    pub reference: String,
    /// A public key to verify with (repeatable); default: the trust policy.
    #[arg(long, value_name = "FILE")]
    pub key: Vec<PathBuf>,
    /// Keyless: the signer's identity in the certificate (SAN: e-mail or URI), exact, as
    /// cosign's flag; needs --certificate-oidc-issuer.
    #[arg(
        long,
        value_name = "IDENTITY",
        conflicts_with = "certificate_identity_regexp"
    )]
    pub certificate_identity: Option<String>,
    /// Keyless: a regular expression the whole identity must match (anchored).
    #[arg(long, value_name = "REGEXP")]
    pub certificate_identity_regexp: Option<String>,
    /// Keyless: the OIDC issuer that vouched for the identity, exact
    /// (`https://token.actions.githubusercontent.com` for GitHub Actions).
    #[arg(long, value_name = "URL")]
    pub certificate_oidc_issuer: Option<String>,
    /// Ask the registry even if the image is in the local store.
    #[arg(long)]
    pub remote: bool,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub remote_args: RemoteArgs,
}

impl VerifyArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let r = super::parse_ref(&self.reference)?;
        let keys: Vec<PublicKey> = self
            .key
            .iter()
            .map(|k| load_public_key(k))
            .collect::<Result<_>>()?;
        let identities = one_off_identity(
            self.certificate_identity.as_deref(),
            self.certificate_identity_regexp.as_deref(),
            self.certificate_oidc_issuer.as_deref(),
        )?;
        let store = crate::settings::open_store()?;
        let local = if self.remote {
            None
        } else {
            match store.resolve(&r) {
                Ok(d) => Some(d),
                Err(wpkg_store::Error::NotFound(_)) => None,
                Err(e) => return Err(e.into()),
            }
        };
        let (digest, material) = match local {
            Some(d) => {
                let m = store.signatures(&d.digest)?;
                (d.digest, m)
            }
            None => publish::remote_signatures(&self.remote_args.client()?, &r)?,
        };
        let trust = self.policy.settings()?;
        match verify::check_signatures(&material, &r, &digest, &keys, &identities, &trust)? {
            Ok(line) => {
                eprintln!("{line}");
                super::out(&format!(
                    "{}@{digest}\n",
                    Reference {
                        digest: None,
                        ..r.clone()
                    }
                    .familiar()
                ))?;
                super::ok()
            }
            Err(refusal) => {
                eprintln!("error: {} is not verified: {refusal}", r.familiar());
                if let Some(h) = crate::diagnostics::refusal_hint(&refusal) {
                    eprintln!("hint: {h}");
                }
                Ok(ExitCode::from(1))
            }
        }
    }
}

/// The keyless identity given with cosign's flags, if any.
fn one_off_identity(
    exact: Option<&str>,
    regexp: Option<&str>,
    issuer: Option<&str>,
) -> Result<Vec<wpkg_signing::keyless::Identity>> {
    if exact.is_none() && regexp.is_none() {
        if issuer.is_some() {
            anyhow::bail!(
                "--certificate-oidc-issuer needs --certificate-identity or --certificate-identity-regexp"
            );
        }
        return Ok(vec![]);
    }
    let Some(issuer) = issuer else {
        anyhow::bail!("--certificate-identity needs --certificate-oidc-issuer (the OIDC issuer that vouched for it)");
    };
    let id = wpkg_signing::keyless::Identity {
        issuer: issuer.to_owned(),
        subject: exact.map(str::to_owned),
        subject_regexp: regexp.map(str::to_owned),
    };
    id.validate()
        .map_err(|e| anyhow::anyhow!("--certificate-identity-regexp: {e}"))?;
    Ok(vec![id])
}
