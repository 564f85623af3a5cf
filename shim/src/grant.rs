//! From what Kubernetes (or `ctr run`) gives a container to what wpkg grants the guest.
//! Pure functions over the container's environment, its mount table and its cgroup
//! limit, so every rule is tested without a cluster.
//!
//! - **env**: only names the capabilities list in `env_required` reach the guest. What
//!   the node sets in every container ([`node_variable`]: `PATH`, `HOSTNAME`, `HOME`,
//!   `TERM`, Kubernetes' service links) is dropped and named on stderr; any other name
//!   the pod sets, and a value for a name the capabilities fix in `env`, is asking for
//!   more than the image declares and refuses the start ([`Request::excess`]).
//! - **volumes**: a volume mounted exactly at a declared mount path is bound there,
//!   read-only unless both the capabilities and the volume are read-write. The
//!   runtime's and the kubelet's own mounts ([`node_mount`]) are not the pod's volumes
//!   and are never bound: an image that declares a mount at or under one, or a volume
//!   with another mount inside it, refuses the start; so does a volume anywhere else.
//! - **the image's own files**: a volume over the capabilities, the wasm or a bundled
//!   directory (or over a parent of one) is refused: the pod cannot swap the signed files.
//! - **config and key-value stores**: `WPKG_CONFIG_<KEY>=VALUE` gives declared config
//!   key `<key>` a value, and `WPKG_KV_<NAME>=redis://...` binds declared store `<name>`
//!   (`-` written `_`) to Redis, as `--config` and `--kv` do for `wpkg run`; an
//!   undeclared key or store is refused by the plan, not dropped. A pod keeps no
//!   embedded store, so every declared store must be bound.
//! - **memory**: the pod's limit narrows the capabilities' limit, never widens it. The
//!   container's cgroup also holds the runtime itself, so the guest gets the pod's limit
//!   less [`RUNTIME_HEADROOM`] (at least half of it): a guest that grows hits wpkg's
//!   limit and its clear message before the kernel's OOM killer.

use std::net::SocketAddr;

use wpkg_spec::manifest::{Access, ArtifactCapabilities};
use wpkg_spec::plan::{MountRequest, OperatorRequest};
use wpkg_spec::units::ByteSize;

/// The container variable that sets where an HTTP handler listens (`ADDRESS:PORT`);
/// read by the shim, never given to the guest. Like Spin's shim's
/// `SPIN_HTTP_LISTEN_ADDR`: the OCI spec that reaches a runtime does not carry
/// Kubernetes' `containerPort`.
pub const LISTEN_VAR: &str = "WPKG_LISTEN";

/// The prefix of container variables that give config values.
pub const CONFIG_PREFIX: &str = "WPKG_CONFIG_";

/// The prefix of container variables that bind key-value stores.
pub const KV_PREFIX: &str = "WPKG_KV_";

/// What the runtime (wasmtime, its code, the HTTP server) keeps for itself out of the
/// pod's memory limit.
pub const RUNTIME_HEADROOM: u64 = 24 << 20;

/// Where an HTTP handler listens when [`LISTEN_VAR`] is not set.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";

/// One line of `/proc/self/mountinfo`, the parts that matter here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted in the container.
    pub point: String,
    /// Whether it is mounted read-only.
    pub read_only: bool,
}

/// Parses `/proc/self/mountinfo` (see proc(5)): field 5 is the mount point (with
/// `\040`-style escapes), field 6 the per-mount options.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let point = fields.nth(4)?;
            let options = fields.next()?;
            Some(Mount {
                point: unescape(point),
                read_only: options.split(',').any(|o| o == "ro"),
            })
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let code = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(v) = code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `a` is `b` or lies under it.
fn within(a: &str, b: &str) -> bool {
    a == b || (a.starts_with(b) && (b.ends_with('/') || a[b.len()..].starts_with('/')))
}

/// The first mount (other than `/` itself) that covers or sits inside one of the
/// image's `protected` paths: `(mount point, protected path)`.
pub fn shadowing<'a>(mounts: &'a [Mount], protected: &'a [String]) -> Option<(&'a str, &'a str)> {
    mounts.iter().filter(|m| m.point != "/").find_map(|m| {
        protected
            .iter()
            .find(|p| within(p, &m.point) || within(&m.point, p))
            .map(|p| (m.point.as_str(), p.as_str()))
    })
}

/// containerd's default capability set, what a CRI (or `ctr`) container holds unless
/// its pod adds more: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID,
/// SETPCAP, NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP.
pub const DEFAULT_CAPABILITIES: u64 = 0xa804_25fb;

/// The kernel's capability names, by bit.
const CAPABILITY_NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The capabilities beyond [`DEFAULT_CAPABILITIES`] that the `/proc/self/status`
/// text `status` shows in the bounding, permitted or effective set (`CAP_` names; a
/// privileged container shows them all). A set that cannot be read is reported as
/// such: the check fails closed.
pub fn extra_capabilities(status: &str) -> Vec<String> {
    let mut extra = 0u64;
    for key in ["CapBnd:", "CapPrm:", "CapEff:"] {
        let set = status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok());
        match set {
            Some(bits) => extra |= bits & !DEFAULT_CAPABILITIES,
            None => return vec![format!("unknown ({key} unreadable in /proc/self/status)")],
        }
    }
    (0..64)
        .filter(|bit| extra & (1u64 << bit) != 0)
        .map(|bit| match CAPABILITY_NAMES.get(bit) {
            Some(name) => format!("CAP_{name}"),
            None => format!("capability {bit}"),
        })
        .collect()
}

/// The cgroup memory limit, in bytes, from the text of `memory.max` (cgroup v2) or
/// `memory.limit_in_bytes` (v1); `None` for no limit.
pub fn parse_memory_limit(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    let v: u64 = t.parse().ok()?;
    // cgroup v1 says "no limit" with a huge page-rounded number.
    (v < (1u64 << 62)).then_some(v)
}

/// The files that may hold the container's memory limit, most specific first, from
/// the text of `/proc/self/cgroup`.
pub fn memory_limit_files(proc_self_cgroup: &str) -> Vec<String> {
    let mut files = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = path.trim_end_matches('/');
        if controllers.is_empty() {
            files.push(format!("/sys/fs/cgroup{path}/memory.max"));
        } else if controllers.split(',').any(|c| c == "memory") {
            files.push(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"));
        }
    }
    files.push("/sys/fs/cgroup/memory.max".to_owned());
    files.push("/sys/fs/cgroup/memory/memory.limit_in_bytes".to_owned());
    files.dedup();
    files
}

/// What a pod asks for beyond what the image declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Excess {
    /// Variables the capabilities do not name (`env_required`).
    Env(Vec<String>),
    /// A variable whose value the capabilities fix (`env`).
    FixedEnv(String),
    /// A volume at a path the capabilities do not declare (`mounts`).
    Volume(String),
    /// A declared mount at or under a path the node mounts its own things at.
    NodePath(String),
    /// A mount inside a declared mount's volume (it would be given with it).
    Nested {
        /// The declared mount.
        declared: String,
        /// The mount inside it.
        inner: String,
    },
}

impl std::fmt::Display for Excess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Excess::Env(names) => write!(
                f,
                "the pod sets {}, which the image does not declare",
                names.join(", ")
            ),
            Excess::FixedEnv(name) => {
                write!(f, "the pod sets {name}, which the image fixes in its env")
            }
            Excess::Volume(point) => write!(
                f,
                "a volume is mounted at {point}, which the image does not declare"
            ),
            Excess::NodePath(point) => write!(
                f,
                "the image declares a mount at {point}, where the node mounts its own files"
            ),
            Excess::Nested { declared, inner } => write!(
                f,
                "a mount at {inner} lies inside the volume at the image's mount {declared}"
            ),
        }
    }
}

/// Whether the node (not the pod's author) sets variable `name` (with `value`) in every
/// container: `PATH`, `HOSTNAME`, `HOME`, `TERM`, and Kubernetes' service links
/// (`KUBERNETES_*`, `<SVC>_SERVICE_HOST`, `<SVC>_SERVICE_PORT[_<NAME>]`, `<SVC>_PORT`
/// with a `PROTO://` value, `<SVC>_PORT_<N>_<PROTO>[_PROTO|_PORT|_ADDR]`).
pub fn node_variable(name: &str, value: &str) -> bool {
    if matches!(name, "PATH" | "HOSTNAME" | "HOME" | "TERM") || name.starts_with("KUBERNETES_") {
        return true;
    }
    if name.ends_with("_SERVICE_HOST")
        || name.ends_with("_SERVICE_PORT")
        || name.contains("_SERVICE_PORT_")
    {
        return true;
    }
    if name.ends_with("_PORT")
        && ["tcp://", "udp://", "sctp://"]
            .iter()
            .any(|p| value.starts_with(p))
    {
        return true;
    }
    // <SVC>_PORT_<N>_<PROTO>[_SUFFIX]; a Service's own name may hold `_PORT_` too.
    // Overlapping matches: `API_PORT_PORT_443_TCP` holds `_PORT_` at 3 and at 8.
    let starts =
        (0..name.len()).filter(|i| name.is_char_boundary(*i) && name[*i..].starts_with("_PORT_"));
    starts.into_iter().any(|i| {
        let mut parts = name[i + "_PORT_".len()..].split('_');
        let port_ok = parts
            .next()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        let proto_ok = parts
            .next()
            .is_some_and(|p| matches!(p, "TCP" | "UDP" | "SCTP"));
        let suffix_ok = match parts.next() {
            None => true,
            Some(s) => matches!(s, "PROTO" | "PORT" | "ADDR") && parts.next().is_none(),
        };
        port_ok && proto_ok && suffix_ok
    })
}

/// The paths where the runtime and the kubelet mount their own things in every
/// container; the image may not declare a mount at or under one (it would be given
/// the runtime's `/proc` or the pod's token without asking anyone).
const NODE_TREES: [&str; 5] = ["/proc", "/sys", "/dev", "/run", "/var/run/secrets"];

/// The kubelet's single-file mounts.
const NODE_FILES: [&str; 3] = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];

/// Whether mount point `point` is the runtime's or the kubelet's, not a volume of
/// the pod: the root, `/proc`, `/sys`, `/dev` (with `/dev/termination-log`) and what
/// is under them, `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, `/run` itself
/// (containerd's default spec mounts a tmpfs there), and service
/// account tokens under `/var/run/secrets` (the kubelet's and admission webhooks').
pub fn node_mount(point: &str) -> bool {
    point == "/"
        || point == "/run"
        || NODE_TREES
            .iter()
            .filter(|t| **t != "/run")
            .any(|top| within(point, top))
        || NODE_FILES.contains(&point)
}

/// What the shim asks of the plan, and what it left out (for the log line).
#[derive(Debug, Default)]
pub struct Request {
    /// The request, for [`wpkg_spec::plan::RunPlan::new`].
    pub operator: OperatorRequest,
    /// Variables the node set, not given to the guest (names only).
    pub dropped_env: Vec<String>,
    /// What the pod asks for beyond the capabilities (refuses the start).
    pub excess: Option<Excess>,
    /// Where an HTTP handler listens.
    pub listen: Option<String>,
}

/// Builds the request from the container's `NAME=VALUE` variables, its mounts and its
/// cgroup memory limit.
pub fn request(
    caps: &ArtifactCapabilities,
    envs: &[String],
    mounts: &[Mount],
    memory_limit: Option<u64>,
) -> Request {
    let c = &caps.capabilities;
    let mut out = Request::default();
    let mut undeclared = Vec::new();
    for kv in envs {
        let (name, value) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        if name == LISTEN_VAR {
            out.listen = Some(value.to_owned());
        } else if let Some(key) = name.strip_prefix(CONFIG_PREFIX) {
            let key = key.to_ascii_lowercase();
            out.operator.config.retain(|(k, _)| *k != key);
            out.operator.config.push((key, value.to_owned()));
        } else if let Some(store) = name.strip_prefix(KV_PREFIX) {
            // A declared name whose spelling matches (`-` is written `_` in a variable).
            let store = c
                .key_value
                .iter()
                .map(|n| n.to_string())
                .find(|n| n.to_ascii_uppercase().replace('-', "_") == store)
                .unwrap_or_else(|| store.to_ascii_lowercase());
            out.operator
                .key_value
                .retain(|b| b.split_once('=').map(|(n, _)| n) != Some(store.as_str()));
            out.operator.key_value.push(format!("{store}={value}"));
        } else if c.env_required.iter().any(|n| n.as_str() == name) {
            // Kubernetes gives a name once; a repeat keeps the last, as a shell would.
            out.operator.env.retain(|(n, _)| n != name);
            out.operator.env.push((name.to_owned(), value.to_owned()));
        } else if node_variable(name, value) {
            // Set by the node, not the pod (an image that fixes PATH keeps its value).
            out.dropped_env.push(name.to_owned());
        } else if c.env.keys().any(|n| n.as_str() == name) {
            out.excess
                .get_or_insert_with(|| Excess::FixedEnv(name.to_owned()));
        } else {
            undeclared.push(name.to_owned());
        }
    }
    if !undeclared.is_empty() && out.excess.is_none() {
        out.excess = Some(Excess::Env(undeclared));
    }
    if out.excess.is_none() {
        out.excess = mounts
            .iter()
            .find(|m| {
                !node_mount(&m.point) && !c.mounts.iter().any(|d| d.guest.as_str() == m.point)
            })
            .map(|m| Excess::Volume(m.point.clone()));
    }
    for decl in &c.mounts {
        let g = decl.guest.as_str();
        // Never the node's own mounts, whether or not the pod adds anything.
        if NODE_TREES.iter().any(|t| within(g, t)) || NODE_FILES.contains(&g) {
            out.excess
                .get_or_insert_with(|| Excess::NodePath(g.to_owned()));
            continue;
        }
        if let Some(m) = mounts.iter().rev().find(|m| m.point == g) {
            // The guest gets the volume's whole tree: nothing may be mounted inside it.
            if let Some(inner) = mounts.iter().find(|i| i.point != g && within(&i.point, g)) {
                out.excess.get_or_insert_with(|| Excess::Nested {
                    declared: g.to_owned(),
                    inner: inner.point.clone(),
                });
                continue;
            }
            out.operator.mounts.push(MountRequest {
                host: m.point.clone(),
                guest: decl.guest.clone(),
                access: m.read_only.then_some(Access::ReadOnly),
            });
        }
    }
    let declared = caps.limits.memory_or_default().0;
    let usable = memory_limit.map(|l| l.saturating_sub(RUNTIME_HEADROOM).max(l / 2));
    if let Some(limit) = usable.filter(|l| *l < declared) {
        out.operator.memory = Some(ByteSize(limit));
    }
    out
}

/// Parses where to listen: `ADDRESS:PORT`, or a bare port (all addresses).
pub fn listen_addr(value: Option<&str>) -> Result<SocketAddr, String> {
    let v = value.unwrap_or(DEFAULT_LISTEN).trim();
    if let Ok(port) = v.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    v.parse::<SocketAddr>()
        .map_err(|_| format!("{LISTEN_VAR}=`{v}` is not ADDRESS:PORT or a port"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn capabilities_beyond_the_default_are_found_in_any_set_and_unreadable_ones_count() {
        // containerd's default set for a CRI container...
        let default = "CapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\n";
        assert!(extra_capabilities(default).is_empty());
        // ...a privileged container's...
        let privileged =
            "CapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n";
        let all = extra_capabilities(privileged);
        assert!(
            all.contains(&"CAP_SYS_ADMIN".to_owned()) && all.len() == 41 - 14,
            "{all:?}"
        );
        // ...SYS_ADMIN or DAC_READ_SEARCH added to the bounding set only...
        let added =
            "CapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a82425ff\n";
        assert_eq!(
            extra_capabilities(added),
            ["CAP_DAC_READ_SEARCH", "CAP_SYS_ADMIN"]
        );
        // ...and a status the check cannot read.
        assert!(!extra_capabilities("").is_empty());
        assert!(!extra_capabilities("CapPrm:\tzz\nCapEff:\t0\nCapBnd:\t0\n").is_empty());
    }

    use super::*;
    use wpkg_spec::plan::RunPlan;

    fn caps(extra: &str) -> ArtifactCapabilities {
        let toml = format!(
            "manifest_version = 1\n[package]\nname = \"t\"\nversion = \"1.0.0\"\nwasm = \"t.wasm\"\n[trigger]\ntype = \"command\"\n{extra}"
        );
        wpkg_spec::Manifest::parse(&toml)
            .unwrap()
            .to_artifact_capabilities()
    }

    const MOUNTINFO: &str = "\
22 1 0:21 / / rw,relatime - overlay overlay rw
23 22 0:22 / /proc rw,nosuid - proc proc rw
30 22 8:1 /vol/data /data ro,relatime - ext4 /dev/sda1 rw
31 22 8:1 /vol/out /out rw,relatime - ext4 /dev/sda1 rw
32 22 8:1 /vol/x /undeclared rw,relatime - ext4 /dev/sda1 rw
33 22 8:1 /vol/s /with\\040space rw - ext4 /dev/sda1 rw
";

    #[test]
    fn mountinfo_is_read_with_escapes_and_modes() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 6);
        assert_eq!(
            m[2],
            Mount {
                point: "/data".into(),
                read_only: true
            }
        );
        assert!(!m[3].read_only);
        assert_eq!(m[5].point, "/with space");
    }

    #[test]
    fn only_declared_names_reach_the_guest() {
        let c = caps("[capabilities]\nenv = { FIXED = \"1\" }\nenv_required = [\"TOKEN\"]\n");
        let envs: Vec<String> = [
            "PATH=/bin",
            "TOKEN=t",
            "HOSTNAME=node-1",
            "KUBERNETES_SERVICE_HOST=10.0.0.1",
            "REDIS_PORT_6379_TCP_ADDR=10.0.0.9",
            "WPKG_LISTEN=9000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let r = request(&c, &envs, &[], None);
        assert_eq!(r.excess, None);
        assert_eq!(r.operator.env, vec![("TOKEN".to_owned(), "t".to_owned())]);
        assert_eq!(
            r.dropped_env,
            [
                "PATH",
                "HOSTNAME",
                "KUBERNETES_SERVICE_HOST",
                "REDIS_PORT_6379_TCP_ADDR"
            ]
        );
        assert_eq!(r.listen.as_deref(), Some("9000"));
        let plan = RunPlan::new(&c, &r.operator).unwrap();
        assert_eq!(plan.env.get("FIXED").map(String::as_str), Some("1"));
        assert_eq!(plan.env.len(), 2);
        // Control: without TOKEN the plan refuses (env_required is enforced).
        let r = request(&c, &envs[..1], &[], None);
        assert!(RunPlan::new(&c, &r.operator).is_err());
        // The pod asking for more: a name the image does not declare, a fixed one.
        let more = |extra: &[&str]| {
            let mut e = envs.clone();
            e.extend(extra.iter().map(|s| s.to_string()));
            request(&c, &e, &[], None).excess
        };
        assert_eq!(
            more(&["LOG_LEVEL=debug", "API_KEY=x"]),
            Some(Excess::Env(vec!["LOG_LEVEL".into(), "API_KEY".into()]))
        );
        assert_eq!(more(&["FIXED=pod"]), Some(Excess::FixedEnv("FIXED".into())));
    }

    #[test]
    fn node_variables_are_the_nodes_and_nothing_else() {
        for (name, value) in [
            ("PATH", "/bin"),
            ("KUBERNETES_PORT_443_TCP", "tcp://10.96.0.1:443"),
            ("MY_SVC_SERVICE_HOST", "10.0.0.1"),
            ("MY_SVC_SERVICE_PORT", "80"),
            ("MY_SVC_SERVICE_PORT_HTTP", "80"),
            ("MY_SVC_PORT", "tcp://10.0.0.1:80"),
            ("MY_SVC_PORT_80_TCP", "tcp://10.0.0.1:80"),
            ("MY_SVC_PORT_80_TCP_PROTO", "tcp"),
            // A Service named `api-port`.
            ("API_PORT_PORT_443_TCP_ADDR", "10.0.0.2"),
        ] {
            assert!(node_variable(name, value), "{name}");
        }
        for (name, value) in [
            ("API_KEY", "x"),
            // A pod's own port variable: not a service link (no PROTO:// value).
            ("DB_PORT", "5432"),
            ("MY_SVC_PORT_80", "x"),
            ("MY_SVC_PORT_X_TCP", "x"),
            ("MY_SVC_PORT_80_TCP_KEY", "x"),
            ("PATHS", "x"),
        ] {
            assert!(!node_variable(name, value), "{name}");
        }
        // An image that fixes a variable the node also sets keeps its value, and the
        // node's is not held against the pod.
        let c = caps("[capabilities]\nenv = { PATH = \"/guest\" }\n");
        let r = request(&c, &["PATH=/usr/bin".to_owned()], &[], None);
        assert_eq!((r.excess, r.dropped_env), (None, vec!["PATH".to_owned()]));
        let plan = RunPlan::new(&c, &r.operator).unwrap();
        assert_eq!(plan.env.get("PATH").map(String::as_str), Some("/guest"));
    }

    #[test]
    fn the_nodes_own_mounts_are_never_given() {
        let ro = |p: &str| Mount {
            point: p.to_owned(),
            read_only: false,
        };
        // An image that declares the runtime's /proc, /dev/shm or the pod's token:
        // refused, whether or not the pod mounts anything there.
        for declared in [
            "/proc",
            "/dev/shm",
            "/sys/fs/cgroup",
            "/run",
            "/var/run/secrets/kubernetes.io/serviceaccount",
            "/etc/hosts",
        ] {
            let c = caps(&format!("[capabilities]\nmounts = [{{ guest = \"{declared}\", access = \"read-write\" }}]\n"));
            for mounts in [vec![ro(declared)], vec![]] {
                let r = request(&c, &[], &mounts, None);
                assert_eq!(
                    r.excess,
                    Some(Excess::NodePath(declared.into())),
                    "{declared}"
                );
                assert!(r.operator.mounts.is_empty(), "{declared} was bound");
            }
        }
        // A volume at a declared /var, with the kubelet's token mounted inside it.
        let c = caps("[capabilities]\nmounts = [{ guest = \"/var\" }]\n");
        let mounts = [
            ro("/var"),
            ro("/var/run/secrets/kubernetes.io/serviceaccount"),
        ];
        let r = request(&c, &[], &mounts, None);
        assert_eq!(
            r.excess,
            Some(Excess::Nested {
                declared: "/var".into(),
                inner: "/var/run/secrets/kubernetes.io/serviceaccount".into()
            })
        );
        assert!(r.operator.mounts.is_empty());
        // Control: the same volume alone is bound.
        let r = request(&c, &[], &mounts[..1], None);
        assert_eq!((r.excess, r.operator.mounts.len()), (None, 1));
    }

    #[test]
    fn config_and_stores_come_from_wpkg_variables() {
        let c = caps("[capabilities]\nkey_value = [\"my-cache\"]\n[config]\ngreeting = {}\n");
        let envs: Vec<String> = [
            "WPKG_CONFIG_GREETING=hi",
            "WPKG_KV_MY_CACHE=redis://cache:6379/1",
            "GREETING=not-config",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let r = request(&c, &envs, &[], None);
        let plan = RunPlan::new(&c, &r.operator).unwrap();
        assert_eq!(
            plan.config.values.get("greeting").map(String::as_str),
            Some("hi")
        );
        assert!(matches!(
            plan.key_value[0].backend,
            wpkg_spec::keyvalue::Backend::Redis(_)
        ));
        // A plain variable of the same name is not config: the image does not declare it.
        assert_eq!(r.excess, Some(Excess::Env(vec!["GREETING".into()])));
        // Undeclared keys and stores are refused by the plan, not silently dropped.
        for bad in ["WPKG_CONFIG_HOME=/", "WPKG_KV_OTHER=redis://h"] {
            let r = request(&c, &[bad.to_owned()], &[], None);
            assert!(RunPlan::new(&c, &r.operator).is_err(), "{bad}");
        }
    }

    #[test]
    fn volumes_bind_only_at_declared_paths_and_never_wider() {
        let c = caps("[capabilities]\nmounts = [{ guest = \"/data\", access = \"read-write\" }, { guest = \"/out\" }]\n");
        let r = request(&c, &[], &parse_mountinfo(MOUNTINFO), None);
        assert_eq!(r.excess, Some(Excess::Volume("/undeclared".into())));
        let plan = RunPlan::new(&c, &r.operator).unwrap();
        let got: Vec<(String, Access)> = plan
            .mounts
            .iter()
            .map(|m| (m.guest.to_string(), m.access))
            .collect();
        // /data: declared rw, volume ro -> ro. /out: declared ro, volume rw -> ro.
        // /undeclared: not bound (and the start is refused, above).
        assert_eq!(
            got,
            vec![
                ("/data".into(), Access::ReadOnly),
                ("/out".into(), Access::ReadOnly)
            ]
        );
        // Control: a read-write volume at a read-write mount is read-write.
        let rw = [Mount {
            point: "/data".into(),
            read_only: false,
        }];
        let plan = RunPlan::new(&c, &request(&c, &[], &rw, None).operator).unwrap();
        assert_eq!(plan.mounts[0].access, Access::ReadWrite);
        // The runtime's and the kubelet's mounts are not volumes of the pod.
        let node: Vec<Mount> = [
            "/",
            "/proc",
            "/dev/shm",
            "/dev/termination-log",
            "/sys/fs/cgroup",
            "/etc/hosts",
            "/etc/resolv.conf",
            "/var/run/secrets/kubernetes.io/serviceaccount",
        ]
        .iter()
        .map(|p| Mount {
            point: p.to_string(),
            read_only: true,
        })
        .collect();
        assert_eq!(request(&c, &[], &node, None).excess, None);
        for volume in ["/etc", "/etc/config", "/var/run", "/devices", "/data/sub"] {
            let m = [Mount {
                point: volume.into(),
                read_only: true,
            }];
            assert_eq!(
                request(&c, &[], &m, None).excess,
                Some(Excess::Volume(volume.into())),
                "{volume}"
            );
        }
    }

    #[test]
    fn volumes_over_the_image_files_are_found() {
        let protected = vec![
            "/.wpkg".to_owned(),
            "/app.wasm".to_owned(),
            "/static".to_owned(),
        ];
        let m = |p: &str| {
            vec![Mount {
                point: p.into(),
                read_only: true,
            }]
        };
        assert_eq!(
            shadowing(&m("/.wpkg"), &protected),
            Some(("/.wpkg", "/.wpkg"))
        );
        assert!(shadowing(&m("/static/css"), &protected).is_some());
        assert!(shadowing(&m("/app.wasm"), &protected).is_some());
        // Siblings and the root itself are fine.
        assert_eq!(shadowing(&m("/statics"), &protected), None);
        assert_eq!(shadowing(&m("/"), &protected), None);
        assert_eq!(shadowing(&parse_mountinfo(MOUNTINFO), &protected), None);
        let parent = vec!["/srv/static".to_owned()];
        assert!(shadowing(&m("/srv"), &parent).is_some());
    }

    #[test]
    fn the_pod_limit_narrows_memory_only() {
        let c = caps("[limits]\nmemory = \"64MiB\"\n");
        // The pod's limit less the runtime's share...
        let r = request(&c, &[], &[], Some(64 << 20));
        assert_eq!(r.operator.memory, Some(ByteSize(40 << 20)));
        // ...of which a small pod still gives the guest half.
        let r = request(&c, &[], &[], Some(32 << 20));
        assert_eq!(r.operator.memory, Some(ByteSize(16 << 20)));
        let r = request(&c, &[], &[], Some(88 << 20));
        assert_eq!(r.operator.memory, None);
        let r = request(&c, &[], &[], Some(1 << 30));
        assert_eq!(r.operator.memory, None);
        assert_eq!(parse_memory_limit("max\n"), None);
        assert_eq!(parse_memory_limit("33554432\n"), Some(32 << 20));
        assert_eq!(parse_memory_limit("9223372036854771712"), None);
    }

    #[test]
    fn the_own_cgroup_is_read_first() {
        let v1 = "4:memory:/default/c1\n0::/\n";
        assert_eq!(
            memory_limit_files(v1)[..2],
            [
                "/sys/fs/cgroup/memory/default/c1/memory.limit_in_bytes".to_owned(),
                "/sys/fs/cgroup/memory.max".to_owned()
            ]
        );
        let v2 = "0::/kubepods/pod1/c1\n";
        assert_eq!(
            memory_limit_files(v2)[0],
            "/sys/fs/cgroup/kubepods/pod1/c1/memory.max"
        );
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(listen_addr(None).unwrap().port(), 8080);
        assert_eq!(
            listen_addr(Some("9000")).unwrap().to_string(),
            "0.0.0.0:9000"
        );
        assert_eq!(listen_addr(Some("127.0.0.1:81")).unwrap().port(), 81);
        assert!(listen_addr(Some("nope"))
            .unwrap_err()
            .contains("WPKG_LISTEN"));
    }
}
