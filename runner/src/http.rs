//! The HTTP trigger: serves a `wasi:http/proxy` component like `wasmtime serve` or
//! Spin, with a fresh instance per request (from an `InstancePre`), the pooling
//! allocator, a per-request time limit (504), a trap answering 500 while the server
//! keeps serving, a cap on concurrent requests (503 beyond it) and graceful shutdown
//! when the caller's shutdown future completes. Each request ends in an
//! [`Event::Served`] for the observer (the access log). Outbound HTTP goes through
//! [`crate::caps::outbound`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use crate::host::{Event, Host, HostSetup, HostState, Invocation};
use crate::workers::SharedCount;
use crate::{Compiled, Error, Outcome, Runner};

/// How to serve.
pub struct ServeConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Most requests handled at once; more get 503.
    pub max_concurrent: usize,
    /// Worker processes ([`crate::workers`]): 1 serves from this process on a thread
    /// per core; more fork that many single-threaded workers, unless the plan must stay
    /// in one process ([`crate::workers::single_process_reason`]).
    pub workers: usize,
    /// Called once the socket is bound, with its address.
    pub on_ready: Box<dyn FnOnce(SocketAddr) + Send + Sync>,
}

/// What every request of one server uses: checked and linked once, before serving.
pub(crate) struct Shared {
    engine: wasmtime::Engine,
    pre: ProxyPre<HostState>,
    pub(crate) host: Host,
    max_concurrent: usize,
    /// Requests in flight, counted across worker processes.
    in_flight: SharedCount,
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
        // Reset memories by finding the pages the instance wrote (the PAGEMAP_SCAN
        // ioctl, Linux 6.7 and later; elsewhere the first 64 KiB) and zeroing up to
        // 64 KiB of them with memset, giving back only what lies beyond: most requests
        // then need no madvise, no page faults on the next use and no TLB flush. Without
        // the scan, a memset of the first 1 MiB was 26% of the server's CPU in a perf
        // profile (a Rust guest's 1 MiB stack sits below its data, untouched at the
        // bottom). With it: +50-70% req/s in an A/B (bench/http.sh-style wrk -t2 -c50,
        // 2 workers, 8k-15k -> 21k-27k); 1 and 2 MiB kept served no more than 64 KiB.
        pool.linear_memory_keep_resident(64 << 10);
        pool.pagemap_scan(wasmtime::Enabled::Auto);
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

    /// Checks that every capability of `setup` can be granted and links the component:
    /// what every request then uses.
    pub(crate) async fn prepare_serving(
        &self,
        code: &Compiled,
        setup: HostSetup,
        max_concurrent: usize,
    ) -> Result<Shared, Error> {
        let Compiled::Component(component) = code else {
            return Err(Error::Link(
                "the http trigger needs a component, and this is a core module".into(),
            ));
        };
        let host = Host::new(setup).await?;
        let linker = host.component_linker(&self.engine, component, true)?;
        let pre = linker
            .instantiate_pre(component)
            .map_err(|e| Error::Link(format!("{e:#}")))?;
        let pre = ProxyPre::new(pre).map_err(|_| {
            Error::Link("the component does not export `wasi:http/incoming-handler`; is it a command (`[trigger] type = \"command\"`)?".into())
        })?;
        Ok(Shared {
            engine: self.engine.clone(),
            pre,
            host,
            max_concurrent,
            in_flight: SharedCount::new()?,
        })
    }

    /// Serves an HTTP component with exactly the capabilities of `setup` until
    /// `shutdown` completes, then lets in-flight requests finish. Serves from the
    /// caller's runtime, in this process (`config.workers` is not used).
    pub async fn serve(
        &self,
        code: &Compiled,
        setup: HostSetup,
        config: ServeConfig,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        self.ensure_ticker();
        // Check once, up front, that every capability can be granted.
        let shared = self
            .prepare_serving(code, setup, config.max_concurrent)
            .await?;
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
        (config.on_ready)(local);
        accept_loop(Arc::new(shared), listener, shutdown, true).await;
        Ok(())
    }
}

/// Accepts and serves connections until `shutdown` completes, then lets in-flight
/// requests finish (up to 30 s); says so when `report_drain`.
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
    report_drain: bool,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
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
    // No new connections while draining.
    drop(listener);
    let observer = shared.host.observer().clone();
    if report_drain {
        observer.event(&Event::Draining);
    }
    let _ = stop_tx.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    let waited = Duration::from_secs(30);
    if tokio::time::timeout(waited, drain).await.is_err() {
        observer.event(&Event::DrainTimedOut { waited });
    }
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
    let result = if now > shared.max_concurrent as u64 {
        Err(Outcome::Busy)
    } else {
        instance_response(&shared, req).await
    };
    let (response, failure) = match result {
        Ok(r) => (r, None),
        Err(outcome) => (
            text(
                outcome.http_status(),
                &outcome.describe().unwrap_or_default(),
            ),
            Some(outcome),
        ),
    };
    shared.host.observer().event(&Event::Served {
        guest: shared.host.name(),
        method: method.as_str(),
        path: &path,
        status: response.status().as_u16(),
        elapsed: start.elapsed(),
        failure: failure.as_ref(),
    });
    response
}

async fn instance_response(
    shared: &Shared,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Body>, Outcome> {
    let host = &shared.host;
    let plan = host.plan();
    let state = host
        .component_state(&Invocation {
            program: host.name(),
            args: &[],
        })
        .map_err(|e| Outcome::Failed(e.to_string()))?;
    let mut store = Store::new(&shared.engine, state);
    let timed_out = Arc::new(AtomicBool::new(false));
    let deadline = plan.timeout.map(|t| Instant::now() + t);
    let mem_hit = crate::host::arm(&mut store, deadline, timed_out.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let req_res = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, req)
        .map_err(|e| Outcome::BadRequest(format!("{e:#}")))?;
    let out = store
        .data_mut()
        .http()
        .new_response_outparam(tx)
        .map_err(|e| Outcome::Failed(format!("{e:#}")))?;
    let pre = shared.pre.clone();
    let task = tokio::spawn(async move {
        let proxy = pre.instantiate_async(&mut store).await?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, req_res, out)
            .await
    });
    let limit = plan.timeout.map(|t| t + Duration::from_millis(50));
    let received = match limit {
        Some(l) => match tokio::time::timeout(l, rx).await {
            Ok(r) => r,
            Err(_) => {
                // Wait for the cancelled instance to be dropped, so its pool slot is
                // free before the next request is admitted.
                task.abort();
                let _ = task.await;
                return Err(Outcome::TimedOut(plan.timeout.unwrap_or_default()));
            }
        },
        None => rx.await,
    };
    match received {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(code)) => Err(Outcome::Failed(format!(
            "the guest answered with an error: {code:?}"
        ))),
        // The guest dropped the outparam: find out why from the task.
        Err(_) => Err(match task.await {
            Ok(Ok(())) => Outcome::Failed("the guest returned without sending a response".into()),
            Ok(Err(e)) => {
                if timed_out.load(Ordering::SeqCst) {
                    Outcome::TimedOut(plan.timeout.unwrap_or_default())
                } else if mem_hit.load(Ordering::SeqCst) {
                    Outcome::MemoryExceeded(plan.memory.0)
                } else {
                    let msg = match e.downcast_ref::<wasmtime::Trap>() {
                        Some(t) => format!("{t}"),
                        None => format!("{e:#}"),
                    };
                    Outcome::Trapped(msg.lines().next().unwrap_or("").to_owned())
                }
            }
            Err(e) => Outcome::Failed(format!("the guest task failed: {e}")),
        }),
    }
}

impl Runner {
    /// Serves until the future `shutdown` makes completes (it is made inside the
    /// server's runtime, so it may install signal handlers; with worker processes each
    /// worker makes its own): from `config.workers` worker processes when more than one
    /// and the plan allows it ([`crate::workers`]), else from this process on a
    /// multi-threaded runtime.
    pub fn serve_blocking<F, Fut>(
        &self,
        code: &Compiled,
        setup: HostSetup,
        config: ServeConfig,
        shutdown: F,
    ) -> Result<(), Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ()>,
    {
        if config.workers > 1 {
            match crate::workers::single_process_reason(&setup.plan) {
                None => {
                    // Checked and linked on a runtime that is gone (with any thread
                    // it had) before the workers are forked.
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(Error::Runtime)?;
                    let shared =
                        rt.block_on(self.prepare_serving(code, setup, config.max_concurrent))?;
                    drop(rt);
                    return self.serve_forked(
                        shared,
                        config.listen,
                        config.workers,
                        config.on_ready,
                        &shutdown,
                    );
                }
                Some(why) => setup.observer.event(&Event::Workers {
                    count: 1,
                    single: Some(why),
                }),
            }
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        rt.block_on(async { self.serve(code, setup, config, shutdown()).await })
    }

    /// Serves `shared` on `socket` from this process, on a multi-threaded runtime.
    pub(crate) fn serve_threaded<Fut>(
        &self,
        shared: Arc<Shared>,
        socket: std::net::TcpListener,
        shutdown: &dyn Fn() -> Fut,
    ) -> Result<(), Error>
    where
        Fut: Future<Output = ()>,
    {
        self.ensure_ticker();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        rt.block_on(async {
            let addr = socket.local_addr().map_err(Error::Runtime)?;
            let listener = socket
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(socket))
                .map_err(|source| Error::Listen { addr, source })?;
            accept_loop(shared, listener, shutdown(), true).await;
            Ok(())
        })
    }
}
