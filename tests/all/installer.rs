//! The node installer of `deploy/installer-daemonset.yaml`: its `install.sh` (taken
//! from the ConfigMap as the DaemonSet mounts it) run against a scratch root, and
//! every config it writes read back by containerd itself (`containerd config dump`).
//! The deploy manifests parse as Kubernetes objects.

use std::path::{Path, PathBuf};
use std::process::Command;

use wpkg_tests::{root, Env};

/// `install.sh` from the DaemonSet's ConfigMap (the block under `install.sh: |`).
fn install_script() -> String {
    let yaml = std::fs::read_to_string(root().join("deploy/installer-daemonset.yaml")).unwrap();
    let mut lines = yaml
        .lines()
        .skip_while(|l| l.trim() != "install.sh: |")
        .skip(1);
    let mut out = String::new();
    for l in lines.by_ref() {
        if l.starts_with("---") || (!l.is_empty() && !l.starts_with("    ")) {
            break;
        }
        out.push_str(l.get(4..).unwrap_or(""));
        out.push('\n');
    }
    assert!(
        out.contains("set -eu"),
        "no install.sh in the DaemonSet:\n{out}"
    );
    out
}

struct Node {
    _env: Env,
    root: PathBuf,
    shim: PathBuf,
    script: PathBuf,
    restarted: PathBuf,
}

impl Node {
    fn new() -> Node {
        let env = Env::new();
        let root = env.path("node");
        std::fs::create_dir_all(root.join("usr/local/bin")).unwrap();
        std::fs::create_dir_all(root.join("etc/containerd")).unwrap();
        let shim = env.path("containerd-shim-wpkg-v1");
        std::fs::write(&shim, "#!/bin/sh\necho shim v1\n").unwrap();
        make_executable(&shim);
        let script = env.path("install.sh");
        std::fs::write(&script, install_script()).unwrap();
        let restarted = env.path("restarted");
        Node {
            _env: env,
            root,
            shim,
            script,
            restarted,
        }
    }

    fn config(&self) -> PathBuf {
        self.root.join("etc/containerd/config.toml")
    }

    /// Runs the installer; returns (success, output).
    fn install(&self) -> (bool, String) {
        let _ = std::fs::remove_file(&self.restarted);
        let o = Command::new("sh")
            .arg(&self.script)
            .env("WPKG_SHIM_SRC", &self.shim)
            .env("WPKG_HOST_ROOT", &self.root)
            .env(
                "WPKG_RESTART_CONTAINERD",
                format!("touch {}", self.restarted.display()),
            )
            .output()
            .expect("running sh");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.success(), text)
    }

    fn restarted(&self) -> bool {
        self.restarted.exists()
    }
}

fn make_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// containerd's own reading of `config`: `containerd --config FILE config dump`.
fn containerd_reads(config: &Path) -> String {
    let o = Command::new("containerd")
        .arg("--config")
        .arg(config)
        .args(["config", "dump"])
        .output()
        .expect("containerd is needed: run `bash scripts/setup.sh` (apt-get install containerd)");
    assert!(
        o.status.success(),
        "containerd cannot read the config the installer wrote:\n{}\n{}",
        std::fs::read_to_string(config).unwrap_or_default(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The `wpkg` runtime section of containerd's dump: (runtime_type, SystemdCgroup).
fn wpkg_runtime(dump: &str) -> (String, String) {
    let section = dump
        .split("containerd.runtimes.wpkg]")
        .nth(1)
        .unwrap_or_else(|| panic!("no wpkg runtime in containerd's reading:\n{dump}"));
    let value = |key: &str| {
        section
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(|v| {
                v.trim_start_matches([' ', '='])
                    .trim_matches('"')
                    .to_owned()
            })
            .unwrap_or_default()
    };
    (value("runtime_type"), value("SystemdCgroup"))
}

#[test]
fn the_installer_adds_the_runtime_once_and_leaves_foreign_configs_alone() {
    // A node with no config: containerd's defaults.
    let n = Node::new();
    let (ok, out) = n.install();
    assert!(ok, "{out}");
    let installed = n.root.join("usr/local/bin/containerd-shim-wpkg-v1");
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(&n.shim).unwrap()
    );
    assert!(
        n.restarted(),
        "containerd was not restarted after a config change:\n{out}"
    );
    let dump = containerd_reads(&n.config());
    assert_eq!(
        wpkg_runtime(&dump),
        ("io.containerd.wpkg.v1".into(), "false".into())
    );
    // Idempotent: a second run changes nothing and restarts nothing.
    let before = std::fs::read(n.config()).unwrap();
    let (ok, out) = n.install();
    assert!(ok, "{out}");
    assert!(
        out.contains("is up to date") && out.contains("already has the wpkg runtime"),
        "{out}"
    );
    assert!(!n.restarted(), "a second run restarted containerd");
    assert_eq!(std::fs::read(n.config()).unwrap(), before);
    // A new shim replaces the old file by a rename (running shims keep theirs)...
    let old_inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&installed).unwrap());
    std::fs::write(&n.shim, "#!/bin/sh\necho shim v2\n").unwrap();
    let (ok, out) = n.install();
    assert!(ok, "{out}");
    let meta = std::fs::metadata(&installed).unwrap();
    assert_ne!(
        std::os::unix::fs::MetadataExt::ino(&meta),
        old_inode,
        "rewritten in place"
    );
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(&n.shim).unwrap()
    );
    assert!(!n.restarted(), "a new binary alone needs no restart");

    // A kubeadm-style config with the systemd cgroup driver: kept, backed up, extended.
    let n = Node::new();
    let kubeadm = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n    SystemdCgroup = true\n";
    std::fs::write(n.config(), kubeadm).unwrap();
    let (ok, out) = n.install();
    assert!(ok, "{out}");
    assert!(n.restarted());
    let backup = n.root.join("etc/containerd/config.toml.wpkg-backup");
    assert_eq!(std::fs::read_to_string(backup).unwrap(), kubeadm);
    let written = std::fs::read_to_string(n.config()).unwrap();
    assert!(
        written.starts_with(kubeadm),
        "the old config was not kept:\n{written}"
    );
    let dump = containerd_reads(&n.config());
    assert_eq!(
        wpkg_runtime(&dump),
        ("io.containerd.wpkg.v1".into(), "true".into())
    );

    // Ours, as containerd 2.x writes it (version 3, single quotes): left alone.
    let n = Node::new();
    let v3 = "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.wpkg]\n  runtime_type = 'io.containerd.wpkg.v1'\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]\n  runtime_type = 'io.containerd.runc.v2'\n";
    std::fs::write(n.config(), v3).unwrap();
    let (ok, out) = n.install();
    assert!(ok && out.contains("already has the wpkg runtime"), "{out}");
    assert_eq!(std::fs::read_to_string(n.config()).unwrap(), v3);
    assert!(!n.restarted());
    // A commented-out section is not a runtime: ours is added.
    let n = Node::new();
    let commented =
        "version = 2\n# [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wpkg]\n";
    std::fs::write(n.config(), commented).unwrap();
    let (ok, out) = n.install();
    assert!(ok && n.restarted(), "{out}");
    let dump = containerd_reads(&n.config());
    assert_eq!(wpkg_runtime(&dump).0, "io.containerd.wpkg.v1");

    // Foreign configs: a `wpkg` runtime of another type, a version 1 config.
    for (what, foreign, needle) in [
        (
            "another wpkg runtime",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wpkg]\n  runtime_type = \"io.containerd.spin.v2\"\n",
            "already has a runtime named wpkg of type 'io.containerd.spin.v2'",
        ),
        (
            "config version 1",
            "[plugins.cri.containerd]\n  snapshotter = \"overlayfs\"\n",
            "has config version '1'",
        ),
    ] {
        let n = Node::new();
        std::fs::write(n.config(), foreign).unwrap();
        let (ok, out) = n.install();
        assert!(!ok, "{what}: the installer went on:\n{out}");
        assert!(out.contains(needle), "{what}: {out}");
        assert_eq!(std::fs::read_to_string(n.config()).unwrap(), foreign, "{what}");
        assert!(!n.restarted(), "{what}: containerd was restarted");
        assert!(
            !n.root.join("etc/containerd/config.toml.new").exists(),
            "{what}: a half-written config was left"
        );
    }
}

#[test]
fn the_deploy_manifests_are_kubernetes_objects() {
    let dir = root().join("deploy");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        // PyYAML (scripts/setup.sh installs it): every document has apiVersion, kind
        // and metadata.name.
        let o = Command::new("python3")
            .args([
                "-c",
                "import sys, yaml\nfor d in yaml.safe_load_all(open(sys.argv[1])):\n    assert d['apiVersion'] and d['kind'] and d['metadata']['name'], d\nprint('ok')",
            ])
            .arg(&path)
            .output()
            .expect("python3 with PyYAML is needed: run `bash scripts/setup.sh`");
        assert!(
            o.status.success(),
            "{} is not a list of Kubernetes objects: {}",
            path.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        seen += 1;
    }
    assert!(seen >= 5, "only {seen} manifests in deploy/");
}
