//! One module per capability, each the same shape: `validate` (host-side checks,
//! callable without running anything) and `apply` (grants exactly what the plan says,
//! on a context that starts empty). What the manifest declares and how the operator
//! narrows it live in `wpkg-spec` (`manifest`, `plan`); how a capability is described in
//! plain words is `ArtifactCapabilities::describe`. The [`RunPlan`] is the only input:
//! nothing here reads flags, files of the operator's or the environment.
//!
//! | capability | module |
//! |---|---|
//! | environment | [`env`] |
//! | bundled files, mounts | [`files`] |
//! | sockets, DNS (never granted) | [`network`] |
//! | outbound HTTP (allow-list, resolution, private addresses, client) | [`outbound`] |
//! | memory, time, pool sizing | [`limits`] |
//! | `wasi:config` (declared keys) | [`config`] |
//! | `wasi:keyvalue` (declared stores, embedded or Redis) | [`keyvalue`] |
//! | `wasi:nn` (bundled ONNX models, by name) | [`nn`] |
//!
//! The last three are plug-ins of [`crate::host`]: each implements
//! [`crate::host::Capability`] and is linked only when the plan grants it.
//!
//! [`RunPlan`]: wpkg_spec::plan::RunPlan

pub mod config;
pub mod env;
pub mod files;
pub mod keyvalue;
pub mod limits;
pub mod network;
pub mod nn;
pub mod outbound;
