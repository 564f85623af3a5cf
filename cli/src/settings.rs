//! Where things live, from flags and environment variables.

use std::path::PathBuf;

use anyhow::{Context, Result};

use wpkg_pipeline::Home;

use crate::env_vars;

/// The wpkg home: `WPKG_HOME`, else `$XDG_DATA_HOME/wpkg`, else `~/.local/share/wpkg`.
pub fn home() -> Result<Home> {
    let root = if let Some(h) = std::env::var_os(env_vars::WPKG_HOME).filter(|h| !h.is_empty()) {
        PathBuf::from(h)
    } else if let Some(x) = std::env::var_os(env_vars::XDG_DATA_HOME).filter(|h| !h.is_empty()) {
        PathBuf::from(x).join("wpkg")
    } else {
        let h = std::env::var_os(env_vars::HOME)
            .filter(|h| !h.is_empty())
            .context("cannot find a place for the local store: set WPKG_HOME (or HOME)")?;
        PathBuf::from(h).join(".local/share/wpkg")
    };
    let mut home = Home::new(root);
    home.set_unpack_limits(unpack_limits()?);
    Ok(home)
}

/// The bounds on unpacking layers: [`env_vars::WPKG_MAX_LAYER_SIZE`] and
/// [`env_vars::WPKG_MAX_FILE_SIZE`] over the defaults.
fn unpack_limits() -> Result<wpkg_store::unpack::UnpackLimits> {
    let mut limits = wpkg_store::unpack::UnpackLimits::DEFAULT;
    for (var, slot) in [
        (env_vars::WPKG_MAX_LAYER_SIZE, &mut limits.layer_bytes),
        (env_vars::WPKG_MAX_FILE_SIZE, &mut limits.file_bytes),
    ] {
        if let Some(v) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
            let size: wpkg_spec::units::ByteSize = v
                .parse()
                .map_err(|e| anyhow::anyhow!("{var}=`{v}` is not a size ({e}); use e.g. 2GiB"))?;
            *slot = size.0;
        }
    }
    Ok(limits)
}

/// A throwaway store in `dir` with the same bounds as the local one: for reading a
/// remote image without keeping it.
pub fn scratch_store(dir: &std::path::Path) -> Result<wpkg_store::Store> {
    let mut home = Home::new(dir.to_path_buf());
    home.set_unpack_limits(unpack_limits()?);
    Ok(home.open_store()?)
}

/// Opens the local store under [`home`].
pub fn open_store() -> Result<wpkg_store::Store> {
    Ok(home()?.open_store()?)
}

/// Docker's configuration directory: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn docker_config_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os(env_vars::DOCKER_CONFIG).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    let h = std::env::var_os(env_vars::HOME)
        .filter(|h| !h.is_empty())
        .context("cannot find Docker's config directory: set DOCKER_CONFIG (or HOME)")?;
    Ok(PathBuf::from(h).join(".docker"))
}

/// Registry credentials: Docker's config plus the CI environment variables.
pub fn credentials() -> Result<wpkg_distribution::credentials::Credentials> {
    use wpkg_distribution::credentials::{Credential, EnvCredential, Secret};
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let env = match (
        var(env_vars::WPKG_REGISTRY_USERNAME),
        var(env_vars::WPKG_REGISTRY_PASSWORD),
    ) {
        (None, None) => None,
        (Some(username), Some(password)) => {
            let registry = var(env_vars::WPKG_REGISTRY).context(
                "WPKG_REGISTRY_USERNAME/WPKG_REGISTRY_PASSWORD are set but WPKG_REGISTRY is not: set it to the registry they are for (e.g. ghcr.io)",
            )?;
            Some(EnvCredential {
                registry,
                credential: Credential::Basic {
                    username,
                    password: Secret::new(password),
                },
            })
        }
        (Some(_), None) => anyhow::bail!(
            "WPKG_REGISTRY_USERNAME is set but WPKG_REGISTRY_PASSWORD is not; set both or neither"
        ),
        (None, Some(_)) => anyhow::bail!(
            "WPKG_REGISTRY_PASSWORD is set but WPKG_REGISTRY_USERNAME is not; set both or neither"
        ),
    };
    let creds = wpkg_distribution::credentials::Credentials::new(docker_config_dir()?, env);
    Ok(
        match std::env::var_os(env_vars::REGISTRY_AUTH_FILE).filter(|f| !f.is_empty()) {
            Some(file) => creds.with_auth_file(file),
            None => creds,
        },
    )
}
