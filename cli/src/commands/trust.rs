//! `wpkg trust add|list|rm`: the trust policy.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use wpkg_signing::keys::PublicKey;
use wpkg_signing::trust::Policy;

use crate::policy::PolicyArgs;

/// Manage the trust policy: which keys may sign which references
#[derive(Args)]
#[command(
    after_help = "`wpkg run` of a pulled image runs it only if a signature verifies \
under the most specific scope that covers its name: an exact repository before \
`registry/path/*`, a longer path before a shorter one, `*` last. See docs/trust.md.\n\n\
Examples:\n  wpkg trust add 'ghcr.io/acme/*' --key acme.pub\n  wpkg trust list\n  wpkg trust rm 'ghcr.io/acme/*'"
)]
pub struct TrustArgs {
    #[command(subcommand)]
    pub command: TrustCommand,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// The trust subcommands.
#[derive(Subcommand)]
pub enum TrustCommand {
    /// Trust a public key, or a keyless identity, for a scope (`ghcr.io/acme/*`,
    /// `ghcr.io/acme/app`, `*`)
    #[command(after_help = "Keyless (Sigstore) identities: an OIDC issuer and the \
certificate subject, exact or as a regular expression that must match all of it.\n\n\
Examples:\n  wpkg trust add 'ghcr.io/acme/*' --key acme.pub\n  \
wpkg trust add 'ghcr.io/acme/*' --issuer https://token.actions.githubusercontent.com \\\n    \
--subject https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main")]
    Add {
        /// The scope.
        scope: String,
        /// The publisher's public key (PEM, like cosign.pub).
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "issuer",
            conflicts_with = "issuer"
        )]
        key: Option<PathBuf>,
        /// Keyless: the OIDC issuer of the signer's certificate.
        #[arg(long, value_name = "URL", requires = "who")]
        issuer: Option<String>,
        /// Keyless: the certificate subject (SAN URI or e-mail), exact.
        #[arg(long, group = "who", value_name = "SUBJECT")]
        subject: Option<String>,
        /// Keyless: a regular expression the whole subject must match.
        #[arg(long, group = "who", value_name = "REGEXP")]
        subject_regexp: Option<String>,
    },
    /// List the scopes and their keys
    List {
        /// JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Remove a scope
    Rm {
        /// The scope.
        scope: String,
    },
}

impl TrustArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let path = self.policy.path()?;
        let mut policy = Policy::load(&path)?;
        match self.command {
            TrustCommand::Add {
                scope,
                key,
                issuer,
                subject,
                subject_regexp,
            } => {
                let norm = wpkg_signing::trust::normalize_scope(&scope)?;
                if let Some(issuer) = issuer {
                    let id = wpkg_signing::keyless::Identity {
                        issuer,
                        subject,
                        subject_regexp,
                    };
                    id.validate().map_err(anyhow::Error::msg)?;
                    let shown = id.to_string();
                    if policy.add_identity(&scope, id)? {
                        policy.save(&path)?;
                        eprintln!(
                            "trusting keyless signatures by {shown} for {norm} (policy: {})",
                            path.display()
                        );
                    } else {
                        eprintln!("{shown} is already trusted for {norm}");
                    }
                } else {
                    let key = key.expect("clap requires --key or --issuer");
                    let text = std::fs::read_to_string(&key)
                        .with_context(|| format!("cannot read {}", key.display()))?;
                    let k =
                        PublicKey::from_pem(&text).with_context(|| key.display().to_string())?;
                    if policy.add_key(&scope, &k)? {
                        policy.save(&path)?;
                        eprintln!(
                            "trusting key sha256:{} for {norm} (policy: {})",
                            k.fingerprint(),
                            path.display()
                        );
                    } else {
                        eprintln!(
                            "key sha256:{} is already trusted for {norm}",
                            k.fingerprint()
                        );
                    }
                }
            }
            TrustCommand::List { json } => {
                let rows: Vec<(String, Vec<String>)> = policy
                    .scopes
                    .iter()
                    .map(|s| {
                        let keys = s
                            .public_keys()
                            .unwrap_or_default()
                            .iter()
                            .map(|k| format!("sha256:{}", k.fingerprint()))
                            .chain(s.keyless.iter().map(|i| format!("keyless {i}")))
                            .collect();
                        (s.scope.clone(), keys)
                    })
                    .collect();
                if json {
                    let v: Vec<_> = rows
                        .iter()
                        .map(|(s, k)| serde_json::json!({"scope": s, "keys": k}))
                        .collect();
                    super::out(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
                } else if rows.is_empty() {
                    eprintln!(
                        "no scopes in {}: pulled images will not run until one covers them",
                        path.display()
                    );
                } else {
                    let mut t = format!("{:<40} KEYS\n", "SCOPE");
                    for (s, k) in rows {
                        t.push_str(&format!("{s:<40} {}\n", k.join(", ")));
                    }
                    super::out(&t)?;
                }
            }
            TrustCommand::Rm { scope } => {
                if policy.remove(&scope)? {
                    policy.save(&path)?;
                    eprintln!(
                        "removed scope {}",
                        wpkg_signing::trust::normalize_scope(&scope)?
                    );
                } else {
                    anyhow::bail!(
                        "no scope `{scope}` in {}; see `wpkg trust list`",
                        path.display()
                    );
                }
            }
        }
        super::ok()
    }
}
