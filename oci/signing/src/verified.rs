//! What verification checks against and what it finds: what a scope trusts
//! ([`Trusted`]), who signed ([`Signer`]) and which signatures did not verify
//! ([`Rejected`]), shared by every form of signature (classic, bundle) and the
//! dispatcher in [`crate::verify`].

use crate::error::VerifyError;

use crate::keys::PublicKey;

/// What a scope trusts: keys, and keyless identities under a Sigstore trust root.
pub struct Trusted<'a> {
    /// Public keys.
    pub keys: &'a [PublicKey],
    /// Keyless identities.
    pub identities: &'a [crate::keyless::Identity],
    /// The trust root for keyless signatures (loaded only when one is present).
    pub root: &'a dyn Fn() -> Result<crate::keyless::TrustedRoot, String>,
}

/// How a key signature is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyForm {
    /// A classic `.sig` manifest (simple signing).
    Classic,
    /// A sigstore bundle referrer.
    Bundle,
}

impl std::fmt::Display for KeyForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyForm::Classic => "classic",
            KeyForm::Bundle => "bundle",
        })
    }
}

/// Who signed, as checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signer {
    /// A key, by SHA-256 fingerprint of its public key.
    Key {
        /// How the signature is attached.
        form: KeyForm,
        /// The fingerprint (hex).
        fingerprint: String,
    },
    /// A keyless certificate, and the rule that trusted it.
    Keyless(crate::keyless::Vouched),
}

impl std::fmt::Display for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::Key { form, fingerprint } => {
                write!(f, "{form} signature by key sha256:{fingerprint}")
            }
            Signer::Keyless(id) => write!(f, "keyless signature by {id}"),
        }
    }
}

/// One signature that did not verify, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// Its place among the image's signatures (1-based).
    pub number: usize,
    /// A sigstore bundle (else a classic `.sig` signature).
    pub bundle: bool,
    /// Why.
    pub error: VerifyError,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.bundle { " (bundle)" } else { "" };
        write!(f, "signature {}{kind}: {}", self.number, self.error)
    }
}
