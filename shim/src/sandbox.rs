//! Inside the container: read the signed capabilities from the image's files, check
//! the wasm, the container's variables and volumes and its privileges against them,
//! plan what the guest gets ([`crate::grant`]) and run it with wpkg's runner. The
//! checks run when the task is created: anything missing, inconsistent or asking for
//! more than the capabilities grant fails the creation (nothing runs; CRI's
//! `StartContainer` returns the reason), with a `wpkg: error:` and a `wpkg: hint:`
//! line on the container's stderr. A failure after the start exits 125.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use wpkg_fsroot::Root;

use containerd_shim_wasm::sandbox::context::{RuntimeContext, Source};
use containerd_shim_wasm::sandbox::Sandbox;
use wpkg_runner::command::CommandRun;
use wpkg_runner::{Event, HostSetup, Observer, Runner};
use wpkg_spec::image::{EmbeddedCapabilities, CAPABILITIES_FILE};
use wpkg_spec::manifest::Trigger;
use wpkg_spec::plan::{PlanError, RunPlan};

use crate::{grant, kernel};

/// Exit code of a start the shim refused (as `wpkg run` uses 125).
const EXIT_REFUSED: i32 = 125;

/// Largest wasm or capabilities file the shim reads.
const MAX_FILE: u64 = 512 << 20;

/// Most HTTP requests handled at once; more are answered 503.
const MAX_CONCURRENT: usize = 128;

/// The sandbox runwasi calls inside each container's init process: first
/// [`Sandbox::can_handle`] when the task is created (CRI: `StartContainer`, which
/// creates the task), then [`Sandbox::run_wasi`] when it starts.
#[derive(Default)]
pub struct WpkgSandbox {
    /// What `can_handle` checked, for `run_wasi` (the same process).
    prepared: Mutex<Option<Prepared>>,
}

impl Sandbox for WpkgSandbox {
    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> anyhow::Result<i32> {
        let prepared = self.prepared.lock().map(|mut p| p.take()).unwrap_or(None);
        let args = ctx.args().to_vec();
        let envs = ctx.envs().to_vec();
        let from_layers = matches!(ctx.entrypoint().source, Source::Oci(_));
        // The runner starts its own async runtime; this future runs on runwasi's.
        let run = std::thread::spawn(move || {
            let prepared = match prepared {
                Some(p) => Ok(p),
                None => check(from_layers, &args, &envs),
            };
            match prepared {
                Ok(p) => p.execute(),
                Err(r) => refuse(&r),
            }
        });
        Ok(run.join().unwrap_or(EXIT_REFUSED))
    }

    /// Every check that does not need the guest to run, when the task is created:
    /// a refusal fails the task's creation (nothing starts) with the reason in the
    /// error containerd returns (CRI: the `StartContainer` error the kubelet shows in
    /// the pod's events) and on the container's stderr.
    async fn can_handle(&self, ctx: &impl RuntimeContext) -> anyhow::Result<()> {
        let from_layers = matches!(ctx.entrypoint().source, Source::Oci(_));
        match check(from_layers, ctx.args(), ctx.envs()) {
            Ok(p) => {
                if let Ok(mut slot) = self.prepared.lock() {
                    *slot = Some(p);
                }
                Ok(())
            }
            Err(r) => {
                refuse(&r);
                report_refusal(&r);
                Err(anyhow::anyhow!("{r}"))
            }
        }
    }
}

/// The refusal text runwasi reports when the task cannot be created. runwasi turns a
/// refused `can_handle` into "`{name}` executor can't handle spec", with the shim's
/// name as the only text it carries back to containerd; this process (the container's
/// init, a copy of the shim that ends right after) has the name say why.
static REFUSED: OnceLock<&'static str> = OnceLock::new();

fn report_refusal(r: &Refusal) {
    let text = format!(
        "wpkg refused the container: {r} (hint: {}); the wpkg",
        r.hint()
    );
    let _ = REFUSED.set(Box::leak(text.into_boxed_str()));
}

/// The shim's name as runwasi reports it: `wpkg`, or in a container's init process
/// that refused to start, the reason.
pub fn reported_name() -> &'static str {
    REFUSED.get().copied().unwrap_or("wpkg")
}

/// The checks of one container: where it runs, then what it runs.
fn check(from_layers: bool, args: &[String], envs: &[String]) -> Result<Prepared, Refusal> {
    if from_layers {
        return Err(Refusal::NoCapabilities);
    }
    confined()?;
    prepare(args, envs)
}

/// Refuses a container without a process namespace of its own (`hostPID`, or one
/// shared with the pod: the runtime would see, and could signal, other processes) or
/// holding capabilities beyond containerd's default set (`privileged`, or added): the
/// runtime that runs the guest would hold the node.
fn confined() -> Result<(), Refusal> {
    if std::process::id() != 1 {
        return Err(Refusal::HostPid);
    }
    #[allow(clippy::disallowed_methods)] // the kernel's view of this process
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let extra = kernel::extra_capabilities(&status);
    if !extra.is_empty() {
        return Err(Refusal::Privileged(extra.join(", ")));
    }
    Ok(())
}

/// Why a container does not start.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("the image carries no wpkg capabilities ({CAPABILITIES_FILE} is missing)")]
    NoCapabilities,
    #[error(
        "the container has no process namespace of its own (hostPID, or shareProcessNamespace)"
    )]
    HostPid,
    #[error("the container holds capabilities beyond containerd's default set ({0}): privileged, or added")]
    Privileged(String),
    #[error("the image's capabilities ({CAPABILITIES_FILE}) are not usable: {0}")]
    BadCapabilities(String),
    #[error("cannot read the container's mount table: {0}")]
    MountTable(std::io::Error),
    #[error("a volume is mounted at {mount}, over the image's own {path}")]
    Shadowed { mount: String, path: String },
    #[error("the container runs `{asked}`, and the capabilities are for `{wasm}`")]
    OtherProgram { asked: String, wasm: String },
    #[error("cannot read the wasm {path}: {source}")]
    WasmUnreadable {
        path: String,
        source: wpkg_fsroot::Error,
    },
    #[error("the wasm {path} has digest {actual}, and the capabilities are for {expected}")]
    WasmDigest {
        path: String,
        actual: String,
        expected: String,
    },
    #[error("{0}")]
    Excess(grant::Excess),
    #[error("{0}")]
    Plan(PlanError),
    #[error("{0}")]
    Listen(String),
    #[error("{0}")]
    Runner(wpkg_runner::Error),
}

impl Refusal {
    fn hint(&self) -> String {
        match self {
            Refusal::NoCapabilities | Refusal::BadCapabilities(_) | Refusal::WasmDigest { .. } => {
                "build the image with `wpkg build --format image`; this runtime runs nothing else"
                    .into()
            }
            Refusal::MountTable(_) => "the container needs /proc mounted".into(),
            Refusal::HostPid => {
                "remove `hostPID: true` and `shareProcessNamespace: true` from the pod".into()
            }
            Refusal::Privileged(_) => {
                "remove `privileged: true` and `capabilities.add` from the container's securityContext".into()
            }
            Refusal::Shadowed { .. } => {
                "mount volumes only at the paths the capabilities declare in `mounts`".into()
            }
            Refusal::OtherProgram { wasm, .. } => {
                format!(
                    "leave the container's command unset (or `{wasm}`); pass arguments with `args`"
                )
            }
            Refusal::WasmUnreadable { .. } => "the image is damaged; pull it again".into(),
            Refusal::Excess(grant::Excess::Env(_) | grant::Excess::FixedEnv(_)) => {
                "set only the variables the image declares in `env_required` (see `wpkg inspect IMAGE`)"
                    .into()
            }
            Refusal::Excess(grant::Excess::NodePath(_)) => {
                "this image cannot run under containerd: declare mounts at paths of your own (not under /proc, /sys, /dev, /run or /var/run/secrets)".into()
            }
            Refusal::Excess(grant::Excess::Nested { .. }) => {
                "mount nothing inside a volume the image declares".into()
            }
            Refusal::Excess(grant::Excess::Volume(_)) => {
                "mount volumes only at the paths the image declares in `mounts` (see `wpkg inspect IMAGE`)"
                    .into()
            }
            Refusal::Plan(PlanError::EnvMissing { name }) => {
                format!("set `{name}` in the container's env")
            }
            Refusal::Plan(PlanError::MemoryTooSmall { .. }) => {
                "raise the container's memory limit".into()
            }
            Refusal::Plan(_) => "see the capabilities with `wpkg inspect IMAGE`".into(),
            Refusal::Listen(_) => format!(
                "set {} to ADDRESS:PORT or a port (default {})",
                grant::LISTEN_VAR,
                grant::DEFAULT_LISTEN
            ),
            Refusal::Runner(wpkg_runner::Error::KeyValue { store, .. }) => format!(
                "bind the store in the pod: env {}{}=redis://HOST:PORT/DB",
                crate::grant::KV_PREFIX,
                store.to_ascii_uppercase().replace('-', "_")
            ),
            Refusal::Runner(_) => "see the capabilities with `wpkg inspect IMAGE`".into(),
        }
    }
}

fn refuse(r: &Refusal) -> i32 {
    eprintln!("wpkg: error: {r}");
    eprintln!("wpkg: hint: {}", r.hint());
    EXIT_REFUSED
}

/// A checked wasm with its plan.
struct Prepared {
    root: Root,
    embedded: EmbeddedCapabilities,
    wasm: Vec<u8>,
    plan: RunPlan,
    args: Vec<String>,
    listen: Option<String>,
}

fn prepare(args: &[String], envs: &[String]) -> Result<Prepared, Refusal> {
    #[allow(clippy::disallowed_methods)] // the kernel's mount table
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").map_err(Refusal::MountTable)?;
    let mounts = kernel::parse_mountinfo(&mounts);
    let cap_dir = Path::new(CAPABILITIES_FILE)
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    // A volume over the capabilities themselves is refused before they are read: what
    // it holds is not what the image's digest covers.
    if let Some((mount, path)) = grant::shadowing(&mounts, std::slice::from_ref(&cap_dir)) {
        return Err(Refusal::Shadowed {
            mount: mount.to_owned(),
            path: path.to_owned(),
        });
    }
    // The container's files as a root: every path the image names resolves inside them
    // and on their own mount (never into /proc, a volume or a token).
    let root = Root::open("/").map_err(|e| Refusal::BadCapabilities(e.to_string()))?;
    let embedded = read_capabilities(&root)?;
    let asked = args.first().map(String::as_str).unwrap_or_default();
    let asked_path = asked.strip_suffix("#_start").unwrap_or(asked);
    if !asked.is_empty() && asked_path != embedded.wasm {
        return Err(Refusal::OtherProgram {
            asked: asked.to_owned(),
            wasm: embedded.wasm.clone(),
        });
    }
    let mut protected = vec![cap_dir, embedded.wasm.clone()];
    protected.extend(
        embedded
            .capabilities
            .capabilities
            .files
            .iter()
            .map(|f| f.guest.to_string()),
    );
    if let Some((mount, path)) = grant::shadowing(&mounts, &protected) {
        return Err(Refusal::Shadowed {
            mount: mount.to_owned(),
            path: path.to_owned(),
        });
    }
    let wasm = root
        .read(&embedded.wasm, MAX_FILE)
        .map_err(|source| Refusal::WasmUnreadable {
            path: embedded.wasm.clone(),
            source,
        })?;
    let actual = {
        use sha2::Digest as _;
        wpkg_spec::Digest::from_sha256(sha2::Sha256::digest(&wasm).into()).into_string()
    };
    if actual != embedded.wasm_digest {
        return Err(Refusal::WasmDigest {
            path: embedded.wasm.clone(),
            actual,
            expected: embedded.wasm_digest.clone(),
        });
    }
    let request = grant::request(&embedded.capabilities, envs, &mounts, memory_limit());
    if let Some(excess) = request.excess {
        return Err(Refusal::Excess(excess));
    }
    if !request.dropped_env.is_empty() {
        eprintln!(
            "wpkg: not given to the guest (not in env_required): {}",
            request.dropped_env.join(", ")
        );
    }
    let plan = RunPlan::new(&embedded.capabilities, &request.operator).map_err(Refusal::Plan)?;
    wpkg_runner::validate(&plan, Some(&root)).map_err(Refusal::Runner)?;
    Ok(Prepared {
        root,
        embedded,
        wasm,
        plan,
        args: args.iter().skip(1).cloned().collect(),
        listen: request.listen,
    })
}

fn read_capabilities(root: &Root) -> Result<EmbeddedCapabilities, Refusal> {
    match root.kind(CAPABILITIES_FILE) {
        Ok(None) | Err(wpkg_fsroot::Error::NotFound { .. }) => return Err(Refusal::NoCapabilities),
        Ok(Some(wpkg_fsroot::Kind::File)) => {}
        Ok(Some(_)) => return Err(Refusal::BadCapabilities("it is not a regular file".into())),
        Err(e) => return Err(Refusal::BadCapabilities(e.to_string())),
    }
    let bytes = root
        .read(CAPABILITIES_FILE, MAX_FILE)
        .map_err(|e| Refusal::BadCapabilities(e.to_string()))?;
    EmbeddedCapabilities::parse(&bytes).map_err(Refusal::BadCapabilities)
}

/// The container's cgroup memory limit, when it has one: its own cgroup's
/// `memory.max` (v2) or `memory.limit_in_bytes` (v1), found through `/proc/self/cgroup`
/// (without a cgroup namespace the mounted hierarchy starts above the container), else
/// at the mount's root (where runtimes bind the container's own cgroup). Kubernetes
/// mounts the cgroup file system read-only in every container; where it is not mounted
/// the capabilities' limit stands alone (a pod's limit is then only the kernel's).
#[allow(clippy::disallowed_methods)] // the kernel's cgroup files
fn memory_limit() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    kernel::memory_limit_files(&own)
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| kernel::parse_memory_limit(&t))
}

impl Prepared {
    fn execute(self) -> i32 {
        match self.run() {
            Ok(code) => code,
            Err(r) => refuse(&r),
        }
    }

    fn run(self) -> Result<i32, Refusal> {
        let program = Path::new(&self.embedded.wasm)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("main")
            .to_owned();
        // Compiled code is never cached here: every directory the container can see is
        // the image's or the pod's, and code loaded from one would run as the shim.
        match self.plan.trigger {
            Trigger::Command => {
                let runner = Runner::new(None).map_err(Refusal::Runner)?;
                let (code, _) = runner
                    .compile(&self.embedded.wasm_digest, &self.wasm)
                    .map_err(Refusal::Runner)?;
                let outcome = runner
                    .run_command(
                        &code,
                        HostSetup {
                            plan: self.plan,
                            bundled_root: Some(self.root),
                            name: program.clone(),
                            observer: Arc::new(StderrEvents),
                            data_dir: None,
                        },
                        &CommandRun {
                            program: &program,
                            args: &self.args,
                        },
                    )
                    .map_err(Refusal::Runner)?;
                if let Some(message) = outcome.describe() {
                    eprintln!("wpkg: error: {message}");
                }
                Ok(i32::from(outcome.exit_code()))
            }
            Trigger::Http => {
                let listen = grant::listen_addr(self.listen.as_deref()).map_err(Refusal::Listen)?;
                let runner = Runner::new_pooled(None, MAX_CONCURRENT, self.plan.memory.0)
                    .map_err(Refusal::Runner)?;
                let (code, _) = runner
                    .compile(&self.embedded.wasm_digest, &self.wasm)
                    .map_err(Refusal::Runner)?;
                runner
                    .serve_blocking(
                        &code,
                        HostSetup {
                            plan: self.plan,
                            bundled_root: Some(self.root),
                            name: program,
                            observer: Arc::new(StderrEvents),
                            data_dir: None,
                        },
                        wpkg_runner::http::ServeConfig {
                            listen,
                            max_concurrent: MAX_CONCURRENT,
                            // One process per container: the pod is what scales.
                            workers: 1,
                            on_ready: Box::new(|addr| eprintln!("wpkg: serving on http://{addr}")),
                        },
                        stopped,
                    )
                    .map_err(Refusal::Runner)?;
                Ok(0)
            }
        }
    }
}

/// Completes when containerd stops the task (SIGTERM) or on SIGINT.
async fn stopped() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The guest's events as lines on the container's stderr (its log).
struct StderrEvents;

impl Observer for StderrEvents {
    fn event(&self, event: &Event<'_>) {
        eprintln!("{event}");
    }
}
