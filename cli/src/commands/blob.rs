//! `wpkg verify-blob`: a file's sigstore bundle, checked like cosign's `verify-blob`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use sha2::{Digest, Sha256};
use wpkg_pipeline::verify::{self, TrustSource};
use wpkg_signing::PublicKey;

use crate::identity::{load_public_key, CertificateFlags};

/// Verify a file's signature bundle (Sigstore bundle v0.1 to v0.3), like cosign verify-blob
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
        let keys: Vec<PublicKey> = self
            .key
            .iter()
            .map(|k| load_public_key(k))
            .collect::<Result<_>>()?;
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
        )? {
            Ok(signer) => {
                eprintln!("verified {shown}: {signer}");
                super::ok()
            }
            Err(e) => {
                eprintln!("error: {shown} is not verified: {e}");
                if let Some(h) = crate::diagnostics::none_verifies_hint(&e, &TrustSource::Given) {
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
        .and_then(|h| hex_32(h));
    if let Some(d) = as_digest {
        return Ok((d, arg.to_owned()));
    }
    let mut f = std::fs::File::open(arg).with_context(|| format!("cannot read {arg}"))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {arg}"))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok((h.finalize().into(), arg.to_owned()))
}

fn hex_32(h: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
