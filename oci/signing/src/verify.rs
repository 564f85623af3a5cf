//! Checking an image's signature material against what a trust scope trusts: keys and
//! keyless identities. The first signature that verifies wins; the others are reported.

use wpkg_store::associated::Material;

use crate::bundle::verify_bundle_trusted;
use crate::classic::{verify_classic, verify_classic_cert};
pub use crate::verified::Trusted;
pub use crate::verified::{Rejected, Signer};

/// The outcome of checking every signature of an image.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The first signature that verified, if any.
    pub signer: Option<Signer>,
    /// Every signature that did not verify (checked before the one that did).
    pub rejected: Vec<Rejected>,
}

/// Checks the signatures for `manifest_digest` against what is trusted, classic ones
/// first, in order, until one verifies.
pub fn verify_material(
    material: &Material,
    manifest_digest: &str,
    trusted: &Trusted<'_>,
) -> Checked {
    let mut rejected = Vec::new();
    let mut reject = |bundle: bool, error| {
        let number = rejected.len() + 1;
        rejected.push(Rejected {
            number,
            bundle,
            error,
        })
    };
    for s in &material.classic {
        let r = match &s.certificate {
            Some(cert) => verify_classic_cert(s, cert, manifest_digest, trusted),
            None => verify_classic(s, manifest_digest, trusted.keys),
        };
        match r {
            Ok(signer) => {
                return Checked {
                    signer: Some(signer),
                    rejected,
                }
            }
            Err(e) => reject(false, e),
        }
    }
    for b in &material.bundles {
        match verify_bundle_trusted(b, manifest_digest, trusted) {
            Ok(signer) => {
                return Checked {
                    signer: Some(signer),
                    rejected,
                }
            }
            Err(e) => reject(true, e),
        }
    }
    Checked {
        signer: None,
        rejected,
    }
}
