//! # wpkg-spec
//!
//! The pure types of wpkg: the `wpkg.toml` capability manifest and its typed values,
//! outbound HTTP patterns and their matching, OCI media types and the Wasm artifact
//! config, and references. No I/O, no async, no wasmtime, no registry: this crate
//! must build for wasm32 too.
#![deny(missing_docs)]

pub mod config;
pub mod digest;
pub mod image;
pub mod keyvalue;
pub mod manifest;
pub mod media;
pub mod nn;
pub mod outbound;
pub mod plan;
pub mod reference;
pub mod units;

pub use digest::Digest;
pub use manifest::{ArtifactCapabilities, Manifest, ManifestError};
pub use reference::Reference;
