//! The no-exec guard. runwasi treats a container whose entry is an ELF binary or a
//! script as a Linux container and `exec`s it: under `runtimeClassName: wpkg` that would
//! run native code with none of wpkg's checks. The shim's long-running process (and so
//! every container process it creates) gets a seccomp filter on `execve` and
//! `execveat`: a Wasm guest never needs them, a Linux program cannot start.
//!
//! One exception, or no pod could start: on Kubernetes the pod's sandbox container (the
//! cluster's `pause` image, chosen by the node's administrator, which holds the pod's
//! namespaces and runs nothing of the workload) comes through the same runtime. In the
//! shim daemon the filter hands each exec to a supervisor thread ([`supervise`]) that
//! allows it only when the calling process is the init process of a container whose
//! runtime state carries the annotation the CRI sets on sandboxes
//! (`io.kubernetes.cri.container-type=sandbox`) — a fact about *which* container asks,
//! never about the syscall's arguments, which the caller could change under us. Every
//! other exec fails with `EPERM`; so does everything when the supervisor is gone.
//!
//! Only the `start` step, which launches the long-running shim and exits, and the
//! version and info queries, run without the guard.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use libseccomp::{
    ScmpAction, ScmpFd, ScmpFilterContext, ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags,
    ScmpSyscall,
};

/// The annotation containerd's CRI plugin puts on a pod's sandbox container.
pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";

/// Where runwasi keeps its containers' runtime state unless the runtime options name
/// another root: `<root>/<namespace>/<id>/state.json`.
const DEFAULT_STATE_ROOT: &str = "/run/containerd/wpkg";

/// What an invocation of the shim binary gets.
#[derive(Debug, PartialEq, Eq)]
enum Guard {
    /// `start`, `-v`, `-info`: launches or answers, runs no container.
    None,
    /// `delete` and unparsable invocations: no exec at all.
    Deny,
    /// The daemon: exec only for the pod's sandbox, decided by the supervisor.
    Supervised { namespace: String },
}

/// Installs the guard that `args` call for.
pub fn install(args: &[String]) -> anyhow::Result<()> {
    match guard_for(args) {
        Guard::None => Ok(()),
        Guard::Deny => Ok(filter(ScmpAction::Errno(EPERM)).map(drop)?),
        Guard::Supervised { namespace } => {
            let ctx = filter(ScmpAction::Notify)?;
            let fd = ctx.get_notify_fd()?;
            // The notification descriptor must outlive the daemon; the filter stays
            // loaded whatever happens to the context.
            std::mem::forget(ctx);
            let root = state_root(&namespace);
            std::thread::Builder::new()
                .name("wpkg-exec-guard".into())
                .spawn(move || supervise(fd, &root))?;
            Ok(())
        }
    }
}

/// Loads a filter that answers `execve` and `execveat` with `action`.
fn filter(action: ScmpAction) -> Result<ScmpFilterContext, libseccomp::error::SeccompError> {
    let mut filter = ScmpFilterContext::new(ScmpAction::Allow)?;
    for name in ["execve", "execveat"] {
        filter.add_rule(action, ScmpSyscall::from_name(name)?)?;
    }
    filter.load()?;
    Ok(filter)
}

/// `EPERM`.
const EPERM: i32 = 1;

/// What each invocation gets. The arguments are read by the same parser the shim
/// itself uses; arguments it cannot parse get no exec at all.
fn guard_for(args: &[String]) -> Guard {
    match containerd_shim::parse(args.get(1..).unwrap_or_default()) {
        Ok(flags) if flags.action == "start" || flags.version || flags.info => Guard::None,
        Ok(flags) if flags.action.is_empty() => Guard::Supervised {
            namespace: flags.namespace,
        },
        _ => Guard::Deny,
    }
}

/// runwasi's state directory for `namespace`: the `root` of the runtime options in the
/// daemon's bundle (its working directory), else the default.
fn state_root(namespace: &str) -> PathBuf {
    #[derive(serde::Deserialize)]
    struct Options {
        root: Option<PathBuf>,
    }
    let root = std::fs::read("options.json")
        .ok()
        .and_then(|b| serde_json::from_slice::<Options>(&b).ok())
        .and_then(|o| o.root)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_ROOT));
    root.join(namespace)
}

/// Answers every exec the filter reports, until the descriptor fails.
fn supervise(fd: ScmpFd, root: &Path) {
    let mut failures = 0;
    loop {
        let req = match ScmpNotifReq::receive(fd) {
            Ok(req) => {
                failures = 0;
                req
            }
            // The caller died before we read it; anything else repeated means the
            // descriptor is gone (pending and later execs then fail).
            Err(_) if failures < 100 => {
                failures += 1;
                continue;
            }
            Err(_) => return,
        };
        let allow = tgid(req.pid).is_some_and(|pid| is_pod_sandbox(root, pid));
        // The pid might have been reused between the report and the check.
        let allow = allow && libseccomp::notify_id_valid(fd, req.id).is_ok();
        if allow {
            log::info!(
                "exec allowed for the pod's sandbox container (pid {})",
                req.pid
            );
        } else {
            log::warn!("exec refused in a wpkg container (pid {})", req.pid);
        }
        let resp = if allow {
            ScmpNotifResp::new_continue(req.id, ScmpNotifRespFlags::empty())
        } else {
            ScmpNotifResp::new_error(req.id, -EPERM, ScmpNotifRespFlags::empty())
        };
        let _ = resp.respond(fd);
    }
}

/// The process (thread group) of thread `tid`.
fn tgid(tid: u32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The part of libcontainer's `state.json` the decision reads.
#[derive(serde::Deserialize)]
struct State {
    pid: Option<i32>,
    #[serde(default)]
    annotations: Option<HashMap<String, String>>,
}

/// Whether `pid` is the init process of a container in `root` that the CRI created as
/// a pod's sandbox.
fn is_pod_sandbox(root: &Path, pid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir(root) else {
        log::warn!("exec guard: no container state under {}", root.display());
        return false;
    };
    entries
        .flatten()
        .any(|e| read_state(&e.path().join("state.json")).is_some_and(|s| is_sandbox_of(&s, pid)))
}

/// A container's state. libcontainer rewrites the file in place (truncate, then
/// write) when the container starts, which is when its init process execs: a read
/// that does not parse is tried again for a moment.
fn read_state(path: &Path) -> Option<State> {
    for _ in 0..50 {
        let bytes = std::fs::read(path).ok()?;
        if let Ok(state) = serde_json::from_slice(&bytes) {
            return Some(state);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    None
}

/// Whether `state` is that of `pid`'s container and names it a sandbox.
fn is_sandbox_of(state: &State, pid: i32) -> bool {
    state.pid == Some(pid)
        && state
            .annotations
            .as_ref()
            .and_then(|a| a.get(CONTAINER_TYPE))
            .is_some_and(|t| t == "sandbox")
}

/// Whether the state file `bytes` is that of `pid`'s container and names it a sandbox.
#[cfg(test)]
fn sandbox_state(bytes: &[u8], pid: i32) -> bool {
    serde_json::from_slice::<State>(bytes).is_ok_and(|s| is_sandbox_of(&s, pid))
}

#[cfg(test)]
mod tests {
    use super::{guard_for, sandbox_state, Guard};

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_the_launch_and_queries_go_unguarded() {
        let daemon = args(&[
            "shim",
            "-namespace",
            "k8s.io",
            "-id",
            "abc",
            "-address",
            "/run/c.sock",
        ]);
        assert_eq!(
            guard_for(&daemon),
            Guard::Supervised {
                namespace: "k8s.io".into()
            }
        );
        let delete = args(&["shim", "-namespace", "k8s.io", "-id", "abc", "delete"]);
        assert_eq!(guard_for(&delete), Guard::Deny);
        let start = args(&["shim", "-namespace", "k8s.io", "-id", "abc", "start"]);
        assert_eq!(guard_for(&start), Guard::None);
        assert_eq!(guard_for(&args(&["shim", "-v"])), Guard::None);
        // A container named `start` is still a container.
        let named_start = args(&[
            "shim",
            "-namespace",
            "default",
            "-id",
            "start",
            "-address",
            "/a",
        ]);
        assert_eq!(
            guard_for(&named_start),
            Guard::Supervised {
                namespace: "default".into()
            }
        );
    }

    #[test]
    fn only_a_sandbox_state_of_the_same_pid_allows_exec() {
        let sandbox = br#"{"id":"p","pid":42,"bundle":"/b","annotations":{"io.kubernetes.cri.container-type":"sandbox"}}"#;
        assert!(sandbox_state(sandbox, 42));
        assert!(!sandbox_state(sandbox, 43));
        let container = br#"{"id":"c","pid":42,"bundle":"/b","annotations":{"io.kubernetes.cri.container-type":"container"}}"#;
        assert!(!sandbox_state(container, 42));
        assert!(!sandbox_state(br#"{"id":"c","pid":42,"bundle":"/b"}"#, 42));
        assert!(!sandbox_state(b"not json", 42));
    }
}
