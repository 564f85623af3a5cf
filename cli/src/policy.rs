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
            tuf: Some(tuf_source()?),
        })
    }
}

/// The TUF repository of the default trust root: `WPKG_TUF_URL` with the TUF root in
/// `WPKG_TUF_ROOT` (a private Sigstore instance), else Sigstore's public good.
pub fn tuf_source() -> Result<wpkg_pipeline::verify::TufSource> {
    use anyhow::Context;
    use wpkg_signing::tuf;
    let cache = crate::settings::home()?.tuf_cache();
    let url = std::env::var(env_vars::WPKG_TUF_URL)
        .ok()
        .filter(|u| !u.is_empty());
    Ok(match url {
        Some(url) => {
            let Some(root) = std::env::var_os(env_vars::WPKG_TUF_ROOT).filter(|r| !r.is_empty())
            else {
                anyhow::bail!(
                    "{} is set but {} is not: give the TUF root.json of that repository",
                    env_vars::WPKG_TUF_URL,
                    env_vars::WPKG_TUF_ROOT
                );
            };
            let root = std::fs::read(&root).with_context(|| {
                format!(
                    "{}: cannot read {}",
                    env_vars::WPKG_TUF_ROOT,
                    root.to_string_lossy()
                )
            })?;
            wpkg_pipeline::verify::TufSource { cache, url, root }
        }
        None => wpkg_pipeline::verify::TufSource {
            cache,
            url: tuf::SIGSTORE_TUF_URL.to_owned(),
            root: tuf::SIGSTORE_TUF_ROOT.to_vec(),
        },
    })
}
