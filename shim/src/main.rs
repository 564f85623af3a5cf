//! `containerd-shim-wpkg-v1`: the containerd shim (runtime `io.containerd.wpkg.v1`) that
//! runs images made by `wpkg build --format image` with exactly the permissions their
//! signed capabilities declare — the same plan and the same runner as `wpkg run`.
//!
//! Built on runwasi's `containerd-shim-wasm`: it creates the container (namespaces,
//! cgroup, rootfs, volumes) and calls [`sandbox::WpkgSandbox`] inside it. What the
//! guest gets is decided there ([`grant`]): nothing that the capabilities do not name.
//!
//! One more guard, [`guard`]: runwasi runs a container whose entry is a Linux program
//! as a Linux container. A wpkg runtime must not, so the shim's container processes
//! cannot `exec` at all.
#![deny(missing_docs)]

use containerd_shim_wasm::shim::{version, Cli, Config, Shim, Version};

mod grant;
#[allow(clippy::disallowed_methods)] // containerd's state and /proc, outside any image
mod guard;
mod kernel;
mod node;
mod sandbox;

/// The shim, as runwasi knows it.
struct WpkgShim;

impl Shim for WpkgShim {
    type Sandbox = sandbox::WpkgSandbox;

    /// `wpkg`; in a container's init process that refused the container, the reason
    /// (see [`sandbox::reported_name`]).
    fn name() -> &'static str {
        sandbox::reported_name()
    }

    fn version() -> Version {
        version!()
    }

    /// None: runwasi would hand raw Wasm layers to the sandbox instead of the
    /// container's files; wpkg images carry the wasm and its capabilities as files.
    fn supported_layers_types() -> &'static [&'static str] {
        &[]
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Err(e) = guard::install(&args) {
        eprintln!("containerd-shim-wpkg-v1: cannot install the no-exec guard: {e}");
        std::process::exit(1);
    }
    WpkgShim::run(Config {
        default_log_level: "info".to_owned(),
        ..Default::default()
    });
}
