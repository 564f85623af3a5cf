//! The one host: one store state ([`HostState`]) and one linker builder for WASIp1
//! modules, command components and HTTP handlers. A [`Host`] is made once per run or
//! server from a [`HostSetup`] (the plan, the bundled files, the observer): it checks
//! every capability on this machine and opens what they need (stores, connections);
//! then each instance gets a fresh state from it.
//!
//! A capability outside WASI's core (files, env, clocks, random, stdio: always the same
//! shape, in [`crate::caps`]) is one module implementing [`Capability`]: which WIT
//! packages it serves, whether the plan grants it, the declaration that would, and how
//! it joins the linker. A guest importing a capability the plan does not grant is
//! refused before it starts, naming that declaration.
//!
//! Nothing here prints: what happens (denials, requests served, shutdown) goes to the
//! front end's [`Observer`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, Linker as ComponentLinker, ResourceTable};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};
use wpkg_fsroot::Root;
use wpkg_spec::plan::RunPlan;

use crate::caps::limits::MemoryLimiter;
use crate::caps::outbound::{GuardedHooks, OutboundPolicy};
use crate::caps::{self, config, keyvalue, nn};
use crate::{Error, Outcome};

/// Something that happened while a guest ran, for the front end to show.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// An outbound HTTP request was refused.
    OutboundDenied {
        /// The guest's name.
        guest: &'a str,
        /// The request's method.
        method: &'a str,
        /// `scheme://authority/path` asked for.
        destination: &'a str,
        /// Why.
        reason: &'a str,
        /// The `outbound_http` entry that would allow it, if one could.
        entry: Option<&'a str>,
    },
    /// An HTTP request was answered.
    Served {
        /// The guest's name.
        guest: &'a str,
        /// The request's method.
        method: &'a str,
        /// Its path and query.
        path: &'a str,
        /// The status sent.
        status: u16,
        /// From arrival to answer.
        elapsed: Duration,
        /// How the instance failed, when it did.
        failure: Option<&'a Outcome>,
    },
    /// The server stopped accepting and waits for requests in flight.
    Draining,
    /// Requests were still in flight when the drain time ran out.
    DrainTimedOut {
        /// How long it waited.
        waited: Duration,
    },
    /// The server serves from this many worker processes (1: from this process).
    Workers {
        /// How many.
        count: usize,
        /// Why one when more were asked for, if so.
        single: Option<&'a str>,
    },
    /// A worker process ended while the server was running.
    WorkerExited {
        /// Its slot (0-based).
        slot: usize,
        /// How it ended, in words (`exit code 3`, `signal 11`).
        how: &'a str,
        /// Whether a new one was started in its place.
        restarted: bool,
    },
}

impl std::fmt::Display for Event<'_> {
    /// The event as one log line (no newline): what front ends print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::OutboundDenied {
                guest,
                method,
                destination,
                reason,
                entry,
            } => {
                write!(
                    f,
                    "wpkg: {guest}: outbound request denied: {method} {destination}: {reason}"
                )?;
                match entry {
                    Some(e) => write!(
                        f,
                        "; to allow it, add to wpkg.toml: outbound_http = [\"{e}\"]"
                    ),
                    None => Ok(()),
                }
            }
            Event::Served {
                guest,
                method,
                path,
                status,
                elapsed,
                failure,
            } => {
                write!(
                    f,
                    "{guest} {method} {path} {status} {:.1}ms",
                    elapsed.as_secs_f64() * 1000.0
                )?;
                match failure.and_then(|o| o.describe()) {
                    Some(d) => write!(f, " ({d})"),
                    None => Ok(()),
                }
            }
            Event::Draining => f.write_str("wpkg: shutting down; waiting for in-flight requests"),
            Event::Workers {
                count,
                single: None,
            } => write!(
                f,
                "wpkg: serving from {count} worker process{}",
                if *count == 1 { "" } else { "es" }
            ),
            Event::Workers {
                count,
                single: Some(why),
            } => write!(f, "wpkg: serving from {count} process: {why}"),
            Event::WorkerExited {
                slot,
                how,
                restarted,
            } => write!(
                f,
                "wpkg: worker {slot} ended ({how}); {}",
                if *restarted {
                    "started a new one"
                } else {
                    "stopping the server"
                }
            ),
            Event::DrainTimedOut { waited } => write!(
                f,
                "wpkg: some requests did not finish within {}s; stopping anyway",
                waited.as_secs()
            ),
        }
    }
}

/// Receives [`Event`]s; the front end renders them.
pub trait Observer: Send + Sync {
    /// One event.
    fn event(&self, event: &Event<'_>);
    /// Waits until every event so far is written out (a worker process calls it before
    /// it exits).
    fn flush(&self) {}
}

/// An observer that drops every event.
pub struct Silent;

impl Observer for Silent {
    fn event(&self, _: &Event<'_>) {}
}

/// A capability beyond WASI's core, as one module.
pub trait Capability: Sync {
    /// What it is, in words.
    fn name(&self) -> &'static str;
    /// The WIT packages (or interfaces) it serves, as import-name prefixes.
    fn interfaces(&self) -> &'static [&'static str];
    /// Whether the plan grants it.
    fn granted(&self, plan: &RunPlan) -> bool;
    /// What to declare in `wpkg.toml` to grant it.
    fn declaration(&self) -> &'static str;
    /// Adds its interfaces to the linker (only when granted).
    fn add_to_linker(&self, linker: &mut ComponentLinker<HostState>) -> wasmtime::Result<()>;
}

/// Every capability beyond WASI's core.
pub const CAPABILITIES: &[&dyn Capability] = &[&config::Config, &keyvalue::KeyValue, &nn::Nn];

/// What a host is made from.
pub struct HostSetup {
    /// What the guest may touch.
    pub plan: RunPlan,
    /// The bundled files (or an image's files), if any.
    pub bundled_root: Option<Root>,
    /// The guest's name, for events.
    pub name: String,
    /// Where events go.
    pub observer: Arc<dyn Observer>,
    /// The directory of this image's embedded key-value stores.
    pub data_dir: Option<PathBuf>,
}

/// The state of one instance.
pub struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) p1: Option<WasiP1Ctx>,
    pub(crate) http: WasiHttpCtx,
    pub(crate) hooks: GuardedHooks,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) config: config::Values,
    pub(crate) kv: keyvalue::Stores,
    pub(crate) nn: Option<wasmtime_wasi_nn::wit::WasiNnCtx>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// One run's or server's capabilities, checked and opened.
pub struct Host {
    plan: RunPlan,
    bundled_root: Option<Root>,
    name: Arc<str>,
    observer: Arc<dyn Observer>,
    policy: Arc<OutboundPolicy>,
    config: config::Values,
    kv: keyvalue::Stores,
    models: nn::Models,
}

/// What an instance is started with besides the host's grants.
pub struct Invocation<'a> {
    /// `argv[0]`.
    pub program: &'a str,
    /// The other arguments.
    pub args: &'a [String],
}

impl Host {
    /// Checks every capability of the plan on this machine and opens what they need.
    pub async fn new(setup: HostSetup) -> Result<Host, Error> {
        crate::validate(&setup.plan, setup.bundled_root.as_ref())?;
        let kv = keyvalue::open(&setup.plan, setup.data_dir.as_deref()).await?;
        let models = nn::load(&setup.plan, setup.bundled_root.as_ref())?;
        Ok(Host {
            models,
            policy: Arc::new(OutboundPolicy::from_plan(&setup.plan)),
            config: config::values(&setup.plan),
            kv,
            plan: setup.plan,
            bundled_root: setup.bundled_root,
            name: setup.name.into(),
            observer: setup.observer,
        })
    }

    /// The plan.
    pub fn plan(&self) -> &RunPlan {
        &self.plan
    }

    /// The guest's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Where events go.
    pub fn observer(&self) -> &Arc<dyn Observer> {
        &self.observer
    }

    fn wasi(&self, inv: &Invocation<'_>) -> Result<WasiCtxBuilder, Error> {
        let mut b = WasiCtxBuilder::new();
        b.inherit_stdio();
        b.arg(inv.program);
        b.args(inv.args);
        caps::env::apply(&self.plan, &mut b);
        caps::files::apply(&self.plan, self.bundled_root.as_ref(), &mut b)?;
        caps::network::apply(&mut b);
        Ok(b)
    }

    fn state(&self, wasi: WasiCtx, p1: Option<WasiP1Ctx>) -> HostState {
        HostState {
            wasi,
            table: ResourceTable::new(),
            p1,
            http: WasiHttpCtx::new(),
            hooks: GuardedHooks {
                policy: self.policy.clone(),
                guest: self.name.clone(),
                observer: self.observer.clone(),
            },
            limiter: MemoryLimiter::new(self.plan.memory.0),
            config: self.config.clone(),
            kv: self.kv.clone(),
            nn: (!self.plan.nn_models.is_empty()).then(|| nn::context(&self.models)),
        }
    }

    /// A fresh state for one component instance.
    pub fn component_state(&self, inv: &Invocation<'_>) -> Result<HostState, Error> {
        Ok(self.state(self.wasi(inv)?.build(), None))
    }

    /// A fresh state for one WASIp1 module instance.
    pub fn module_state(&self, inv: &Invocation<'_>) -> Result<HostState, Error> {
        let p1 = self.wasi(inv)?.build_p1();
        Ok(self.state(WasiCtxBuilder::new().build(), Some(p1)))
    }

    /// The linker for components: WASI 0.2, wasi:http when `http`, and every granted
    /// capability. Refuses a component that imports a capability the plan does not
    /// grant, naming what to declare.
    pub fn component_linker(
        &self,
        engine: &wasmtime::Engine,
        component: &Component,
        http: bool,
    ) -> Result<ComponentLinker<HostState>, Error> {
        let link = |e: wasmtime::Error| Error::Link(format!("{e:#}"));
        let ty = component.component_type();
        for (import, _) in ty.imports(engine) {
            for cap in CAPABILITIES {
                if !cap.granted(&self.plan)
                    && cap.interfaces().iter().any(|p| import.starts_with(p))
                {
                    return Err(Error::Undeclared {
                        import: import.to_owned(),
                        capability: cap.name(),
                        declaration: cap.declaration(),
                    });
                }
            }
        }
        let mut linker = ComponentLinker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
        if http {
            wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(link)?;
        }
        for cap in CAPABILITIES {
            if cap.granted(&self.plan) {
                cap.add_to_linker(&mut linker).map_err(link)?;
            }
        }
        Ok(linker)
    }

    /// The linker for WASIp1 modules.
    pub fn module_linker(
        &self,
        engine: &wasmtime::Engine,
    ) -> Result<wasmtime::Linker<HostState>, Error> {
        let mut linker = wasmtime::Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut HostState| {
            s.p1.as_mut()
                .expect("a module instance has a WASIp1 context")
        })
        .map_err(|e| Error::Link(format!("{e:#}")))?;
        Ok(linker)
    }
}

/// Arms a store's limits: memory through its limiter, time through the epoch.
pub(crate) fn arm(
    store: &mut wasmtime::Store<HostState>,
    deadline: Option<std::time::Instant>,
    timed_out: Arc<std::sync::atomic::AtomicBool>,
) -> Arc<std::sync::atomic::AtomicBool> {
    let hit = store.data().limiter.hit.clone();
    store.limiter(|s| &mut s.limiter);
    caps::limits::arm_deadline(store, deadline, timed_out);
    hit
}
