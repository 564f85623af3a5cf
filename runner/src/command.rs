//! The command trigger: a `wasi:cli/run` component or a WASIp1 module's `_start`,
//! with stdio, args and exactly the planned capabilities.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{Linker as ComponentLinker, ResourceTable};
use wasmtime::{Linker, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wpkg_spec::plan::RunPlan;

use crate::caps::{self, limits::MemoryLimiter};
use crate::{Compiled, Error, Outcome, Runner};

/// One command run.
pub struct CommandRun<'a> {
    /// `argv[0]` as the guest sees it.
    pub program: &'a str,
    /// The remaining arguments.
    pub args: &'a [String],
    /// What the guest may touch.
    pub plan: &'a RunPlan,
    /// The bundled files (or an image's files), if the artifact has any.
    pub bundled_root: Option<&'a wpkg_fsroot::Root>,
}

struct P2State {
    ctx: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl WasiView for P2State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

struct P1State {
    wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
}

/// Builds the WASI context for a plan: empty, then exactly what is granted. The caller
/// has run [`crate::validate`] once for the plan (not per instance).
pub fn wasi_builder(run: &CommandRun<'_>) -> Result<WasiCtxBuilder, Error> {
    let mut b = WasiCtxBuilder::new();
    b.inherit_stdio();
    b.arg(run.program);
    b.args(run.args);
    caps::env::apply(run.plan, &mut b);
    caps::files::apply(run.plan, run.bundled_root, &mut b)?;
    caps::network::apply(&mut b);
    Ok(b)
}

impl Runner {
    /// Runs a command guest to completion.
    pub fn run_command(&self, code: &Compiled, run: &CommandRun<'_>) -> Result<Outcome, Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        crate::timings::mark("runtime");
        rt.block_on(self.run_command_async(code, run))
    }

    async fn run_command_async(
        &self,
        code: &Compiled,
        run: &CommandRun<'_>,
    ) -> Result<Outcome, Error> {
        crate::validate(run.plan, run.bundled_root)?;
        let mut builder = wasi_builder(run)?;
        let limiter = MemoryLimiter::new(run.plan.memory.0);
        let mem_hit = limiter.hit.clone();
        let timed_out = Arc::new(AtomicBool::new(false));
        let deadline = run.plan.timeout.map(|t| Instant::now() + t);
        let result: wasmtime::Result<Result<(), ()>> = match code {
            Compiled::Component(component) => {
                let mut linker: ComponentLinker<P2State> = ComponentLinker::new(&self.engine);
                wasmtime_wasi::p2::add_to_linker_async(&mut linker)
                    .map_err(|e| Error::Link(format!("{e:#}")))?;
                let mut store = Store::new(
                    &self.engine,
                    P2State {
                        ctx: builder.build(),
                        table: ResourceTable::new(),
                        limiter,
                    },
                );
                store.limiter(|s| &mut s.limiter);
                caps::limits::arm_deadline(&mut store, deadline, timed_out.clone());
                let fut = async {
                    let pre = linker
                        .instantiate_pre(component)
                        .map_err(|e| link_error(&e))?;
                    let pre = wasmtime_wasi::p2::bindings::CommandPre::new(pre)
                        .map_err(|_| Error::Link("the component does not export `wasi:cli/run`; is it an HTTP handler (`[trigger] type = \"http\"`)?".into()))?;
                    crate::timings::mark("link");
                    let command = pre.instantiate_async(&mut store).await;
                    crate::timings::mark("instantiate");
                    let ran = match command {
                        Ok(c) => c.wasi_cli_run().call_run(&mut store).await,
                        Err(e) => Err(e),
                    };
                    crate::timings::mark("guest");
                    Ok::<_, Error>(ran)
                };
                with_timeout(run.plan.timeout, &timed_out, fut).await?
            }
            Compiled::Module(module) => {
                let mut linker: Linker<P1State> = Linker::new(&self.engine);
                wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s| &mut s.wasi)
                    .map_err(|e| Error::Link(format!("{e:#}")))?;
                let mut store = Store::new(
                    &self.engine,
                    P1State {
                        wasi: builder.build_p1(),
                        limiter,
                    },
                );
                store.limiter(|s| &mut s.limiter);
                caps::limits::arm_deadline(&mut store, deadline, timed_out.clone());
                let fut = async {
                    let pre = linker.instantiate_pre(module).map_err(|e| link_error(&e))?;
                    crate::timings::mark("link");
                    let r = async {
                        let instance = pre.instantiate_async(&mut store).await?;
                        crate::timings::mark("instantiate");
                        let start = instance
                            .get_typed_func::<(), ()>(&mut store, "_start")
                            .map_err(|_| wasmtime::Error::msg("the module has no `_start` export; a command module must be built as a WASI program (a `main`)"))?;
                        start.call_async(&mut store, ()).await
                    }
                    .await;
                    crate::timings::mark("guest");
                    Ok::<_, Error>(r.map(Ok))
                };
                with_timeout(run.plan.timeout, &timed_out, fut).await?
            }
        };
        Ok(classify(
            result,
            timed_out.load(Ordering::SeqCst),
            mem_hit.load(Ordering::SeqCst),
            run,
        ))
    }
}

fn link_error(e: &wasmtime::Error) -> Error {
    Error::Link(format!(
        "{e:#}; wpkg provides WASI 0.2 (wasi:cli, wasi:filesystem, wasi:clocks, wasi:random, wasi:sockets, wasi:io) and WASI preview 1"
    ))
}

async fn with_timeout<F, T>(
    timeout: Option<std::time::Duration>,
    timed_out: &AtomicBool,
    fut: F,
) -> Result<wasmtime::Result<T>, Error>
where
    F: std::future::Future<Output = Result<wasmtime::Result<T>, Error>>,
{
    match timeout {
        None => fut.await,
        // A little slack so that a busy guest is stopped by the epoch trap first;
        // this catches a guest blocked in a host call.
        Some(t) => {
            match tokio::time::timeout(t + std::time::Duration::from_millis(50), fut).await {
                Ok(r) => r,
                Err(_) => {
                    timed_out.store(true, Ordering::SeqCst);
                    Ok(Err(wasmtime::Error::msg("timed out")))
                }
            }
        }
    }
}

fn classify(
    result: wasmtime::Result<Result<(), ()>>,
    timed_out: bool,
    mem_hit: bool,
    run: &CommandRun<'_>,
) -> Outcome {
    match result {
        Ok(Ok(())) => Outcome::Exited(0),
        Ok(Err(())) => Outcome::Exited(1),
        Err(e) => {
            if let Some(exit) = e.downcast_ref::<I32Exit>() {
                return Outcome::Exited(exit.0);
            }
            if timed_out {
                return Outcome::TimedOut(run.plan.timeout.unwrap_or_default());
            }
            if mem_hit
                || e.downcast_ref::<caps::limits::MemoryLimitExceeded>()
                    .is_some()
            {
                return Outcome::MemoryExceeded(run.plan.memory.0);
            }
            let msg = match e.downcast_ref::<wasmtime::Trap>() {
                Some(trap) => format!("{trap}"),
                None => format!("{e:#}"),
            };
            Outcome::Trapped(msg.lines().next().unwrap_or("").to_owned())
        }
    }
}
