//! # wpkg-store
//!
//! Where artifacts live on one machine: the local content store (an OCI image layout
//! with atomic writes, a lock on the index, digests checked on every write and read,
//! each tag's [`Origin`]), assembling a Wasm OCI artifact from a `.wasm` and its
//! `wpkg.toml` and reading one back ([`artifact`]), archives ([`archive`]), and
//! artifacts attached to an image ([`associated`]: cosign tag names, referrers).
//!
//! The bottom of the OCI stack: it imports only `wpkg-spec`. It knows nothing of
//! registries (`wpkg-distribution`), signatures (`wpkg-signing`) or wasmtime.
#![deny(missing_docs)]

use std::path::PathBuf;

// These modules touch only paths wpkg chose (blobs by validated digest, the index, the
// operator's project); what content from outside names goes through
// `unpack` and `image`, which use wpkg-fsroot (clippy.toml bans std::fs there).
pub mod archive;
#[allow(clippy::disallowed_methods)]
pub mod artifact;
pub mod associated;
pub mod digest;
#[allow(clippy::disallowed_methods)]
mod gc;
pub mod image;
// The index and the layout touch only paths wpkg chose (index.json, blobs by digest).
#[allow(clippy::disallowed_methods)]
mod index;
#[allow(clippy::disallowed_methods)]
pub mod layout;
pub mod unpack;
mod wasm;

pub use digest::sha256_digest;
pub use index::Listed;
pub use layout::{IndexLock, Origin, Store, StoredImage, Summary};

/// Errors of the store and of artifacts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system operation failed.
    #[error("{}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A digest string is malformed.
    #[error("invalid digest `{0}`: expected `sha256:` and 64 lowercase hex digits")]
    InvalidDigest(String),
    /// Content does not match the digest it should have.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What the descriptor said.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// Content does not have the size its descriptor says.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The blob.
        digest: String,
        /// What the descriptor said.
        expected: u64,
        /// What was read.
        actual: u64,
    },
    /// A blob in the store no longer matches its name.
    #[error("blob {digest} in the local store is corrupt (its content hashes to {actual})")]
    CorruptBlob {
        /// The blob's name.
        digest: String,
        /// What its content hashes to.
        actual: String,
    },
    /// A blob the store should have is missing.
    #[error("blob {0} is missing from the local store; build or pull the image again")]
    BlobMissing(String),
    /// The store's own files are damaged.
    #[error("the local store at {} is damaged: {reason}", path.display())]
    CorruptStore {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No image has that reference.
    #[error("no image `{0}` in the local store")]
    NotFound(String),
    /// A manifest or config does not parse or is inconsistent.
    #[error("artifact {digest} is malformed: {reason}")]
    BadManifest {
        /// The manifest's digest.
        digest: String,
        /// What is wrong.
        reason: String,
    },
    /// The artifact is not a Wasm artifact.
    #[error("not a Wasm artifact: {what}")]
    NotWasm {
        /// What it is instead.
        what: String,
    },
    /// The wasm file is not usable.
    #[error("`{path}` is not usable: {reason}")]
    BadWasm {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A bundled file or directory cannot be packed.
    #[error("cannot bundle {}: {reason}", path.display())]
    Files {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A layer of a container image has an entry that could write outside its files.
    #[error("layer {layer} has an unsafe entry `{path}` ({reason}); nothing was extracted")]
    UnsafeLayer {
        /// The layer digest.
        layer: String,
        /// The entry's path.
        path: String,
        /// What makes it unsafe.
        reason: String,
    },
    /// Unpacking would produce more than the limit allows.
    #[error("{what} unpacks to more than {limit} bytes; nothing was extracted")]
    TooLarge {
        /// The layer or file.
        what: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// A layer's entry cannot be applied inside the directory being built.
    #[error("cannot apply layer {layer}; nothing was extracted")]
    Unpack {
        /// The layer digest.
        layer: String,
        /// Why (the path inside the image).
        source: wpkg_fsroot::Error,
    },
    /// A file wpkg unpacked earlier no longer has the digest it had then.
    #[error("`{path}` in {} changed since it was unpacked", dir.display())]
    DerivedChanged {
        /// The unpacked directory.
        dir: PathBuf,
        /// The file, in the image.
        path: String,
    },
    /// An archive names its image by a bare tag, and no repository was given.
    #[error(
        "cannot load the archive: it names its image only by the tag `{tag}`; nothing was stored"
    )]
    ArchiveNeedsName {
        /// The tag.
        tag: String,
    },
    /// An archive given to `wpkg load` is damaged or not an OCI layout.
    #[error("cannot load the archive: {0}; nothing was stored")]
    BadArchive(String),
    /// A reference in an archive does not parse.
    #[error(transparent)]
    Reference(#[from] wpkg_spec::reference::ReferenceError),
}
