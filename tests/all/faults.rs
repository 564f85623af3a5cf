//! Faults: wpkg killed with SIGKILL in the middle of a pull, push, build or load leaves
//! a store that works, with no half-visible image, and the same command succeeds when
//! run again; a full disk, parallel pulls, `rm` racing `run`, a registry answering
//! 503 before it recovers, and one trickling bytes until the request times out.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use wpkg_tests::registry::{Fault, Proxy, Registry, Setup};
use wpkg_tests::{command_manifest, guest, Env, Run};

/// A project `name` bundling `bytes` of incompressible noise (an LCG's high bits, so
/// the gzip layer stays that size): a blob worth interrupting. `seed` varies the bytes.
fn big_project(env: &Env, name: &str, bytes: usize, seed: u64) -> PathBuf {
    let wasm = guest("example-hello", "wasm32-wasip2");
    let dir = env.project(
        name,
        &wasm,
        &command_manifest(
            name,
            "[capabilities]\nfiles = [{ source = \"static\", guest = \"/static\" }]\n",
        ),
    );
    std::fs::create_dir_all(dir.join("static")).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ seed;
    let noise: Vec<u8> = (0..bytes)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        })
        .collect();
    std::fs::write(dir.join("static/noise.bin"), noise).unwrap();
    dir
}

/// Builds [`big_project`] `name` as `name:1` and pushes it to `REGISTRY/f/name:1`.
fn publish(publisher: &Env, reg: &Registry, name: &str, bytes: usize, seed: u64) {
    let dir = big_project(publisher, name, bytes, seed);
    publisher.build(&dir, &format!("{name}:1"));
    publisher
        .wpkg(&[
            "push",
            "-q",
            &format!("{name}:1"),
            &format!("{}/f/{name}:1", reg.host),
        ])
        .ok();
}

/// Starts `wpkg ARGS` and kills it with SIGKILL after `after`; whether it had finished.
fn kill_after(env: &Env, args: &[&str], after: Duration) -> bool {
    let mut child = env
        .cmd(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let finished = child.try_wait().unwrap().is_some();
    let _ = child.kill(); // SIGKILL
    child.wait().unwrap();
    finished
}

/// Asserts a clean failure: an exit code, not 0 (and not a signal or a panic's 101).
#[track_caller]
fn fails(r: Run) -> Run {
    assert!(
        matches!(r.code, Some(c) if c != 0 && c != 101),
        "expected a clean failure:\n{r:#?}"
    );
    assert!(!r.stderr.contains("panicked"), "{r:#?}");
    r
}

/// The store answers, and `name` is either absent or complete (it runs).
#[track_caller]
fn consistent(env: &Env, name: &str) {
    let images = env.wpkg(&["images"]).ok();
    if images.stdout.contains(name) {
        env.wpkg(&["run", "--insecure-skip-verify", "--pull", "never", name])
            .ok()
            .stdout_has("Hello, world!");
    }
}

#[test]
fn kill_9_during_a_pull_leaves_a_consistent_store_and_a_retry_succeeds() {
    let reg = Registry::start(Setup::Plain);
    let publisher = Env::new();
    // A 2 MB bundled file makes a blob worth interrupting.
    let dir = big_project(&publisher, "big", 2_000_000, 0);
    publisher.build(&dir, "big:1");
    let slow = Proxy::start(
        &reg.host,
        Fault::Trickle {
            bytes_per_sec: 1_000_000,
        },
    );
    publisher
        .wpkg(&["push", "-q", "big:1", &format!("{}/f/big:1", reg.host)])
        .ok();
    let remote = format!("{}/f/big:1", slow.host);

    let env = Env::new();
    let mut child = env
        .cmd(&["pull", "-q", &remote])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed while the 2 MB blob trickles in (it takes about two seconds).
    std::thread::sleep(std::time::Duration::from_millis(800));
    if let Some(status) = child.try_wait().unwrap() {
        let blobs: Vec<u64> = std::fs::read_dir(env.home().join("store/blobs/sha256"))
            .map(|d| d.map(|e| e.unwrap().metadata().unwrap().len()).collect())
            .unwrap_or_default();
        panic!("the pull ended too soon to be killed ({status}); blobs: {blobs:?}");
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // The store works and shows nothing half-pulled.
    let images = env.wpkg(&["images"]).ok();
    assert!(!images.stdout.contains("f/big"), "{images:#?}");
    env.wpkg(&["run", "--pull", "never", &remote])
        .code(125)
        .stderr_has("no image");
    // Running the pull again completes it; the image runs.
    env.wpkg(&["pull", "-q", &remote]).ok();
    env.wpkg(&["run", "--insecure-skip-verify", "--pull", "never", &remote])
        .ok()
        .stdout_has("Hello, world!");
}

#[test]
fn kill_9_during_build_load_and_push_leaves_a_consistent_store() {
    let env = Env::new();
    let dir = big_project(&env, "big", 24_000_000, 1);
    let d = dir.to_str().unwrap();
    // Killed at several points of a build (reading, compressing, storing, tagging).
    let mut interrupted = 0;
    for ms in [30, 120, 300, 700, 1500] {
        interrupted += !kill_after(
            &env,
            &["build", "-q", "--no-build-command", d, "-t", "big:1"],
            Duration::from_millis(ms),
        ) as u32;
        consistent(&env, "big:1");
    }
    assert!(
        interrupted >= 3,
        "only {interrupted} builds were interrupted"
    );
    env.wpkg(&["build", "-q", "--no-build-command", d, "-t", "big:1"])
        .ok();
    consistent(&env, "big:1");
    env.wpkg(&["images"]).ok().stdout_has("big");

    // `load` of the saved image into another store, killed part way.
    let archive = env.path("big.tar");
    env.wpkg(&["save", "big:1", "-o", archive.to_str().unwrap()])
        .ok();
    let other = Env::new();
    let a = archive.to_str().unwrap();
    let mut interrupted = 0;
    for ms in [20, 80, 200, 500] {
        interrupted += !kill_after(&other, &["load", "-i", a], Duration::from_millis(ms)) as u32;
        consistent(&other, "big:1");
    }
    assert!(
        interrupted >= 2,
        "only {interrupted} loads were interrupted"
    );
    other.wpkg(&["load", "-i", a]).ok();
    consistent(&other, "big:1");
    other.wpkg(&["images"]).ok().stdout_has("big");

    // `push` through a proxy that trickles (24 MB at 1 MB/s), killed part way: the
    // local store is untouched, the registry shows no tag, a retry works.
    let reg = Registry::start(Setup::Plain);
    let slow = Proxy::start(
        &reg.host,
        Fault::Trickle {
            bytes_per_sec: 1_000_000,
        },
    );
    let remote = format!("{}/f/big:1", slow.host);
    assert!(
        !kill_after(
            &env,
            &["push", "-q", "big:1", &remote],
            Duration::from_millis(1500)
        ),
        "the push finished before its kill"
    );
    consistent(&env, "big:1");
    let fresh = Env::new();
    fails(fresh.wpkg(&["pull", "-q", &format!("{}/f/big:1", reg.host)]));
    env.wpkg(&["push", "-q", "big:1", &format!("{}/f/big:1", reg.host)])
        .ok();
    fresh
        .wpkg(&["pull", "-q", &format!("{}/f/big:1", reg.host)])
        .ok();
    consistent(&fresh, &format!("{}/f/big:1", reg.host));
}

/// A tmpfs of `size` mounted over `dir` (root only), unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        wpkg_tests::require_root("the disk-full test mounts a tmpfs");
        std::fs::create_dir_all(dir).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "mount -t tmpfs failed");
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Every file under `dir`, relative.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_full_disk_during_a_pull_is_a_clear_error_and_nothing_is_half_stored() {
    let reg = Registry::start(Setup::Plain);
    let publisher = Env::new();
    let small = big_project(&publisher, "small", 10_000, 2);
    publisher.build(&small, "small:1");
    let big = big_project(&publisher, "big", 3_000_000, 3);
    publisher.build(&big, "big:1");
    for t in ["small:1", "big:1"] {
        publisher
            .wpkg(&["push", "-q", t, &format!("{}/f/{t}", reg.host)])
            .ok();
    }
    let env = Env::new();
    let _disk = Tmpfs::mount(&env.home(), "2m");
    // Control: the small image fits.
    env.wpkg(&["pull", "-q", &format!("{}/f/small:1", reg.host)])
        .ok();
    let before = files(&env.home().join("store"));
    let r = fails(env.wpkg(&["pull", "-q", &format!("{}/f/big:1", reg.host)]))
        .stderr_has("No space left on device")
        .stderr_has("hint: the disk holding wpkg's store is full");
    assert_eq!(r.stderr.matches("error:").count(), 1, "{r:#?}");
    // Nothing of the big image is visible, and nothing half-written stayed: what the
    // store holds beyond what it held before are whole blobs (their digest is their
    // name), unreferenced until the next `rm` collects them.
    let after = files(&env.home().join("store"));
    for f in after.iter().filter(|f| !before.contains(f)) {
        let hex = f
            .strip_prefix("blobs/sha256/")
            .unwrap_or_else(|| panic!("left behind: {f}"));
        let bytes = std::fs::read(env.home().join("store").join(f)).unwrap();
        use sha2::Digest as _;
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&bytes)),
            hex,
            "a partial blob: {f}"
        );
    }
    assert!(before.iter().all(|f| after.contains(f)));
    consistent(&env, &format!("{}/f/small:1", reg.host));
}

#[test]
fn parallel_pulls_into_one_store() {
    let reg = Registry::start(Setup::Plain);
    let publisher = Env::new();
    let mut remotes = Vec::new();
    for i in 0..4u64 {
        let dir = big_project(&publisher, &format!("p{i}"), 300_000, 10 + i);
        let tag = format!("p{i}:1");
        publisher.build(&dir, &tag);
        let remote = format!("{}/f/p{i}:1", reg.host);
        publisher.wpkg(&["push", "-q", &tag, &remote]).ok();
        remotes.push(remote);
    }
    let env = Env::new();
    // 8 at once: four of the same image and one of each of the four.
    let mut all: Vec<&String> = vec![&remotes[0]; 4];
    all.extend(remotes.iter());
    let children: Vec<_> = all
        .iter()
        .map(|r| {
            env.cmd(&["pull", "-q", r])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a parallel pull failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let images = env.wpkg(&["images"]).ok();
    for r in &remotes {
        assert!(images.stdout.contains(&r.replace(":1", "")), "{images:#?}");
        consistent(&env, r);
    }
}

#[test]
fn rm_racing_run_is_either_a_run_or_a_clear_miss() {
    let env = Env::new();
    let dir = big_project(&env, "race", 1_000, 4);
    let (mut ran, mut missed) = (0, 0);
    for _ in 0..6 {
        env.build(&dir, "race:1");
        let run = env
            .cmd(&["run", "race:1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        env.wpkg(&["rm", "race:1"]).ok();
        let out = run.wait_with_output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        match out.status.code() {
            Some(0) => {
                assert!(stdout.contains("Hello, world!"), "{stdout}{stderr}");
                ran += 1;
            }
            Some(125) => {
                assert!(stderr.contains("no image"), "not a clear miss: {stderr}");
                missed += 1;
            }
            other => panic!("rm racing run: exit {other:?}\n{stdout}{stderr}"),
        }
        env.wpkg(&["images"]).ok();
    }
    eprintln!("rm racing run: {ran} ran, {missed} missed");
}

#[test]
fn a_registry_answering_503_is_retried_until_it_recovers() {
    let reg = Registry::start(Setup::Plain);
    let publisher = Env::new();
    publish(&publisher, &reg, "flaky", 1_000, 5);
    // Three 503s, then the registry is back: the pull succeeds.
    let recovering = Proxy::start(&reg.host, Fault::ServerErrors { count: 3 });
    let env = Env::new();
    let remote = format!("{}/f/flaky:1", recovering.host);
    env.wpkg(&["pull", "-q", &remote]).ok();
    assert_eq!(
        recovering.cuts.load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    consistent(&env, &remote);
    // Control: a registry that stays down is a clear error naming it and its answer,
    // and stores nothing.
    let down = Proxy::start(&reg.host, Fault::ServerErrors { count: usize::MAX });
    let other = Env::new();
    fails(other.wpkg(&["pull", "-q", &format!("{}/f/flaky:1", down.host)]))
        .stderr_has(&down.host)
        .stderr_has("503");
    assert!(!other.wpkg(&["images"]).ok().stdout.contains("flaky"));
}

#[test]
fn a_registry_trickling_bytes_is_a_timeout_with_a_clear_message() {
    let reg = Registry::start(Setup::Plain);
    let publisher = Env::new();
    // 100 kB: at 10 kB/s its transfer takes 10 s; with 1 s per request it is allowed
    // 1 s + 100 kB at 50 kB/s = 3 s.
    publish(&publisher, &reg, "slow", 100_000, 6);
    let slow = Proxy::start(
        &reg.host,
        Fault::Trickle {
            bytes_per_sec: 10_000,
        },
    );
    let remote = format!("{}/f/slow:1", slow.host);
    let env = Env::new();
    let started = std::time::Instant::now();
    fails(env.wpkg(&["pull", "-q", "--registry-timeout", "1", &remote]))
        .stderr_has(&format!("registry {} is too slow", slow.host))
        .stderr_has("/blobs/sha256:")
        .stderr_has("WPKG_REGISTRY_TIMEOUT (now 1)");
    // Not retried: one transfer's allowance, not several.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(!env.wpkg(&["images"]).ok().stdout.contains("slow"));
    let left: Vec<_> = files(&env.home().join("store"))
        .into_iter()
        .filter(|f| f.contains("tmp/"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // Control: the same slow registry with time enough (the environment variable this
    // time) completes the pull.
    env.wpkg_with(
        &["pull", "-q", &remote],
        &[("WPKG_REGISTRY_TIMEOUT", "60")],
        None,
    )
    .ok();
    consistent(&env, &remote);
    assert!(env.wpkg(&["images"]).ok().stdout.contains("slow"));
}
