//! The HTTP trigger: serves a `wasi:http/proxy` component like `wasmtime serve` or
//! Spin, with a fresh instance per request (from an `InstancePre`), the pooling
//! allocator, a per-request time limit (504), a trap answering 500 while the server
//! keeps serving, a cap on concurrent requests (503 beyond it), graceful shutdown on
//! SIGINT/SIGTERM and one access-log line per request on stderr. Outbound HTTP goes
//! through [`crate::outbound`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::Store;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};
use wpkg_spec::plan::RunPlan;

use crate::caps::outbound::{GuardedHooks, OutboundPolicy};
use crate::caps::{self, limits::MemoryLimiter};
use crate::command::{wasi_builder, CommandRun};
use crate::{Compiled, Error, Runner};

/// How to serve.
pub struct ServeConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// What each instance may touch.
    pub plan: RunPlan,
    /// The bundled files (or an image's files), if the artifact has any.
    pub bundled_root: Option<wpkg_fsroot::Root>,
    /// Most requests handled at once; more get 503.
    pub max_concurrent: usize,
    /// The guest's name, for log lines.
    pub name: String,
    /// Called once the socket is bound, with its address.
    pub on_ready: Box<dyn FnOnce(SocketAddr) + Send + Sync>,
}

struct HttpState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: GuardedHooks,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl WasiView for HttpState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HttpState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

struct Shared {
    engine: wasmtime::Engine,
    pre: ProxyPre<HttpState>,
    config: ServeConfig,
    policy: Arc<OutboundPolicy>,
    in_flight: AtomicU64,
    name: Arc<str>,
}

type Body = HyperOutgoingBody;

fn text(status: u16, msg: &str) -> hyper::Response<Body> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(
            Full::new(Bytes::from(format!("{msg}\n")))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .expect("static response")
}

impl Runner {
    /// A runner whose engine uses the pooling allocator, sized for `max_concurrent`
    /// instances of at most `memory` bytes each.
    pub fn new_pooled(
        cache_dir: Option<PathBuf>,
        max_concurrent: usize,
        memory: u64,
    ) -> Result<Runner, Error> {
        let mut pool = wasmtime::PoolingAllocationConfig::new();
        // Headroom over the request cap: an instance finishing its response body can
        // still hold its slot for a moment after the next request is admitted.
        let n = (max_concurrent.max(1) as u32)
            .saturating_mul(2)
            .saturating_add(8);
        pool.total_component_instances(n);
        pool.total_core_instances(n * 10);
        pool.total_memories(n * 4);
        pool.total_tables(n * 10);
        pool.total_stacks(n);
        pool.max_memory_size(usize::try_from(memory).unwrap_or(usize::MAX));
        // Reset the first 64 KiB of memories, and small tables and stacks, with memset
        // instead of madvise: cheaper for short-lived request instances. Not more for
        // memories: a perf profile under wrk showed a 1 MiB memset per request as 26%
        // of the server's CPU (a Rust guest's 1 MiB stack sits below its data), and
        // 64 KiB served 25-33% more requests/s than 1 MiB (bench/http.sh).
        pool.linear_memory_keep_resident(64 << 10);
        pool.table_keep_resident(1 << 16);
        pool.async_stack_keep_resident(1 << 16);
        // Not `decommit_batch_size` > 1: batching resets was +14-16% req/s in an A/B
        // (one TLB flush per batch), but a slot waiting in a batch keeps every page its
        // instance touched, up to the memory limit each: the soak test saw a server's RSS
        // grow from 50 to 140 MB with memory-hungry guests.
        let mut config = crate::base_config();
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        // Initialize memories by copying the data segments (a few KiB for a typical
        // handler) rather than mapping them copy-on-write: the first write to a
        // copy-on-write page after a reset flushes that page from every core's TLB,
        // which was the next top entry of the profile; +7-12% req/s in an A/B (3
        // interleaved rounds of wrk -t2 -c50 -d8s).
        config.memory_init_cow(false);
        Runner::with_config(cache_dir, config)
    }

    /// Serves an HTTP component until SIGINT or SIGTERM, then lets in-flight requests
    /// finish.
    pub async fn serve(&self, code: &Compiled, config: ServeConfig) -> Result<(), Error> {
        let Compiled::Component(component) = code else {
            return Err(Error::Link(
                "the http trigger needs a component, and this is a core module".into(),
            ));
        };
        let mut linker: Linker<HttpState> = Linker::new(&self.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| Error::Link(format!("{e:#}")))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| Error::Link(format!("{e:#}")))?;
        let pre = linker
            .instantiate_pre(component)
            .map_err(|e| Error::Link(format!("{e:#}")))?;
        let pre = ProxyPre::new(pre).map_err(|_| {
            Error::Link("the component does not export `wasi:http/incoming-handler`; is it a command (`[trigger] type = \"command\"`)?".into())
        })?;
        // Check once, up front, that every capability can be granted.
        crate::validate(&config.plan, config.bundled_root.as_ref())?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Listen {
                addr: config.listen,
                source,
            })?;
        let local = listener.local_addr().map_err(|source| Error::Listen {
            addr: config.listen,
            source,
        })?;
        let name: Arc<str> = config.name.clone().into();
        let mut config = config;
        let on_ready = std::mem::replace(&mut config.on_ready, Box::new(|_| {}));
        let shared = Arc::new(Shared {
            engine: self.engine.clone(),
            pre,
            policy: Arc::new(OutboundPolicy::from_plan(&config.plan)),
            config,
            in_flight: AtomicU64::new(0),
            name,
        });
        on_ready(local);

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut connections = tokio::task::JoinSet::new();
        let shutdown = shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => {
                    let Ok((stream, peer)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let shared = shared.clone();
                    let mut stop = stop_rx.clone();
                    connections.spawn(async move {
                        let io = wasmtime_wasi_http::io::TokioIo::new(stream);
                        let service = hyper::service::service_fn(move |req| {
                            let shared = shared.clone();
                            async move { Ok::<_, std::convert::Infallible>(handle(shared, req, peer).await) }
                        });
                        let conn = hyper::server::conn::http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(io, service);
                        tokio::pin!(conn);
                        tokio::select! {
                            _ = conn.as_mut() => {}
                            _ = stop.changed() => {
                                conn.as_mut().graceful_shutdown();
                                let _ = conn.await;
                            }
                        }
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        eprintln!("wpkg: shutting down; waiting for in-flight requests");
        let _ = stop_tx.send(true);
        let drain = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(30), drain)
            .await
            .is_err()
        {
            eprintln!("wpkg: some requests did not finish within 30s; stopping anyway");
        }
        // Let the access-log writer flush the last lines.
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(())
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Access-log lines go through a channel to one writer task, which writes whatever has
/// queued up in one `write` call: no stderr lock or syscall on the request path.
fn access_log(line: String) {
    static TX: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<String>> =
        std::sync::OnceLock::new();
    let tx = TX.get_or_init(|| {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            use std::io::Write;
            let mut batch = String::new();
            while let Some(first) = rx.recv().await {
                batch.clear();
                batch.push_str(&first);
                while let Ok(more) = rx.try_recv() {
                    batch.push_str(&more);
                    if batch.len() > 64 * 1024 {
                        break;
                    }
                }
                let _ = std::io::stderr().write_all(batch.as_bytes());
            }
        });
        tx
    });
    let _ = tx.send(line);
}

struct InFlight<'a>(&'a AtomicU64);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: hyper::Request<Incoming>,
    _peer: SocketAddr,
) -> hyper::Response<Body> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "/".into());
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _guard = InFlight(&shared.in_flight);
    let (response, note) = if now > shared.config.max_concurrent as u64 {
        (
            text(503, "server busy: too many concurrent requests"),
            "over the concurrency cap".to_owned(),
        )
    } else {
        match instance_response(&shared, req).await {
            Ok(r) => (r, String::new()),
            Err((status, msg)) => (text(status, &msg), msg),
        }
    };
    access_log(format!(
        "{} {method} {path} {} {:.1}ms{}\n",
        shared.name,
        response.status().as_u16(),
        start.elapsed().as_secs_f64() * 1000.0,
        if note.is_empty() {
            String::new()
        } else {
            format!(" ({note})")
        }
    ));
    response
}

async fn instance_response(
    shared: &Shared,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Body>, (u16, String)> {
    let cfg = &shared.config;
    let run = CommandRun {
        program: &cfg.name,
        args: &[],
        plan: &cfg.plan,
        bundled_root: cfg.bundled_root.as_ref(),
    };
    let mut builder = wasi_builder(&run).map_err(|e| (500, e.to_string()))?;
    let limiter = MemoryLimiter::new(cfg.plan.memory.0);
    let mem_hit = limiter.hit.clone();
    let state = HttpState {
        wasi: builder.build(),
        http: WasiHttpCtx::new(),
        hooks: GuardedHooks {
            policy: shared.policy.clone(),
            guest: shared.name.clone(),
        },
        table: ResourceTable::new(),
        limiter,
    };
    let mut store = Store::new(&shared.engine, state);
    store.limiter(|s| &mut s.limiter);
    let timed_out = Arc::new(AtomicBool::new(false));
    let deadline = cfg.plan.timeout.map(|t| Instant::now() + t);
    caps::limits::arm_deadline(&mut store, deadline, timed_out.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let req_res = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, req)
        .map_err(|e| (400, format!("{e:#}")))?;
    let out = store
        .data_mut()
        .http()
        .new_response_outparam(tx)
        .map_err(|e| (500, format!("{e:#}")))?;
    let pre = shared.pre.clone();
    let task = tokio::spawn(async move {
        let proxy = pre.instantiate_async(&mut store).await?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, req_res, out)
            .await
    });
    let limit = cfg.plan.timeout.map(|t| t + Duration::from_millis(50));
    let received = match limit {
        Some(l) => match tokio::time::timeout(l, rx).await {
            Ok(r) => r,
            Err(_) => {
                // Wait for the cancelled instance to be dropped, so its pool slot is
                // free before the next request is admitted.
                task.abort();
                let _ = task.await;
                return Err((
                    504,
                    format!(
                        "the guest ran past its time limit of {}",
                        wpkg_spec::units::DurationSpec(cfg.plan.timeout.unwrap_or_default())
                    ),
                ));
            }
        },
        None => rx.await,
    };
    match received {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(code)) => Err((500, format!("the guest answered with an error: {code:?}"))),
        Err(_) => {
            // The guest dropped the outparam: find out why from the task.
            let why = match task.await {
                Ok(Ok(())) => "the guest returned without sending a response".to_owned(),
                Ok(Err(e)) => {
                    if timed_out.load(Ordering::SeqCst) {
                        return Err((504, "the guest ran past its time limit".into()));
                    }
                    if mem_hit.load(Ordering::SeqCst) {
                        return Err((
                            500,
                            format!("the guest exceeded its memory limit of {}", cfg.plan.memory),
                        ));
                    }
                    let msg = match e.downcast_ref::<wasmtime::Trap>() {
                        Some(t) => format!("the guest trapped: {t}"),
                        None => format!("the guest failed: {e:#}"),
                    };
                    msg.lines().next().unwrap_or("").to_owned()
                }
                Err(e) => format!("the guest task failed: {e}"),
            };
            Err((500, why))
        }
    }
}

impl Runner {
    /// [`Runner::serve`] on a multi-threaded runtime of its own.
    pub fn serve_blocking(&self, code: &Compiled, config: ServeConfig) -> Result<(), Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        rt.block_on(self.serve(code, config))
    }
}
