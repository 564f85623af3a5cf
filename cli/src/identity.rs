//! Who may have signed, given on the command line: cosign's `--certificate-*` flags for
//! a one-off keyless check (`wpkg verify`, `wpkg verify-blob`), and public keys.

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::Args;
use wpkg_signing::keyless::Identity;
use wpkg_signing::PublicKey;

/// cosign's flags naming the keyless signer to accept.
#[derive(Args, Clone, Debug, Default)]
pub struct CertificateFlags {
    /// Keyless: the signer's identity in the certificate (SAN: e-mail or URI), exact;
    /// needs --certificate-oidc-issuer[-regexp].
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
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "certificate_oidc_issuer_regexp"
    )]
    pub certificate_oidc_issuer: Option<String>,
    /// Keyless: a regular expression the whole OIDC issuer must match (anchored).
    #[arg(long, value_name = "REGEXP")]
    pub certificate_oidc_issuer_regexp: Option<String>,
    /// Keyless: the workflow trigger (Fulcio's build trigger claim: `push`, `release`...).
    #[arg(long, value_name = "EVENT")]
    pub certificate_github_workflow_trigger: Option<String>,
    /// Keyless: the commit the workflow ran on (source repository digest claim).
    #[arg(long, value_name = "SHA")]
    pub certificate_github_workflow_sha: Option<String>,
    /// Keyless: the git ref the workflow ran on (`refs/heads/main`; source repository ref).
    #[arg(long, value_name = "REF")]
    pub certificate_github_workflow_ref: Option<String>,
    /// Keyless: the repository the workflow ran for (OWNER/REPO; source repository URI).
    #[arg(long, value_name = "OWNER/REPO")]
    pub certificate_github_workflow_repository: Option<String>,
    /// Keyless: any Fulcio claim, exact (repeatable): `NAME=VALUE`, e.g.
    /// `runner_environment=github-hosted`, `build_signer_uri=...`.
    #[arg(long, value_name = "NAME=VALUE")]
    pub certificate_claim: Vec<String>,
    /// Keyless: any Fulcio claim by anchored regexp (repeatable): `NAME=REGEXP`.
    #[arg(long, value_name = "NAME=REGEXP")]
    pub certificate_claim_regexp: Vec<String>,
}

impl CertificateFlags {
    /// The one identity these flags describe, or none when no flag is given.
    pub fn identities(&self) -> Result<Vec<Identity>> {
        let subject_given =
            self.certificate_identity.is_some() || self.certificate_identity_regexp.is_some();
        let issuer_given =
            self.certificate_oidc_issuer.is_some() || self.certificate_oidc_issuer_regexp.is_some();
        let mut claims = std::collections::BTreeMap::new();
        let github = [
            ("build_trigger", &self.certificate_github_workflow_trigger),
            (
                "source_repository_digest",
                &self.certificate_github_workflow_sha,
            ),
            (
                "source_repository_ref",
                &self.certificate_github_workflow_ref,
            ),
        ];
        for (name, v) in github {
            if let Some(v) = v {
                claims.insert(name.to_owned(), v.clone());
            }
        }
        if let Some(r) = &self.certificate_github_workflow_repository {
            claims.insert(
                "source_repository_uri".to_owned(),
                format!("https://github.com/{r}"),
            );
        }
        claims.extend(claim_flags(
            &self.certificate_claim,
            &self.certificate_claim_regexp,
            "--certificate-claim",
        )?);
        if !subject_given {
            if issuer_given || !claims.is_empty() {
                bail!("--certificate-oidc-issuer needs --certificate-identity or --certificate-identity-regexp (so do the claim flags)");
            }
            return Ok(vec![]);
        }
        if !issuer_given {
            bail!("--certificate-identity needs --certificate-oidc-issuer (the OIDC issuer that vouched for it)");
        }
        let id = Identity {
            issuer: self.certificate_oidc_issuer.clone().unwrap_or_default(),
            issuer_regexp: self.certificate_oidc_issuer_regexp.clone(),
            subject: self.certificate_identity.clone(),
            subject_regexp: self.certificate_identity_regexp.clone(),
            claims,
        };
        id.validate()
            .context("the --certificate-* flags do not make a usable identity")?;
        Ok(vec![id])
    }
}

/// Claims given as `NAME=VALUE` (exact) and `NAME=REGEXP` (the `-regexp` flag): the
/// rule's claim entries, `NAME` and `NAME_regexp`.
pub fn claim_flags(
    exact: &[String],
    regexp: &[String],
    flag: &str,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (list, suffix) in [(exact, ""), (regexp, "_regexp")] {
        for c in list {
            let Some((k, v)) = c.split_once('=') else {
                bail!(
                    "{flag}{} `{c}`: give NAME=VALUE, e.g. runner_environment=github-hosted",
                    suffix.replace('_', "-")
                );
            };
            out.push((format!("{k}{suffix}"), v.to_owned()));
        }
    }
    Ok(out)
}

/// Reads public key files (PEM, like cosign.pub).
pub fn load_public_keys(paths: &[std::path::PathBuf]) -> Result<Vec<PublicKey>> {
    paths.iter().map(|p| load_public_key(p)).collect()
}

/// Reads a public key file (PEM, like cosign.pub).
pub fn load_public_key(path: &Path) -> Result<PublicKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the public key {}", path.display()))?;
    PublicKey::from_pem(&text).with_context(|| format!("{}", path.display()))
}
