//! Where trust comes from on the command line: `--policy` and `--trusted-root`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use wpkg_pipeline::TrustSettings;

use crate::env_vars;

/// Where the trust policy is.
#[derive(Args, Clone, Debug, Default)]
pub struct PolicyArgs {
    /// The trust policy file (default $WPKG_HOME/trust.toml).
    #[arg(long, value_name = "FILE", env = env_vars::WPKG_TRUST_POLICY)]
    pub policy: Option<PathBuf>,
    /// A Sigstore trusted_root.json for keyless signatures (default: the policy's
    /// `trusted_root`, else Sigstore's public-good root: as `wpkg trust update-root`
    /// refreshed it through TUF, or as shipped with wpkg).
    #[arg(long, value_name = "FILE", env = env_vars::WPKG_TRUSTED_ROOT)]
    pub trusted_root: Option<PathBuf>,
}

impl PolicyArgs {
    /// The policy file's path.
    pub fn path(&self) -> Result<PathBuf> {
        Ok(match &self.policy {
            Some(p) => p.clone(),
            None => crate::settings::home()?.trust_policy(),
        })
    }

    /// The settings the pipeline's trust check takes.
    pub fn settings(&self) -> Result<TrustSettings> {
        Ok(TrustSettings {
            policy: self.path()?,
            trusted_root: self.trusted_root.clone(),
            tuf_cache: Some(crate::settings::home()?.tuf_cache()),
        })
    }
}
