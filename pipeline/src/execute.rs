//! Steps 3 to 5: plan (the artifact's capabilities narrowed by the operator), prepare
//! (the wasm read back digest-checked, bundled files extracted), execute (a command
//! run or an HTTP server). Only a [`VerifiedArtifact`] can be prepared.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use wpkg_runner::caps::outbound::HostsOverride;
use wpkg_runner::command::CommandRun;
use wpkg_runner::{Outcome, Runner};
use wpkg_spec::manifest::Trigger;
use wpkg_spec::plan::{OperatorRequest, RunPlan};
use wpkg_store::Store;

use crate::verify::VerifiedArtifact;
use crate::{Error, Home};

/// A verified artifact with its plan, ready to execute.
pub struct Prepared {
    plan: RunPlan,
    wasm: Vec<u8>,
    wasm_digest: String,
    bundled_root: Option<PathBuf>,
    program: String,
    name: String,
    code_cache: PathBuf,
}

/// Plans and prepares a run of `verified` with the operator's `request`.
pub fn prepare(
    home: &Home,
    store: &Store,
    verified: &VerifiedArtifact,
    request: &OperatorRequest,
) -> Result<Prepared, Error> {
    let art = verified.artifact();
    let caps = art.capabilities()?;
    let plan = RunPlan::new(&caps, request)?;
    let wasm = store.read_descriptor(&art.wasm_layer)?;
    let bundled_root = match &art.files_layer {
        Some(layer) => {
            let digest = wpkg_spec::Digest::parse(&layer.digest)
                .map_err(|_| wpkg_store::Error::InvalidDigest(layer.digest.clone()))?;
            let dest = home.files_cache().join(digest.hex());
            wpkg_store::artifact::extract_files(store, layer, &dest)?;
            Some(dest)
        }
        None => None,
    };
    let reference = verified.reference();
    let program = reference.familiar_name();
    let program = program.rsplit('/').next().unwrap_or("main").to_owned();
    Ok(Prepared {
        plan,
        wasm,
        wasm_digest: art.wasm_layer.digest.clone(),
        bundled_root,
        program,
        name: reference.familiar(),
        code_cache: home.code_cache(),
    })
}

/// How to serve an HTTP handler.
pub struct ServeOptions {
    /// Where to listen (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Most requests handled at once; more are answered 503.
    pub max_concurrent: usize,
    /// Called once the socket is bound.
    pub on_ready: Box<dyn FnOnce(SocketAddr) + Send + Sync>,
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

impl Prepared {
    /// Exactly what the run grants.
    pub fn plan(&self) -> &RunPlan {
        &self.plan
    }

    /// The image's name, as people write it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs a command guest with `args` (after `argv[0]`, the repository's last part).
    pub fn run_command(&self, args: &[String]) -> Result<Outcome, Error> {
        if self.plan.trigger == Trigger::Http {
            return Err(Error::NotACommand);
        }
        let runner = Runner::new(&self.code_cache)?;
        let (code, _status) = runner.compile(&self.wasm_digest, &self.wasm)?;
        Ok(runner.run_command(
            &code,
            &CommandRun {
                program: &self.program,
                args,
                plan: &self.plan,
                bundled_root: self.bundled_root.as_deref(),
            },
        )?)
    }

    /// Serves an HTTP handler until interrupted; one fresh instance per request.
    pub fn serve(self, options: ServeOptions) -> Result<(), Error> {
        let runner =
            Runner::new_pooled(&self.code_cache, options.max_concurrent, self.plan.memory.0)?;
        let (code, _status) = runner.compile(&self.wasm_digest, &self.wasm)?;
        runner.serve_blocking(
            &code,
            wpkg_runner::http::ServeConfig {
                listen: options.listen,
                plan: self.plan,
                bundled_root: self.bundled_root,
                max_concurrent: options.max_concurrent,
                name: self.program,
                on_ready: options.on_ready,
            },
        )?;
        Ok(())
    }
}
