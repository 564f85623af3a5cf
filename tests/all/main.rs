//! wpkg's end-to-end tests: one binary, one module per area.

mod archive;
mod build;
mod capabilities;
mod cli_output;
mod containerd;
mod demo;
mod docker_wasm;
mod faults;
mod fs_edge;
mod fuzz_replay;
mod guide;
mod hostile;
mod http;
mod image_format;
mod interop;
mod keyless;
mod keyless_interop;
mod keyless_refusals;
mod manifest_ui;
mod registry;
mod release;
mod run;
mod soak;
mod store;
mod templates;
mod trust;
