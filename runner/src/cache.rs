//! The compiled-code cache: native code that wasmtime compiled on this machine, keyed
//! by (wasm digest, engine fingerprint).
//!
//! An entry is `WPKGCODE1` + the wasm digest + the SHA-256 of the payload + wasmtime's
//! serialized code. On load the header, the key and the checksum are checked before
//! wasmtime sees the bytes; a corrupt or foreign entry is removed and the code is
//! compiled again. Entries are written atomically. Code never comes from a registry:
//! only this module writes entries, from code compiled here.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

const MAGIC: &[u8; 9] = b"WPKGCODE1";

/// Compiled code of either kind.
#[derive(Clone)]
pub enum Compiled {
    /// A core module.
    Module(Module),
    /// A component.
    Component(Component),
}

/// How the compiled code was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Loaded from the cache.
    Hit,
    /// Compiled now and stored.
    Miss,
    /// The entry was damaged or foreign: compiled now and replaced.
    Replaced,
}

/// A fingerprint of everything that makes compiled code valid for this engine.
pub fn engine_fingerprint(engine: &Engine) -> String {
    // SipHash with fixed keys: stable for a given build of wpkg, which is all a
    // local cache needs (a new wpkg build simply gets new entries).
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The cache directory and the engine's fingerprint.
pub struct CodeCache {
    dir: PathBuf,
    fingerprint: String,
}

fn is_component(wasm: &[u8]) -> bool {
    wasm.len() >= 8 && wasm[4..8] != [1, 0, 0, 0]
}

impl CodeCache {
    /// A cache in `dir` for `engine`.
    pub fn new(dir: impl Into<PathBuf>, engine: &Engine) -> CodeCache {
        CodeCache {
            dir: dir.into(),
            fingerprint: engine_fingerprint(engine),
        }
    }

    /// Where the entry for `wasm_digest` lives.
    pub fn entry_path(&self, wasm_digest: &str) -> PathBuf {
        // The digest was checked when the wasm was read; an invalid one names no file.
        let hex = wpkg_spec::Digest::parse(wasm_digest)
            .map(|d| d.hex().to_owned())
            .unwrap_or_else(|_| "invalid".to_owned());
        self.dir.join(format!("{hex}-{}.cwasm", self.fingerprint))
    }

    /// Loads the code for `wasm` (whose digest is `wasm_digest`, already verified by
    /// the caller), compiling and caching it when there is no valid entry.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm_digest: &str,
        wasm: &[u8],
    ) -> wasmtime::Result<(Compiled, CacheStatus)> {
        let path = self.entry_path(wasm_digest);
        let mut status = CacheStatus::Miss;
        if let Ok(bytes) = std::fs::read(&path) {
            match self.check_entry(&bytes, wasm_digest) {
                Some(payload) => {
                    if let Ok(code) = deserialize(engine, payload, is_component(wasm)) {
                        return Ok((code, CacheStatus::Hit));
                    }
                    status = CacheStatus::Replaced;
                }
                None => status = CacheStatus::Replaced,
            }
            let _ = std::fs::remove_file(&path);
        }
        let (code, serialized) = if is_component(wasm) {
            let c = Component::new(engine, wasm)?;
            let s = c.serialize()?;
            (Compiled::Component(c), s)
        } else {
            let m = Module::new(engine, wasm)?;
            let s = m.serialize()?;
            (Compiled::Module(m), s)
        };
        // A cache that cannot be written is not an error: the run goes on.
        let _ = self.write_entry(&path, wasm_digest, &serialized);
        Ok((code, status))
    }

    /// The payload of an entry's bytes if its header, key (`wasm_digest`) and checksum
    /// are right; `None` for anything else, which never reaches wasmtime's deserialize.
    pub fn check_entry<'a>(&self, bytes: &'a [u8], wasm_digest: &str) -> Option<&'a [u8]> {
        let rest = bytes.strip_prefix(MAGIC.as_slice())?;
        let key = wasm_digest.as_bytes();
        let rest = rest.strip_prefix(key)?;
        if rest.len() < 32 {
            return None;
        }
        let (sum, payload) = rest.split_at(32);
        (Sha256::digest(payload).as_slice() == sum).then_some(payload)
    }

    fn write_entry(&self, path: &Path, wasm_digest: &str, payload: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        use std::io::Write;
        tmp.write_all(MAGIC)?;
        tmp.write_all(wasm_digest.as_bytes())?;
        tmp.write_all(&Sha256::digest(payload))?;
        tmp.write_all(payload)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, payload: &[u8], component: bool) -> wasmtime::Result<Compiled> {
    // SAFETY: `payload` is code this wpkg compiled on this machine with an engine of
    // the same fingerprint; the entry's checksum and key were verified just before, so
    // the bytes are exactly those `serialize` produced. wasmtime additionally checks
    // its own header and the engine's compatibility.
    unsafe {
        if component {
            Component::deserialize(engine, payload).map(Compiled::Component)
        } else {
            Module::deserialize(engine, payload).map(Compiled::Module)
        }
    }
}
