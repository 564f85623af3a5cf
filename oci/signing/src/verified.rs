//! What verification checks against: the leaf that every form of signature (classic,
//! bundle) and the dispatcher in [`crate::verify`] share.

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
