//! The no-exec guard. runwasi treats a container whose entry is an ELF binary or a
//! script as a Linux container and `exec`s it: under `runtimeClassName: wpkg` that would
//! run native code with none of wpkg's checks. The shim's long-running process (and so
//! every container process it creates) gets a seccomp filter that fails `execve` and
//! `execveat` with `EPERM`: a Wasm guest never needs them, a Linux program cannot start.
//!
//! Only the `start` step, which launches the long-running shim and exits, and the
//! version and info queries, run without it.

/// Installs the guard unless `args` ask for a step that must launch a program.
pub fn install(args: &[String]) -> Result<(), libseccomp::error::SeccompError> {
    if !needs_guard(args) {
        return Ok(());
    }
    use libseccomp::{ScmpAction, ScmpFilterContext, ScmpSyscall};
    let mut filter = ScmpFilterContext::new(ScmpAction::Allow)?;
    for name in ["execve", "execveat"] {
        filter.add_rule(
            ScmpAction::Errno(libc_eperm()),
            ScmpSyscall::from_name(name)?,
        )?;
    }
    filter.load()
}

/// `EPERM`.
fn libc_eperm() -> i32 {
    1
}

/// Whether this invocation runs containers (the shim daemon, `delete`), as opposed to
/// launching the daemon (`start`) or answering a query. The arguments are read by the
/// same parser the shim itself uses; arguments it cannot parse get the guard.
fn needs_guard(args: &[String]) -> bool {
    match containerd_shim::parse(args.get(1..).unwrap_or_default()) {
        Ok(flags) => !(flags.action == "start" || flags.version || flags.info),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::needs_guard;

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
        assert!(needs_guard(&daemon));
        let delete = args(&["shim", "-namespace", "k8s.io", "-id", "abc", "delete"]);
        assert!(needs_guard(&delete));
        let start = args(&["shim", "-namespace", "k8s.io", "-id", "abc", "start"]);
        assert!(!needs_guard(&start));
        assert!(!needs_guard(&args(&["shim", "-v"])));
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
        assert!(needs_guard(&named_start));
    }
}
