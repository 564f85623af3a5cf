//! # wpkg-pipeline
//!
//! The run pipeline as a library, one entry point per step, for any front end (the
//! `wpkg` CLI, a containerd shim, an embedding):
//!
//! ```text
//! resolve (store or registry) → admit (digests, signature, trust policy → VerifiedArtifact)
//!   → prepare (capabilities narrowed by the operator → RunPlan, wasm, bundled files)
//!   → execute (runner: a command run, or an HTTP server)
//! ```
//!
//! Only [`admit`] constructs a [`VerifiedArtifact`], and only a [`Prepared`] made from
//! one can be executed, so a run without verification cannot be written by mistake: the
//! CLI does not depend on `wpkg-runner` at all.
//!
//! Also here, because the CLI must hold no store or trust logic: building a project into
//! the store ([`project`]), signing into the store and pushing with signatures
//! ([`publish`]). This crate prints nothing and names no command-line flag; front ends
//! word their own hints from the typed [`Error`].
#![deny(missing_docs)]

mod error;
pub mod execute;
pub mod home;
pub mod project;
pub mod publish;
pub mod resolve;
pub mod verify;

pub use error::Error;
pub use execute::{prepare, Prepared, ServeOptions};
pub use home::Home;
pub use resolve::{resolve, PullPolicy, Resolved};
pub use verify::{
    admit, admit_unverified, Admitted, Basis, Refusal, TrustSettings, UnverifiedArtifact,
    VerifiedArtifact,
};
pub use wpkg_runner::{timings, Error as RunnerError, Event, Observer, Outcome};
