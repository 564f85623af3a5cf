//! `wpkg verify`: an image's signatures against keys, cosign's certificate flags, or the
//! trust policy.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};
use wpkg_pipeline::verify::{Rejected, Signer, Verification};
use wpkg_pipeline::{publish, verify};
use wpkg_spec::Reference;

use crate::identity::{load_public_keys, CertificateFlags};
use crate::policy::PolicyArgs;
use crate::remote::RemoteArgs;

/// Verify an image's signatures against keys or the trust policy
#[derive(Args)]
#[command(
    after_help = "Reads cosign's classic signatures (the `sha256-<hex>.sig` tag) and \
cosign v3 bundles attached as referrers. With --key, those keys decide; otherwise the trust \
policy scope that covers the reference (see `wpkg trust`). An image in the local store is \
checked against the signatures stored with it; otherwise the registry is asked.\n\n\
Exit status: 0 verified, 1 not verified, 125 error.\n\n\
With --certificate-identity (or -regexp) and --certificate-oidc-issuer (or -regexp), a \
keyless signature by that identity decides, for a one-off check without a policy file \
(cosign's flags). The --certificate-github-workflow-* flags and --certificate-claim match \
the claims Fulcio puts in the certificate (repository, ref, trigger, runner...), which is \
what tells your repository's run from a reusable workflow called elsewhere.\n\n\
--json prints what was checked: the signer, the certificate's claims, the rule that \
matched, and each signature that did not verify with the check it failed.\n\n\
Examples:\n  wpkg verify ghcr.io/acme/hello:1.0 --key cosign.pub\n  wpkg verify ghcr.io/acme/hello:1.0\n  \
wpkg verify ghcr.io/acme/hello:1.0 --certificate-oidc-issuer https://token.actions.githubusercontent.com \\\n    \
--certificate-identity-regexp '^https://github.com/acme/hello/\\.github/workflows/release\\.yml@refs/tags/v.*$' \\\n    \
--certificate-github-workflow-repository acme/hello"
)]
pub struct VerifyArgs {
    /// The image.
    pub reference: String,
    /// A public key to verify with (repeatable); default: the trust policy.
    #[arg(long, value_name = "FILE")]
    pub key: Vec<PathBuf>,
    #[command(flatten)]
    pub certificate: CertificateFlags,
    /// Ask the registry even if the image is in the local store.
    #[arg(long)]
    pub remote: bool,
    /// Print the result as JSON on stdout (also when not verified).
    #[arg(long)]
    pub json: bool,
    /// Also list the signatures that did not verify when one did.
    #[arg(short, long)]
    pub verbose: bool,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub remote_args: RemoteArgs,
}

impl VerifyArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let r = super::parse_ref(&self.reference)?;
        let keys = load_public_keys(&self.key)?;
        let identities = self.certificate.identities()?;
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
        let name = Reference {
            digest: None,
            ..r.clone()
        }
        .familiar();
        match verify::check_signatures(&material, &r, &digest, &keys, &identities, &trust)? {
            Ok(v) => {
                eprintln!("{v}");
                if self.verbose {
                    for x in &v.rejected {
                        eprintln!("  not used: {x}");
                    }
                }
                if self.json {
                    super::out(&pretty(&verified_json(&v))?)?;
                } else {
                    super::out(&format!("{name}@{digest}\n"))?;
                }
                super::ok()
            }
            Err(refusal) => {
                eprintln!("error: {} is not verified: {refusal}", r.familiar());
                if let Some(h) = crate::diagnostics::refusal_hint(&refusal) {
                    eprintln!("hint: {h}");
                }
                if self.json {
                    let rejected = match &refusal {
                        verify::Refusal::NoneVerifies { rejected, .. } => rejected.as_slice(),
                        _ => &[],
                    };
                    super::out(&pretty(&json!({
                        "reference": name,
                        "digest": digest,
                        "verified": false,
                        "refusal": refusal.to_string(),
                        "rejected": rejected.iter().map(rejected_json).collect::<Vec<_>>(),
                    }))?)?;
                }
                Ok(ExitCode::from(1))
            }
        }
    }
}

fn pretty(v: &Value) -> Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(v)?))
}

fn rejected_json(r: &Rejected) -> Value {
    json!({
        "number": r.number,
        "form": if r.bundle { "bundle" } else { "classic" },
        "check": r.error.check(),
        "error": r.error.to_string(),
    })
}

/// What a verification checked, for scripts.
fn verified_json(v: &Verification) -> Value {
    let signer = match &v.signer {
        Signer::Key { form, fingerprint } => json!({
            "kind": "key",
            "form": form.to_string(),
            "fingerprint": format!("sha256:{fingerprint}"),
        }),
        Signer::Keyless(k) => {
            // Every field of the rule is a claim that was compared with the certificate.
            let rule = serde_json::to_value(&k.rule).unwrap_or(Value::Null);
            let compared: Vec<&String> = rule
                .as_object()
                .map(|o| {
                    o.keys()
                        .filter(|k| *k != "claims")
                        .chain(k.rule.claims.keys())
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "kind": "keyless",
                "certificate": k.certificate,
                "signed_at": k.signed_at_rfc3339(),
                "rule": rule,
                "compared": compared,
            })
        }
    };
    json!({
        "reference": v.name,
        "digest": v.digest,
        "verified": true,
        "trusted_by": v.source_of_trust.to_string(),
        "signer": signer,
        "rejected": v.rejected.iter().map(rejected_json).collect::<Vec<_>>(),
    })
}
