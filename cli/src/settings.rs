//! Where things live, from flags and environment variables.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::env_vars;

/// Resolved paths for one invocation.
pub struct Paths {
    /// The wpkg home.
    pub home: PathBuf,
}

impl Paths {
    /// From the environment.
    pub fn from_env() -> Result<Paths> {
        let home = if let Some(h) = std::env::var_os(env_vars::WPKG_HOME).filter(|h| !h.is_empty())
        {
            PathBuf::from(h)
        } else if let Some(x) = std::env::var_os(env_vars::XDG_DATA_HOME).filter(|h| !h.is_empty())
        {
            PathBuf::from(x).join("wpkg")
        } else {
            let h = std::env::var_os(env_vars::HOME)
                .filter(|h| !h.is_empty())
                .context("cannot find a place for the local store: set WPKG_HOME (or HOME)")?;
            PathBuf::from(h).join(".local/share/wpkg")
        };
        Ok(Paths { home })
    }

    /// The local OCI store.
    pub fn store(&self) -> PathBuf {
        self.home.join("store")
    }

    /// Compiled code.
    pub fn code_cache(&self) -> PathBuf {
        self.home.join("cache").join("compiled")
    }

    /// Extracted bundled files.
    pub fn files_cache(&self) -> PathBuf {
        self.home.join("cache").join("files")
    }

    /// Opens the store.
    pub fn open_store(&self) -> Result<wpkg_oci::Store> {
        Ok(wpkg_oci::Store::open(self.store())?)
    }
}
