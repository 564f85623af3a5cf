//! # wpkg-fsroot
//!
//! The one door between content wpkg did not write and the host file system. A path
//! that content from outside chose — an image layer's entries, an archive, the bundled
//! files layer, a directory a manifest declares, a file in a container's rootfs — is
//! only ever resolved *inside* a root directory handle ([`Root`]), never by
//! `Path::join` + `std::fs`:
//!
//! - **Resolution is the kernel's**: `openat2(2)` with `RESOLVE_IN_ROOT` (links resolve
//!   as if the root were `/`, `..` stops at it, as in a chroot), `RESOLVE_NO_MAGICLINKS`
//!   (no `/proc/self/...` jumps) and `RESOLVE_NO_XDEV` (no crossing into another mount:
//!   `/proc`, a volume, a service-account token). Where `openat2` is missing (Linux
//!   before 5.6, other systems) the same rules are walked one component at a time with
//!   `O_NOFOLLOW` ([`Resolver::Walk`]): every link is read and expanded against the
//!   root by this module, never followed by the kernel, and `..` is a pop of the
//!   handles already open, never a lookup.
//! - **Writes never follow what is there**: the final name is removed without
//!   following it (a directory with its contents, a link as a link) and created
//!   exclusively (`O_CREAT | O_EXCL | O_NOFOLLOW`, `mkdirat`, `symlinkat`, `linkat`).
//! - **Sizes are bounded** where bytes are read or written ([`Root::read`],
//!   [`Root::write`]).
//!
//! What this module must not do: decide *what* may be written (the callers' formats
//! do), or open a path it was given as a plain string from outside with `std::fs`.
//! The crates that handle outside content (store, runner, pipeline, shim) ban
//! `std::fs` path functions in that code with clippy's `disallowed-methods` (see
//! `clippy.toml` and docs/architecture.md).
#![deny(missing_docs)]

mod remove;
mod resolve;

use std::ffi::OsStr;
use std::io::{Read, Write};

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};

use remove::{children, remove_at};
use resolve::dir_handle_flags;
use rustix::io::Errno;

/// Errors, each naming the path inside the root (`/`-separated, from the root).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The path has `..` or is otherwise not a plain path inside the root.
    #[error("`{path}` is not a plain path inside its root (no `..`)")]
    Unsafe {
        /// The path as given.
        path: String,
    },
    /// Nothing is there.
    #[error("`{path}` does not exist")]
    NotFound {
        /// The path.
        path: String,
    },
    /// A directory was needed.
    #[error("`{path}` is not a directory")]
    NotADirectory {
        /// The path.
        path: String,
    },
    /// A regular file was needed.
    #[error("`{path}` is not a regular file")]
    NotAFile {
        /// The path.
        path: String,
    },
    /// Resolving it would cross into another mount (a volume, `/proc`, a device).
    #[error("`{path}` leads onto another mount than its root's")]
    CrossesMount {
        /// The path.
        path: String,
    },
    /// Resolving it would expand more than 40 links (or a link loops).
    #[error("`{path}` has too many levels of links")]
    TooManyLinks {
        /// The path.
        path: String,
    },
    /// More bytes than allowed.
    #[error("`{path}` is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The path.
        path: String,
        /// The limit.
        limit: u64,
    },
    /// Reading the data to write failed (the source, not the file system).
    #[error("cannot read the data for `{path}`")]
    Read {
        /// The path being written.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Any other failure of the system call.
    #[error("`{path}`")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    fn from_errno(path: &str, e: Errno) -> Error {
        let path = path.to_owned();
        match e {
            Errno::NOENT => Error::NotFound { path },
            Errno::NOTDIR => Error::NotADirectory { path },
            Errno::XDEV => Error::CrossesMount { path },
            Errno::LOOP => Error::TooManyLinks { path },
            e => Error::Io {
                path,
                source: e.into(),
            },
        }
    }

    fn io(path: &str, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// How paths are resolved under a [`Root`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolver {
    /// `openat2(2)` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV`.
    Kernel,
    /// One component at a time with `O_NOFOLLOW`, links expanded against the root here.
    Walk,
}

impl Resolver {
    /// The best this system has: the kernel's when `openat2` works, else the walk.
    pub fn best() -> Resolver {
        #[cfg(target_os = "linux")]
        {
            static KERNEL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
            let works = *KERNEL.get_or_init(|| {
                rustix::fs::openat2(
                    rustix::fs::CWD,
                    "/",
                    OFlags::PATH | OFlags::CLOEXEC,
                    Mode::empty(),
                    rustix::fs::ResolveFlags::empty(),
                )
                .is_ok()
            });
            if works {
                return Resolver::Kernel;
            }
        }
        Resolver::Walk
    }
}

/// What is at a path, without following it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Link,
    /// A device, socket or FIFO.
    Other,
}

/// A directory handle under which every path resolves; see the crate documentation.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    display: PathBuf,
    resolver: Resolver,
}

/// Most names in one path (deeper trees are refused, so that nothing built here needs
/// more than a bounded number of open handles to walk or remove).
const MAX_NAMES: usize = 256;

/// The plain names of `rel` (a leading `/` and `.` dropped); `..` and paths of more than
/// [`MAX_NAMES`] names are refused.
fn names(rel: &Path) -> Result<Vec<&OsStr>, Error> {
    let mut out = Vec::new();
    for c in rel.components() {
        if out.len() >= MAX_NAMES {
            return Err(Error::Unsafe {
                path: rel.display().to_string(),
            });
        }
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::Unsafe {
                    path: rel.display().to_string(),
                })
            }
        }
    }
    Ok(out)
}

/// `/a/b` for messages.
fn shown(names: &[&OsStr]) -> String {
    let mut s = String::new();
    for n in names {
        s.push('/');
        s.push_str(&n.to_string_lossy());
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

fn kind_of(st: &rustix::fs::Stat) -> Kind {
    match rustix::fs::FileType::from_raw_mode(st.st_mode) {
        rustix::fs::FileType::RegularFile => Kind::File,
        rustix::fs::FileType::Directory => Kind::Dir,
        rustix::fs::FileType::Symlink => Kind::Link,
        _ => Kind::Other,
    }
}

impl Root {
    /// Opens the directory at `path` as a root. `path` itself is trusted: wpkg chose it
    /// (a directory it made, `/` in a container); everything below it is not.
    pub fn open(path: impl AsRef<Path>) -> Result<Root, Error> {
        Root::open_with(path, Resolver::best())
    }

    /// [`Root::open`] with a chosen resolver (tests use both).
    pub fn open_with(path: impl AsRef<Path>, resolver: Resolver) -> Result<Root, Error> {
        let path = path.as_ref();
        let fd = rustix::fs::open(path, dir_handle_flags() | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| Error::from_errno(&path.display().to_string(), e))?;
        Ok(Root {
            fd,
            display: path.to_owned(),
            resolver,
        })
    }

    /// The path this root was opened at (for messages; resolution never uses it).
    pub fn path(&self) -> &Path {
        &self.display
    }

    /// How this root resolves paths.
    pub fn resolver(&self) -> Resolver {
        self.resolver
    }

    /// A path that opens exactly this directory (`/proc/self/fd/N`), for APIs that take
    /// a path; valid while `self` lives.
    pub fn handle_path(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        #[cfg(target_os = "linux")]
        let base = "/proc/self/fd";
        #[cfg(not(target_os = "linux"))]
        let base = "/dev/fd";
        PathBuf::from(format!("{base}/{}", self.fd.as_raw_fd()))
    }

    /// The directory that holds `rel`'s last name, and that name.
    fn parent<'p>(&self, rel: &'p Path) -> Result<(OwnedFd, &'p OsStr, Vec<&'p OsStr>), Error> {
        let names = names(rel)?;
        let Some((last, parents)) = names.split_last() else {
            return Err(Error::Unsafe {
                path: rel.display().to_string(),
            });
        };
        let dir = self.resolve(parents, dir_handle_flags())?;
        Ok((dir, last, names.clone()))
    }

    /// Opens the directory at `rel` (links followed inside the root) as a root of its own.
    pub fn open_dir(&self, rel: impl AsRef<Path>) -> Result<Root, Error> {
        let names = names(rel.as_ref())?;
        let fd = self.resolve(&names, dir_handle_flags())?;
        Ok(Root {
            fd,
            display: self
                .display
                .join(rel.as_ref().strip_prefix("/").unwrap_or(rel.as_ref())),
            resolver: self.resolver,
        })
    }

    /// Opens the regular file at `rel` (links followed inside the root) for reading.
    pub fn open_file(&self, rel: impl AsRef<Path>) -> Result<std::fs::File, Error> {
        let names = names(rel.as_ref())?;
        // Non-blocking and no controlling terminal: a FIFO or a device at the name must
        // not hang or grab anything before the type check below refuses it.
        let fd = self.resolve(&names, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY)?;
        let st = rustix::fs::fstat(&fd).map_err(|e| Error::from_errno(&shown(&names), e))?;
        if kind_of(&st) != Kind::File {
            return Err(Error::NotAFile {
                path: shown(&names),
            });
        }
        Ok(std::fs::File::from(fd))
    }

    /// Reads the regular file at `rel`, refusing one larger than `limit` bytes.
    pub fn read(&self, rel: impl AsRef<Path>, limit: u64) -> Result<Vec<u8>, Error> {
        let file = self.open_file(rel.as_ref())?;
        let path = shown(&names(rel.as_ref())?);
        let mut out = Vec::new();
        file.take(limit.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| Error::io(&path, e))?;
        if out.len() as u64 > limit {
            return Err(Error::TooLarge { path, limit });
        }
        Ok(out)
    }

    /// What is at `rel`, its last name not followed; `None` when nothing is.
    pub fn kind(&self, rel: impl AsRef<Path>) -> Result<Option<Kind>, Error> {
        let rel = rel.as_ref();
        if names(rel)?.is_empty() {
            return Ok(Some(Kind::Dir));
        }
        let (dir, last, names) = match self.parent(rel) {
            Ok(p) => p,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        match rustix::fs::statat(&dir, last, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(kind_of(&st))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(Error::from_errno(&shown(&names), e)),
        }
    }

    /// Makes the directory `rel` and its missing parents. Existing links on the way
    /// are followed inside the root; something other than a directory is an error.
    pub fn create_dir_all(&self, rel: impl AsRef<Path>) -> Result<(), Error> {
        let names = names(rel.as_ref())?;
        // Usually it is there already: one resolution.
        match self.resolve(&names, dir_handle_flags()) {
            Err(Error::NotFound { .. }) => {}
            r => return r.map(drop),
        }
        for i in 0..names.len() {
            let dir = self.resolve(&names[..i], dir_handle_flags())?;
            match rustix::fs::mkdirat(&dir, names[i], Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(Error::from_errno(&shown(&names[..=i]), e)),
            }
        }
        self.resolve(&names, dir_handle_flags()).map(drop)
    }

    /// Makes `rel` a directory: an existing directory is kept; anything else there (a
    /// file, a link) is removed first.
    pub fn make_dir(&self, rel: impl AsRef<Path>) -> Result<(), Error> {
        let (dir, last, names) = self.parent(rel.as_ref())?;
        match rustix::fs::statat(&dir, last, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if kind_of(&st) == Kind::Dir => return Ok(()),
            Ok(_) => remove_at(&dir, last, &shown(&names))?,
            Err(Errno::NOENT) => {}
            Err(e) => return Err(Error::from_errno(&shown(&names), e)),
        }
        rustix::fs::mkdirat(&dir, last, Mode::from_raw_mode(0o755))
            .map_err(|e| Error::from_errno(&shown(&names), e))
    }

    /// Writes a new regular file at `rel` from `data`: whatever was there is removed
    /// (never written through), the file is created exclusively. More than `limit`
    /// bytes is an error and leaves no file. Returns the bytes written.
    pub fn write(
        &self,
        rel: impl AsRef<Path>,
        data: &mut dyn Read,
        limit: u64,
    ) -> Result<u64, Error> {
        let (dir, last, names) = self.parent(rel.as_ref())?;
        let path = shown(&names);
        remove_at(&dir, last, &path)?;
        let fd = rustix::fs::openat(
            &dir,
            last,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| Error::from_errno(&path, e))?;
        let mut file = std::fs::File::from(fd);
        let fail = |e: Error| {
            let _ = rustix::fs::unlinkat(&dir, last, AtFlags::empty());
            Err(e)
        };
        let mut buf = vec![0u8; 64 << 10];
        let mut written = 0u64;
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return fail(Error::Read { path, source }),
            };
            written += n as u64;
            if written > limit {
                return fail(Error::TooLarge { path, limit });
            }
            if let Err(e) = file.write_all(&buf[..n]) {
                return fail(Error::io(&path, e));
            }
        }
        Ok(written)
    }

    /// Makes `rel` a symbolic link to `target` (whatever was there is removed). The
    /// target is stored as given: every later resolution under a [`Root`] keeps it inside.
    pub fn symlink(&self, rel: impl AsRef<Path>, target: impl AsRef<Path>) -> Result<(), Error> {
        let (dir, last, names) = self.parent(rel.as_ref())?;
        let path = shown(&names);
        if target.as_ref().as_os_str().is_empty() {
            return Err(Error::NotFound { path });
        }
        remove_at(&dir, last, &path)?;
        rustix::fs::symlinkat(target.as_ref(), &dir, last).map_err(|e| Error::from_errno(&path, e))
    }

    /// Makes `rel` another name of the regular file at `existing` (both inside the
    /// root, neither last name followed); whatever was at `rel` is removed.
    pub fn hard_link(
        &self,
        rel: impl AsRef<Path>,
        existing: impl AsRef<Path>,
    ) -> Result<(), Error> {
        if names(rel.as_ref())? == names(existing.as_ref())? {
            return Ok(());
        }
        let (src_dir, src_last, src_names) = self.parent(existing.as_ref())?;
        let src = shown(&src_names);
        match rustix::fs::statat(&src_dir, src_last, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if kind_of(&st) == Kind::File => {}
            Ok(_) => return Err(Error::NotAFile { path: src }),
            Err(e) => return Err(Error::from_errno(&src, e)),
        }
        let (dir, last, names) = self.parent(rel.as_ref())?;
        let path = shown(&names);
        remove_at(&dir, last, &path)?;
        rustix::fs::linkat(&src_dir, src_last, &dir, last, AtFlags::empty())
            .map_err(|e| Error::from_errno(&path, e))
    }

    /// Removes whatever is at `rel` (a directory with its contents; a link, not what it
    /// points at). Nothing there is not an error.
    pub fn remove(&self, rel: impl AsRef<Path>) -> Result<(), Error> {
        let (dir, last, names) = match self.parent(rel.as_ref()) {
            Ok(p) => p,
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        remove_at(&dir, last, &shown(&names))
    }

    /// Empties the directory at `rel` (links followed inside the root); nothing there
    /// is not an error.
    pub fn clear_dir(&self, rel: impl AsRef<Path>) -> Result<(), Error> {
        let names = names(rel.as_ref())?;
        let path = shown(&names);
        let dir = match self.resolve(&names, OFlags::RDONLY | OFlags::DIRECTORY) {
            Ok(d) => d,
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        for child in children(&dir, &path)? {
            remove_at(&dir, &child, &path)?;
        }
        Ok(())
    }
}

impl AsFd for Root {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests;
