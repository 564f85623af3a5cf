//! Where wpkg keeps things on one machine: the store, caches, the trust policy.

use std::path::{Path, PathBuf};

use wpkg_store::Store;

/// The wpkg home directory (`WPKG_HOME` in the CLI) and what lives under it.
#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
    limits: wpkg_store::unpack::UnpackLimits,
}

impl Home {
    /// A home at `root` (nothing is created until used).
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home {
            root: root.into(),
            limits: Default::default(),
        }
    }

    /// Sets the bounds on unpacking layers for the stores this home opens.
    pub fn set_unpack_limits(&mut self, limits: wpkg_store::unpack::UnpackLimits) {
        self.limits = limits;
    }

    /// The home directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The local OCI store's directory.
    pub fn store_dir(&self) -> PathBuf {
        self.root.join("store")
    }

    /// Compiled code, by wasm digest and engine.
    pub fn code_cache(&self) -> PathBuf {
        self.root.join("cache").join("compiled")
    }

    /// Bundled files, extracted per layer digest.
    pub fn files_cache(&self) -> PathBuf {
        self.root.join("cache").join("files")
    }

    /// The embedded key-value stores of one repository (`NAME` without tag or digest),
    /// kept across its versions: `kv/<sha256 of the name, 16 hex>-<name's last part,
    /// letters and digits only>`. The name never becomes a path itself.
    pub fn kv_dir(&self, repository: &str) -> PathBuf {
        let hash = wpkg_store::sha256_digest(repository.as_bytes());
        let hex = hash.trim_start_matches("sha256:");
        let slug: String = repository
            .rsplit('/')
            .next()
            .unwrap_or("")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(32)
            .collect();
        self.root.join("kv").join(format!("{}-{slug}", &hex[..16]))
    }

    /// Trust roots refreshed through TUF, one directory per repository.
    pub fn tuf_cache(&self) -> PathBuf {
        self.root.join("tuf")
    }

    /// The default trust policy file.
    pub fn trust_policy(&self) -> PathBuf {
        self.root.join("trust.toml")
    }

    /// Opens (creating if needed) the local store.
    pub fn open_store(&self) -> Result<Store, wpkg_store::Error> {
        let mut store = Store::open(self.store_dir())?;
        store.set_unpack_limits(self.limits);
        Ok(store)
    }
}
