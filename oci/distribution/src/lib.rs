//! # wpkg-distribution
//!
//! Talking to OCI registries: the distribution protocol client ([`registry`]: auth,
//! TLS, retries, manifests, blobs, referrers), Docker-compatible credentials
//! ([`credentials`]: `config.json`, credential helpers, CI variables), and moving images
//! and their attached signatures between a registry and the local store ([`transfer`]),
//! every digest checked.
//!
//! Imports `wpkg-spec` and `wpkg-store`; knows nothing of what a signature means
//! (`wpkg-signing`) or of wasmtime.
#![deny(missing_docs)]

pub mod credentials;
pub mod registry;
pub mod transfer;
