//! Faults: wpkg killed with SIGKILL in the middle of a pull leaves a store that works,
//! with no half-visible image, and the pull succeeds when run again.

use wpkg_tests::registry::{Fault, Proxy, Registry, Setup};
use wpkg_tests::{command_manifest, guest, Env};

#[test]
fn kill_9_during_a_pull_leaves_a_consistent_store_and_a_retry_succeeds() {
    let reg = Registry::start(Setup::Plain);
    let publisher = Env::new();
    // A 2 MB bundled file makes a blob worth interrupting.
    let wasm = guest("example-hello", "wasm32-wasip2");
    let dir = publisher.project(
        "big",
        &wasm,
        &command_manifest(
            "big",
            "[capabilities]\nfiles = [{ source = \"static\", guest = \"/static\" }]\n",
        ),
    );
    std::fs::create_dir_all(dir.join("static")).unwrap();
    // Incompressible bytes (an LCG's high bits), so the gzip layer stays 2 MB.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..2_000_000)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        })
        .collect();
    std::fs::write(dir.join("static/noise.bin"), noise).unwrap();
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
