//! # wpkg-signing
//!
//! What a signature means and whether to trust it: cosign keys ([`keys`]), classic
//! `.sig` signatures ([`classic`]), cosign v3 bundles ([`bundle`]), keyless Sigstore
//! verification ([`keyless`]: Fulcio certificates, SCTs, Rekor entries, with
//! [`transparency`] proofs) and signing ([`keyless_sign`]), checking an image's
//! material against a trust scope ([`verify`]) with typed outcomes ([`error`]), and the trust policy file ([`trust`]).
//!
//! Imports `wpkg-spec`, `wpkg-store` (the cosign formats of attached artifacts) and
//! `wpkg-distribution` (HTTPS set-up for Fulcio and Rekor); nothing imports it but the
//! pipeline and the CLI. Knows nothing of wasmtime.
#![deny(missing_docs)]

pub mod bundle;
pub mod classic;
pub mod error;
pub mod keyless;
pub mod keyless_sign;
pub mod keys;
pub mod sigbundle;
pub mod timestamp;
pub mod transparency;
pub mod trust;
pub mod tuf;
pub mod verified;
pub mod verify;

#[cfg(test)]
mod tests;

pub use error::VerifyError;
pub use keys::{PrivateKey, PublicKey, SignatureError};
pub use verified::{KeyForm, Rejected, Signer};
pub use verify::{verify_material, Checked, Trusted};
