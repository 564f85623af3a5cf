//! Files: bundled directories (always read-only) and operator mounts (read-only or
//! read-write as planned). No other preopen exists; `..` and symlinks cannot leave a
//! preopen (cap-std resolves every path beneath its directory).

use std::path::{Path, PathBuf};

use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wpkg_spec::manifest::Access;
use wpkg_spec::plan::RunPlan;

use crate::Error;

/// Checks that every mount names an existing host directory and that the bundled
/// files were extracted.
pub fn validate(plan: &RunPlan, bundled_root: Option<&Path>) -> Result<(), Error> {
    for m in &plan.mounts {
        if !Path::new(&m.host).is_dir() {
            return Err(Error::MountNotADirectory {
                host: m.host.clone(),
                guest: m.guest.to_string(),
            });
        }
    }
    for g in &plan.bundled {
        if !bundled_root.is_some_and(|root| host_dir(root, g.as_str()).is_dir()) {
            return Err(Error::BundledMissing {
                guest: g.to_string(),
            });
        }
    }
    Ok(())
}

fn host_dir(root: &Path, guest: &str) -> PathBuf {
    root.join(guest.trim_start_matches('/'))
}

/// Preopens the bundled directories read-only and the mounts as planned.
pub fn apply(
    plan: &RunPlan,
    bundled_root: Option<&Path>,
    builder: &mut WasiCtxBuilder,
) -> Result<(), Error> {
    if let Some(root) = bundled_root {
        for g in &plan.bundled {
            builder
                .preopened_dir(host_dir(root, g.as_str()), g.as_str(), FsPerms::ReadOnly)
                .map_err(|e| Error::BundledOpen {
                    guest: g.to_string(),
                    source: as_io(e),
                })?;
        }
    }
    for m in &plan.mounts {
        let perms = match m.access {
            Access::ReadOnly => FsPerms::ReadOnly,
            Access::ReadWrite => FsPerms::ReadWrite,
        };
        builder
            .preopened_dir(&m.host, m.guest.as_str(), perms)
            .map_err(|e| Error::MountOpen {
                host: m.host.clone(),
                guest: m.guest.to_string(),
                source: as_io(e),
            })?;
    }
    Ok(())
}

/// wasmtime-wasi reports preopen failures as `anyhow`-style errors; keep the I/O cause.
fn as_io(e: wasmtime::Error) -> std::io::Error {
    match e.downcast::<std::io::Error>() {
        Ok(io) => io,
        Err(other) => std::io::Error::other(format!("{other:#}")),
    }
}
