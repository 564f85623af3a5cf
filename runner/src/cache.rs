//! The compiled-code cache: native code that wasmtime compiled on this machine, keyed
//! by (wasm digest, engine fingerprint).
//!
//! An entry is two files: `<hex>-<fingerprint>.cwasm`, wasmtime's serialized code as
//! it wrote it, and `<hex>-<fingerprint>.sum`: `WPKGCODE3` + the wasm digest + the
//! code's length (8 bytes, little-endian) + its CRC-32 (4 bytes, little-endian) + its
//! kind (`C` component, `M` core module), so that a hit needs no wasm bytes at all. On
//! load the `.sum` is checked against the key and the code file, read through the one
//! descriptor that wasmtime then maps (no copy of the code is made), before wasmtime
//! sees the bytes; a damaged, foreign or half-written entry is removed and the code is
//! compiled again. Files are written atomically, code first. The checksum guards
//! against damage, not tampering: whoever can write the cache directory can write a
//! matching checksum, just as they could replace the wpkg binary's own files. Code
//! never comes from a registry: only this module writes entries, from code compiled here.

use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::{Engine, Module};

const MAGIC: &[u8; 9] = b"WPKGCODE3";

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
    /// No cache: compiled now, kept nowhere.
    Off,
}

/// Compiles `wasm`, in parallel on a thread pool of its own whose threads have ended
/// when this returns: a server forks its worker processes after compiling, and a fork
/// copies only the calling thread (rayon's global pool would stay behind, idle, in the
/// server and absent from the workers).
fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Compiled> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("wpkg-compile-{i}"))
        .build_scoped(
            |thread| thread.run(),
            |pool| pool.install(|| compile_here(engine, wasm)),
        )
        .map_err(|e| wasmtime::Error::msg(format!("cannot start the compiler's threads: {e}")))?
}

fn compile_here(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Compiled> {
    Ok(if is_component(wasm) {
        Compiled::Component(Component::new(engine, wasm)?)
    } else {
        Compiled::Module(Module::new(engine, wasm)?)
    })
}

impl Compiled {
    /// The code as wasmtime serializes it (what the cache stores).
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        match self {
            Compiled::Component(c) => c.serialize(),
            Compiled::Module(m) => m.serialize(),
        }
    }
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

/// The cache directory (none: every run compiles) and the engine's fingerprint.
pub struct CodeCache {
    dir: Option<PathBuf>,
    fingerprint: String,
}

fn is_component(wasm: &[u8]) -> bool {
    wasm.len() >= 8 && wasm[4..8] != [1, 0, 0, 0]
}

impl CodeCache {
    /// A cache in `dir` for `engine`.
    pub fn new(dir: impl Into<PathBuf>, engine: &Engine) -> CodeCache {
        CodeCache {
            dir: Some(dir.into()),
            fingerprint: engine_fingerprint(engine),
        }
    }

    /// No cache: every load compiles, nothing is read or written. For runtimes with no
    /// directory that only they can write (the containerd shim inside a container).
    pub fn off(engine: &Engine) -> CodeCache {
        CodeCache {
            dir: None,
            fingerprint: engine_fingerprint(engine),
        }
    }

    /// Where the code of the entry for `wasm_digest` lives (its `.sum` is beside it).
    pub fn entry_path(&self, wasm_digest: &str) -> PathBuf {
        // The digest was checked when the wasm was read; an invalid one names no file.
        let hex = wpkg_spec::Digest::parse(wasm_digest)
            .map(|d| d.hex().to_owned())
            .unwrap_or_else(|_| "invalid".to_owned());
        self.dir
            .as_deref()
            .unwrap_or(Path::new(""))
            .join(format!("{hex}-{}.cwasm", self.fingerprint))
    }

    /// Where the checksum of the entry for `wasm_digest` lives.
    pub fn sum_path(&self, wasm_digest: &str) -> PathBuf {
        self.entry_path(wasm_digest).with_extension("sum")
    }

    /// Loads the code for `wasm` (whose digest is `wasm_digest`, already verified by
    /// the caller), compiling and caching it when there is no valid entry.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm_digest: &str,
        wasm: &[u8],
    ) -> wasmtime::Result<(Compiled, CacheStatus)> {
        match self.load(engine, wasm_digest) {
            Ok(code) => Ok((code, CacheStatus::Hit)),
            Err(status) => self.compile_and_store(engine, wasm_digest, wasm, status),
        }
    }

    /// The cached code for `wasm_digest`, without reading the wasm: the entry is keyed
    /// by the digest its code was compiled from. When there is no valid entry, the
    /// status a compile will have (a damaged or foreign entry is removed here).
    pub fn load(&self, engine: &Engine, wasm_digest: &str) -> Result<Compiled, CacheStatus> {
        if self.dir.is_none() {
            return Err(CacheStatus::Off);
        }
        let path = self.entry_path(wasm_digest);
        let sum_path = self.sum_path(wasm_digest);
        if let Ok(sum) = std::fs::read(&sum_path) {
            if let Some((code, kind)) = self.open_checked(&path, &sum, wasm_digest) {
                if let Ok(code) = deserialize(engine, &path, code, kind) {
                    return Ok(code);
                }
            }
            let _ = std::fs::remove_file(&sum_path);
            let _ = std::fs::remove_file(&path);
            Err(CacheStatus::Replaced)
        } else if path.exists() {
            // Code without a checksum: half written, or an older wpkg's entry.
            let _ = std::fs::remove_file(&path);
            Err(CacheStatus::Replaced)
        } else {
            Err(CacheStatus::Miss)
        }
    }

    /// Compiles `wasm` (whose digest is `wasm_digest`, already verified by the caller)
    /// and stores the code; `status` is what [`CodeCache::load`] said.
    pub fn compile_and_store(
        &self,
        engine: &Engine,
        wasm_digest: &str,
        wasm: &[u8],
        status: CacheStatus,
    ) -> wasmtime::Result<(Compiled, CacheStatus)> {
        let code = compile(engine, wasm)?;
        if self.dir.is_none() {
            return Ok((code, CacheStatus::Off));
        }
        let serialized = code.serialize()?;
        // A cache that cannot be written is not an error: the run goes on.
        let _ = self.write_entry(wasm_digest, &serialized, code.kind());
        Ok((code, status))
    }

    /// The code file at `path`, open and read through once to check it against `sum`
    /// (the entry's `.sum` bytes); `None` when anything does not match.
    fn open_checked(
        &self,
        path: &Path,
        sum: &[u8],
        wasm_digest: &str,
    ) -> Option<(std::fs::File, Kind)> {
        let (len, crc, kind) = self.parse_sum(sum, wasm_digest)?;
        let mut file = std::fs::File::open(path).ok()?;
        let mut hasher = crc32fast::Hasher::new();
        let mut buf = vec![0u8; 64 << 10];
        let mut seen = 0u64;
        loop {
            let n = file.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            seen += n as u64;
        }
        ((len, crc) == (seen, hasher.finalize())).then_some((file, kind))
    }

    /// The code's length, CRC-32 and kind from an entry's `.sum` bytes, if its header
    /// and key (`wasm_digest`) are right.
    fn parse_sum(&self, sum: &[u8], wasm_digest: &str) -> Option<(u64, u32, Kind)> {
        let rest = sum.strip_prefix(MAGIC.as_slice())?;
        let rest = rest.strip_prefix(wasm_digest.as_bytes())?;
        let (len, rest) = rest.split_first_chunk::<8>()?;
        let (crc, rest) = rest.split_first_chunk::<4>()?;
        let kind = match rest {
            b"C" => Kind::Component,
            b"M" => Kind::Module,
            _ => return None,
        };
        Some((u64::from_le_bytes(*len), u32::from_le_bytes(*crc), kind))
    }

    /// Whether `code` is exactly what the `.sum` bytes `sum` describe for
    /// `wasm_digest`: the check a load makes before wasmtime sees the code.
    pub fn check_entry(&self, sum: &[u8], code: &[u8], wasm_digest: &str) -> bool {
        self.parse_sum(sum, wasm_digest)
            .is_some_and(|(len, crc, _)| (len, crc) == (code.len() as u64, crc32fast::hash(code)))
    }

    /// The `.sum` bytes the cache writes for `code` compiled from `wasm_digest`, a
    /// component when `component`.
    pub fn sum_bytes(wasm_digest: &str, code: &[u8], component: bool) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(wasm_digest.as_bytes());
        out.extend_from_slice(&(code.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(code).to_le_bytes());
        out.push(if component { b'C' } else { b'M' });
        out
    }

    fn write_entry(&self, wasm_digest: &str, code: &[u8], kind: Kind) -> std::io::Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        std::fs::create_dir_all(dir)?;
        let sum = CodeCache::sum_bytes(wasm_digest, code, kind == Kind::Component);
        // Code first: a `.sum` never describes code that is not fully there. Not synced
        // to disk: an entry a crash leaves short or damaged fails its `.sum` check on
        // load and is compiled again (an fsync of each file was most of a first run's
        // time over `wasmtime run -C cache=n`).
        for (dest, bytes) in [
            (self.entry_path(wasm_digest), code),
            (self.sum_path(wasm_digest), &sum[..]),
        ] {
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            use std::io::Write;
            tmp.write_all(bytes)?;
            tmp.persist(dest).map_err(|e| e.error)?;
        }
        Ok(())
    }
}

/// What a cache entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Component,
    Module,
}

impl Compiled {
    fn kind(&self) -> Kind {
        match self {
            Compiled::Component(_) => Kind::Component,
            Compiled::Module(_) => Kind::Module,
        }
    }
}

#[allow(unsafe_code)]
fn deserialize(
    engine: &Engine,
    path: &Path,
    file: std::fs::File,
    kind: Kind,
) -> wasmtime::Result<Compiled> {
    // SAFETY: `file` holds code this wpkg compiled on this machine with an engine of
    // the same fingerprint, written atomically; it was just read through and matches
    // its `.sum` (key, length, CRC-32). wasmtime maps it read-only (copy-on-write) and
    // additionally checks its own header and the engine's compatibility.
    unsafe {
        if kind == Kind::Component {
            // Components are loaded by path: on Linux the path of the descriptor just
            // checked, so that the bytes mapped are the bytes checked.
            let fd_path = open_file_path(&file);
            let path = fd_path.as_deref().unwrap_or(path);
            Component::deserialize_file(engine, path).map(Compiled::Component)
        } else {
            Module::deserialize_open_file(engine, file).map(Compiled::Module)
        }
    }
}

/// `/proc/self/fd/N` for an open file, where the system has it.
fn open_file_path(file: &std::fs::File) -> Option<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let p = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        p.exists().then_some(p)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}
