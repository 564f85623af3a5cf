//! Machine learning (`wasi:nn@0.2.0-rc-2024-10-28`, ONNX): the guest loads the models
//! bundled with its artifact by name (`load-by-name`) and nothing else; `load` of bytes
//! of its own finds no backend. Models are read from the files layer (inside the
//! bundled files, through [`wpkg_fsroot`]) and loaded once per run or server.
//!
//! ONNX Runtime is loaded at run time from `ORT_DYLIB_PATH` (the `onnxruntime` package on
//! PyPI ships `libonnxruntime.so` in `onnxruntime/capi/`); wpkg links nothing of it.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::Linker;
use wasmtime_wasi_nn::wit::{ExecutionTarget, GraphEncoding, WasiNnCtx, WasiNnView};
use wasmtime_wasi_nn::{Graph, GraphRegistry};
use wpkg_fsroot::Root;
use wpkg_spec::plan::RunPlan;

use crate::host::HostState;
use crate::Error;

/// The environment variable naming ONNX Runtime's shared library.
pub const RUNTIME_ENV: &str = "ORT_DYLIB_PATH";

/// Largest model read, in bytes.
pub const MAX_MODEL: u64 = 512 << 20;

/// The loaded models of one run or server.
#[derive(Clone, Default)]
pub struct Models(Arc<HashMap<String, Graph>>);

struct Registry(HashMap<String, Graph>);

impl GraphRegistry for Registry {
    fn get(&self, name: &str) -> Option<&Graph> {
        self.0.get(name)
    }
    fn get_mut(&mut self, name: &str) -> Option<&mut Graph> {
        self.0.get_mut(name)
    }
}

fn nn_error(model: &str, reason: impl Into<String>) -> Error {
    Error::Nn {
        model: model.to_owned(),
        reason: reason.into(),
    }
}

/// Loads every model the plan names; any failure stops the run before the guest starts.
pub fn load(plan: &RunPlan, bundled_root: Option<&Root>) -> Result<Models, Error> {
    let Some(first) = plan.nn_models.first() else {
        return Ok(Models::default());
    };
    let runtime = std::env::var_os(RUNTIME_ENV).ok_or_else(|| Error::NnRuntime {
        reason: format!("{RUNTIME_ENV} is not set"),
    })?;
    if !std::path::Path::new(&runtime).is_file() {
        return Err(Error::NnRuntime {
            reason: format!("{RUNTIME_ENV}={} is not a file", runtime.to_string_lossy()),
        });
    }
    let root = bundled_root.ok_or_else(|| nn_error(first, "the artifact has no files layer"))?;
    let mut bytes = Vec::new();
    for name in &plan.nn_models {
        let path = format!("{}/{name}.onnx", wpkg_spec::nn::MODELS_DIR);
        let b = root
            .read(&path, MAX_MODEL)
            .map_err(|e| nn_error(name, format!("it is not in the artifact's files ({e})")))?;
        bytes.push((name.clone(), b));
    }
    // ort panics when the library cannot be loaded or is not ONNX Runtime; keep that
    // a clear error (and its message off the terminal).
    let runtime = runtime.to_string_lossy().into_owned();
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let loaded = std::panic::catch_unwind(move || {
        ort::init_from(runtime.clone())
            .commit()
            .map_err(|e| Error::NnRuntime {
                reason: format!("{runtime}: {e}"),
            })?;
        let mut backend = wasmtime_wasi_nn::backend::list()
            .into_iter()
            .find(|b| b.encoding() == GraphEncoding::Onnx)
            .ok_or_else(|| Error::NnRuntime {
                reason: "this wpkg was built without the ONNX backend".into(),
            })?;
        let mut graphs = HashMap::new();
        for (name, b) in bytes {
            let graph = backend
                .load(&[b.as_slice()], ExecutionTarget::Cpu)
                .map_err(|e| nn_error(&name, format!("ONNX Runtime cannot load it: {e}")))?;
            graphs.insert(name, graph);
        }
        Ok(graphs)
    });
    std::panic::set_hook(quiet);
    let graphs = loaded.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "it could not be loaded".into());
        Err(Error::NnRuntime { reason: why })
    })?;
    Ok(Models(Arc::new(graphs)))
}

/// A fresh context for one instance: the models by name, and no backend, so that the
/// guest cannot load a model of its own.
pub fn context(models: &Models) -> WasiNnCtx {
    WasiNnCtx::new(
        Vec::new(),
        wasmtime_wasi_nn::Registry::from(Registry(models.0.as_ref().clone())),
    )
}

/// The capability: granted when the manifest bundles models.
pub struct Nn;

impl crate::host::Capability for Nn {
    fn name(&self) -> &'static str {
        "machine learning (wasi-nn)"
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["wasi:nn/"]
    }
    fn granted(&self, plan: &RunPlan) -> bool {
        !plan.nn_models.is_empty()
    }
    fn declaration(&self) -> &'static str {
        "an [nn] table bundling its models (models = [\"model.onnx\"])"
    }
    fn add_to_linker(&self, linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        wasmtime_wasi_nn::wit::add_to_linker(linker, |s: &mut HostState| {
            WasiNnView::new(
                &mut s.table,
                s.nn.as_mut()
                    .expect("an instance granted wasi-nn has its context"),
            )
        })
    }
}
