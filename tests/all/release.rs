//! The release path as a test: `scripts/try-release.sh` with the wpkg under test packed
//! as the release workflow packs it, served on loopback, installed by `install.sh` into
//! fresh prefixes, run; a tampered archive, an unwritable prefix and an unsupported
//! platform are each refused with nothing installed.

use std::process::Command;

use wpkg_tests::registry::which;
use wpkg_tests::release::stripped_wpkg;
use wpkg_tests::{guest, root};

#[test]
fn try_release_installs_the_packed_binary_and_refuses_tampering() {
    for p in ["python3", "curl", "tar", "gzip", "sha256sum"] {
        assert!(
            which(p).is_some(),
            "`{p}` is missing: run bash scripts/setup.sh"
        );
    }
    let hello = guest("example-hello", "wasm32-wasip2");
    let bin = tempfile::tempdir().unwrap();
    let wpkg = stripped_wpkg(bin.path());
    let out = Command::new("bash")
        .arg(root().join("scripts/try-release.sh"))
        .env("WPKG_BIN", &wpkg)
        .env("HELLO_WASM", &hello)
        .output()
        .expect("running scripts/try-release.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("try-release: OK"),
        "try-release failed:\n{stdout}\n{stderr}"
    );
    for refusal in ["checksum", "cannot write", "no wpkg release for"] {
        assert!(
            stderr.contains(refusal),
            "no `{refusal}` refusal was seen:\n{stderr}"
        );
    }
}
