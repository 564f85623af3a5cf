//! A private containerd (Debian's 1.6.20 here) for the shim's tests and
//! `scripts/try-containerd.sh`: started as root with its own root, state and socket
//! under a temporary directory, `containerd-shim-wpkg-v1` on its PATH, stopped (with
//! every container and shim it started) when dropped, and under `timeout` so it stops
//! by itself even if the test process dies.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::Run;

/// The containerd namespace the tests use.
pub const NAMESPACE: &str = "wpkg-test";

/// The runtime name that selects `containerd-shim-wpkg-v1`.
pub const RUNTIME: &str = "io.containerd.wpkg.v1";

/// A running private containerd.
pub struct Containerd {
    dir: tempfile::TempDir,
    child: Child,
}

fn need(program: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("`{program}` is not installed: run `bash scripts/setup.sh` (apt-get install containerd)")
    })
}

impl Containerd {
    /// Starts containerd with the shim in `shim_dir` on its PATH. Panics with the
    /// reason (not root, not installed, did not come up).
    pub fn start(shim_dir: &Path) -> Containerd {
        Containerd::start_with(shim_dir, |_| {
            "[plugins.\"io.containerd.grpc.v1.cri\"]\n  disable_cgroup = true\n".to_owned()
        })
    }

    /// Starts containerd as [`Containerd::start`] does, with `plugins` (given the
    /// containerd's private directory) as the configuration of its plugins.
    pub fn start_with(shim_dir: &Path, plugins: impl FnOnce(&Path) -> String) -> Containerd {
        crate::require_root("containerd and its shims need root");
        let containerd = need("containerd");
        need("ctr");
        // Unix socket paths are short: keep the directory directly under /tmp.
        let dir = tempfile::Builder::new()
            .prefix("wpkg-ctd-")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
{plugins}"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("c.sock").display(),
            plugins = plugins(d),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let path = format!(
            "{}:{}",
            shim_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new("timeout")
            .args(["-k", "5", "900"])
            .arg(&containerd)
            .arg("--config")
            .arg(d.join("config.toml"))
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        let c = Containerd { dir, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if c.ctr(&["version"]).status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not come up in 20 s; its log:\n{}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    /// The socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("c.sock")
    }

    /// containerd's own log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// The containerd's private directory (its config, root, state and socket).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A `ctr` command against this containerd, in [`NAMESPACE`].
    pub fn ctr_cmd(&self, args: &[&str]) -> Command {
        self.ctr_in(NAMESPACE, args)
    }

    /// A `ctr` command against this containerd, in `namespace`.
    pub fn ctr_in(&self, namespace: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("-a")
            .arg(self.socket())
            .args(["-n", namespace])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Runs `ctr` and returns its output.
    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_cmd(args).output().expect("running ctr")
    }

    /// Imports an OCI archive (`wpkg save`); returns the image names ctr reports.
    pub fn import(&self, archive: &Path) -> String {
        let o = self.ctr(&["images", "import", archive.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "ctr images import failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `ctr run --rm --runtime io.containerd.wpkg.v1 [flags] IMAGE ID [args]`, the
    /// guest's stdout/stderr and exit code. Killed after `limit`.
    pub fn run(
        &self,
        flags: &[&str],
        image: &str,
        id: &str,
        args: &[&str],
        limit: Duration,
    ) -> Run {
        let mut all = vec!["run", "--rm", "--runtime", RUNTIME];
        all.extend_from_slice(flags);
        all.push(image);
        all.push(id);
        all.extend_from_slice(args);
        let mut child = self
            .ctr_cmd(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running ctr run");
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if Instant::now() > deadline {
                let _ = self.ctr(&["tasks", "kill", "-s", "SIGKILL", id]);
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                self.remove(id);
                panic!(
                    "ctr run {id} did not finish in {limit:?}:\n{}{}\ncontainerd log:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let run = Run::from(child.wait_with_output().unwrap());
        if std::env::var_os("WPKG_TEST_SHOW").is_some() {
            eprintln!(
                "$ ctr {}\n[exit {:?}]\n{}{}",
                all.join(" "),
                run.code,
                run.stdout,
                run.stderr
            );
        }
        run
    }

    /// Starts a long-running container in the background (`ctr run -d`).
    pub fn run_detached(&self, flags: &[&str], image: &str, id: &str) {
        let mut all = vec!["run", "-d", "--runtime", RUNTIME];
        all.extend_from_slice(flags);
        all.push(image);
        all.push(id);
        let o = self.ctr(&all);
        assert!(
            o.status.success(),
            "ctr run -d failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Kills and deletes container `id` (its task first), ignoring what is not there.
    pub fn remove(&self, id: &str) {
        let _ = self.ctr(&["tasks", "kill", "-s", "SIGKILL", id]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let o = self.ctr(&["tasks", "delete", id]);
            let err = String::from_utf8_lossy(&o.stderr);
            if o.status.success() || err.contains("not found") {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.ctr(&["containers", "delete", id]);
    }

    fn ids(&self, what: &str) -> Vec<String> {
        let o = self.ctr(&[what, "ls", "-q"]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    }
}

/// Kills the shim processes that serve this containerd (they outlive it otherwise).
fn kill_shims(socket: &Path) {
    let needle = socket.display().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains("containerd-shim") && cmdline.contains(&needle) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for id in self.ids("containers") {
            self.remove(&id);
        }
        kill_shims(&self.socket());
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Snapshots of containers that were still mounted.
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let root = self.dir.path().display().to_string();
        for line in mounts.lines().rev() {
            if let Some(point) = line.split(' ').nth(1) {
                if point.starts_with(&root) {
                    let _ = Command::new("umount").args(["-l", point]).status();
                }
            }
        }
    }
}
