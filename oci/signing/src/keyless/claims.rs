//! Who a Fulcio certificate says signed, and whether a policy trusts them: the SAN, the
//! OIDC issuer, and the claims Fulcio copies from the token into extensions
//! (1.3.6.1.4.1.57264.1.9 to .22: source repository and ref, build signer URI, workflow
//! trigger, runner environment...). Matching is exact or by an anchored regexp, the way
//! cosign's `--certificate-*` flags and `gh attestation verify` match.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::VerifyError;

/// One Fulcio claim: its OID, the name used in policies and JSON, and how messages say it.
pub struct Claim {
    /// The extension OID.
    pub oid: &'static str,
    /// The name in `wpkg.toml`-style snake case (`source_repository_ref`).
    pub name: &'static str,
    /// How messages say it.
    pub label: &'static str,
}

/// Fulcio's v2 claim extensions (DER UTF8String values), as `fulcio/docs/oid-info.md`
/// lists them.
pub const CLAIMS: &[Claim] = &[
    claim(
        "1.3.6.1.4.1.57264.1.9",
        "build_signer_uri",
        "build signer URI",
    ),
    claim(
        "1.3.6.1.4.1.57264.1.10",
        "build_signer_digest",
        "build signer digest",
    ),
    claim(
        "1.3.6.1.4.1.57264.1.11",
        "runner_environment",
        "runner environment",
    ),
    claim(
        "1.3.6.1.4.1.57264.1.12",
        "source_repository_uri",
        "source repository URI",
    ),
    claim(
        "1.3.6.1.4.1.57264.1.13",
        "source_repository_digest",
        "source repository digest",
    ),
    claim(
        "1.3.6.1.4.1.57264.1.14",
        "source_repository_ref",
        "source repository ref",
    ),
    claim(
        "1.3.6.1.4.1.57264.1.15",
        "source_repository_identifier",
        "source repository identifier",
    ),
    claim(
        "1.3.6.1.4.1.57264.1.16",
        "source_repository_owner_uri",
        "source repository owner URI",
    ),
    claim(
        "1.3.6.1.4.1.57264.1.17",
        "source_repository_owner_identifier",
        "source repository owner identifier",
    ),
    claim(
        "1.3.6.1.4.1.57264.1.18",
        "build_config_uri",
        "build config URI",
    ),
    claim(
        "1.3.6.1.4.1.57264.1.19",
        "build_config_digest",
        "build config digest",
    ),
    claim("1.3.6.1.4.1.57264.1.20", "build_trigger", "build trigger"),
    claim(
        "1.3.6.1.4.1.57264.1.21",
        "run_invocation_uri",
        "run invocation URI",
    ),
    claim(
        "1.3.6.1.4.1.57264.1.22",
        "source_repository_visibility_at_signing",
        "source repository visibility",
    ),
];

const fn claim(oid: &'static str, name: &'static str, label: &'static str) -> Claim {
    Claim { oid, name, label }
}

/// The claim with extension `oid`.
pub fn by_oid(oid: &str) -> Option<&'static Claim> {
    CLAIMS.iter().find(|c| c.oid == oid)
}

/// The claim called `name`.
pub fn by_name(name: &str) -> Option<&'static Claim> {
    CLAIMS.iter().find(|c| c.name == name)
}

/// What a verified Fulcio certificate says about who signed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CertIdentity {
    /// The SAN URIs and e-mails, in certificate order.
    pub subjects: Vec<String>,
    /// The OIDC issuer.
    pub issuer: String,
    /// The Fulcio claims present, by name.
    pub claims: BTreeMap<String, String>,
}

impl CertIdentity {
    /// The first SAN, as messages show the signer.
    pub fn subject(&self) -> &str {
        self.subjects
            .first()
            .map(String::as_str)
            .unwrap_or("an unnamed subject")
    }
}

impl std::fmt::Display for CertIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (issuer {})", self.subject(), self.issuer)
    }
}

/// A keyless signer as verified: the certificate's identity, the policy rule that
/// trusted it, and the time it was checked at (the log's integrated time).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Vouched {
    /// What the certificate says.
    pub certificate: CertIdentity,
    /// The rule that matched it.
    pub rule: Identity,
    /// The signing time the certificate was checked at (Unix seconds).
    pub signed_at: i64,
}

impl Vouched {
    /// The signing time, RFC 3339 (UTC).
    pub fn signed_at_rfc3339(&self) -> String {
        time::OffsetDateTime::from_unix_timestamp(self.signed_at)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| self.signed_at.to_string())
    }
}

impl std::fmt::Display for Vouched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.certificate.fmt(f)
    }
}

/// An identity a policy trusts for keyless signatures: the issuer and the subject, each
/// exact or by regexp (anchored: it must match the whole value), and optionally Fulcio
/// claims the certificate must carry (`source_repository_ref = "refs/heads/main"` or
/// `source_repository_ref_regexp = "refs/tags/v.*"`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The OIDC issuer, exact (`https://token.actions.githubusercontent.com`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer: String,
    /// Or a regular expression the whole issuer must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_regexp: Option<String>,
    /// The certificate's subject (SAN URI or e-mail), exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Or a regular expression the whole subject must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_regexp: Option<String>,
    /// Fulcio claims that must match: `<name>` exact or `<name>_regexp`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
}

/// Why an identity rule is not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Neither or both of the exact and regexp forms of a field.
    #[error("give exactly one of `{0}` and `{0}_regexp`")]
    OneOf(&'static str),
    /// A regexp does not compile.
    #[error("`{field}` = `{regexp}` does not compile: {reason}")]
    Regexp {
        /// The field.
        field: String,
        /// The regexp.
        regexp: String,
        /// The compiler's message.
        reason: String,
    },
    /// A claim that Fulcio does not issue.
    #[error("`{0}` is not a Fulcio certificate claim (known: {known})", known = CLAIMS.iter().map(|c| c.name).collect::<Vec<_>>().join(", "))]
    UnknownClaim(String),
    /// A claim given both exactly and by regexp.
    #[error("the claim `{0}` is given both exactly and as `{0}_regexp`")]
    ClaimTwice(String),
    /// Not a GitHub `OWNER/REPO`.
    #[error("`{0}` is not a GitHub repository (OWNER/REPO)")]
    GithubRepo(String),
    /// Not a workflow file name.
    #[error("`{0}` is not a workflow file (NAME.yml, or .github/workflows/NAME.yml)")]
    Workflow(String),
}

/// GitHub Actions' OIDC issuer.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// `s` with the regexp metacharacters escaped, so that it matches itself only.
pub fn regexp_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn compiles(field: &str, r: &str) -> Result<(), IdentityError> {
    regex_lite::Regex::new(&anchor(r))
        .map(|_| ())
        .map_err(|e| IdentityError::Regexp {
            field: field.to_owned(),
            regexp: r.to_owned(),
            reason: e.to_string(),
        })
}

pub(crate) fn anchor(r: &str) -> String {
    format!("^(?:{r})$")
}

fn one(exact: Option<&str>, regexp: Option<&str>, value: &str) -> bool {
    match (exact, regexp) {
        (Some(e), _) => e == value,
        (None, Some(r)) => regex_lite::Regex::new(&anchor(r)).is_ok_and(|re| re.is_match(value)),
        _ => false,
    }
}

impl Identity {
    /// Checks the identity is complete, its regexps compile and its claims are known.
    pub fn validate(&self) -> Result<(), IdentityError> {
        match (&self.subject, &self.subject_regexp) {
            (Some(_), None) => {}
            (None, Some(r)) => compiles("subject_regexp", r)?,
            _ => return Err(IdentityError::OneOf("subject")),
        }
        match (self.issuer.is_empty(), &self.issuer_regexp) {
            (false, None) => {}
            (true, Some(r)) => compiles("issuer_regexp", r)?,
            _ => return Err(IdentityError::OneOf("issuer")),
        }
        for (k, v) in &self.claims {
            let (name, regexp) = match k.strip_suffix("_regexp") {
                Some(n) => (n, true),
                None => (k.as_str(), false),
            };
            if by_name(name).is_none() {
                return Err(IdentityError::UnknownClaim(k.clone()));
            }
            if regexp {
                compiles(k, v)?;
                if self.claims.contains_key(name) {
                    return Err(IdentityError::ClaimTwice(name.to_owned()));
                }
            }
        }
        Ok(())
    }

    /// The rule for "signed by a GitHub Actions workflow of `repo` (OWNER/REPO)": GitHub's
    /// issuer; a signing workflow (the SAN, Fulcio's build signer) of that repository,
    /// `workflow` or any; and the run's source repository being that repository too.
    /// The last is what keeps a reusable workflow of `repo`, called from another
    /// repository, from signing as `repo`.
    pub fn github(repo: &str, workflow: Option<&str>) -> Result<Identity, IdentityError> {
        let name_ok = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        let Some((owner, name)) = repo
            .split_once('/')
            .filter(|(o, n)| name_ok(o) && name_ok(n))
        else {
            return Err(IdentityError::GithubRepo(repo.to_owned()));
        };
        let file = match workflow {
            None => None,
            Some(w) => {
                let f = w.strip_prefix(".github/workflows/").unwrap_or(w);
                if !name_ok(f) || !(f.ends_with(".yml") || f.ends_with(".yaml")) {
                    return Err(IdentityError::Workflow(w.to_owned()));
                }
                Some(f)
            }
        };
        let base = format!("https://github.com/{owner}/{name}");
        let workflow_part = match file {
            Some(f) => regexp_escape(f),
            None => "[^@]+".to_owned(),
        };
        Ok(Identity {
            issuer: GITHUB_ISSUER.to_owned(),
            subject_regexp: Some(format!(
                "{}/\\.github/workflows/{workflow_part}@.+",
                regexp_escape(&base)
            )),
            claims: [("source_repository_uri".to_owned(), base)].into(),
            ..Default::default()
        })
    }

    fn issuer_ok(&self, issuer: &str) -> bool {
        let exact = (!self.issuer.is_empty()).then_some(self.issuer.as_str());
        one(exact, self.issuer_regexp.as_deref(), issuer)
    }

    fn subject_ok(&self, subjects: &[String]) -> bool {
        subjects
            .iter()
            .any(|s| one(self.subject.as_deref(), self.subject_regexp.as_deref(), s))
    }

    /// The first claim the certificate does not satisfy: (claim, found, expected).
    fn claim_mismatch(&self, who: &CertIdentity) -> Option<(&'static Claim, String, String)> {
        for c in CLAIMS {
            let exact = self.claims.get(c.name).map(String::as_str);
            let regexp = self.claims.get(&format!("{}_regexp", c.name));
            if exact.is_none() && regexp.is_none() {
                continue;
            }
            let found = who.claims.get(c.name).cloned().unwrap_or_default();
            if !who.claims.contains_key(c.name) || !one(exact, regexp.map(String::as_str), &found) {
                let expected = match (exact, regexp) {
                    (Some(e), _) => format!("`{e}`"),
                    (_, Some(r)) => format!("/{r}/"),
                    _ => unreachable!("one of them is set"),
                };
                return Some((c, found, expected));
            }
        }
        None
    }

    /// Whether a certificate with this identity satisfies the rule.
    pub fn matches(&self, who: &CertIdentity) -> bool {
        self.issuer_ok(&who.issuer)
            && self.subject_ok(&who.subjects)
            && self.claim_mismatch(who).is_none()
    }

    fn shown_issuer(&self) -> String {
        match &self.issuer_regexp {
            Some(r) => format!("/{r}/"),
            None => self.issuer.clone(),
        }
    }
}

/// Checks that one of `identities` trusts `who`; else says what came closest: a claim
/// that differs, an issuer that differs, or an identity nobody trusts.
pub fn judge<'a>(
    identities: &'a [Identity],
    who: &CertIdentity,
) -> Result<&'a Identity, VerifyError> {
    if let Some(rule) = identities.iter().find(|i| i.matches(who)) {
        return Ok(rule);
    }
    let same_person: Vec<&Identity> = identities
        .iter()
        .filter(|i| i.subject_ok(&who.subjects))
        .collect();
    if let Some((c, found, expected)) = same_person
        .iter()
        .filter(|i| i.issuer_ok(&who.issuer))
        .find_map(|i| i.claim_mismatch(who))
    {
        return Err(VerifyError::Claim {
            subject: who.subject().to_owned(),
            claim: c.label,
            found,
            expected,
        });
    }
    if !same_person.is_empty() {
        return Err(VerifyError::Issuer {
            subject: who.subject().to_owned(),
            issuer: who.issuer.clone(),
            expected: same_person
                .iter()
                .map(|i| i.shown_issuer())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Err(VerifyError::Identity {
        subject: who.subject().to_owned(),
        issuer: who.issuer.clone(),
    })
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.subject, &self.subject_regexp) {
            (Some(s), _) => write!(f, "{s}")?,
            (_, Some(r)) => write!(f, "/{r}/")?,
            _ => write!(f, "?")?,
        }
        write!(f, " (issuer {})", self.shown_issuer())?;
        if !self.claims.is_empty() {
            let list: Vec<String> = self
                .claims
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            write!(f, " with {}", list.join(", "))?;
        }
        Ok(())
    }
}
