//! Checking an image's signature material against what a trust scope trusts: keys and
//! keyless identities. The first signature that verifies wins; otherwise every reason.

use wpkg_store::associated::Material;

use crate::bundle::verify_bundle_trusted;
use crate::classic::{verify_classic, verify_classic_cert};
pub use crate::verified::{Trusted, Verified};

/// Checks every signature for `manifest_digest` against what is trusted: the first
/// that verifies wins; otherwise every reason, numbered.
pub fn verify_material(
    material: &Material,
    manifest_digest: &str,
    trusted: &Trusted<'_>,
) -> Result<Verified, Vec<String>> {
    let mut why = Vec::new();
    for s in &material.classic {
        let r = match &s.certificate {
            Some(cert) => verify_classic_cert(s, cert, manifest_digest, trusted),
            None => verify_classic(s, manifest_digest, trusted.keys),
        };
        match r {
            Ok(v) => return Ok(v),
            Err(e) => why.push(format!("signature {}: {e}", why.len() + 1)),
        }
    }
    for b in &material.bundles {
        match verify_bundle_trusted(b, manifest_digest, trusted) {
            Ok(v) => return Ok(v),
            Err(e) => why.push(format!("signature {} (bundle): {e}", why.len() + 1)),
        }
    }
    Err(why)
}
