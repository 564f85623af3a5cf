//! # wpkg-runner
//!
//! Runs wasm under wasmtime with exactly the permissions of a [`RunPlan`]: one
//! module per capability ([`caps`]), the command trigger ([`command`]), the
//! compiled-code cache ([`cache`]) and limits. It gets wasm bytes, a plan and a cache
//! directory; it knows nothing of registries, stores or signatures.
#![deny(missing_docs)]

use std::path::PathBuf;

pub mod cache;
pub mod caps;
pub mod command;
pub mod host;
pub mod http;
pub mod timings;
pub mod workers;

pub use cache::{CacheStatus, CodeCache, Compiled};
pub use host::{Event, HostSetup, Observer, Silent};
use wpkg_spec::plan::RunPlan;

/// Errors before the guest starts (compiling, linking, setting up capabilities).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The wasm does not compile.
    #[error("cannot compile the wasm: {0:#}")]
    Compile(wasmtime::Error),
    /// The guest imports something wpkg does not provide, or lacks an entry point.
    #[error("cannot start the guest: {0}")]
    Link(String),
    /// A directory bound at a mount is not a directory on this machine.
    #[error("`{host}` is not a directory on this machine (to mount at {guest})")]
    MountNotADirectory {
        /// The host path.
        host: String,
        /// The guest path.
        guest: String,
    },
    /// A directory bound at a mount cannot be opened.
    #[error("cannot open {host} (to mount at {guest})")]
    MountOpen {
        /// The host path.
        host: String,
        /// The guest path.
        guest: String,
        /// Why.
        source: std::io::Error,
    },
    /// The artifact declares bundled files but they are not there.
    #[error("bundled directory {guest} is missing from the artifact's files layer")]
    BundledMissing {
        /// The guest path.
        guest: String,
    },
    /// A bundled directory cannot be opened.
    #[error("cannot open bundled directory {guest}")]
    BundledOpen {
        /// The guest path.
        guest: String,
        /// Why.
        source: std::io::Error,
    },
    /// A bundled directory does not resolve to a directory inside the bundled files
    /// (a link onto the host, another mount, `/proc`).
    #[error("bundled directory {guest} does not open inside the image's files")]
    BundledUnsafe {
        /// The guest path.
        guest: String,
        /// Why.
        source: wpkg_fsroot::Error,
    },
    /// The HTTP server cannot listen.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why (`AddrInUse` when another process has it).
        source: std::io::Error,
    },
    /// The async runtime cannot start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// The guest imports a capability the plan does not grant.
    #[error("the guest imports `{import}` ({capability}), which its wpkg.toml does not declare")]
    Undeclared {
        /// The import.
        import: String,
        /// The capability, in words.
        capability: &'static str,
        /// What to declare to grant it.
        declaration: &'static str,
    },
    /// The module spawns threads (`wasi:thread-spawn`), which wpkg does not grant.
    #[error("the module spawns threads (it imports `wasi::thread-spawn`); wpkg runs single-threaded guests only")]
    Threads,
    /// A bundled model cannot be loaded.
    #[error("cannot load model `{model}` (wasi-nn): {reason}")]
    Nn {
        /// The model's name.
        model: String,
        /// Why.
        reason: String,
    },
    /// ONNX Runtime cannot be loaded.
    #[error("cannot load ONNX Runtime for wasi-nn: {reason}")]
    NnRuntime {
        /// Why.
        reason: String,
    },
    /// A key-value store cannot be opened.
    #[error("cannot open key-value store `{store}`: {reason}")]
    KeyValue {
        /// The store's name.
        store: String,
        /// Why.
        reason: String,
    },
}

/// How a guest run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The guest returned or called `exit` with this code.
    Exited(i32),
    /// The guest trapped (the message says where and why).
    Trapped(String),
    /// The wall-clock limit passed.
    TimedOut(std::time::Duration),
    /// The guest tried to grow its memory beyond the limit (bytes).
    MemoryExceeded(u64),
    /// HTTP: the request was not run, over the concurrency cap.
    Busy,
    /// HTTP: the request could not be handed to the guest.
    BadRequest(String),
    /// HTTP: the instance ended without a usable response (it answered with an error
    /// code, returned without answering, or could not be set up).
    Failed(String),
}

impl Outcome {
    /// The exit code a front end gives this outcome: the guest's own (its low 8 bits),
    /// 134 for a trap (as for SIGABRT), 124 past the time limit (as `timeout(1)`), 137
    /// past the memory limit (as for an OOM kill).
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Exited(c) => (c & 0xff) as u8,
            Outcome::Trapped(_) => 134,
            Outcome::TimedOut(_) => 124,
            Outcome::MemoryExceeded(_) => 137,
            Outcome::Busy | Outcome::BadRequest(_) | Outcome::Failed(_) => 125,
        }
    }

    /// The HTTP status a server answers this outcome with, when the guest did not
    /// answer itself: 504 past the time limit, 503 over the concurrency cap, 400 for a
    /// request that cannot be handed over, 500 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            Outcome::TimedOut(_) => 504,
            Outcome::Busy => 503,
            Outcome::BadRequest(_) => 400,
            _ => 500,
        }
    }

    /// What went wrong, in one line, when the guest did not end on its own.
    pub fn describe(&self) -> Option<String> {
        use wpkg_spec::units::{ByteSize, DurationSpec};
        match self {
            Outcome::Exited(_) => None,
            Outcome::Trapped(msg) => Some(format!("the guest trapped: {msg}")),
            Outcome::TimedOut(t) => Some(format!(
                "the guest ran past its time limit of {} (limits.timeout) and was stopped",
                DurationSpec(if t.is_zero() {
                    std::time::Duration::from_millis(1)
                } else {
                    *t
                })
            )),
            Outcome::MemoryExceeded(max) => Some(format!(
                "the guest tried to use more than its memory limit of {} (limits.memory) and was stopped",
                ByteSize(*max)
            )),
            Outcome::Busy => Some("server busy: too many concurrent requests".into()),
            Outcome::BadRequest(m) => Some(format!("bad request: {m}")),
            Outcome::Failed(m) => Some(m.clone()),
        }
    }
}

/// A wasmtime engine and the compiled-code cache; one per process.
pub struct Runner {
    engine: wasmtime::Engine,
    cache: CodeCache,
    /// The process whose epoch ticker drives this engine's time limits (0: none yet):
    /// a worker process forked from a server starts its own.
    ticker: std::sync::atomic::AtomicU32,
}

impl Runner {
    /// Creates the engine; compiled code is cached in `cache_dir`, or nowhere when it
    /// is `None` (every run compiles).
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Runner, Error> {
        Runner::with_config(cache_dir, base_config())
    }

    fn with_config(cache_dir: Option<PathBuf>, config: wasmtime::Config) -> Result<Runner, Error> {
        let engine = wasmtime::Engine::new(&config).map_err(Error::Compile)?;
        let cache = match cache_dir {
            Some(dir) => CodeCache::new(dir, &engine),
            None => CodeCache::off(&engine),
        };
        timings::mark("engine");
        Ok(Runner {
            engine,
            cache,
            ticker: Default::default(),
        })
    }

    /// Starts the thread that advances the engine's epoch (what time limits are
    /// checked against), once per process: not before a server forks its workers,
    /// which must be the only thread then.
    pub(crate) fn ensure_ticker(&self) {
        use std::sync::atomic::Ordering;
        let me = std::process::id();
        if self.ticker.swap(me, Ordering::SeqCst) != me {
            caps::limits::start_epoch_ticker(&self.engine);
        }
    }

    /// The engine.
    pub fn engine(&self) -> &wasmtime::Engine {
        &self.engine
    }

    /// The compiled-code cache.
    pub fn cache(&self) -> &CodeCache {
        &self.cache
    }

    /// Compiles `wasm` or loads it from the cache. The caller has verified that
    /// `wasm` hashes to `wasm_digest`.
    pub fn compile(
        &self,
        wasm_digest: &str,
        wasm: &[u8],
    ) -> Result<(Compiled, CacheStatus), Error> {
        self.code(wasm_digest, || Ok::<_, Error>(wasm))
    }

    /// The code for the wasm whose digest is `wasm_digest`: loaded from the cache, or
    /// compiled from what `read` gives (which must check that digest). `read` is
    /// called only on a miss: a warm run reads no wasm.
    pub fn code<W: AsRef<[u8]>, E: From<Error>>(
        &self,
        wasm_digest: &str,
        read: impl FnOnce() -> Result<W, E>,
    ) -> Result<(Compiled, CacheStatus), E> {
        let status = match self.cache.load(&self.engine, wasm_digest) {
            Ok(code) => {
                timings::mark("code load (cache hit)");
                return Ok((code, CacheStatus::Hit));
            }
            Err(status) => status,
        };
        let wasm = read()?;
        timings::mark("read wasm (digest-checked)");
        let loaded = self
            .cache
            .compile_and_store(&self.engine, wasm_digest, wasm.as_ref(), status)
            .map_err(Error::Compile)?;
        timings::mark(match loaded.1 {
            CacheStatus::Off => "compile (no cache)",
            _ => "compile (cache miss)",
        });
        Ok(loaded)
    }
}

/// The engine configuration every runner starts from.
fn base_config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    // Wasm GC and typed function references (garbage-collected languages compiled to
    // Wasm: Kotlin, Dart, OCaml, Scheme); collected by wasmtime's deferred reference
    // counting collector, within the instance's memory limit. Threads stay off: a
    // guest that imports `wasi:thread-spawn` or declares shared memory is refused.
    config.wasm_function_references(true);
    config.wasm_gc(true);
    config
}

/// Checks, without running anything, that every capability of the plan can be granted
/// on this machine.
pub fn validate(plan: &RunPlan, bundled_root: Option<&wpkg_fsroot::Root>) -> Result<(), Error> {
    caps::env::validate(plan)?;
    caps::files::validate(plan, bundled_root)?;
    Ok(())
}
