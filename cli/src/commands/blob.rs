//! `wpkg sign-blob` and `wpkg verify-blob`: a file's sigstore bundle, made and checked
//! like cosign's `sign-blob --bundle` and `verify-blob --bundle`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use sha2::{Digest, Sha256};
use wpkg_pipeline::verify::{self, TrustSource};

use crate::identity::{load_public_keys, CertificateFlags};
use crate::signing::SignWith;

/// Sign a file into a Sigstore bundle (like cosign sign-blob)
#[derive(Args)]
#[command(
    after_help = "Writes a Sigstore bundle v0.3 (--bundle FILE) with a message \
signature over FILE's SHA-256: with --key (a cosign key), or keyless (an ephemeral key, a \
Fulcio certificate for your OIDC identity, the signature logged in Rekor as a hashedrekord \
entry), the same bundle `cosign sign-blob --bundle` and sigstore-python make. Anyone checks \
it with `wpkg verify-blob`, `cosign verify-blob` or `sigstore verify`.\n\n\
Examples:\n  wpkg sign-blob --key cosign.key --bundle wpkg.tar.gz.sigstore.json wpkg.tar.gz\n  \
wpkg sign-blob --keyless --bundle wpkg.tar.gz.sigstore.json wpkg.tar.gz   # in GitHub Actions"
)]
pub struct SignBlobArgs {
    /// The file to sign.
    pub file: PathBuf,
    #[command(flatten)]
    pub with: SignWith,
    /// Extra CA certificates (PEM) for the Sigstore services.
    #[arg(long, value_name = "FILE", env = crate::env_vars::WPKG_CA_FILE)]
    pub ca_file: Vec<PathBuf>,
}

impl SignBlobArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let sha256 = file_sha256(&self.file)?;
        let who = self.with.sign_blob(&sha256, &self.ca_file)?;
        eprintln!(
            "signed {} (sha256:{}) as {who}; bundle: {}",
            self.file.display(),
            hex_encode(&sha256),
            self.with
                .bundle
                .as_ref()
                .map(|b| b.display().to_string())
                .unwrap_or_default()
        );
        super::ok()
    }
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Verify a file's Sigstore bundle (like cosign verify-blob)
#[derive(Args)]
#[command(
    after_help = "Checks a Sigstore bundle (as `cosign sign-blob --bundle`, \
`wpkg sign-blob` and sigstore-python write it) for FILE: a message signature over the file, \
or a DSSE envelope whose in-toto statement names the file's SHA-256 as a subject. With --key \
the key decides; keyless bundles need the signer's identity (cosign's --certificate-* flags) \
and are checked against a Sigstore trusted_root.json (--trusted-root, else the public-good \
root shipped with wpkg): the certificate chain and SCT, the Rekor entry (v1: SET, inclusion \
proof, checkpoint; v2: inclusion proof, checkpoint) and RFC 3161 timestamps, each bound to \
this signature.\n\n\
FILE may be `sha256:<hex>` to check a digest without the file.\n\n\
Exit status: 0 verified, 1 not verified, 125 error.\n\n\
Examples:\n  wpkg verify-blob --bundle wpkg.tar.gz.sigstore.json --key cosign.pub wpkg.tar.gz\n  \
wpkg verify-blob --bundle wpkg.tar.gz.sigstore.json wpkg.tar.gz \\\n    \
--certificate-oidc-issuer https://token.actions.githubusercontent.com \\\n    \
--certificate-identity-regexp '^https://github.com/acme/wpkg/\\.github/workflows/release\\.yml@refs/tags/v.*$'"
)]
pub struct VerifyBlobArgs {
    /// The file to check, or `sha256:<hex>` (its digest).
    pub file: String,
    /// The Sigstore bundle (JSON).
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,
    /// A public key to verify with (repeatable).
    #[arg(long, value_name = "FILE")]
    pub key: Vec<PathBuf>,
    #[command(flatten)]
    pub certificate: CertificateFlags,
    /// A Sigstore trusted_root.json (default: Sigstore's public-good root shipped with wpkg).
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
}

impl VerifyBlobArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let keys = load_public_keys(&self.key)?;
        let identities = self.certificate.identities()?;
        let bundle = std::fs::read(&self.bundle)
            .with_context(|| format!("cannot read the bundle {}", self.bundle.display()))?;
        let (sha256, shown) = artifact_digest(&self.file)?;
        match verify::check_blob(
            &bundle,
            sha256,
            &keys,
            &identities,
            self.trusted_root.as_deref(),
            Some(&crate::policy::tuf_source()?),
        )? {
            Ok(signer) => {
                eprintln!("verified {shown}: {signer}");
                super::ok()
            }
            Err(e) => {
                eprintln!("error: {shown} is not verified: {e}");
                let hint = match &e {
                    wpkg_signing::VerifyError::Key | wpkg_signing::VerifyError::NoKeys => Some(
                        "it is signed with another key: check that --key is the signer's public key".to_owned(),
                    ),
                    wpkg_signing::VerifyError::Identity { subject, issuer } => Some(format!(
                        "if you trust that signer: --certificate-identity {subject} --certificate-oidc-issuer {issuer}"
                    )),
                    _ => crate::diagnostics::none_verifies_hint(&e, &TrustSource::Given),
                };
                if let Some(h) = hint {
                    eprintln!("hint: {h}");
                }
                Ok(ExitCode::from(1))
            }
        }
    }
}

/// The SHA-256 of `arg`: `sha256:<64 hex>` that is not a file on disk is a digest;
/// anything else is a file, read in chunks.
fn artifact_digest(arg: &str) -> Result<([u8; 32], String)> {
    let as_digest = arg
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .filter(|_| !std::path::Path::new(arg).exists())
        .and_then(hex_32);
    if let Some(d) = as_digest {
        return Ok((d, arg.to_owned()));
    }
    Ok((file_sha256(std::path::Path::new(arg))?, arg.to_owned()))
}

/// The SHA-256 of a file, read in chunks.
fn file_sha256(path: &std::path::Path) -> Result<[u8; 32]> {
    let shown = path.display();
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot read {shown}"))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {shown}"))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

fn hex_32(h: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
