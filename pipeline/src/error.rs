//! The pipeline's errors: one variant per thing that can go wrong, with the facts a
//! front end needs to word a fix. Messages never repeat their source; the source is
//! the next link of the chain.

use std::path::PathBuf;

use crate::verify::Refusal;

/// Why a pipeline step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The local store or an artifact in it.
    #[error(transparent)]
    Store(#[from] wpkg_store::Error),
    /// The runner (compiling, linking, granting a capability).
    #[error(transparent)]
    Runner(#[from] wpkg_runner::Error),
    /// The operator's request does not fit what the artifact declares.
    #[error(transparent)]
    Plan(#[from] wpkg_spec::plan::PlanError),
    /// The trust policy file.
    #[error(transparent)]
    Policy(#[from] wpkg_signing::trust::TrustError),
    /// A project's `wpkg.toml` cannot be read.
    #[error("cannot read {}", path.display())]
    ManifestUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A project's `wpkg.toml` is invalid.
    #[error("{} is invalid", path.display())]
    ManifestInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: wpkg_spec::manifest::ManifestError,
    },
    /// The package version cannot serve as a tag.
    #[error("the package version `{version}` is not a valid tag")]
    VersionNotATag {
        /// The version.
        version: String,
    },
    /// The project's build command could not start.
    #[error("cannot start the build command `{command}`")]
    BuildCommandStart {
        /// The command.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// The project's build command failed.
    #[error("the build command `{command}` failed ({status}); nothing was written")]
    BuildCommandFailed {
        /// The command.
        command: String,
        /// How it ended.
        status: std::process::ExitStatus,
    },
    /// The `package.wasm` file cannot be read.
    #[error("cannot read the wasm file {} (package.wasm)", path.display())]
    WasmUnreadable {
        /// The file.
        path: PathBuf,
        /// Whether the manifest has a build command.
        has_build_command: bool,
        /// Why.
        source: std::io::Error,
    },
    /// Packing the artifact failed; nothing was stored.
    #[error("nothing was written")]
    Pack(#[source] wpkg_store::Error),
    /// The reference names no registry (`localhost/...` without a port).
    #[error("`{reference}` is a local-only name (`localhost/...`)")]
    LocalOnly {
        /// The reference, as the user wrote it.
        reference: String,
        /// Its repository, for a suggestion.
        repository: String,
    },
    /// A pull failed.
    #[error("cannot pull {reference}")]
    Pull {
        /// The reference.
        reference: String,
        /// Why.
        source: Box<wpkg_distribution::transfer::TransferError>,
    },
    /// A push failed.
    #[error("cannot push {reference}")]
    Push {
        /// The reference.
        reference: String,
        /// Why.
        source: Box<wpkg_distribution::transfer::TransferError>,
    },
    /// The image was pushed, its signatures were not.
    #[error(
        "pushed {reference} ({digest}), but not its signatures: it is in the registry UNSIGNED"
    )]
    PushedUnsigned {
        /// The reference.
        reference: String,
        /// The manifest digest.
        digest: String,
        /// Why.
        source: Box<wpkg_distribution::transfer::TransferError>,
    },
    /// Reading signatures from a registry failed.
    #[error("cannot read the signatures of {reference}")]
    Signatures {
        /// The reference.
        reference: String,
        /// Why.
        source: Box<wpkg_distribution::transfer::TransferError>,
    },
    /// The registry could not be asked about an image.
    #[error("cannot verify {reference}")]
    RemoteManifest {
        /// The reference.
        reference: String,
        /// Why.
        source: Box<wpkg_distribution::registry::RegistryError>,
    },
    /// A Sigstore trusted root file cannot be read or parsed.
    #[error("trust root {}: {reason}", path.display())]
    TrustRoot {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A scope's keys in the policy cannot be read.
    #[error("trust policy scope `{scope}`: {reason}")]
    ScopeKeys {
        /// The scope.
        scope: String,
        /// Why.
        reason: String,
    },
    /// A blob check was asked with no key and no keyless identity to check against.
    #[error("nothing to verify against: no public key and no keyless identity was given")]
    NothingTrusted,
    /// A pulled image has no signature that verifies under the policy.
    #[error("refusing to run {reference} ({digest})")]
    NotVerified {
        /// The reference.
        reference: String,
        /// The manifest digest.
        digest: String,
        /// Why.
        source: Refusal,
    },
    /// A hosts file for outbound name resolution cannot be read.
    #[error("cannot read the hosts file {}", path.display())]
    HostsFileUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A hosts file for outbound name resolution does not parse.
    #[error("{}: {reason}", path.display())]
    HostsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A config file cannot be read.
    #[error("cannot read config file {}", path.display())]
    ConfigFileUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A config file is not a TOML table of strings.
    #[error("config file {}: {reason}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An HTTP handler was given command-line arguments.
    #[error("an HTTP handler takes no arguments")]
    HttpTakesNoArgs,
    /// More than one worker process was asked for a plan that must be served from one.
    #[error("cannot serve from {asked} worker processes: {reason}")]
    WorkersNeedOneProcess {
        /// How many were asked for.
        asked: usize,
        /// Why one (what the plan opens).
        reason: &'static str,
    },
    /// A container image names no program.
    #[error("the image names no program (no Entrypoint or Cmd)")]
    NoEntry,
    /// The image's entry names an exported function (runwasi's `path#function`).
    #[error("the image's entry `{path}#{function}` names a function; wpkg runs a component's `wasi:cli/run` or a module's `_start`")]
    EntryFunction {
        /// The wasm path.
        path: String,
        /// The function.
        function: String,
    },
    /// The image's entry is not a usable wasm file of the image.
    #[error("the image's entry `{path}` is not usable: {reason}")]
    BadEntry {
        /// The path, as the image names it.
        path: String,
        /// Why.
        reason: String,
    },
    /// An image carries wpkg capabilities in its files that cannot be used.
    #[error("the image's capabilities ({file}) are not usable: {reason}")]
    EmbeddedCapabilities {
        /// The file, as the image names it.
        file: &'static str,
        /// Why.
        reason: String,
    },
    /// A command run was asked of an HTTP handler.
    #[error("the artifact is an HTTP handler (trigger `http`), not a command")]
    NotACommand,
    /// Keyless signing failed.
    #[error("keyless signing failed")]
    Keyless(#[source] Box<wpkg_signing::keyless_sign::KeylessError>),
}
