//! A Kubernetes node without the kubelet: Debian's containerd (1.6.20) with its CRI
//! plugin, a private config (runtime handler `wpkg` → `io.containerd.wpkg.v1`, `runc`
//! for Linux pods, a pause image built here from `tests/native/pause.c`), and a CRI client (`runtime.v1` over
//! containerd's socket, generated from the vendored `cri/api.proto` with tonic, the
//! gRPC stack containerd-client already brings) that fills requests as the kubelet
//! does: pod sandboxes with a log directory and a cgroup parent, containers with the
//! kubelet's labels, annotations, mounts (`/etc/hosts`, `/dev/termination-log`, the
//! service-account token), the service-link variables and resources.
//!
//! Pods use the node's network (`hostNetwork: true`): no CNI plugin is needed, and a
//! pod's port is the node's port.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint, Uri};

use crate::containerd::Containerd;
use crate::images::{tar, Item, Layout, TAR};

/// The CRI API (`runtime.v1`), generated from `cri/api.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod api {
    tonic::include_proto!("runtime.v1");
}

use api::image_service_client::ImageServiceClient;
use api::runtime_service_client::RuntimeServiceClient;

/// The containerd namespace of the CRI plugin.
pub const K8S_NAMESPACE: &str = "k8s.io";
/// The runtime handler (a RuntimeClass's `handler`) that selects the wpkg shim.
pub const HANDLER: &str = "wpkg";
/// The pause image the harness builds and imports.
pub const PAUSE_IMAGE: &str = "wpkg.test/pause:1";

/// A CRI error: the gRPC status text the kubelet shows in a pod's events.
pub type CriResult<T> = Result<T, Box<tonic::Status>>;

/// A node: containerd with CRI, driven as the kubelet drives it.
pub struct Node {
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    /// Pod directories (`/var/log/pods` and `/var/lib/kubelet/pods` of this node).
    dir: tempfile::TempDir,
    cgroup_parent: String,
    pods: std::sync::Mutex<Vec<String>>,
    /// The containerd (dropped after the pods are removed).
    pub ctd: Containerd,
}

/// A pod sandbox that runs.
#[derive(Clone)]
pub struct Pod {
    /// The sandbox id.
    pub id: String,
    /// The config it was created with (every `CreateContainer` repeats it).
    pub config: api::PodSandboxConfig,
    /// The pod's volume directory (like `/var/lib/kubelet/pods/UID`).
    pub dir: PathBuf,
}

/// One line of a CRI container log file.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// RFC 3339 time with nanoseconds.
    pub time: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// `F` for a full line, `P` for a partial one.
    pub tag: String,
    /// The text.
    pub text: String,
}

/// Builds the static Linux program `tests/native/NAME.c` (with gcc) into an image
/// `tag` whose entry point is `/NAME`, as an OCI archive `ctr images import` reads.
fn native_archive(dir: &Path, name: &str, tag: &str) -> PathBuf {
    let src = crate::root().join("tests/native").join(format!("{name}.c"));
    let elf = dir.join(name);
    let st = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&elf)
        .arg(&src)
        .status()
        .expect("gcc is needed to build the node's Linux images: run `bash scripts/setup.sh`");
    assert!(
        st.success(),
        "gcc -static {name}.c failed (apt-get install gcc libc6-dev)"
    );
    let elf = std::fs::read(&elf).unwrap();
    let mut layout = Layout::new(&dir.join(format!("{name}-layout")));
    let image = layout.image(
        serde_json::json!({"architecture": "amd64", "os": "linux",
            "config": {"Entrypoint": [format!("/{name}")]}}),
        &[(TAR, tar(&[Item::Executable(name, &elf)]))],
    );
    layout.tag(tag, &image);
    let archive = dir.join(format!("{name}.tar"));
    layout.archive(&archive);
    archive
}

fn config(dir: &Path, registry: &str) -> String {
    let cni = dir.join("cni");
    std::fs::create_dir_all(cni.join("bin")).unwrap();
    std::fs::create_dir_all(cni.join("conf")).unwrap();
    format!(
        r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{bin}"
    conf_dir = "{conf}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{HANDLER}]
      runtime_type = "io.containerd.wpkg.v1"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{registry}"]
    endpoint = ["http://{registry}"]
"#,
        bin = cni.join("bin").display(),
        conf = cni.join("conf").display(),
    )
}

impl Node {
    /// Starts the node: containerd with CRI and the shim in `shim_dir`, pulling from
    /// the plain-HTTP loopback registry `registry` (`127.0.0.1:PORT`), the pause
    /// image imported.
    pub fn start(shim_dir: &Path, registry: &str) -> Node {
        let ctd = Containerd::start_with(shim_dir, |d| config(d, registry));
        let dir = tempfile::Builder::new()
            .prefix("wpkg-node-")
            .tempdir_in("/tmp")
            .unwrap();
        import(&ctd, &native_archive(dir.path(), "pause", PAUSE_IMAGE));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let socket = ctd.socket();
        let channel = rt
            .block_on(
                Endpoint::from_static("http://localhost").connect_with_connector(
                    tower::service_fn(move |_: Uri| {
                        let socket = socket.clone();
                        async move {
                            let s = tokio::net::UnixStream::connect(socket).await?;
                            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                        }
                    }),
                ),
            )
            .expect("connecting to containerd's CRI socket");
        let mut runtime = RuntimeServiceClient::new(channel.clone());
        let images = ImageServiceClient::new(channel);
        // The CRI plugin answers once it has loaded.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match rt.block_on(runtime.version(api::VersionRequest::default())) {
                Ok(_) => break,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "containerd's CRI plugin did not answer: {e}\ncontainerd log:\n{}",
                        ctd.log()
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        let cgroup_parent = format!(
            "/wpkg-cri-{}",
            dir.path().file_name().unwrap().to_string_lossy()
        );
        Node {
            rt,
            runtime,
            images,
            dir,
            cgroup_parent,
            pods: Default::default(),
            ctd,
        }
    }

    /// Builds the static program `tests/native/NAME.c` into image `tag` (entry point
    /// `/NAME`) on this node, as a plain Linux image for `runc`.
    pub fn import_native(&self, name: &str, tag: &str) {
        import(&self.ctd, &native_archive(self.dir.path(), name, tag));
    }

    /// `PullImage`; returns the image reference (its id) the kubelet puts in
    /// `CreateContainer`.
    pub fn pull(&self, image: &str) -> CriResult<String> {
        let req = api::PullImageRequest {
            image: Some(api::ImageSpec {
                image: image.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = self.rt.block_on(self.images.clone().pull_image(req))?;
        Ok(r.into_inner().image_ref)
    }

    /// The sandbox config the kubelet sends for a host-network pod `name` (namespace
    /// `default`), with `runtimeClassName: wpkg`.
    pub fn pod_config(&self, name: &str) -> api::PodSandboxConfig {
        let uid = format!("{:016x}", rand_u64());
        let labels: HashMap<String, String> = [
            ("io.kubernetes.pod.name", name),
            ("io.kubernetes.pod.namespace", "default"),
            ("io.kubernetes.pod.uid", uid.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let logs = self
            .dir
            .path()
            .join("log/pods")
            .join(format!("default_{name}_{uid}"));
        api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: name.to_owned(),
                uid: uid.clone(),
                namespace: "default".into(),
                attempt: 0,
            }),
            // A host-network pod has the node's UTS namespace: no hostname of its own
            // (runc refuses to set one there).
            hostname: String::new(),
            log_directory: logs.display().to_string(),
            labels,
            annotations: [("kubernetes.io/config.source".to_owned(), "api".to_owned())].into(),
            linux: Some(api::LinuxPodSandboxConfig {
                cgroup_parent: format!("{}/pod{uid}", self.cgroup_parent),
                security_context: Some(api::LinuxSandboxSecurityContext {
                    namespace_options: Some(api::NamespaceOption {
                        network: api::NamespaceMode::Node as i32,
                        pid: api::NamespaceMode::Container as i32,
                        ipc: api::NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    seccomp: Some(api::SecurityProfile {
                        profile_type: api::security_profile::ProfileType::Unconfined as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// `RunPodSandbox` with `runtime_handler: wpkg` (the pause container starts
    /// under the wpkg shim, as under a RuntimeClass).
    pub fn run_pod(&self, config: api::PodSandboxConfig) -> CriResult<Pod> {
        self.run_pod_with(config, HANDLER)
    }

    /// `RunPodSandbox` with the runtime handler `handler` (`runc` for a plain pod).
    pub fn run_pod_with(&self, config: api::PodSandboxConfig, handler: &str) -> CriResult<Pod> {
        std::fs::create_dir_all(&config.log_directory).unwrap();
        let uid = &config.metadata.as_ref().unwrap().uid;
        let dir = self.dir.path().join("pods").join(uid);
        std::fs::create_dir_all(dir.join("volumes/token")).unwrap();
        std::fs::create_dir_all(dir.join("containers")).unwrap();
        std::fs::write(dir.join("etc-hosts"), "127.0.0.1\tlocalhost\n").unwrap();
        std::fs::write(dir.join("volumes/token/token"), "service-account-token").unwrap();
        std::fs::write(dir.join("volumes/token/namespace"), "default").unwrap();
        let req = api::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.to_owned(),
        };
        let id = self
            .rt
            .block_on(self.runtime.clone().run_pod_sandbox(req))?
            .into_inner()
            .pod_sandbox_id;
        self.pods.lock().unwrap().push(id.clone());
        Ok(Pod { id, config, dir })
    }

    /// The container config the kubelet sends for container `name` of `pod` running
    /// `image_ref`, attempt `attempt`: its labels and annotations, the log path
    /// `NAME/ATTEMPT.log`, the kubelet's mounts, the service-link variables, no
    /// resources, not privileged.
    pub fn container_config(
        &self,
        pod: &Pod,
        name: &str,
        image_ref: &str,
        attempt: u32,
    ) -> api::ContainerConfig {
        let meta = pod.config.metadata.as_ref().unwrap();
        let term = pod.dir.join("containers").join(format!("{name}-{attempt}"));
        std::fs::write(&term, "").unwrap();
        let labels: HashMap<String, String> = [
            ("io.kubernetes.container.name", name),
            ("io.kubernetes.pod.name", meta.name.as_str()),
            ("io.kubernetes.pod.namespace", meta.namespace.as_str()),
            ("io.kubernetes.pod.uid", meta.uid.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let annotations: HashMap<String, String> = [
            ("io.kubernetes.container.hash", "1a2b3c4d"),
            ("io.kubernetes.container.restartCount", &attempt.to_string()),
            (
                "io.kubernetes.container.terminationMessagePath",
                "/dev/termination-log",
            ),
            ("io.kubernetes.container.terminationMessagePolicy", "File"),
            ("io.kubernetes.pod.terminationGracePeriod", "30"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let envs = [
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("KUBERNETES_PORT", "tcp://10.96.0.1:443"),
        ]
        .into_iter()
        .map(|(k, v)| kv(k, v))
        .collect();
        api::ContainerConfig {
            metadata: Some(api::ContainerMetadata {
                name: name.to_owned(),
                attempt,
            }),
            image: Some(api::ImageSpec {
                image: image_ref.to_owned(),
                ..Default::default()
            }),
            envs,
            mounts: vec![
                mount(&pod.dir.join("etc-hosts"), "/etc/hosts", false),
                mount(&term, "/dev/termination-log", false),
                mount(
                    &pod.dir.join("volumes/token"),
                    "/var/run/secrets/kubernetes.io/serviceaccount",
                    true,
                ),
            ],
            labels,
            annotations,
            log_path: format!("{name}/{attempt}.log"),
            linux: Some(api::LinuxContainerConfig {
                resources: Some(api::LinuxContainerResources {
                    cpu_period: 100_000,
                    cpu_shares: 2,
                    oom_score_adj: 1000,
                    ..Default::default()
                }),
                security_context: Some(api::LinuxContainerSecurityContext {
                    namespace_options: Some(api::NamespaceOption {
                        network: api::NamespaceMode::Node as i32,
                        pid: api::NamespaceMode::Container as i32,
                        ipc: api::NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    seccomp: Some(api::SecurityProfile {
                        profile_type: api::security_profile::ProfileType::Unconfined as i32,
                        ..Default::default()
                    }),
                    masked_paths: [
                        "/proc/acpi",
                        "/proc/kcore",
                        "/proc/keys",
                        "/proc/latency_stats",
                        "/proc/timer_list",
                        "/proc/timer_stats",
                        "/proc/sched_debug",
                        "/proc/scsi",
                        "/sys/firmware",
                    ]
                    .map(String::from)
                    .to_vec(),
                    readonly_paths: [
                        "/proc/asound",
                        "/proc/bus",
                        "/proc/fs",
                        "/proc/irq",
                        "/proc/sys",
                        "/proc/sysrq-trigger",
                    ]
                    .map(String::from)
                    .to_vec(),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }

    /// `CreateContainer` in `pod`; returns the container id.
    pub fn create(&self, pod: &Pod, config: api::ContainerConfig) -> CriResult<String> {
        let req = api::CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.config.clone()),
        };
        Ok(self
            .rt
            .block_on(self.runtime.clone().create_container(req))?
            .into_inner()
            .container_id)
    }

    /// `StartContainer`.
    pub fn start_container(&self, id: &str) -> CriResult<()> {
        let req = api::StartContainerRequest {
            container_id: id.to_owned(),
        };
        self.rt
            .block_on(self.runtime.clone().start_container(req))?;
        Ok(())
    }

    /// `CreateContainer` then `StartContainer`, the two errors as one.
    pub fn create_and_start(&self, pod: &Pod, config: api::ContainerConfig) -> CriResult<String> {
        let id = self.create(pod, config)?;
        self.start_container(&id)?;
        Ok(id)
    }

    /// `ContainerStatus`.
    pub fn status(&self, id: &str) -> api::ContainerStatus {
        let req = api::ContainerStatusRequest {
            container_id: id.to_owned(),
            verbose: false,
        };
        self.rt
            .block_on(self.runtime.clone().container_status(req))
            .expect("ContainerStatus")
            .into_inner()
            .status
            .expect("ContainerStatus without a status")
    }

    /// Polls `ContainerStatus` (as the kubelet's PLEG does) until the container has
    /// exited; panics after `limit`.
    pub fn wait_exited(&self, id: &str, limit: Duration) -> api::ContainerStatus {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.status(id);
            if s.state == api::ContainerState::ContainerExited as i32 {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "container {id} did not exit in {limit:?}: {s:?}\ncontainerd log:\n{}",
                self.ctd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `StopContainer` with a grace period of `timeout` seconds: SIGTERM, then
    /// SIGKILL when it is over.
    pub fn stop_container(&self, id: &str, timeout: i64) -> CriResult<()> {
        let req = api::StopContainerRequest {
            container_id: id.to_owned(),
            timeout,
        };
        self.rt.block_on(self.runtime.clone().stop_container(req))?;
        Ok(())
    }

    /// `RemoveContainer`.
    pub fn remove_container(&self, id: &str) -> CriResult<()> {
        let req = api::RemoveContainerRequest {
            container_id: id.to_owned(),
        };
        self.rt
            .block_on(self.runtime.clone().remove_container(req))?;
        Ok(())
    }

    /// `ExecSync` (an exec probe, `kubectl exec`).
    pub fn exec_sync(&self, id: &str, cmd: &[&str]) -> CriResult<api::ExecSyncResponse> {
        let req = api::ExecSyncRequest {
            container_id: id.to_owned(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 5,
        };
        Ok(self
            .rt
            .block_on(self.runtime.clone().exec_sync(req))?
            .into_inner())
    }

    /// `ReopenContainerLog` (what the kubelet's log rotation calls).
    pub fn reopen_log(&self, id: &str) -> CriResult<()> {
        let req = api::ReopenContainerLogRequest {
            container_id: id.to_owned(),
        };
        self.rt
            .block_on(self.runtime.clone().reopen_container_log(req))?;
        Ok(())
    }

    /// `StopPodSandbox` and `RemovePodSandbox`.
    pub fn remove_pod(&self, pod_id: &str) -> CriResult<()> {
        let mut rs = self.runtime.clone();
        self.rt
            .block_on(rs.stop_pod_sandbox(api::StopPodSandboxRequest {
                pod_sandbox_id: pod_id.to_owned(),
            }))?;
        self.rt
            .block_on(rs.remove_pod_sandbox(api::RemovePodSandboxRequest {
                pod_sandbox_id: pod_id.to_owned(),
            }))?;
        self.pods.lock().unwrap().retain(|p| p != pod_id);
        Ok(())
    }

    /// The pod's sandbox state (`PodSandboxStatus`).
    pub fn pod_state(&self, pod_id: &str) -> i32 {
        let req = api::PodSandboxStatusRequest {
            pod_sandbox_id: pod_id.to_owned(),
            verbose: false,
        };
        self.rt
            .block_on(self.runtime.clone().pod_sandbox_status(req))
            .expect("PodSandboxStatus")
            .into_inner()
            .status
            .expect("PodSandboxStatus without a status")
            .state
    }

    /// The ids of the containers the runtime knows of in `pod_id`.
    pub fn containers(&self, pod_id: &str) -> Vec<api::Container> {
        let req = api::ListContainersRequest {
            filter: Some(api::ContainerFilter {
                pod_sandbox_id: pod_id.to_owned(),
                ..Default::default()
            }),
        };
        self.rt
            .block_on(self.runtime.clone().list_containers(req))
            .expect("ListContainers")
            .into_inner()
            .containers
    }

    /// The CRI log file of container `name`, attempt `attempt`, of `pod`, parsed.
    pub fn log(&self, pod: &Pod, name: &str, attempt: u32) -> Vec<LogLine> {
        let path = Path::new(&pod.config.log_directory)
            .join(name)
            .join(format!("{attempt}.log"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        text.lines()
            .map(|l| {
                let mut parts = l.splitn(4, ' ');
                LogLine {
                    time: parts.next().unwrap_or_default().to_owned(),
                    stream: parts.next().unwrap_or_default().to_owned(),
                    tag: parts.next().unwrap_or_default().to_owned(),
                    text: parts.next().unwrap_or_default().to_owned(),
                }
            })
            .collect()
    }

    /// Waits until the log of `name`/`attempt` has a line containing `needle`.
    pub fn wait_log(&self, pod: &Pod, name: &str, attempt: u32, needle: &str) -> Vec<LogLine> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let lines = self.log(pod, name, attempt);
            if lines.iter().any(|l| l.text.contains(needle)) {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with `{needle}` in 30 s; the log:\n{lines:#?}\ncontainerd log:\n{}",
                self.ctd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let pods = std::mem::take(&mut *self.pods.lock().unwrap());
        for id in pods {
            let _ = self.remove_pod(&id);
        }
        // The cgroups the pods left (empty by now), deepest first.
        if let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") {
            for c in controllers.flatten() {
                remove_cgroup(&c.path().join(self.cgroup_parent.trim_start_matches('/')));
            }
        }
    }
}

fn import(ctd: &Containerd, archive: &Path) {
    let o = ctd
        .ctr_in(
            K8S_NAMESPACE,
            &["images", "import", archive.to_str().unwrap()],
        )
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "importing {} failed: {}",
        archive.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn remove_cgroup(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// A `KeyValue` (an env entry).
pub fn kv(key: &str, value: &str) -> api::KeyValue {
    api::KeyValue {
        key: key.to_owned(),
        value: value.to_owned(),
    }
}

/// A bind mount of `host` at `container`.
pub fn mount(host: &Path, container: &str, readonly: bool) -> api::Mount {
    api::Mount {
        container_path: container.to_owned(),
        host_path: host.display().to_string(),
        readonly,
        ..Default::default()
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}
