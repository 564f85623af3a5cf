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
    if plan.rootfs && !bundled_root.is_some_and(Path::is_dir) {
        return Err(Error::BundledMissing { guest: "/".into() });
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
        if plan.rootfs {
            builder
                .preopened_dir(root, "/", FsPerms::ReadOnly)
                .map_err(|e| Error::BundledOpen {
                    guest: "/".into(),
                    source: as_io(e),
                })?;
        }
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
        assert!(validate(&plan(vec![], &["/static"]), Some(dir.path())).is_ok());
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
