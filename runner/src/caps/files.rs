//! Files: bundled directories (always read-only) and operator mounts (read-only or
//! read-write as planned). No other preopen exists; `..` and symlinks cannot leave a
//! preopen (cap-std resolves every path beneath its directory), and a bundled
//! directory itself is opened inside the bundled files by [`wpkg_fsroot`].

use std::path::Path;

use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wpkg_fsroot::Root;
use wpkg_spec::manifest::Access;
use wpkg_spec::plan::RunPlan;

use crate::Error;

/// Checks that every mount names an existing host directory and that every bundled
/// directory opens inside the bundled files (`bundled_root`): a declared directory that
/// is a link resolves inside them, never onto the host, another mount or `/proc`.
pub fn validate(plan: &RunPlan, bundled_root: Option<&Root>) -> Result<(), Error> {
    for m in &plan.mounts {
        if !Path::new(&m.host).is_dir() {
            return Err(Error::MountNotADirectory {
                host: m.host.clone(),
                guest: m.guest.to_string(),
            });
        }
    }
    if plan.rootfs && bundled_root.is_none() {
        return Err(Error::BundledMissing { guest: "/".into() });
    }
    for g in &plan.bundled {
        bundled_dir(bundled_root, g.as_str())?;
    }
    Ok(())
}

/// The bundled directory at `guest`, opened inside `root`.
fn bundled_dir(root: Option<&Root>, guest: &str) -> Result<Root, Error> {
    let root = root.ok_or_else(|| Error::BundledMissing {
        guest: guest.to_owned(),
    })?;
    root.open_dir(guest).map_err(|source| match source {
        wpkg_fsroot::Error::NotFound { .. } => Error::BundledMissing {
            guest: guest.to_owned(),
        },
        source => Error::BundledUnsafe {
            guest: guest.to_owned(),
            source,
        },
    })
}

/// Preopens the bundled directories read-only and the mounts as planned. Bundled
/// directories are handed to wasmtime as the handle [`Root`] opened (its
/// `/proc/self/fd` path), so what the guest gets is exactly what resolved inside.
pub fn apply(
    plan: &RunPlan,
    bundled_root: Option<&Root>,
    builder: &mut WasiCtxBuilder,
) -> Result<(), Error> {
    if let Some(root) = bundled_root {
        if plan.rootfs {
            builder
                .preopened_dir(root.handle_path(), "/", FsPerms::ReadOnly)
                .map_err(|e| Error::BundledOpen {
                    guest: "/".into(),
                    source: as_io(e),
                })?;
        }
    }
    for g in &plan.bundled {
        let dir = bundled_dir(bundled_root, g.as_str())?;
        builder
            .preopened_dir(dir.handle_path(), g.as_str(), FsPerms::ReadOnly)
            .map_err(|e| Error::BundledOpen {
                guest: g.to_string(),
                source: as_io(e),
            })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use wpkg_spec::plan::PlannedMount;

    fn plan(mounts: Vec<PlannedMount>, bundled: &[&str]) -> RunPlan {
        let m = wpkg_spec::Manifest::parse(
            "manifest_version = 1\n[package]\nname = \"a\"\nversion = \"1\"\nwasm = \"a.wasm\"\n[trigger]\ntype = \"command\"\n",
        )
        .unwrap();
        let mut p = RunPlan::new(&m.to_artifact_capabilities(), &Default::default()).unwrap();
        p.mounts = mounts;
        p.bundled = bundled.iter().map(|g| g.parse().unwrap()).collect();
        p
    }

    #[test]
    fn mounts_must_be_directories_and_bundles_present() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let mount = |host: &Path| PlannedMount {
            host: host.display().to_string(),
            guest: "/data".parse().unwrap(),
            access: Access::ReadOnly,
        };
        assert!(validate(&plan(vec![mount(dir.path())], &[]), None).is_ok());
        assert!(matches!(
            validate(&plan(vec![mount(&file)], &[]), None),
            Err(Error::MountNotADirectory { .. })
        ));
        assert!(matches!(
            validate(&plan(vec![], &["/static"]), None),
            Err(Error::BundledMissing { .. })
        ));
        std::fs::create_dir(dir.path().join("static")).unwrap();
        let root = Root::open(dir.path()).unwrap();
        assert!(validate(&plan(vec![], &["/static"]), Some(&root)).is_ok());
        // A bundled directory that is a link to a host directory is refused.
        let host = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(host.path(), dir.path().join("linked")).unwrap();
        assert!(matches!(
            validate(&plan(vec![], &["/linked"]), Some(&root)),
            Err(Error::BundledMissing { .. } | Error::BundledUnsafe { .. })
        ));
    }

    #[test]
    fn apply_grants_exactly_the_plan() {
        // An empty plan preopens nothing; a mount that vanished is an error, not a skip.
        let dir = tempfile::tempdir().unwrap();
        let mut b = WasiCtxBuilder::new();
        assert!(apply(&plan(vec![], &[]), None, &mut b).is_ok());
        let gone = dir.path().join("gone");
        let p = plan(
            vec![PlannedMount {
                host: gone.display().to_string(),
                guest: "/data".parse().unwrap(),
                access: Access::ReadWrite,
            }],
            &[],
        );
        assert!(matches!(
            apply(&p, None, &mut WasiCtxBuilder::new()),
            Err(Error::MountOpen { .. })
        ));
    }
}
