//! Files: bundled directories (always read-only) and operator mounts (read-only or
//! read-write as planned). No other preopen exists; `..` and symlinks cannot leave a
//! preopen (cap-std resolves every path beneath its directory).

use std::path::{Path, PathBuf};

use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wpkg_spec::manifest::Access;
use wpkg_spec::plan::RunPlan;

/// Checks that every mount names an existing host directory and that the bundled
/// files were extracted.
pub fn validate(plan: &RunPlan, bundled_root: Option<&Path>) -> Result<(), String> {
    for m in &plan.mounts {
        let p = Path::new(&m.host);
        if !p.is_dir() {
            return Err(format!(
                "--mount {}:{}: `{}` is not a directory on this machine",
                m.host, m.guest, m.host
            ));
        }
    }
    if !plan.bundled.is_empty() {
        let root =
            bundled_root.ok_or("the artifact declares bundled files but has no files layer")?;
        for g in &plan.bundled {
            let dir = host_dir(root, g.as_str());
            if !dir.is_dir() {
                return Err(format!(
                    "bundled directory {g} is missing from the artifact's files layer"
                ));
            }
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
) -> Result<(), String> {
    if let Some(root) = bundled_root {
        for g in &plan.bundled {
            builder
                .preopened_dir(host_dir(root, g.as_str()), g.as_str(), FsPerms::ReadOnly)
                .map_err(|e| format!("cannot open bundled directory {g}: {e}"))?;
        }
    }
    for m in &plan.mounts {
        let perms = match m.access {
            Access::ReadOnly => FsPerms::ReadOnly,
            Access::ReadWrite => FsPerms::ReadWrite,
        };
        builder
            .preopened_dir(&m.host, m.guest.as_str(), perms)
            .map_err(|e| format!("cannot open --mount {}: {e}", m.host))?;
    }
    Ok(())
}
