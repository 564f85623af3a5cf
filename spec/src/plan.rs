//! The run plan: the artifact's capabilities, narrowed and completed by the operator's
//! flags. Pure: host paths are taken as given; the runner checks they exist.
//!
//! The operator may narrow (smaller limits, read-only instead of read-write, no
//! outbound HTTP) and must supply `env_required` values and bind `mounts`. Anything
//! undeclared (an `--env` name, a `--mount` path) is refused, as is asking for more
//! than the artifact declares.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::manifest::{Access, ArtifactCapabilities, Trigger};
use crate::outbound::OutboundPattern;
use crate::units::{ByteSize, EnvName, GuestPath};

/// What the operator asked for on the command line.
#[derive(Clone, Debug, Default)]
pub struct OperatorRequest {
    /// `--env NAME=VALUE`.
    pub env: Vec<(String, String)>,
    /// `--mount HOST:GUEST[:ro|rw]`.
    pub mounts: Vec<MountRequest>,
    /// `--memory`.
    pub memory: Option<ByteSize>,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--deny-outbound`: no outbound HTTP at all.
    pub deny_outbound: bool,
}

/// One `--mount`.
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
        let bad = || {
            format!("invalid --mount `{s}`: write HOST_DIR:GUEST_PATH[:ro|rw], like `./data:/data`")
        };
        let (rest, access) = match s.rsplit_once(':') {
            Some((r, "ro")) => (r, Some(Access::ReadOnly)),
            Some((r, "rw")) => (r, Some(Access::ReadWrite)),
            _ => (s, None),
        };
        let (host, guest) = rest.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() {
            return Err(bad());
        }
        let guest: GuestPath = guest
            .parse()
            .map_err(|e| format!("invalid --mount `{s}`: {e}"))?;
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
    /// Outbound HTTP destinations.
    pub outbound_http: Vec<OutboundPattern>,
    /// Memory limit in bytes.
    pub memory: ByteSize,
    /// Wall-clock limit per run or request.
    pub timeout: Option<Duration>,
}

/// Why the operator's flags cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

impl RunPlan {
    /// Combines the artifact's capabilities with the operator's request.
    pub fn new(caps: &ArtifactCapabilities, req: &OperatorRequest) -> Result<RunPlan, PlanError> {
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
                return Err(PlanError(if fixed {
                    format!("--env {name}: the artifact fixes `{name}` in `env`; it cannot be overridden at run")
                } else {
                    format!(
                        "--env {name}: the artifact does not declare `{name}`; only names in `env_required` can be supplied (add `env_required = [\"{name}\"]` to wpkg.toml and rebuild)"
                    )
                }));
            }
            if env.insert(name.clone(), value.clone()).is_some() {
                return Err(PlanError(format!("--env {name} is given twice")));
            }
        }
        for name in &c.env_required {
            if !env.contains_key(name.as_str()) {
                return Err(PlanError(format!(
                    "the artifact requires `{name}`: supply it with `--env {name}=VALUE`"
                )));
            }
        }
        let mut mounts = Vec::new();
        for m in &req.mounts {
            let Some(decl) = c.mounts.iter().find(|d| d.guest == m.guest) else {
                let declared: Vec<&str> = c.mounts.iter().map(|d| d.guest.as_str()).collect();
                return Err(PlanError(format!(
                    "--mount {}:{}: the artifact declares no mount at `{}` (declared: {}); add `mounts = [{{ guest = \"{}\" }}]` to wpkg.toml and rebuild",
                    m.host,
                    m.guest,
                    m.guest,
                    if declared.is_empty() { "none".to_owned() } else { declared.join(", ") },
                    m.guest
                )));
            };
            let access = m.access.unwrap_or(decl.access);
            if access > decl.access {
                return Err(PlanError(format!(
                    "--mount {}:{}:rw: the artifact declares `{}` as {}; it cannot be mounted read-write",
                    m.host,
                    m.guest,
                    m.guest,
                    decl.access.as_str()
                )));
            }
            if mounts.iter().any(|p: &PlannedMount| p.guest == m.guest) {
                return Err(PlanError(format!(
                    "--mount for `{}` is given twice",
                    m.guest
                )));
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
                return Err(PlanError(format!(
                    "--memory {m} is more than the artifact's limit of {declared_memory}; flags may only narrow limits"
                )))
            }
            Some(m) if m < crate::manifest::MIN_MEMORY => {
                return Err(PlanError(format!("--memory {m} is too small: at least 1MiB")))
            }
            Some(m) => m,
            None => declared_memory,
        };
        let declared_timeout = caps.limits.timeout.map(|t| t.0);
        let timeout = match (req.timeout, declared_timeout) {
            (Some(t), Some(d)) if t > d => {
                return Err(PlanError(format!(
                    "--timeout {} is longer than the artifact's limit of {}; flags may only narrow limits",
                    crate::units::DurationSpec(t),
                    crate::units::DurationSpec(d)
                )))
            }
            (Some(t), _) => Some(t),
            (None, d) => d,
        };
        Ok(RunPlan {
            trigger: caps.trigger,
            env,
            mounts,
            bundled: c.files.iter().map(|f| f.guest.clone()).collect(),
            outbound_http: if req.deny_outbound {
                vec![]
            } else {
                c.outbound_http.clone()
            },
            memory,
            timeout,
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
        assert!(RunPlan::new(&c, &req(&[]))
            .unwrap_err()
            .0
            .contains("--env TOKEN=VALUE"));
        let p = RunPlan::new(&c, &req(&[("TOKEN", "x")])).unwrap();
        assert_eq!(p.env.len(), 2);
        assert!(RunPlan::new(&c, &req(&[("TOKEN", "x"), ("HOME", "/")])).is_err());
        assert!(RunPlan::new(&c, &req(&[("TOKEN", "x"), ("A", "2")]))
            .unwrap_err()
            .0
            .contains("cannot be overridden"));
    }

    #[test]
    fn mount_rules() {
        let c = caps("[capabilities]\nmounts = [{ guest = \"/data\" }, { guest = \"/out\", access = \"read-write\" }]\n");
        let req = |m: &str| OperatorRequest {
            mounts: vec![m.parse().unwrap()],
            ..Default::default()
        };
        assert!(RunPlan::new(&c, &req("./d:/etc"))
            .unwrap_err()
            .0
            .contains("declares no mount"));
        assert!(RunPlan::new(&c, &req("./d:/data:rw"))
            .unwrap_err()
            .0
            .contains("read-only"));
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
