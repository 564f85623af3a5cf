//! Resolving a path under a [`Root`]: the kernel's `openat2`, or the walk.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::{shown, Error, Resolver, Root};

/// Most symbolic links one resolution expands (as the kernel's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// Flags of a handle that only resolves further (no reading).
pub(crate) fn dir_handle_flags() -> OFlags {
    #[cfg(target_os = "linux")]
    {
        OFlags::PATH | OFlags::DIRECTORY
    }
    #[cfg(not(target_os = "linux"))]
    {
        OFlags::RDONLY | OFlags::DIRECTORY
    }
}

/// `flags` with `O_PATH` (where the system has it) turned into a plain read-only open.
fn without_path(flags: OFlags) -> OFlags {
    #[cfg(target_os = "linux")]
    {
        flags - OFlags::PATH
    }
    #[cfg(not(target_os = "linux"))]
    {
        flags
    }
}

impl Root {
    /// Resolves `names` inside the root and opens the result with `flags` (the final
    /// component is followed when it is a link, inside the root).
    pub(crate) fn resolve(&self, names: &[&OsStr], flags: OFlags) -> Result<OwnedFd, Error> {
        let flags = flags | OFlags::CLOEXEC;
        match self.resolver {
            #[cfg(target_os = "linux")]
            Resolver::Kernel => {
                use rustix::fs::ResolveFlags;
                let mut rel = PathBuf::new();
                for n in names {
                    rel.push(n);
                }
                if rel.as_os_str().is_empty() {
                    rel.push(".");
                }
                let how =
                    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV;
                let mut tries = 0;
                loop {
                    match rustix::fs::openat2(&self.fd, &rel, flags, Mode::empty(), how) {
                        // A rename raced with `..`: the kernel asks to try again.
                        Err(Errno::AGAIN) if tries < 16 => tries += 1,
                        r => return r.map_err(|e| Error::from_errno(&shown(names), e)),
                    }
                }
            }
            _ => self.walk(names, flags),
        }
    }

    /// [`Resolver::Walk`]: one component at a time, nothing followed by the kernel.
    fn walk(&self, names: &[&OsStr], flags: OFlags) -> Result<OwnedFd, Error> {
        let err = |e: Errno| Error::from_errno(&shown(names), e);
        let root_dev = rustix::fs::fstat(&self.fd).map_err(err)?.st_dev;
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut queue: VecDeque<OsString> = names.iter().map(|n| n.to_os_string()).collect();
        let mut links = 0;
        while let Some(name) = queue.pop_front() {
            if name.is_empty() || name == "." {
                continue;
            }
            if name == ".." {
                stack.pop();
                continue;
            }
            // A `.` still to come (a link's `dir/.` or `dir/`) makes this name a
            // directory that must be entered, as the kernel requires: not the last.
            let last = queue.is_empty();
            let cur: BorrowedFd<'_> = stack.last().map_or(self.fd.as_fd(), |f| f.as_fd());
            // O_PATH | O_NOFOLLOW would open a link itself: the walk reads links.
            let step = if last {
                without_path(flags)
            } else {
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
            } | OFlags::NOFOLLOW;
            match rustix::fs::openat(cur, &name, step, Mode::empty()) {
                Ok(fd) => {
                    if rustix::fs::fstat(&fd).map_err(err)?.st_dev != root_dev {
                        return Err(err(Errno::XDEV));
                    }
                    if last {
                        return Ok(fd);
                    }
                    stack.push(fd);
                }
                Err(e @ (Errno::LOOP | Errno::NOTDIR | Errno::MLINK)) => {
                    let target = match rustix::fs::readlinkat(cur, &name, Vec::new()) {
                        Ok(t) => t,
                        Err(_) => return Err(err(e)),
                    };
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(err(Errno::LOOP));
                    }
                    // Split by hand, not by `Path::components`, which drops a trailing
                    // `/.` or `/` that makes the kernel require a directory there.
                    use std::os::unix::ffi::OsStrExt;
                    let target = target.as_bytes();
                    let (absolute, rest) = match target.strip_prefix(b"/") {
                        Some(rest) => (true, rest),
                        None => (false, target),
                    };
                    if absolute {
                        stack.clear();
                    }
                    for part in rest.split(|b| *b == b'/').rev() {
                        let part = if part.is_empty() { b"." as &[u8] } else { part };
                        queue.push_front(OsStr::from_bytes(part).to_os_string());
                    }
                }
                Err(e) => return Err(err(e)),
            }
        }
        // Everything resolved to a directory already open (the root, `..`, a link to one).
        let cur: BorrowedFd<'_> = stack.last().map_or(self.fd.as_fd(), |f| f.as_fd());
        rustix::fs::openat(cur, ".", without_path(flags), Mode::empty()).map_err(err)
    }
}
