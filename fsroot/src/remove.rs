//! Removing under a [`crate::Root`] without following anything.

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::{kind_of, Error, Kind};

/// The names in the open directory `dir` (without `.` and `..`).
pub(crate) fn children(dir: &OwnedFd, path: &str) -> Result<Vec<OsString>, Error> {
    let mut out = Vec::new();
    let mut rd = rustix::fs::Dir::read_from(dir).map_err(|e| Error::from_errno(path, e))?;
    while let Some(entry) = rd.read() {
        let entry = entry.map_err(|e| Error::from_errno(path, e))?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        use std::os::unix::ffi::OsStrExt;
        out.push(OsStr::from_bytes(name).to_os_string());
    }
    Ok(out)
}

/// Removes `name` in `dir` without following it; a directory with its contents (never
/// descending onto another mount). Nothing there is not an error.
pub(crate) fn remove_at(dir: &OwnedFd, name: &OsStr, path: &str) -> Result<(), Error> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(Error::from_errno(path, e)),
    };
    if kind_of(&st) != Kind::Dir {
        return match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::from_errno(path, e)),
        };
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::from_errno(path, e))?;
    let parent_dev = rustix::fs::fstat(dir)
        .map_err(|e| Error::from_errno(path, e))?
        .st_dev;
    if rustix::fs::fstat(&sub)
        .map_err(|e| Error::from_errno(path, e))?
        .st_dev
        != parent_dev
    {
        return Err(Error::CrossesMount {
            path: path.to_owned(),
        });
    }
    for child in children(&sub, path)? {
        remove_at(&sub, &child, path)?;
    }
    drop(sub);
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(|e| Error::from_errno(path, e))
}
