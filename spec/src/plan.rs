//! The run plan: the artifact's capabilities, narrowed and completed by the operator's
//! flags. Pure: host paths are taken as given; the runner checks they exist.
//!
//! The operator may narrow (smaller limits, read-only instead of read-write, no
//! outbound HTTP) and must supply `env_required` values and bind `mounts`. Anything
//! undeclared (an `--env` name, a `--mount` path) is refused, as is asking for more
//! than the artifact declares.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::config::PlannedConfig;
use crate::keyvalue::PlannedStore;
use crate::manifest::{Access, ArtifactCapabilities, Trigger};
use crate::outbound::OutboundPattern;
use crate::units::{ByteSize, EnvName, GuestPath};

/// What the operator asks for at run time (in the CLI: `--env`, `--mount`, `--memory`,
/// `--timeout`, `--deny-outbound`).
#[derive(Clone, Debug, Default)]
pub struct OperatorRequest {
    /// Values for names in `env_required`.
    pub env: Vec<(String, String)>,
    /// Directories bound at declared mounts.
    pub mounts: Vec<MountRequest>,
    /// A lower memory limit.
    pub memory: Option<ByteSize>,
    /// A lower time limit.
    pub timeout: Option<Duration>,
    /// No outbound HTTP at all.
    pub deny_outbound: bool,
    /// Names resolved to these addresses before DNS is asked (tests, air-gapped
    /// set-ups). The private-address rules still apply to what they say.
    pub resolve: BTreeMap<String, Vec<IpAddr>>,
    /// For content without a wpkg manifest only: outbound HTTP the operator grants.
    pub allow_outbound: Vec<OutboundPattern>,
    /// For container images only: their files, read-only at `/`.
    pub rootfs_read_only: bool,
    /// For container images only: their `Env`.
    pub image_env: bool,
    /// Values for declared config keys.
    pub config: Vec<(String, String)>,
    /// Declared key-value stores bound to a server: `NAME=redis://HOST[:PORT][/DB]`.
    pub key_value: Vec<String>,
}

/// The grants an operator asked for that only content without a wpkg manifest takes,
/// by name, for refusals.
fn unmanifested_grants(req: &OperatorRequest) -> Option<&'static str> {
    if !req.allow_outbound.is_empty() {
        Some("allow-outbound")
    } else if req.rootfs_read_only {
        Some("rootfs")
    } else if req.image_env {
        Some("image-env")
    } else {
        None
    }
}

/// One directory binding the operator asks for: `HOST:GUEST[:ro|rw]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountRequest {
    /// The host directory.
    pub host: String,
    /// The guest path.
    pub guest: GuestPath,
    /// The access asked for; `None` means what the manifest declares.
    pub access: Option<Access>,
}

impl std::str::FromStr for MountRequest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || "write HOST_DIR:GUEST_PATH[:ro|rw], like `./data:/data`".to_owned();
        let (rest, access) = match s.rsplit_once(':') {
            Some((r, "ro")) => (r, Some(Access::ReadOnly)),
            Some((r, "rw")) => (r, Some(Access::ReadWrite)),
            _ => (s, None),
        };
        let (host, guest) = rest.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() {
            return Err(bad());
        }
        let guest = guest.parse::<GuestPath>().map_err(|e| e.to_string())?;
        Ok(MountRequest {
            host: host.to_owned(),
            guest,
            access,
        })
    }
}

/// A directory the guest gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedMount {
    /// The host directory.
    pub host: String,
    /// The guest path.
    pub guest: GuestPath,
    /// The access granted.
    pub access: Access,
}

/// Exactly what a run grants.
#[derive(Clone, Debug, PartialEq)]
pub struct RunPlan {
    /// How the guest is started.
    pub trigger: Trigger,
    /// All environment variables the guest sees.
    pub env: BTreeMap<String, String>,
    /// Operator-bound directories.
    pub mounts: Vec<PlannedMount>,
    /// Bundled directories (guest paths), read-only; the runner gets their host copy.
    pub bundled: Vec<GuestPath>,
    /// The image's own files, read-only at `/` (container images, by operator grant);
    /// the runner gets their host copy as the bundled root.
    pub rootfs: bool,
    /// Outbound HTTP destinations.
    pub outbound_http: Vec<OutboundPattern>,
    /// Names resolved before DNS (from the operator), checked like DNS answers.
    pub resolve: BTreeMap<String, Vec<IpAddr>>,
    /// Memory limit in bytes.
    pub memory: ByteSize,
    /// Wall-clock limit per run or request.
    pub timeout: Option<Duration>,
    /// What the guest reads through `wasi:config/store`.
    pub config: PlannedConfig,
    /// The key-value stores the guest may open.
    pub key_value: Vec<PlannedStore>,
    /// The bundled models the guest may load by name (wasi-nn).
    pub nn_models: Vec<String>,
}

/// Why the operator's request cannot be applied. The messages name no front end's
/// flags; a front end words them (the CLI prefixes `--env NAME:` and the like).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A value was supplied for a name the artifact fixes in `env`.
    #[error("the artifact fixes `{name}` in `env`; it cannot be overridden at run")]
    EnvFixed {
        /// The variable.
        name: String,
    },
    /// A value was supplied for a name the artifact does not list in `env_required`.
    #[error(
        "the artifact does not declare `{name}`; only names in `env_required` can be supplied"
    )]
    EnvUndeclared {
        /// The variable.
        name: String,
    },
    /// A value was supplied twice.
    #[error("`{name}` is given twice")]
    EnvTwice {
        /// The variable.
        name: String,
    },
    /// A name in `env_required` got no value.
    #[error("the artifact requires `{name}`")]
    EnvMissing {
        /// The variable.
        name: String,
    },
    /// A directory was bound at a path the artifact declares no mount at.
    #[error("the artifact declares no mount at `{guest}` (declared: {})", if declared.is_empty() { "none".to_owned() } else { declared.join(", ") })]
    MountUndeclared {
        /// The host directory.
        host: String,
        /// The guest path asked for.
        guest: String,
        /// The guest paths the artifact declares.
        declared: Vec<String>,
    },
    /// Read-write was asked for a mount the artifact declares read-only.
    #[error("the artifact declares `{guest}` as {}; it cannot be mounted read-write", declared.as_str())]
    MountWider {
        /// The host directory.
        host: String,
        /// The guest path.
        guest: String,
        /// The access the artifact declares.
        declared: Access,
    },
    /// Two directories were bound at one guest path.
    #[error("a mount at `{guest}` is given twice")]
    MountTwice {
        /// The guest path.
        guest: String,
    },
    /// A memory limit above the artifact's.
    #[error(
        "{asked} is more than the artifact's limit of {declared}; limits may only be narrowed"
    )]
    MemoryAboveDeclared {
        /// What was asked.
        asked: ByteSize,
        /// What the artifact declares.
        declared: ByteSize,
    },
    /// A memory limit below the minimum.
    #[error("{asked} is too small: at least 1MiB")]
    MemoryTooSmall {
        /// What was asked.
        asked: ByteSize,
    },
    /// An operator grant that only content without a wpkg manifest takes was given for
    /// an artifact that has one (its manifest is the whole grant).
    #[error("the artifact has a wpkg manifest; its permissions come from it, not from `{grant}`")]
    ManifestedGrant {
        /// Which grant (`allow-outbound`, `rootfs`, `image-env`).
        grant: &'static str,
    },
    /// `rootfs` was asked of content that has no files of its own.
    #[error("it has no image files to offer at `/`")]
    NoRootfs,
    /// A time limit above the artifact's.
    #[error("{} is longer than the artifact's limit of {}; limits may only be narrowed", crate::units::DurationSpec(*asked), crate::units::DurationSpec(*declared))]
    TimeoutAboveDeclared {
        /// What was asked.
        asked: Duration,
        /// What the artifact declares.
        declared: Duration,
    },
    /// A config value cannot be applied.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A key-value store binding cannot be applied.
    #[error(transparent)]
    KeyValue(#[from] crate::keyvalue::KeyValueError),
}

impl RunPlan {
    /// The plan for content without a wpkg manifest (a Docker+Wasm image, a Wasm
    /// artifact made by another tool): nothing but what the operator grants, each grant
    /// named. `image_env` is the image's own `Env`, used only when the request asks.
    pub fn unmanifested(
        trigger: Trigger,
        req: &OperatorRequest,
        image_env: &[(String, String)],
        has_rootfs: bool,
    ) -> Result<RunPlan, PlanError> {
        let mut env = BTreeMap::new();
        if req.image_env {
            for (k, v) in image_env {
                env.insert(k.clone(), v.clone());
            }
        }
        let mut given = std::collections::BTreeSet::new();
        for (name, value) in &req.env {
            if !given.insert(name.clone()) {
                return Err(PlanError::EnvTwice { name: name.clone() });
            }
            env.insert(name.clone(), value.clone());
        }
        let mut mounts: Vec<PlannedMount> = Vec::new();
        for m in &req.mounts {
            if mounts.iter().any(|p| p.guest == m.guest) {
                return Err(PlanError::MountTwice {
                    guest: m.guest.to_string(),
                });
            }
            mounts.push(PlannedMount {
                host: m.host.clone(),
                guest: m.guest.clone(),
                access: m.access.unwrap_or(Access::ReadOnly),
            });
        }
        if req.rootfs_read_only && !has_rootfs {
            return Err(PlanError::NoRootfs);
        }
        if let Some(asked) = req.memory.filter(|m| *m < crate::manifest::MIN_MEMORY) {
            return Err(PlanError::MemoryTooSmall { asked });
        }
        Ok(RunPlan {
            trigger,
            env,
            mounts,
            bundled: vec![],
            rootfs: req.rootfs_read_only,
            outbound_http: if req.deny_outbound {
                vec![]
            } else {
                req.allow_outbound.clone()
            },
            memory: req.memory.unwrap_or(crate::manifest::DEFAULT_MEMORY),
            timeout: req.timeout,
            resolve: req.resolve.clone(),
            config: crate::config::plan(&Default::default(), &req.config)?,
            key_value: crate::keyvalue::plan(&[], &req.key_value)?,
            nn_models: vec![],
        })
    }

    /// Combines the artifact's capabilities with the operator's request.
    pub fn new(caps: &ArtifactCapabilities, req: &OperatorRequest) -> Result<RunPlan, PlanError> {
        if let Some(grant) = unmanifested_grants(req) {
            return Err(PlanError::ManifestedGrant { grant });
        }
        let c = &caps.capabilities;
        let mut env: BTreeMap<String, String> = c
            .env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        for (name, value) in &req.env {
            let parsed: Option<EnvName> = name.parse().ok();
            let declared = parsed.as_ref().is_some_and(|n| c.env_required.contains(n));
            if !declared {
                let fixed = parsed.as_ref().is_some_and(|n| c.env.contains_key(n));
                let name = name.clone();
                return Err(if fixed {
                    PlanError::EnvFixed { name }
                } else {
                    PlanError::EnvUndeclared { name }
                });
            }
            if env.insert(name.clone(), value.clone()).is_some() {
                return Err(PlanError::EnvTwice { name: name.clone() });
            }
        }
        for name in &c.env_required {
            if !env.contains_key(name.as_str()) {
                return Err(PlanError::EnvMissing {
                    name: name.to_string(),
                });
            }
        }
        let mut mounts = Vec::new();
        for m in &req.mounts {
            let Some(decl) = c.mounts.iter().find(|d| d.guest == m.guest) else {
                return Err(PlanError::MountUndeclared {
                    host: m.host.clone(),
                    guest: m.guest.to_string(),
                    declared: c.mounts.iter().map(|d| d.guest.to_string()).collect(),
                });
            };
            let access = m.access.unwrap_or(decl.access);
            if access > decl.access {
                return Err(PlanError::MountWider {
                    host: m.host.clone(),
                    guest: m.guest.to_string(),
                    declared: decl.access,
                });
            }
            if mounts.iter().any(|p: &PlannedMount| p.guest == m.guest) {
                return Err(PlanError::MountTwice {
                    guest: m.guest.to_string(),
                });
            }
            mounts.push(PlannedMount {
                host: m.host.clone(),
                guest: m.guest.clone(),
                access,
            });
        }
        let declared_memory = caps.limits.memory_or_default();
        let memory = match req.memory {
            Some(m) if m > declared_memory => {
                return Err(PlanError::MemoryAboveDeclared {
                    asked: m,
                    declared: declared_memory,
                })
            }
            Some(m) if m < crate::manifest::MIN_MEMORY => {
                return Err(PlanError::MemoryTooSmall { asked: m })
            }
            Some(m) => m,
            None => declared_memory,
        };
        let declared_timeout = caps.limits.timeout.map(|t| t.0);
        let timeout = match (req.timeout, declared_timeout) {
            (Some(t), Some(d)) if t > d => {
                return Err(PlanError::TimeoutAboveDeclared {
                    asked: t,
                    declared: d,
                })
            }
            (Some(t), _) => Some(t),
            (None, d) => d,
        };
        Ok(RunPlan {
            trigger: caps.trigger,
            env,
            mounts,
            bundled: c.files.iter().map(|f| f.guest.clone()).collect(),
            rootfs: false,
            outbound_http: if req.deny_outbound {
                vec![]
            } else {
                c.outbound_http.clone()
            },
            resolve: req.resolve.clone(),
            memory,
            timeout,
            config: crate::config::plan(&caps.config, &req.config)?,
            key_value: crate::keyvalue::plan(&c.key_value, &req.key_value)?,
            nn_models: caps.nn.named().into_iter().map(|(n, _)| n).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    fn caps(extra: &str) -> ArtifactCapabilities {
        Manifest::parse(&format!(
            "manifest_version = 1\n[package]\nname = \"a\"\nversion = \"1\"\nwasm = \"a.wasm\"\n[trigger]\ntype = \"command\"\n{extra}"
        ))
        .unwrap()
        .to_artifact_capabilities()
    }

    #[test]
    fn env_rules() {
        let c = caps("[capabilities]\nenv = { A = \"1\" }\nenv_required = [\"TOKEN\"]\n");
        let req = |env: &[(&str, &str)]| OperatorRequest {
            env: env
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            ..Default::default()
        };
        assert_eq!(
            RunPlan::new(&c, &req(&[])).unwrap_err(),
            PlanError::EnvMissing {
                name: "TOKEN".into()
            }
        );
        let p = RunPlan::new(&c, &req(&[("TOKEN", "x")])).unwrap();
        assert_eq!(p.env.len(), 2);
        assert_eq!(
            RunPlan::new(&c, &req(&[("TOKEN", "x"), ("HOME", "/")])).unwrap_err(),
            PlanError::EnvUndeclared {
                name: "HOME".into()
            }
        );
        assert_eq!(
            RunPlan::new(&c, &req(&[("TOKEN", "x"), ("A", "2")])).unwrap_err(),
            PlanError::EnvFixed { name: "A".into() }
        );
    }

    #[test]
    fn mount_rules() {
        let c = caps("[capabilities]\nmounts = [{ guest = \"/data\" }, { guest = \"/out\", access = \"read-write\" }]\n");
        let req = |m: &str| OperatorRequest {
            mounts: vec![m.parse().unwrap()],
            ..Default::default()
        };
        assert!(matches!(
            RunPlan::new(&c, &req("./d:/etc")).unwrap_err(),
            PlanError::MountUndeclared { guest, .. } if guest == "/etc"
        ));
        assert!(matches!(
            RunPlan::new(&c, &req("./d:/data:rw")).unwrap_err(),
            PlanError::MountWider {
                declared: Access::ReadOnly,
                ..
            }
        ));
        let p = RunPlan::new(&c, &req("./d:/out")).unwrap();
        assert_eq!(p.mounts[0].access, Access::ReadWrite);
        let p = RunPlan::new(&c, &req("./d:/out:ro")).unwrap();
        assert_eq!(p.mounts[0].access, Access::ReadOnly);
        assert!("nocolon".parse::<MountRequest>().is_err());
        assert!("./d:relative".parse::<MountRequest>().is_err());
    }

    #[test]
    fn limits_narrow_only() {
        let c = caps("[limits]\nmemory = \"64MiB\"\ntimeout = \"5s\"\n");
        let mut req = OperatorRequest {
            memory: Some(ByteSize(128 << 20)),
            ..Default::default()
        };
        assert!(RunPlan::new(&c, &req).is_err());
        req.memory = Some(ByteSize(32 << 20));
        assert_eq!(RunPlan::new(&c, &req).unwrap().memory, ByteSize(32 << 20));
        req.timeout = Some(Duration::from_secs(10));
        assert!(RunPlan::new(&c, &req).is_err());
        req.timeout = Some(Duration::from_secs(1));
        assert_eq!(
            RunPlan::new(&c, &req).unwrap().timeout,
            Some(Duration::from_secs(1))
        );
    }
}
