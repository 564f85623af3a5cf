//! What the node, not the pod's author, puts in every container: the variables the
//! runtime and Kubernetes set and the mounts the runtime and the kubelet make. These
//! are neither given to the guest nor held against the pod ([`crate::grant`]).

use crate::kernel::within;

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
pub const NODE_TREES: [&str; 5] = ["/proc", "/sys", "/dev", "/run", "/var/run/secrets"];

/// The kubelet's single-file mounts.
pub const NODE_FILES: [&str; 3] = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];

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
