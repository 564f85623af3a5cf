//! The command trigger: a `wasi:cli/run` component or a WASIp1 module's `_start`,
//! with stdio, args and exactly the planned capabilities.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use wasmtime::Store;
use wasmtime_wasi::I32Exit;
use wpkg_spec::plan::RunPlan;

use crate::caps;
use crate::host::{Host, HostSetup, Invocation};
use crate::{Compiled, Error, Outcome, Runner};

/// One command run: what the guest is called with.
pub struct CommandRun<'a> {
    /// `argv[0]` as the guest sees it.
    pub program: &'a str,
    /// The remaining arguments.
    pub args: &'a [String],
}

impl Runner {
    /// Runs a command guest to completion with exactly the capabilities of `setup`.
    pub fn run_command(
        &self,
        code: &Compiled,
        setup: HostSetup,
        run: &CommandRun<'_>,
    ) -> Result<Outcome, Error> {
        self.ensure_ticker();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        crate::timings::mark("runtime");
        rt.block_on(async {
            let host = Host::new(setup).await?;
            self.run_command_async(code, &host, run).await
        })
    }

    async fn run_command_async(
        &self,
        code: &Compiled,
        host: &Host,
        run: &CommandRun<'_>,
    ) -> Result<Outcome, Error> {
        let inv = Invocation {
            program: run.program,
            args: run.args,
        };
        let plan = host.plan();
        let timed_out = Arc::new(AtomicBool::new(false));
        let deadline = plan.timeout.map(|t| Instant::now() + t);
        let (result, mem_hit): (wasmtime::Result<Result<(), ()>>, _) = match code {
            Compiled::Component(component) => {
                let linker = host.component_linker(&self.engine, component, false)?;
                let mut store = Store::new(&self.engine, host.component_state(&inv)?);
                let mem_hit = crate::host::arm(&mut store, deadline, timed_out.clone());
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
                (with_timeout(plan.timeout, &timed_out, fut).await?, mem_hit)
            }
            Compiled::Module(module) => {
                if module
                    .imports()
                    .any(|i| i.module() == "wasi" && i.name() == "thread-spawn")
                {
                    return Err(Error::Threads);
                }
                let linker = host.module_linker(&self.engine)?;
                let mut store = Store::new(&self.engine, host.module_state(&inv)?);
                let mem_hit = crate::host::arm(&mut store, deadline, timed_out.clone());
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
                (with_timeout(plan.timeout, &timed_out, fut).await?, mem_hit)
            }
        };
        Ok(classify(
            result,
            timed_out.load(Ordering::SeqCst),
            mem_hit.load(Ordering::SeqCst),
            plan,
        ))
    }
}

fn link_error(e: &wasmtime::Error) -> Error {
    Error::Link(format!(
        "{e:#}; wpkg provides WASI 0.2 (wasi:cli, wasi:filesystem, wasi:clocks, wasi:random, wasi:sockets, wasi:io), WASI preview 1, and when wpkg.toml declares them wasi:config and wasi:keyvalue"
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
    plan: &RunPlan,
) -> Outcome {
    match result {
        Ok(Ok(())) => Outcome::Exited(0),
        Ok(Err(())) => Outcome::Exited(1),
        Err(e) => {
            if let Some(exit) = e.downcast_ref::<I32Exit>() {
                return Outcome::Exited(exit.0);
            }
            if timed_out {
                return Outcome::TimedOut(plan.timeout.unwrap_or_default());
            }
            if mem_hit
                || e.downcast_ref::<caps::limits::MemoryLimitExceeded>()
                    .is_some()
            {
                return Outcome::MemoryExceeded(plan.memory.0);
            }
            let msg = match e.downcast_ref::<wasmtime::Trap>() {
                Some(trap) => format!("{trap}"),
                None => format!("{e:#}"),
            };
            Outcome::Trapped(msg.lines().next().unwrap_or("").to_owned())
        }
    }
}
