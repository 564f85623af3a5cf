//! Worker processes for the HTTP trigger: one address space per core.
//!
//! Each request's instance is reset when it ends, and on Linux giving its pages back
//! flushes them from the TLB of every core running a thread of the same process: with
//! one multi-threaded server, every request interrupted the other cores. Workers are
//! single-threaded processes forked from the server once everything is checked and
//! compiled, so a reset flushes only its own core. They share the port with
//! `SO_REUSEPORT` (one socket per worker, all bound by the server, so that a worker's
//! queued connections wait for its replacement), and the cap on concurrent requests with
//! a counter in memory they all map. The server process serves nothing: it forwards
//! SIGINT and SIGTERM, replaces a worker that dies (unless it died within seconds of
//! starting, which would only repeat) and returns when every worker has drained.
//!
//! Forking copies only the calling thread, so the server forks only while it has no
//! other: the epoch ticker starts in each worker, compilation's threads end before it
//! returns ([`crate::cache`]), the front end's log writer starts on its first line, and
//! the thread count is read back just before forking. Plans that open something one
//! process must own (key-value stores, wasi-nn runtimes) are served from one process.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wpkg_spec::plan::RunPlan;

use crate::host::Event;
use crate::http::Shared;
use crate::{Error, Runner};

/// Why a server with this plan must stay in one process, if it must.
pub fn single_process_reason(plan: &RunPlan) -> Option<&'static str> {
    if !plan.key_value.is_empty() {
        Some("its key-value stores are opened by one process")
    } else if !plan.nn_models.is_empty() {
        Some("its wasi-nn runtime is loaded by one process")
    } else {
        None
    }
}

/// A request counter in a shared anonymous mapping: every process forked after it is
/// made sees the same count.
pub(crate) struct SharedCount(std::ptr::NonNull<AtomicU64>);

// SAFETY: the mapping holds one `AtomicU64`, only ever accessed atomically.
#[allow(unsafe_code)]
unsafe impl Send for SharedCount {}
#[allow(unsafe_code)]
unsafe impl Sync for SharedCount {}

#[allow(unsafe_code)]
impl SharedCount {
    pub(crate) fn new() -> Result<SharedCount, Error> {
        // SAFETY: a fresh anonymous mapping of one page, zeroed by the kernel (a zero
        // `AtomicU64`), aligned to a page.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::Runtime(std::io::Error::last_os_error()));
        }
        std::ptr::NonNull::new(p.cast::<AtomicU64>())
            .map(SharedCount)
            .ok_or_else(|| Error::Runtime(std::io::Error::other("mmap returned null")))
    }
}

impl std::ops::Deref for SharedCount {
    type Target = AtomicU64;
    fn deref(&self) -> &AtomicU64 {
        // SAFETY: the mapping lives as long as `self` and holds an `AtomicU64`.
        #[allow(unsafe_code)]
        unsafe {
            self.0.as_ref()
        }
    }
}

impl Drop for SharedCount {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, not used after this.
        #[allow(unsafe_code)]
        unsafe {
            libc::munmap(self.0.as_ptr().cast(), 4096);
        }
    }
}

/// How many threads this process has (from `/proc/self/status`).
fn threads() -> Option<usize> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

/// `count` sockets listening on `addr` (port 0: the port the first one got), with
/// `SO_REUSEPORT` so that the kernel spreads connections over them.
fn listeners(addr: SocketAddr, count: usize) -> Result<Vec<std::net::TcpListener>, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(Error::Runtime)?;
    let listen_err = |source| Error::Listen { addr, source };
    rt.block_on(async {
        let mut out = Vec::with_capacity(count);
        let mut at = addr;
        for _ in 0..count {
            let socket = match at {
                SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
            }
            .map_err(listen_err)?;
            socket.set_reuseaddr(true).map_err(listen_err)?;
            socket.set_reuseport(true).map_err(listen_err)?;
            socket.bind(at).map_err(listen_err)?;
            let listener = socket.listen(1024).map_err(listen_err)?;
            at = listener.local_addr().map_err(listen_err)?;
            out.push(listener.into_std().map_err(listen_err)?);
        }
        Ok(out)
    })
}

type Shutdown<'a, Fut> = &'a (dyn Fn() -> Fut + 'a);

impl Runner {
    /// Serves from `count` worker processes (see the module documentation); falls back
    /// to one process when other threads are already running.
    pub(crate) fn serve_forked<Fut>(
        &self,
        shared: Shared,
        listen: SocketAddr,
        count: usize,
        on_ready: Box<dyn FnOnce(SocketAddr) + Send + Sync>,
        shutdown: Shutdown<'_, Fut>,
    ) -> Result<(), Error>
    where
        Fut: std::future::Future<Output = ()>,
    {
        let sockets = listeners(listen, count)?;
        let local = sockets[0].local_addr().map_err(|source| Error::Listen {
            addr: listen,
            source,
        })?;
        let shared = Arc::new(shared);
        let observer = shared.host.observer().clone();
        if let Some(n) = threads().filter(|&n| n != 1) {
            let why = format!("{n} threads were running before forking workers");
            observer.event(&Event::Workers {
                count: 1,
                single: Some(&why),
            });
            on_ready(local);
            let first = sockets.into_iter().next().expect("one socket at least");
            return self.serve_threaded(shared, first, shutdown);
        }
        observer.event(&Event::Workers {
            count,
            single: None,
        });
        // Signals are held for the supervisor from before anyone can know the address:
        // a SIGTERM right after it is printed stops the workers, not just this process.
        let mut sup = Supervisor::new();
        on_ready(local);
        for (slot, socket) in sockets.iter().enumerate() {
            if let Err(e) = sup.start(slot, || self.worker(&shared, socket, slot, shutdown)) {
                sup.signal_all(libc::SIGTERM);
                sup.restore();
                return Err(e);
            }
        }
        let result = sup.run(
            |slot| self.worker(&shared, &sockets[slot], slot, shutdown),
            &*observer,
        );
        sup.restore();
        result
    }

    /// A worker's life after the fork: its own ticker and single-threaded runtime, its
    /// socket, until `shutdown` completes and its requests drain. Returns its exit code.
    fn worker<Fut>(
        &self,
        shared: &Arc<Shared>,
        socket: &std::net::TcpListener,
        slot: usize,
        shutdown: Shutdown<'_, Fut>,
    ) -> i32
    where
        Fut: std::future::Future<Output = ()>,
    {
        self.ensure_ticker();
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return 70;
        };
        let served = rt.block_on(async {
            let listener = socket
                .try_clone()
                .and_then(|s| {
                    s.set_nonblocking(true)?;
                    tokio::net::TcpListener::from_std(s)
                })
                .map_err(|_| ())?;
            crate::http::accept_loop(shared.clone(), listener, shutdown(), slot == 0).await;
            Ok::<_, ()>(())
        });
        shared.host.observer().flush();
        if served.is_ok() {
            0
        } else {
            71
        }
    }
}

/// The server process's side: its workers, by slot.
struct Supervisor {
    workers: Vec<Option<(libc::pid_t, Instant)>>,
    old_mask: libc::sigset_t,
    signals: libc::sigset_t,
}

/// A worker that ends this soon after it started is not replaced: it would only repeat.
const TOO_SOON: Duration = Duration::from_secs(2);

#[allow(unsafe_code)]
impl Supervisor {
    /// Blocks SIGINT, SIGTERM and SIGCHLD in this process, to be waited for.
    fn new() -> Supervisor {
        // SAFETY: plain signal-set calls on locals owned here.
        unsafe {
            let mut signals: libc::sigset_t = std::mem::zeroed();
            let mut old_mask: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut signals);
            libc::sigaddset(&mut signals, libc::SIGINT);
            libc::sigaddset(&mut signals, libc::SIGTERM);
            libc::sigaddset(&mut signals, libc::SIGCHLD);
            libc::pthread_sigmask(libc::SIG_BLOCK, &signals, &mut old_mask);
            Supervisor {
                workers: Vec::new(),
                old_mask,
                signals,
            }
        }
    }

    fn restore(&self) {
        // SAFETY: restores the mask saved in `new`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut());
        }
    }

    /// Forks the worker of `slot`; the child runs `work` and exits with its code.
    fn start(&mut self, slot: usize, work: impl FnOnce() -> i32) -> Result<(), Error> {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: this process has one thread (checked by the caller), so the child
        // gets every lock in the state it was in, and runs only `work` before `_exit`.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(Error::Runtime(std::io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: the child: undo the signal mask, die with the server, run, exit
            // without running the server's destructors.
            unsafe {
                libc::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut());
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                if libc::getppid() != parent {
                    libc::_exit(0);
                }
                let code = work();
                libc::_exit(code);
            }
        }
        if self.workers.len() <= slot {
            self.workers.resize(slot + 1, None);
        }
        self.workers[slot] = Some((pid, Instant::now()));
        Ok(())
    }

    /// Waits for signals: forwards SIGINT and SIGTERM to the workers as SIGTERM and
    /// returns once all have ended; replaces a worker that ends on its own.
    fn run(
        &mut self,
        mut work: impl FnMut(usize) -> i32,
        observer: &dyn crate::Observer,
    ) -> Result<(), Error> {
        let mut stopping = false;
        loop {
            // SAFETY: waits for one of the signals blocked in `new`, up to 1 s.
            let sig = unsafe {
                let timeout = libc::timespec {
                    tv_sec: 1,
                    tv_nsec: 0,
                };
                libc::sigtimedwait(&self.signals, std::ptr::null_mut(), &timeout)
            };
            if (sig == libc::SIGINT || sig == libc::SIGTERM) && !stopping {
                stopping = true;
                self.signal_all(libc::SIGTERM);
            }
            for (slot, how, soon) in self.reap() {
                if stopping {
                    continue;
                }
                let restart = !soon;
                observer.event(&Event::WorkerExited {
                    slot,
                    how: &how,
                    restarted: restart,
                });
                if restart {
                    self.start(slot, || work(slot))?;
                } else {
                    stopping = true;
                    self.signal_all(libc::SIGTERM);
                }
            }
            if stopping && self.workers.iter().all(Option::is_none) {
                return Ok(());
            }
        }
    }

    fn signal_all(&self, sig: libc::c_int) {
        for (pid, _) in self.workers.iter().flatten() {
            // SAFETY: a child of this process, not yet reaped.
            unsafe {
                libc::kill(*pid, sig);
            }
        }
    }

    /// The workers that ended: slot, how, and whether it was too soon after starting.
    fn reap(&mut self) -> Vec<(usize, String, bool)> {
        let mut out = Vec::new();
        loop {
            let mut status = 0;
            // SAFETY: reaps any ended child without blocking.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return out;
            }
            let Some(slot) = self
                .workers
                .iter()
                .position(|w| w.is_some_and(|(p, _)| p == pid))
            else {
                continue;
            };
            let (_, started) = self.workers[slot].take().expect("found above");
            let how = if libc::WIFSIGNALED(status) {
                format!("signal {}", libc::WTERMSIG(status))
            } else {
                format!("exit code {}", libc::WEXITSTATUS(status))
            };
            out.push((slot, how, started.elapsed() < TOO_SOON));
        }
    }
}
