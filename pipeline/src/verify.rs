//! Step 2: may this image run? Digests are checked by the store on every read; here
//! the signature is checked against the trust policy, and only this module can make
//! the [`VerifiedArtifact`] the later steps require.

use std::path::{Path, PathBuf};

use wpkg_signing::keyless::TrustedRoot;
use wpkg_signing::trust::Policy;
use wpkg_signing::verify::Trusted;
use wpkg_signing::PublicKey;
use wpkg_spec::media::Descriptor;
use wpkg_spec::Reference;
use wpkg_store::associated::Material;
use wpkg_store::image::Content;
use wpkg_store::Store;

use crate::Error;

/// Where trust comes from.
#[derive(Clone, Debug)]
pub struct TrustSettings {
    /// The trust policy file.
    pub policy: PathBuf,
    /// A Sigstore `trusted_root.json` that overrides the policy's and the shipped
    /// public-good root.
    pub trusted_root: Option<PathBuf>,
    /// The TUF repository whose cached trust root replaces the shipped one.
    pub tuf: Option<TufSource>,
}

/// A TUF repository for the trust root: where its verified targets are cached
/// (`Home::tuf_cache`), its URL, and the TUF root metadata to start from.
#[derive(Clone, Debug)]
pub struct TufSource {
    /// The cache directory.
    pub cache: PathBuf,
    /// The repository URL.
    pub url: String,
    /// The initial TUF root (JSON).
    pub root: Vec<u8>,
}

/// The trust root file to use: `explicit` when given; else the root that `wpkg trust
/// update-root` cached from `tuf` (refreshed first when its TUF metadata has expired; if
/// that refresh fails, the cached copy, which verified when it was fetched, is used);
/// else `None`, the root shipped with wpkg.
pub fn trusted_root_file(explicit: Option<&Path>, tuf: Option<&TufSource>) -> Option<PathBuf> {
    use wpkg_signing::tuf as t;
    if let Some(f) = explicit {
        return Some(f.to_owned());
    }
    let tuf = tuf?;
    let (path, expires) = t::cached(&tuf.cache, &tuf.url)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if expires < now {
        if let Ok(r) = t::update(&tuf.cache, &tuf.url, &tuf.root, &[]) {
            return Some(r.trusted_root);
        }
    }
    Some(path)
}

/// What decided trust for one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustSource {
    /// Keys or keyless identities the caller gave explicitly.
    Given,
    /// The policy scope with this pattern.
    Scope(String),
}

impl std::fmt::Display for TrustSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrustSource::Given => f.write_str("the keys and identities given"),
            TrustSource::Scope(s) => write!(f, "trust policy scope `{s}`"),
        }
    }
}

/// Why an image is not trusted.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Refusal {
    /// No scope of the policy covers the name.
    #[error("no trust policy scope covers `{name}` (policy: {})", policy.display())]
    NoScope {
        /// The repository, as people write it.
        name: String,
        /// The policy file.
        policy: PathBuf,
        /// The scope a user would most likely add (`ghcr.io/acme/*`).
        suggested_scope: String,
    },
    /// The image has no signature at all.
    #[error("it has no signature (no `{signature_tag}` tag and no cosign bundle referrers)")]
    Unsigned {
        /// The classic signature tag that was looked for.
        signature_tag: String,
    },
    /// Signatures exist; none verifies.
    #[error("no signature verifies under {source_of_trust}: {}", rejected.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("; "))]
    NoneVerifies {
        /// What was trusted.
        source_of_trust: TrustSource,
        /// Each signature and the check it failed.
        rejected: Vec<Rejected>,
    },
}

pub use wpkg_signing::{Rejected, Signer};

/// A signature that verified.
#[derive(Clone, Debug)]
pub struct Verification {
    /// The repository, as people write it.
    pub name: String,
    /// The manifest digest.
    pub digest: String,
    /// Who signed it.
    pub signer: Signer,
    /// What trusted the signer.
    pub source_of_trust: TrustSource,
    /// Signatures checked before the one that verified, and why each did not.
    pub rejected: Vec<Rejected>,
}

impl std::fmt::Display for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, digest, source) = (&self.name, &self.digest, &self.source_of_trust);
        write!(f, "verified {name}@{digest}: {} ({source})", self.signer)
    }
}

fn shown_name(reference: &Reference) -> String {
    Reference {
        tag: None,
        digest: None,
        ..reference.clone()
    }
    .familiar()
}

/// The scope a user would add to trust `r`'s publisher: the parent path with `/*`,
/// or the repository itself for Docker Hub's official images.
pub fn suggest_scope(r: &Reference) -> String {
    let official = r.registry == wpkg_spec::reference::DEFAULT_REGISTRY
        && r.repository.starts_with("library/")
        && r.repository.matches('/').count() == 1;
    let bare = |repository: String| {
        Reference {
            repository,
            tag: None,
            digest: None,
            ..r.clone()
        }
        .familiar_name()
    };
    match r.repository.rsplit_once('/').filter(|_| !official) {
        Some((parent, _)) => {
            let parent = bare(format!("{parent}/x"));
            format!("{}*", parent.strip_suffix('x').unwrap_or(&parent))
        }
        None => bare(r.repository.clone()),
    }
}

/// Loads a Sigstore `trusted_root.json`, or the public-good root shipped with wpkg.
pub fn load_trusted_root(file: Option<&std::path::Path>) -> Result<TrustedRoot, Error> {
    match file {
        Some(f) => {
            let bad = |reason: String| Error::TrustRoot {
                path: f.to_owned(),
                reason,
            };
            let bytes = std::fs::read(f).map_err(|e| bad(format!("cannot read it: {e}")))?;
            TrustedRoot::from_json(&bytes).map_err(|e| bad(e.to_string()))
        }
        None => Ok(TrustedRoot::public_good()),
    }
}

/// Checks signature `material` for `digest` under `keys` (when given) or else the
/// policy scope that covers `reference`. `Ok(Err(_))` is a refusal; `Err` a failure to
/// check at all (an unreadable policy, say).
pub fn check_signatures(
    material: &Material,
    reference: &Reference,
    digest: &str,
    keys: &[PublicKey],
    identities: &[wpkg_signing::keyless::Identity],
    trust: &TrustSettings,
) -> Result<Result<Verification, Refusal>, Error> {
    let name = shown_name(reference);
    let policy = Policy::load(&trust.policy)?;
    let (keys, identities, source_of_trust) = if keys.is_empty() && identities.is_empty() {
        match policy.scope_for(&reference.name()) {
            Some(s) => (
                s.public_keys().map_err(|reason| Error::ScopeKeys {
                    scope: s.scope.clone(),
                    reason,
                })?,
                s.keyless.clone(),
                TrustSource::Scope(s.scope.clone()),
            ),
            None => {
                return Ok(Err(Refusal::NoScope {
                    name,
                    policy: trust.policy.clone(),
                    suggested_scope: suggest_scope(reference),
                }))
            }
        }
    } else {
        (keys.to_vec(), identities.to_vec(), TrustSource::Given)
    };
    if material.is_empty() {
        return Ok(Err(Refusal::Unsigned {
            signature_tag: wpkg_store::associated::signature_tag(digest),
        }));
    }
    let root_file = trusted_root_file(
        trust
            .trusted_root
            .as_deref()
            .or(policy.trusted_root.as_deref()),
        trust.tuf.as_ref(),
    );
    let root = move || load_trusted_root(root_file.as_deref()).map_err(|e| e.to_string());
    let trusted = Trusted {
        keys: &keys,
        identities: &identities,
        root: &root,
    };
    let checked = wpkg_signing::verify_material(material, digest, &trusted);
    Ok(match checked.signer {
        Some(signer) => Ok(Verification {
            name,
            digest: digest.to_owned(),
            signer,
            source_of_trust,
            rejected: checked.rejected,
        }),
        None => Err(Refusal::NoneVerifies {
            source_of_trust,
            rejected: checked.rejected,
        }),
    })
}

/// Checks a sigstore bundle for a file (its SHA-256) against `keys` or keyless
/// `identities` under the trust root `trusted_root` (else the shipped public-good
/// root): `verify-blob`. `Ok(Err(_))` is "not verified"; `Err` a failure to check.
pub fn check_blob(
    bundle: &[u8],
    sha256: [u8; 32],
    keys: &[PublicKey],
    identities: &[wpkg_signing::keyless::Identity],
    trusted_root: Option<&std::path::Path>,
    tuf: Option<&TufSource>,
) -> Result<Result<Signer, wpkg_signing::VerifyError>, Error> {
    if keys.is_empty() && identities.is_empty() {
        return Err(Error::NothingTrusted);
    }
    if trusted_root.is_some() {
        load_trusted_root(trusted_root)?;
    }
    let file = trusted_root_file(trusted_root, tuf);
    let root = move || load_trusted_root(file.as_deref()).map_err(|e| e.to_string());
    let trusted = Trusted {
        keys,
        identities,
        root: &root,
    };
    let expect = wpkg_signing::sigbundle::Expect {
        sha256,
        predicate: None,
    };
    Ok(wpkg_signing::sigbundle::verify(bundle, &expect, &trusted))
}

/// Why a verified image may run.
#[derive(Clone, Debug)]
pub enum Basis {
    /// Built on this machine: it needs no signature.
    Local,
    /// A signature verified under the trust policy.
    Signed(Box<Verification>),
}

/// An image that may run: its digest was resolved, its signature (for pulled or loaded
/// images) verified, and its manifest and config read back with every digest checked.
/// Only [`admit`] makes one.
#[derive(Debug)]
pub struct VerifiedArtifact {
    reference: Reference,
    descriptor: Descriptor,
    content: Content,
    basis: Basis,
}

/// An image from elsewhere that the operator chose to run without checking its
/// signature (`--insecure-skip-verify`): resolved and digest-checked like a verified
/// one, but nothing vouches for it. Only [`admit_unverified`] makes one.
#[derive(Debug)]
pub struct UnverifiedArtifact {
    reference: Reference,
    descriptor: Descriptor,
    content: Content,
}

impl UnverifiedArtifact {
    /// The reference it was resolved from.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }
    /// The manifest descriptor (the digest that will run).
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }
}

/// What may be prepared and run: verified, or explicitly unverified.
#[derive(Debug)]
pub enum Admitted {
    /// Built here, or a signature verified.
    Verified(VerifiedArtifact),
    /// The operator skipped verification of an image from elsewhere.
    Unverified(UnverifiedArtifact),
}

impl Admitted {
    /// The reference it was resolved from.
    pub fn reference(&self) -> &Reference {
        match self {
            Admitted::Verified(v) => &v.reference,
            Admitted::Unverified(u) => &u.reference,
        }
    }
    /// The manifest, config and layers, in the image's layout.
    pub fn content(&self) -> &Content {
        match self {
            Admitted::Verified(v) => &v.content,
            Admitted::Unverified(u) => &u.content,
        }
    }
}

impl VerifiedArtifact {
    /// The reference it was resolved from.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }
    /// The manifest descriptor (the digest that was verified).
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }
    /// The manifest, config and layers, in the image's layout.
    pub fn content(&self) -> &Content {
        &self.content
    }
    /// Why it may run.
    pub fn basis(&self) -> &Basis {
        &self.basis
    }
}

/// Decides whether the image `desc` (resolved from `reference`) may run: images that
/// came only from elsewhere (pulled, or loaded from an archive; not built here) need a
/// signature that verifies under `trust`. Then loads exactly the digest that was checked.
pub fn admit(
    store: &Store,
    reference: &Reference,
    desc: &Descriptor,
    trust: &TrustSettings,
) -> Result<VerifiedArtifact, Error> {
    let basis = if !store.needs_signature(&desc.digest)? {
        Basis::Local
    } else {
        let material = store.signatures(&desc.digest)?;
        match check_signatures(&material, reference, &desc.digest, &[], &[], trust)? {
            Ok(v) => Basis::Signed(Box::new(v)),
            Err(refusal) => {
                return Err(Error::NotVerified {
                    reference: reference.familiar(),
                    digest: desc.digest.clone(),
                    source: refusal,
                })
            }
        }
    };
    let content = wpkg_store::image::load_any(store, desc)?;
    Ok(VerifiedArtifact {
        reference: reference.clone(),
        descriptor: desc.clone(),
        content,
        basis,
    })
}

/// The operator's explicit way out: admits the image `desc` without checking any
/// signature. An image built here is still [`Admitted::Verified`] (it needs none); one
/// from elsewhere is [`Admitted::Unverified`], so that the caller says so.
pub fn admit_unverified(
    store: &Store,
    reference: &Reference,
    desc: &Descriptor,
) -> Result<Admitted, Error> {
    let content = wpkg_store::image::load_any(store, desc)?;
    Ok(if store.needs_signature(&desc.digest)? {
        Admitted::Unverified(UnverifiedArtifact {
            reference: reference.clone(),
            descriptor: desc.clone(),
            content,
        })
    } else {
        Admitted::Verified(VerifiedArtifact {
            reference: reference.clone(),
            descriptor: desc.clone(),
            content,
            basis: Basis::Local,
        })
    })
}
