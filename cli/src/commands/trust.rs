//! `wpkg trust add|list|rm`: the trust policy.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use wpkg_signing::keyless::Identity;
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
certificate subject, each exact or as a regular expression that must match all of it, and \
optionally claims Fulcio puts in the certificate (--claim NAME=VALUE, --claim-regexp).\n\n\
--github OWNER/REPO builds the rule for GitHub Actions: GitHub's issuer, a workflow of that \
repository as the signer (--workflow to name one), and that repository as the run's source \
repository, so that a reusable workflow of OWNER/REPO called from another repository does \
not sign as OWNER/REPO. --ref/--ref-regexp narrow the git ref; --github-hosted refuses \
self-hosted runners.\n\n\
Examples:\n  wpkg trust add 'ghcr.io/acme/*' --key acme.pub\n  \
wpkg trust add 'ghcr.io/acme/*' --github acme/app --workflow release.yml --ref-regexp 'refs/tags/v.*'\n  \
wpkg trust add 'ghcr.io/acme/*' --issuer https://token.actions.githubusercontent.com \\\n    \
--subject https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main")]
    Add(Box<AddArgs>),
    /// Refresh Sigstore's trust root (Fulcio, Rekor, CT and TSA keys) through TUF
    #[command(
        after_help = "Fetches `trusted_root.json` (and the signing config) from \
Sigstore's TUF repository and checks them from the TUF root shipped with wpkg: signatures up \
to each role's threshold, expiry, versions that never go back, the targets' hashes. Keyless \
verification then uses it instead of the copy shipped with wpkg; it is refreshed again, when \
its TUF metadata has expired, the next time it is used (the cached copy stays in use if that \
fails, e.g. offline). Nothing changes when a check fails.\n\n\
For a private Sigstore instance: set WPKG_TUF_URL and WPKG_TUF_ROOT (its TUF repository \
and initial root.json) and its root becomes the default, refreshed the same way; or give \
--tuf-url/--tuf-root once and point --trusted-root at the file it prints.\n\n\
Examples:\n  wpkg trust update-root\n  \
wpkg trust update-root --tuf-url https://tuf.sigstore.internal --tuf-root root.json"
    )]
    UpdateRoot {
        /// A private instance's TUF repository (default: Sigstore's public good).
        #[arg(long, value_name = "URL", requires = "tuf_root")]
        tuf_url: Option<String>,
        /// The TUF root.json to start from for --tuf-url (trusted on first use).
        #[arg(long, value_name = "FILE", requires = "tuf_url")]
        tuf_root: Option<PathBuf>,
        /// Extra CA certificates (PEM) for the TUF repository's HTTPS.
        #[arg(long, value_name = "FILE", env = crate::env_vars::WPKG_CA_FILE)]
        ca_file: Vec<PathBuf>,
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

/// `wpkg trust add`'s arguments.
#[derive(Args)]
pub struct AddArgs {
    /// The scope.
    pub scope: String,
    /// The publisher's public key (PEM, like cosign.pub).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present_any = ["issuer", "issuer_regexp", "github"],
        conflicts_with_all = ["issuer", "issuer_regexp", "github"]
    )]
    key: Option<PathBuf>,
    /// Keyless: the OIDC issuer of the signer's certificate, exact.
    #[arg(long, value_name = "URL", requires = "who", conflicts_with_all = ["issuer_regexp", "github"])]
    issuer: Option<String>,
    /// Keyless: a regular expression the whole OIDC issuer must match.
    #[arg(
        long,
        value_name = "REGEXP",
        requires = "who",
        conflicts_with = "github"
    )]
    issuer_regexp: Option<String>,
    /// Keyless: the certificate subject (SAN URI or e-mail), exact.
    #[arg(long, group = "who", value_name = "SUBJECT")]
    subject: Option<String>,
    /// Keyless: a regular expression the whole subject must match.
    #[arg(long, group = "who", value_name = "REGEXP")]
    subject_regexp: Option<String>,
    /// Keyless: signed by a GitHub Actions workflow of this repository.
    #[arg(long, value_name = "OWNER/REPO", conflicts_with = "who")]
    github: Option<String>,
    /// With --github: only this workflow file (`release.yml`).
    #[arg(long, value_name = "FILE", requires = "github")]
    workflow: Option<String>,
    /// With --github: only runs on this git ref (`refs/heads/main`).
    #[arg(
        long = "ref",
        value_name = "REF",
        requires = "github",
        conflicts_with = "ref_regexp"
    )]
    git_ref: Option<String>,
    /// With --github: only runs on refs matching this regexp (`refs/tags/v.*`).
    #[arg(long, value_name = "REGEXP", requires = "github")]
    ref_regexp: Option<String>,
    /// With --github: refuse signatures made on self-hosted runners.
    #[arg(long, requires = "github")]
    github_hosted: bool,
    /// Keyless: a Fulcio claim the certificate must carry, exact (repeatable):
    /// `NAME=VALUE`, e.g. `build_trigger=push`.
    #[arg(long, value_name = "NAME=VALUE", conflicts_with = "key")]
    claim: Vec<String>,
    /// Keyless: a Fulcio claim by anchored regexp (repeatable): `NAME=REGEXP`.
    #[arg(long, value_name = "NAME=REGEXP", conflicts_with = "key")]
    claim_regexp: Vec<String>,
}

impl TrustArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let path = self.policy.path()?;
        let mut policy = Policy::load(&path)?;
        match self.command {
            TrustCommand::Add(add) => {
                let AddArgs {
                    scope,
                    key,
                    issuer,
                    issuer_regexp,
                    subject,
                    subject_regexp,
                    github,
                    workflow,
                    git_ref,
                    ref_regexp,
                    github_hosted,
                    claim,
                    claim_regexp,
                } = *add;
                let norm = wpkg_signing::trust::normalize_scope(&scope)?;
                let mut id = match &github {
                    Some(repo) => Identity::github(repo, workflow.as_deref())
                        .context("--github/--workflow")?,
                    None => Identity {
                        issuer: issuer.clone().unwrap_or_default(),
                        issuer_regexp: issuer_regexp.clone(),
                        subject,
                        subject_regexp,
                        ..Default::default()
                    },
                };
                let mut extra: Vec<(String, String)> = Vec::new();
                if let Some(r) = git_ref {
                    extra.push(("source_repository_ref".into(), r));
                }
                if let Some(r) = ref_regexp {
                    extra.push(("source_repository_ref_regexp".into(), r));
                }
                if github_hosted {
                    extra.push(("runner_environment".into(), "github-hosted".into()));
                }
                extra.extend(crate::identity::claim_flags(
                    &claim,
                    &claim_regexp,
                    "--claim",
                )?);
                id.claims.extend(extra);
                if github.is_some() || issuer.is_some() || issuer_regexp.is_some() {
                    id.validate()
                        .context("the keyless identity is not usable")?;
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
            TrustCommand::UpdateRoot {
                tuf_url,
                tuf_root,
                ca_file,
            } => {
                use wpkg_signing::tuf;
                let default = crate::policy::tuf_source()?;
                let (url, root) = match (&tuf_url, &tuf_root) {
                    (Some(u), Some(r)) => (
                        u.clone(),
                        std::fs::read(r)
                            .with_context(|| format!("cannot read the TUF root {}", r.display()))?,
                    ),
                    _ => (default.url, default.root),
                };
                let cache = default.cache;
                let r = tuf::update(&cache, &url, &root, &ca_file)?;
                let until = r.expires_rfc3339();
                eprintln!(
                    "trust root refreshed through TUF from {url} (TUF root version {}, valid until {until})",
                    r.root_version
                );
                if tuf_url.is_some()
                    && std::env::var(crate::env_vars::WPKG_TUF_URL).ok().as_deref()
                        != tuf_url.as_deref()
                {
                    eprintln!(
                        "use it with --trusted-root {} (or `trusted_root` in the policy)",
                        r.trusted_root.display()
                    );
                }
                super::out(&format!("{}\n", r.trusted_root.display()))?;
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
