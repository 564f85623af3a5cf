//! From what Kubernetes (or `ctr run`) gives a container to what wpkg grants the guest.
//! Pure functions over the container's environment, its mount table and its cgroup
//! limit, so every rule is tested without a cluster.
//!
//! - **env**: only names the capabilities list in `env_required` reach the guest. What
//!   the node sets in every container ([`crate::node::node_variable`]: `PATH`, `HOSTNAME`, `HOME`,
//!   `TERM`, Kubernetes' service links) is dropped and named on stderr; any other name
//!   the pod sets, and a value for a name the capabilities fix in `env`, is asking for
//!   more than the image declares and refuses the start ([`Request::excess`]).
//! - **volumes**: a volume mounted exactly at a declared mount path is bound there,
//!   read-only unless both the capabilities and the volume are read-write. The
//!   runtime's and the kubelet's own mounts ([`crate::node::node_mount`]) are not the pod's volumes
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

use crate::kernel::{within, Mount};
use crate::node::{node_mount, node_variable, NODE_FILES, NODE_TREES};

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
    use super::*;
    use crate::kernel::tests::MOUNTINFO;
    use crate::kernel::{parse_memory_limit, parse_mountinfo};
    use wpkg_spec::plan::RunPlan;

    fn caps(extra: &str) -> ArtifactCapabilities {
        let toml = format!(
            "manifest_version = 1\n[package]\nname = \"t\"\nversion = \"1.0.0\"\nwasm = \"t.wasm\"\n[trigger]\ntype = \"command\"\n{extra}"
        );
        wpkg_spec::Manifest::parse(&toml)
            .unwrap()
            .to_artifact_capabilities()
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
