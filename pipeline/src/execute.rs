//! Steps 3 to 5: plan (the artifact's capabilities narrowed by the operator), prepare
//! (the wasm read back digest-checked, bundled files extracted), execute (a command
//! run or an HTTP server). Only what [`crate::admit`] or, by the operator's explicit
//! choice, [`crate::admit_unverified`] let in can be prepared.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use wpkg_fsroot::Root;
use wpkg_runner::caps::outbound::HostsOverride;
use wpkg_runner::command::CommandRun;
use wpkg_runner::{HostSetup, Observer, Outcome, Runner};
use wpkg_spec::manifest::Trigger;
use wpkg_spec::plan::{OperatorRequest, RunPlan};
use wpkg_store::Store;

use wpkg_spec::image::{EmbeddedCapabilities, Entry, RuntimeConfig, CAPABILITIES_FILE};
use wpkg_store::image::{Content, ImageFile, LoadedImage};

use crate::verify::Admitted;
use crate::{Error, Home};

/// How the guest's arguments are made.
enum Argv {
    /// The operator's, as given.
    Given,
    /// Docker's rules: the rest of `Entrypoint`, then `Cmd` or the operator's.
    Image(RuntimeConfig),
}

/// Where the wasm comes from when its code is not in the cache.
enum Wasm {
    /// Read already (from an image's files, digest-checked).
    Read(Vec<u8>),
    /// An artifact's wasm layer, read (digest-checked) only if it must be compiled: a
    /// warm run loads code keyed by this digest and reads no wasm.
    Blob(Store, wpkg_spec::media::Descriptor),
}

impl Wasm {
    fn read(&self) -> Result<std::borrow::Cow<'_, [u8]>, Error> {
        match self {
            Wasm::Read(bytes) => Ok(bytes.as_slice().into()),
            Wasm::Blob(store, desc) => Ok(store.read_descriptor(desc)?.into()),
        }
    }
}

/// A verified artifact with its plan, ready to execute.
pub struct Prepared {
    plan: RunPlan,
    wasm: Wasm,
    wasm_digest: String,
    bundled_root: Option<Root>,
    program: String,
    argv: Argv,
    name: String,
    code_cache: PathBuf,
    data_dir: PathBuf,
}

/// Plans and prepares a run of `verified` with the operator's `request`. Content with a
/// wpkg manifest gets what it declares, narrowed by the request; content without one
/// gets only what the request grants.
pub fn prepare(
    home: &Home,
    store: &Store,
    verified: &Admitted,
    request: &OperatorRequest,
) -> Result<Prepared, Error> {
    match prepare_content(home, store, verified, request) {
        // `wpkg rm` won the race: the image was untagged and its blobs collected after
        // it was resolved. That is a miss, said as one.
        Err(Error::Store(wpkg_store::Error::BlobMissing(_)))
            if matches!(
                store.resolve(verified.reference()),
                Err(wpkg_store::Error::NotFound(_))
            ) =>
        {
            Err(wpkg_store::Error::NotFound(verified.reference().familiar()).into())
        }
        r => r,
    }
}

fn prepare_content(
    home: &Home,
    store: &Store,
    verified: &Admitted,
    request: &OperatorRequest,
) -> Result<Prepared, Error> {
    let reference = verified.reference();
    let short_name = reference.familiar_name();
    let short_name = short_name.rsplit('/').next().unwrap_or("main").to_owned();
    match verified.content() {
        Content::Artifact(art) => {
            let caps = art.capabilities()?;
            let plan = if art.config.capabilities.is_some() {
                RunPlan::new(&caps, request)?
            } else {
                RunPlan::unmanifested(caps.trigger, request, &[], false)?
            };
            let bundled_root = match &art.files_layer {
                Some(layer) => {
                    let digest = wpkg_spec::Digest::parse(&layer.digest)
                        .map_err(|_| wpkg_store::Error::InvalidDigest(layer.digest.clone()))?;
                    let dest = home.files_cache().join(digest.hex());
                    Some(wpkg_store::artifact::extract_files(store, layer, &dest)?.into_root())
                }
                None => None,
            };
            Ok(Prepared {
                plan,
                wasm: Wasm::Blob(store.clone(), art.wasm_layer.clone()),
                wasm_digest: art.wasm_layer.digest.clone(),
                bundled_root,
                program: short_name,
                argv: Argv::Given,
                name: reference.familiar(),
                code_cache: home.code_cache(),
                data_dir: home.kv_dir(&reference.familiar_name()),
            })
        }
        Content::Image(img) => prepare_image(home, store, verified, img, request),
    }
}

/// A Docker+Wasm image: its layers applied into a private directory under the store,
/// the wasm found from its entry, a plan of the operator's grants only.
fn prepare_image(
    home: &Home,
    store: &Store,
    verified: &Admitted,
    img: &LoadedImage,
    request: &OperatorRequest,
) -> Result<Prepared, Error> {
    // What was unpacked earlier is used only if the files wpkg reads from it still have
    // the digests recorded then; otherwise it is built again from the layers, once.
    let rootfs = wpkg_store::image::unpack(store, img)?;
    match prepare_unpacked(home, store, verified, img, request, rootfs) {
        Err(Error::Store(wpkg_store::Error::DerivedChanged { .. })) => {
            wpkg_store::unpack::discard(&wpkg_store::image::rootfs_dir(store, img)?)?;
            let rootfs = wpkg_store::image::unpack(store, img)?;
            prepare_unpacked(home, store, verified, img, request, rootfs)
        }
        r => r,
    }
}

/// [`prepare_image`] once the layers are unpacked into `rootfs`.
fn prepare_unpacked(
    home: &Home,
    store: &Store,
    verified: &Admitted,
    img: &LoadedImage,
    request: &OperatorRequest,
    rootfs: wpkg_store::unpack::Unpacked,
) -> Result<Prepared, Error> {
    let rc = img.config.config.clone().unwrap_or_default();
    if let Some(embedded) = read_embedded(store, &rootfs)? {
        return prepare_embedded(home, store, verified, rootfs, rc, embedded, request);
    }
    let wasm_layer = img
        .layers
        .iter()
        .find(|(_, k)| *k == wpkg_spec::image::LayerKind::Wasm)
        .map(|(l, _)| wpkg_store::image::wasm_layer_path(l));
    let entry = Entry::of(&rc);
    // `#_start` names what wpkg runs anyway (a module's entry point); any other
    // function is refused rather than silently ignored.
    if let Some(Entry {
        path,
        function: Some(function),
    }) = &entry
    {
        if function != "_start" {
            return Err(Error::EntryFunction {
                path: path.clone(),
                function: function.clone(),
            });
        }
    }
    let path = match (wasm_layer, &entry) {
        (Some(p), _) => p,
        (None, Some(e)) => e.path.clone(),
        (None, None) => return Err(Error::NoEntry),
    };
    let wasm = read_entry(store, &rootfs, &path)?;
    let (kind, info) =
        wpkg_store::artifact::classify_wasm(&wasm).map_err(|reason| Error::BadEntry {
            path: path.clone(),
            reason,
        })?;
    let trigger = match (kind, info) {
        (wpkg_store::artifact::WasmKind::Component, Some(i))
            if i.exports
                .iter()
                .any(|e| e.starts_with("wasi:http/incoming-handler")) =>
        {
            Trigger::Http
        }
        _ => Trigger::Command,
    };
    let image_env: Vec<(String, String)> = rc
        .env
        .iter()
        .flatten()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    let plan = RunPlan::unmanifested(trigger, request, &image_env, true)?;
    Ok(Prepared {
        plan,
        wasm_digest: recorded_digest(&rootfs, &path, &wasm),
        wasm: Wasm::Read(wasm),
        bundled_root: Some(rootfs.into_root()),
        program: path,
        argv: Argv::Image(rc),
        name: verified.reference().familiar(),
        code_cache: home.code_cache(),
        data_dir: home.kv_dir(&verified.reference().familiar_name()),
    })
}

/// The capabilities an image made by `wpkg build --format image` carries in its
/// files, if it has that file. Anything but a regular file there is refused.
fn read_embedded(
    store: &Store,
    rootfs: &wpkg_store::unpack::Unpacked,
) -> Result<Option<EmbeddedCapabilities>, Error> {
    let bad = |reason: String| Error::EmbeddedCapabilities {
        file: CAPABILITIES_FILE,
        reason,
    };
    // As the shim reads it: a regular file at that name, not a link to one.
    match rootfs.read_file(CAPABILITIES_FILE, store.unpack_limits().file_bytes)? {
        ImageFile::Absent => Ok(None),
        ImageFile::Regular(bytes) => EmbeddedCapabilities::parse(&bytes).map(Some).map_err(bad),
        ImageFile::Other => Err(bad("it is not a regular file".into())),
    }
}

/// An image with wpkg capabilities in its files: the wasm they name, digest-checked,
/// with what they declare (narrowed by the request), its bundled files from the image.
fn prepare_embedded(
    home: &Home,
    store: &Store,
    verified: &Admitted,
    rootfs: wpkg_store::unpack::Unpacked,
    rc: RuntimeConfig,
    embedded: EmbeddedCapabilities,
    request: &OperatorRequest,
) -> Result<Prepared, Error> {
    let bad = |reason: String| Error::EmbeddedCapabilities {
        file: CAPABILITIES_FILE,
        reason,
    };
    if let Some(entry) = Entry::of(&rc) {
        if entry.path != embedded.wasm || entry.function.is_some() {
            return Err(bad(format!(
                "they are for `{}`, and the image's entry is `{}`",
                embedded.wasm,
                rc.entrypoint
                    .as_ref()
                    .or(rc.cmd.as_ref())
                    .and_then(|v| v.first())
                    .map(String::as_str)
                    .unwrap_or_default()
            )));
        }
    }
    let wasm = read_entry(store, &rootfs, &embedded.wasm)?;
    let actual = recorded_digest(&rootfs, &embedded.wasm, &wasm);
    if actual != embedded.wasm_digest {
        return Err(bad(format!(
            "`{}` has digest {actual}, and they are for {}",
            embedded.wasm, embedded.wasm_digest
        )));
    }
    let plan = RunPlan::new(&embedded.capabilities, request)?;
    let reference = verified.reference();
    let program = reference.familiar_name();
    let program = program.rsplit('/').next().unwrap_or("main").to_owned();
    Ok(Prepared {
        plan,
        wasm_digest: actual,
        wasm: Wasm::Read(wasm),
        bundled_root: Some(rootfs.into_root()),
        program,
        argv: Argv::Image(rc),
        name: reference.familiar(),
        code_cache: home.code_cache(),
        data_dir: home.kv_dir(&verified.reference().familiar_name()),
    })
}

/// The digest of `bytes`, read from `path` in `rootfs`: the one recorded when it was
/// unpacked (which the read just checked), without hashing again.
fn recorded_digest(rootfs: &wpkg_store::unpack::Unpacked, path: &str, bytes: &[u8]) -> String {
    rootfs
        .recorded_digest(path)
        .map(str::to_owned)
        .unwrap_or_else(|| wpkg_store::sha256_digest(bytes))
}

/// Reads the image's entry file: a regular file of the image (links resolved inside
/// its files), with the digest it had when the layers were applied.
fn read_entry(
    store: &Store,
    rootfs: &wpkg_store::unpack::Unpacked,
    path: &str,
) -> Result<Vec<u8>, Error> {
    let bad = |reason: &str| Error::BadEntry {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if Path::new(path)
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(bad("it leaves the image's files"));
    }
    match rootfs.read_recorded(path, store.unpack_limits().file_bytes)? {
        Some(bytes) => Ok(bytes),
        None => match rootfs.root().kind(path) {
            Ok(Some(_)) => Err(bad("it is not a file inside the image's files")),
            _ => Err(bad("the image has no such file")),
        },
    }
}

/// How to serve an HTTP handler.
pub struct ServeOptions {
    /// Where to listen (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Most requests handled at once; more are answered 503.
    pub max_concurrent: usize,
    /// Worker processes: `None` one (this process, a thread per core), or exactly this
    /// many. A plan that must stay in one process (key-value stores, wasi-nn) is served
    /// from one; asking for more for it is an error.
    pub workers: Option<usize>,
    /// Called once the socket is bound.
    pub on_ready: Box<dyn FnOnce(SocketAddr) + Send + Sync>,
    /// Makes the future whose completion stops the server (called inside its runtime,
    /// so it may install signal handlers; once in each worker process).
    pub shutdown: Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>,
}

/// Reads a hosts file (`IP NAME...` lines) for outbound name resolution.
pub fn read_hosts_file(path: &Path) -> Result<HostsOverride, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::HostsFileUnreadable {
        path: path.to_owned(),
        source,
    })?;
    wpkg_runner::caps::outbound::parse_hosts(&text).map_err(|reason| Error::HostsFile {
        path: path.to_owned(),
        reason,
    })
}

/// Reads config values from a TOML file of `key = "value"` lines.
pub fn read_config_file(path: &Path) -> Result<Vec<(String, String)>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigFileUnreadable {
        path: path.to_owned(),
        source,
    })?;
    let bad = |reason: String| Error::ConfigFile {
        path: path.to_owned(),
        reason,
    };
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| bad(e.message().trim().to_owned()))?;
    table
        .into_iter()
        .map(|(k, v)| match v {
            toml::Value::String(s) => Ok((k, s)),
            other => Err(bad(format!(
                "`{k}` is a {}; every value must be a string (`{k} = \"...\"`)",
                other.type_str()
            ))),
        })
        .collect()
}

impl Prepared {
    /// Exactly what the run grants.
    pub fn plan(&self) -> &RunPlan {
        &self.plan
    }

    /// The image's name, as people write it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs a command guest with `args` (after `argv[0]`, the repository's last part);
    /// what happens goes to `observer`.
    pub fn run_command(
        self,
        args: &[String],
        observer: Arc<dyn Observer>,
    ) -> Result<Outcome, Error> {
        if self.plan.trigger == Trigger::Http {
            return Err(Error::NotACommand);
        }
        let runner = Runner::new(Some(self.code_cache.clone()))?;
        let (code, _status) = runner.code(&self.wasm_digest, || self.wasm.read())?;
        let args = match &self.argv {
            Argv::Given => args.to_vec(),
            Argv::Image(rc) => wpkg_spec::image::arguments(rc, Some(args)),
        };
        let program = self.program.clone();
        Ok(runner.run_command(
            &code,
            self.host_setup(observer),
            &CommandRun {
                program: &program,
                args: &args,
            },
        )?)
    }

    fn host_setup(self, observer: Arc<dyn Observer>) -> HostSetup {
        HostSetup {
            plan: self.plan,
            bundled_root: self.bundled_root,
            name: self.program,
            observer,
            data_dir: Some(self.data_dir),
        }
    }

    /// Serves an HTTP handler until `options.shutdown` completes; one fresh instance
    /// per request.
    pub fn serve(self, options: ServeOptions, observer: Arc<dyn Observer>) -> Result<(), Error> {
        let workers = match (
            options.workers,
            wpkg_runner::workers::single_process_reason(&self.plan),
        ) {
            (Some(n), Some(reason)) if n > 1 => {
                return Err(Error::WorkersNeedOneProcess { asked: n, reason })
            }
            (Some(n), _) => n.max(1),
            (None, _) => 1,
        };
        let runner = Runner::new_pooled(
            Some(self.code_cache.clone()),
            options.max_concurrent,
            self.plan.memory.0,
        )?;
        let (code, _status) = runner.code(&self.wasm_digest, || self.wasm.read())?;
        runner.serve_blocking(
            &code,
            self.host_setup(observer),
            wpkg_runner::http::ServeConfig {
                listen: options.listen,
                max_concurrent: options.max_concurrent,
                workers,
                on_ready: options.on_ready,
            },
            options.shutdown,
        )?;
        Ok(())
    }
}
