//! What the kernel says about the container the shim runs in, as pure functions over
//! the text of its files: the mount table (`/proc/self/mountinfo`), the capability
//! sets (`/proc/self/status`) and the cgroup memory limit. The shim reads the files;
//! the rules over what they say are in [`crate::grant`].

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
pub fn within(a: &str, b: &str) -> bool {
    a == b || (a.starts_with(b) && (b.ends_with('/') || a[b.len()..].starts_with('/')))
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A container's mount table: the root, /proc, two volumes at declared paths,
    /// one elsewhere, one with a space.
    pub(crate) const MOUNTINFO: &str = "\
22 1 0:21 / / rw,relatime - overlay overlay rw
23 22 0:22 / /proc rw,nosuid - proc proc rw
30 22 8:1 /vol/data /data ro,relatime - ext4 /dev/sda1 rw
31 22 8:1 /vol/out /out rw,relatime - ext4 /dev/sda1 rw
32 22 8:1 /vol/x /undeclared rw,relatime - ext4 /dev/sda1 rw
33 22 8:1 /vol/s /with\\040space rw - ext4 /dev/sda1 rw
";

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
}
