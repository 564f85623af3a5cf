use super::*;

/// A scratch directory with `root/` inside and `outside/` beside it.
struct Scratch {
    base: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let base = tempfile::tempdir().unwrap();
        std::fs::create_dir(base.path().join("root")).unwrap();
        std::fs::create_dir(base.path().join("outside")).unwrap();
        std::fs::write(base.path().join("outside/secret"), "secret").unwrap();
        Scratch { base }
    }
    fn root(&self, r: Resolver) -> Root {
        Root::open_with(self.base.path().join("root"), r).unwrap()
    }
    fn host(&self, rel: &str) -> PathBuf {
        self.base.path().join(rel)
    }
}

fn both() -> Vec<Resolver> {
    let mut v = vec![Resolver::Walk];
    if Resolver::best() == Resolver::Kernel {
        v.push(Resolver::Kernel);
    }
    v
}

fn read_all(r: &Root, rel: &str) -> Result<String, Error> {
    r.read(rel, 1 << 20).map(|b| String::from_utf8(b).unwrap())
}

#[test]
fn links_resolve_inside_the_root_like_a_chroot() {
    for resolver in both() {
        let s = Scratch::new();
        let r = s.root(resolver);
        r.create_dir_all("etc").unwrap();
        r.write("etc/passwd", &mut "inside".as_bytes(), 100)
            .unwrap();
        // Absolute, `..`-heavy and chained links all land inside.
        r.symlink("abs", "/etc/passwd").unwrap();
        r.symlink("up", "../../../../etc/passwd").unwrap();
        r.create_dir_all("a/b").unwrap();
        r.symlink("a/b/c", "../..").unwrap();
        r.symlink("chain", "a/b/c/a/b/c/../etc").unwrap();
        for p in ["abs", "up", "a/b/c/etc/passwd", "chain/passwd"] {
            assert_eq!(read_all(&r, p).unwrap(), "inside", "{resolver:?} {p}");
        }
        // Control: the same path from the host's side leaves the root.
        std::os::unix::fs::symlink("../outside/secret", s.host("root/host-relative")).unwrap();
        assert_eq!(
            std::fs::read_to_string(s.host("root/host-relative")).unwrap(),
            "secret"
        );
        assert!(matches!(
            read_all(&r, "host-relative"),
            Err(Error::NotFound { .. })
        ));
    }
}

#[test]
fn a_link_chain_that_climbs_by_depth_stays_in() {
    // Each link looks "inside" when counted lexically; the kernel would climb three
    // levels through them from the host side.
    for resolver in both() {
        let s = Scratch::new();
        let r = s.root(resolver);
        r.create_dir_all("d1/d2").unwrap();
        r.symlink("d1/d2/l1", "..").unwrap();
        r.symlink("d1/l2", "d2/l1/..").unwrap();
        r.symlink("x", "d1/l2/../secret-dir").unwrap();
        r.create_dir_all("x").unwrap_err();
        assert!(!s.host("outside/secret-dir").exists());
        assert!(!s.host("secret-dir").exists());
    }
}

#[test]
fn writes_never_follow_what_is_there() {
    for resolver in both() {
        let s = Scratch::new();
        let r = s.root(resolver);
        std::os::unix::fs::symlink(s.host("outside/secret"), s.host("root/f")).unwrap();
        r.write("f", &mut "mine".as_bytes(), 100).unwrap();
        assert_eq!(
            std::fs::read_to_string(s.host("outside/secret")).unwrap(),
            "secret"
        );
        assert_eq!(r.kind("f").unwrap(), Some(Kind::File));
        // A directory in the way is replaced, contents and all, without following links in it.
        r.create_dir_all("d/e").unwrap();
        std::os::unix::fs::symlink(s.host("outside"), s.host("root/d/e/out")).unwrap();
        r.write("d", &mut "file".as_bytes(), 100).unwrap();
        assert!(s.host("outside/secret").exists());
        assert_eq!(read_all(&r, "d").unwrap(), "file");
        // A parent that is a host-absolute link resolves inside the root.
        std::os::unix::fs::symlink(s.host("outside"), s.host("root/p")).unwrap();
        assert!(r.write("p/new", &mut "x".as_bytes(), 100).is_err());
        assert!(!s.host("outside/new").exists());
        // Control: through std::fs the same write lands outside.
        std::fs::write(s.host("root/p/new"), "x").unwrap();
        assert!(s.host("outside/new").exists());
    }
}

#[test]
fn sizes_are_bounded_and_leave_nothing() {
    let s = Scratch::new();
    let r = s.root(Resolver::best());
    let err = r.write("big", &mut [0u8; 101].as_slice(), 100).unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit: 100, .. }), "{err}");
    assert_eq!(r.kind("big").unwrap(), None);
    assert_eq!(r.write("ok", &mut [0u8; 100].as_slice(), 100).unwrap(), 100);
    assert!(matches!(r.read("ok", 99), Err(Error::TooLarge { .. })));
    assert_eq!(r.read("ok", 100).unwrap().len(), 100);
}

#[test]
fn open_dir_gives_a_handle_that_stays_where_it_resolved() {
    for resolver in both() {
        let s = Scratch::new();
        let r = s.root(resolver);
        r.create_dir_all("assets/v2").unwrap();
        r.write("assets/v2/index.html", &mut "v2".as_bytes(), 100)
            .unwrap();
        r.symlink("static", "assets/v2").unwrap();
        let d = r.open_dir("/static").unwrap();
        assert_eq!(
            std::fs::read_to_string(d.handle_path().join("index.html")).unwrap(),
            "v2"
        );
        // A declared directory that is a host link, or a link out by any route: refused.
        std::os::unix::fs::symlink(s.host("outside"), s.host("root/host")).unwrap();
        assert!(r.open_dir("host").is_err());
        r.symlink("proc", "/proc/self").unwrap();
        assert!(r.open_dir("proc").is_err());
        assert!(matches!(
            r.open_dir("../outside"),
            Err(Error::Unsafe { .. })
        ));
        // A file is not a directory.
        assert!(matches!(
            r.open_dir("static/index.html"),
            Err(Error::NotADirectory { .. })
        ));
    }
}

#[test]
fn another_mount_is_not_entered() {
    // /proc is another mount than / ; a root at / must not reach it, even by a link.
    if !Path::new("/proc/self").exists() {
        return;
    }
    for resolver in both() {
        let r = Root::open_with("/", resolver).unwrap();
        let err = r.open_dir("/proc/self").unwrap_err();
        assert!(
            matches!(err, Error::CrossesMount { .. }),
            "{resolver:?}: {err}"
        );
    }
    // Control: without the rule it opens.
    assert!(std::fs::read_dir("/proc/self").is_ok());
}

#[test]
fn hard_links_whiteouts_and_opaque_directories() {
    for resolver in both() {
        let s = Scratch::new();
        let r = s.root(resolver);
        r.create_dir_all("a").unwrap();
        r.write("a/f", &mut "one".as_bytes(), 100).unwrap();
        r.hard_link("a/h", "a/f").unwrap();
        assert_eq!(read_all(&r, "a/h").unwrap(), "one");
        // A later write of one name does not change the other.
        r.write("a/f", &mut "two".as_bytes(), 100).unwrap();
        assert_eq!(read_all(&r, "a/h").unwrap(), "one");
        // A hard link to a link, a directory, or outside: refused.
        r.symlink("a/l", "/a/f").unwrap();
        assert!(matches!(
            r.hard_link("x", "a/l"),
            Err(Error::NotAFile { .. })
        ));
        assert!(matches!(r.hard_link("x", "a"), Err(Error::NotAFile { .. })));
        assert!(matches!(
            r.hard_link("x", "../outside/secret"),
            Err(Error::Unsafe { .. })
        ));
        std::os::unix::fs::symlink(s.host("outside"), s.host("root/out")).unwrap();
        assert!(r.hard_link("x", "out/secret").is_err());
        // Whiteouts remove without following; opaque empties.
        r.remove("out").unwrap();
        assert!(s.host("outside/secret").exists());
        r.remove("missing").unwrap();
        r.clear_dir("a").unwrap();
        assert_eq!(r.kind("a").unwrap(), Some(Kind::Dir));
        assert_eq!(r.kind("a/f").unwrap(), None);
        r.make_dir("a").unwrap();
        r.write("z", &mut "".as_bytes(), 1).unwrap();
        r.make_dir("z").unwrap();
        assert_eq!(r.kind("z").unwrap(), Some(Kind::Dir));
    }
}

#[test]
fn loops_end() {
    for resolver in both() {
        let s = Scratch::new();
        let r = s.root(resolver);
        r.symlink("a", "b").unwrap();
        r.symlink("b", "a").unwrap();
        assert!(
            matches!(read_all(&r, "a"), Err(Error::TooManyLinks { .. })),
            "{resolver:?}"
        );
    }
}

#[test]
fn a_link_to_a_file_with_a_trailing_dot_or_slash_is_not_the_file() {
    // The kernel requires a directory before `/.` and `/`; so must the walk (found by
    // the `extract` fuzz target: the two resolvers disagreed).
    for resolver in both() {
        let s = Scratch::new();
        let r = s.root(resolver);
        r.write("f", &mut "x".as_bytes(), 10).unwrap();
        r.symlink("dot", "f/.").unwrap();
        r.symlink("slash", "f/").unwrap();
        r.symlink("plain", "f").unwrap();
        for p in ["dot", "slash"] {
            assert!(r.open_file(p).is_err(), "{resolver:?} {p}");
        }
        assert!(r.open_file("plain").is_ok(), "{resolver:?}");
        r.create_dir_all("d").unwrap();
        r.symlink("ddot", "d/.").unwrap();
        assert!(r.open_dir("ddot").is_ok(), "{resolver:?}");
    }
}
