//! A loopback "releases" server laid out as GitHub's: the wpkg under test packed by
//! `scripts/package.sh`, exactly as the release workflow packs it, with `SHA256SUMS` and
//! `install.sh`, under `BASE/download/vVERSION/` and `BASE/latest/download/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::registry::free_port;
use crate::{root, wpkg_bin};

/// The host's release target, as install.sh picks it (`install.sh --print-target`).
pub fn target() -> String {
    let out = Command::new("sh")
        .arg(root().join("install.sh"))
        .arg("--print-target")
        .output()
        .expect("running sh install.sh --print-target");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A running release server. Stopped on drop.
pub struct Release {
    child: Child,
    /// `http://127.0.0.1:PORT` (what `install.sh --base-url` takes).
    pub base_url: String,
    /// The version served (from `wpkg --version`).
    pub version: String,
    _dir: tempfile::TempDir,
}

/// The version `wpkg --version` reports.
pub fn wpkg_version() -> String {
    let out = Command::new(wpkg_bin()).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.trim()
        .strip_prefix("wpkg ")
        .unwrap_or_else(|| panic!("unexpected `wpkg --version`: {text}"))
        .to_owned()
}

/// A copy of the wpkg under test in `dir` without debug information, as a release
/// build has none (a smaller archive, faster to pack).
pub fn stripped_wpkg(dir: &Path) -> PathBuf {
    let out = dir.join("wpkg");
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(&out)
        .arg(wpkg_bin())
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(wpkg_bin(), &out).unwrap();
    }
    out
}

/// Packs `bin` (a wpkg) into `out` with `scripts/package.sh`.
pub fn package(bin: &Path, out: &Path, version: &str) {
    let status = Command::new("bash")
        .arg(root().join("scripts/package.sh"))
        .arg(bin)
        .args([target().as_str(), version])
        .arg(out)
        .stdout(Stdio::null())
        .status()
        .expect("running scripts/package.sh");
    assert!(status.success(), "scripts/package.sh failed");
}

impl Release {
    /// Packs the wpkg under test and serves it.
    pub fn serve() -> Release {
        let dir = tempfile::tempdir().unwrap();
        let version = wpkg_version();
        let bin_dir = dir.path().join("bin");
        std::fs::create_dir(&bin_dir).unwrap();
        let tagged = dir.path().join(format!("download/v{version}"));
        package(&stripped_wpkg(&bin_dir), &tagged, &version);
        let latest = dir.path().join("latest/download");
        std::fs::create_dir_all(&latest).unwrap();
        for entry in std::fs::read_dir(&tagged).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, latest.join(path.file_name().unwrap())).unwrap();
        }
        for d in [&tagged, &latest] {
            std::fs::copy(root().join("install.sh"), d.join("install.sh")).unwrap();
        }
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
                "--directory",
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 is needed for the release server: run bash scripts/setup.sh");
        let addr = format!("127.0.0.1:{port}");
        let end = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < end, "the release server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Release {
            child,
            base_url: format!("http://{addr}"),
            version,
            _dir: dir,
        }
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
