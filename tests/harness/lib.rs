//! Test harness for wpkg's end-to-end tests: builds the real `wpkg` binary and real
//! guests (from `examples/` and `tests/guests/`) with cargo, and gives each test its
//! own `WPKG_HOME`.
#![deny(missing_docs)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Builds (once per test process) and returns the `wpkg` binary of the test's profile;
/// `WPKG_TEST_BIN=PATH` runs the tests against another binary instead (an older wpkg,
/// to show that a new test fails there).
pub fn wpkg_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("WPKG_TEST_BIN").filter(|b| !b.is_empty()) {
            return PathBuf::from(bin);
        }
        // The test executable is target/<profile>/deps/all-<hash>.
        let exe = std::env::current_exe().unwrap();
        // (or target/<profile>/demo for the demo binary).
        let mut profile_dir = exe.parent().unwrap().to_owned();
        if profile_dir.file_name().is_some_and(|n| n == "deps") {
            profile_dir = profile_dir.parent().unwrap().to_owned();
        }
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut c = cargo();
        // With wpkg-tests in the same build, features unify as in `cargo test`, so
        // this shares every compiled crate with the test build instead of rebuilding.
        c.args(["build", "-q", "-p", "wpkg", "-p", "wpkg-tests", "--bins"]);
        if release {
            c.arg("--release");
        }
        let st = c.status().expect("running cargo to build wpkg");
        assert!(st.success(), "cargo build -p wpkg failed");
        profile_dir.join("wpkg")
    })
    .clone()
}

/// Builds (once per test process) the containerd shim of the test's profile and
/// returns the directory holding `containerd-shim-wpkg-v1` (for containerd's PATH).
pub fn shim_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let wpkg = wpkg_bin();
        let profile_dir = wpkg.parent().unwrap().to_owned();
        let mut c = cargo();
        c.args(["build", "-q", "-p", "wpkg-shim", "--bins"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            c.arg("--release");
        }
        let st = c.status().expect("running cargo to build the shim");
        assert!(st.success(), "cargo build -p wpkg-shim failed");
        assert!(profile_dir.join("containerd-shim-wpkg-v1").is_file());
        profile_dir
    })
    .clone()
}

/// Builds a guest package for a wasm target (once per test process) and returns the
/// `.wasm`. Needs `rustup target add wasm32-wasip1 wasm32-wasip2`.
pub fn guest(package: &str, target: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<(String, String), PathBuf>>> = OnceLock::new();
    let map = BUILT.get_or_init(Default::default);
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    let key = (package.to_owned(), target.to_owned());
    if let Some(p) = map.get(&key) {
        return p.clone();
    }
    let out = cargo()
        .args([
            "build",
            "-q",
            "--release",
            "--target",
            target,
            "-p",
            package,
        ])
        .output()
        .expect("running cargo");
    assert!(
        out.status.success(),
        "building guest {package} for {target} failed; is the target installed? run `rustup target add {target}`\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = match package {
        "example-hello" => "hello",
        "example-hello-p1" => "hello_p1",
        "example-files" => "files",
        other => &other.replace('-', "_"),
    };
    let path = target_dir()
        .join(target)
        .join("release")
        .join(format!("{bin}.wasm"));
    assert!(path.is_file(), "{} was not built", path.display());
    map.insert(key, path.clone());
    path
}

/// Builds a guest package as a native program for the host (once per test process) and
/// returns it: the control runs, where every capability exists, that prove a guest's
/// probes see success when it is possible.
pub fn native_guest(package: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let map = BUILT.get_or_init(Default::default);
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = map.get(package) {
        return p.clone();
    }
    let out = cargo()
        .args(["build", "-q", "-p", package])
        .output()
        .expect("running cargo");
    assert!(
        out.status.success(),
        "building {package} natively failed\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = target_dir().join("debug").join(package);
    assert!(path.is_file(), "{} was not built", path.display());
    map.insert(package.to_owned(), path.clone());
    path
}

/// A test environment: its own WPKG_HOME and scratch directory.
pub struct Env {
    /// Scratch space, removed at drop.
    pub dir: tempfile::TempDir,
}

/// What a wpkg invocation did.
#[derive(Debug)]
pub struct Run {
    /// Exit code (None if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// From a finished process's output.
    pub fn from(o: Output) -> Run {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Asserts success and returns self.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "expected success:\n{self:#?}");
        self
    }

    /// Asserts this exit code and returns self.
    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(self.code, Some(code), "expected exit {code}:\n{self:#?}");
        self
    }

    /// Asserts stderr has `needle`.
    #[track_caller]
    pub fn stderr_has(self, needle: &str) -> Run {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{self:#?}"
        );
        self
    }

    /// Asserts stdout has `needle`.
    #[track_caller]
    pub fn stdout_has(self, needle: &str) -> Run {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{self:#?}"
        );
        self
    }

    /// Asserts `ctr run` failed because the wpkg shim refused to create the task:
    /// ctr's exit 1 and the shim's reason in the error containerd returned.
    #[track_caller]
    pub fn refused(self) -> Run {
        assert_eq!(self.code, Some(1), "expected ctr to fail (1):\n{self:#?}");
        self.stderr_has("failed to create shim task")
            .stderr_has("wpkg refused the container: ")
    }
}

/// A secret set in wpkg's own environment that no guest may see.
pub const HOST_SECRET: (&str, &str) = ("WPKG_TEST_HOST_SECRET", "hunter2");

impl Env {
    /// A fresh environment.
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// WPKG_HOME.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// A path in the scratch directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A `wpkg` command with this environment: WPKG_HOME and DOCKER_CONFIG (in the
    /// scratch dir) set, the host secret set, nothing else inherited but PATH.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(wpkg_bin());
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("WPKG_HOME", self.home())
            .env("DOCKER_CONFIG", self.path("docker"))
            .env(HOST_SECRET.0, HOST_SECRET.1)
            .args(args)
            .current_dir(self.dir.path());
        c
    }

    /// Runs `wpkg` with `args`.
    /// Set `WPKG_TEST_SHOW=1` to see each command's output (with `--nocapture`).
    pub fn wpkg(&self, args: &[&str]) -> Run {
        self.wpkg_with(args, &[], None)
    }

    /// Runs `wpkg` with `args`, extra environment variables, and `stdin` (a line) if
    /// given.
    pub fn wpkg_with(&self, args: &[&str], envs: &[(&str, &str)], stdin: Option<&str>) -> Run {
        use std::io::Write;
        use std::process::Stdio;
        let mut cmd = self.cmd(args);
        cmd.envs(envs.iter().copied())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("running wpkg");
        if let Some(line) = stdin {
            writeln!(child.stdin.take().expect("piped"), "{line}").expect("writing stdin");
        }
        let run = Run::from(child.wait_with_output().expect("running wpkg"));
        if std::env::var_os("WPKG_TEST_SHOW").is_some() {
            eprintln!(
                "$ wpkg {}\n[exit {:?}]\n{}{}",
                args.join(" "),
                run.code,
                run.stdout,
                run.stderr
            );
        }
        run
    }

    /// Writes a project: `wpkg.toml` from `manifest` (with `{wasm}` replaced by the
    /// wasm's path) into scratch dir `name`. Returns the project dir.
    pub fn project(&self, name: &str, wasm: &Path, manifest: &str) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("wpkg.toml"),
            manifest.replace("{wasm}", &wasm.display().to_string()),
        )
        .unwrap();
        dir
    }

    /// `wpkg build --format image DIR -t TAG` (a container image for containerd and
    /// Kubernetes); returns its stdout.
    pub fn build_image(&self, dir: &Path, tag: &str) -> String {
        let r = self
            .wpkg(&[
                "build",
                "-q",
                "--no-build-command",
                "--format",
                "image",
                dir.to_str().unwrap(),
                "-t",
                tag,
            ])
            .ok();
        r.stdout.trim().to_owned()
    }

    /// Builds `dir` as a container image named `reference` and pushes it there.
    pub fn publish_image(&self, dir: &Path, reference: &str) {
        self.build_image(dir, reference);
        self.wpkg(&["push", "-q", reference]).ok();
    }

    /// Builds a project into the store as `tag`.
    pub fn build(&self, dir: &Path, tag: &str) -> String {
        let r = self
            .wpkg(&[
                "build",
                "-q",
                "--no-build-command",
                dir.to_str().unwrap(),
                "-t",
                tag,
            ])
            .ok();
        r.stdout.trim().to_owned()
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

/// Fails the test, saying `why` and how to fix it, unless it runs as root.
#[track_caller]
pub fn require_root(why: &str) {
    let uid = Command::new("id").arg("-u").output().expect("running id");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "{why}: run the tests as root (CI does)"
    );
}

/// A manifest header for a command guest, to which tests append tables.
pub fn command_manifest(name: &str, extra: &str) -> String {
    format!(
        "manifest_version = 1\n[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nwasm = \"{{wasm}}\"\n[trigger]\ntype = \"command\"\n{extra}"
    )
}

pub mod containerd;
pub mod cri;
pub mod demo;
pub mod images;
pub mod redis;
pub mod referrers;
pub mod registry;
pub mod rekor2;
pub mod release;
pub mod serve;
pub mod sigstore_services;
pub mod tsa;
pub mod tuf;
