//! Interoperability with the ecosystem's OCI tools: what wpkg pushes is pulled by
//! `oras` (the PyPI client) and inspected by `skopeo` as a CNCF Wasm artifact; what
//! `oras` pushes in the CNCF layout is pulled and run by wpkg.

use std::process::Command;

use wpkg_tests::registry::{which, Registry, Setup};
use wpkg_tests::{guest, Env};

use crate::registry::hello;

/// Runs a Python snippet that uses the `oras` package.
fn oras_py(script: &str, dir: &std::path::Path) -> String {
    let check = Command::new("python3")
        .args(["-c", "import oras.provider"])
        .output()
        .expect("python3 is needed for the interop tests: run `bash scripts/setup.sh`");
    assert!(
        check.status.success(),
        "the `oras` Python package is not installed: run `bash scripts/setup.sh` (it runs `pip install oras`)"
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oras script failed:\n{script}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn skopeo(args: &[&str]) -> serde_json::Value {
    serde_json::from_slice(&skopeo_raw(args)).unwrap()
}

fn skopeo_raw(args: &[&str]) -> Vec<u8> {
    let bin = which("skopeo").unwrap_or_else(|| {
        panic!("`skopeo` is not installed: run `bash scripts/setup.sh` (it runs `apt-get install skopeo`)")
    });
    let out = Command::new(bin).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn oras_and_skopeo_read_what_wpkg_pushes() {
    let reg = Registry::start(Setup::Plain);
    let env = Env::new();
    let digest = hello(&env, "Interop");
    let remote = format!("{}/interop/hello:1", reg.host);
    env.wpkg(&["push", "hello:0.1.0", &remote]).ok();

    // skopeo: the manifest and the config are the CNCF Wasm layout.
    let manifest = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{remote}"),
    ]);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
    let config = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--config",
        "--raw",
        &format!("docker://{remote}"),
    ]);
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip2");
    assert_eq!(config["layerDigests"][0], manifest["layers"][0]["digest"]);
    assert!(config["component"]["imports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i.as_str().unwrap().starts_with("wasi:cli/")));
    // The bytes skopeo reads are the ones wpkg pushed.
    let raw = skopeo_raw(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{remote}"),
    ]);
    assert_eq!(format!("sha256:{}", sha256_hex(&raw)), digest);

    // oras: pulls the layer as the file its title names, byte for byte.
    let out_dir = env.path("oras-out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let files = oras_py(
        &format!(
            "import oras.provider\n\
r = oras.provider.Registry(hostname='{host}', insecure=True)\n\
m = r.get_manifest('{remote}')\n\
print(m['config']['mediaType'])\n\
for f in r.pull(target='{remote}', outdir='{out}'): print(f)\n",
            host = reg.host,
            out = out_dir.display()
        ),
        env.dir.path(),
    );
    assert!(
        files.contains("application/vnd.wasm.config.v0+json"),
        "{files}"
    );
    let pulled = std::fs::read(out_dir.join("hello.wasm")).expect("oras wrote hello.wasm");
    let original = std::fs::read(guest("example-hello", "wasm32-wasip2")).unwrap();
    assert_eq!(pulled, original);
}

#[test]
fn wpkg_runs_what_oras_pushes_in_the_cncf_layout_and_refuses_images() {
    let reg = Registry::start(Setup::Plain);
    let env = Env::new();
    let wasm = guest("example-hello", "wasm32-wasip2");
    let work = env.path("oras-in");
    std::fs::create_dir_all(&work).unwrap();
    let bytes = std::fs::read(&wasm).unwrap();
    std::fs::write(work.join("hello.wasm"), &bytes).unwrap();
    let layer_digest = format!("sha256:{}", sha256_hex(&bytes));
    // The config as the CNCF Wasm OCI Artifact layout describes it.
    std::fs::write(
        work.join("config.json"),
        serde_json::json!({
            "created": "2026-01-01T00:00:00Z",
            "architecture": "wasm",
            "os": "wasip2",
            "layerDigests": [layer_digest],
            "component": {"exports": ["wasi:cli/run@0.2.0"], "imports": ["wasi:cli/environment@0.2.0"]},
        })
        .to_string(),
    )
    .unwrap();
    std::fs::write(work.join("layer.tar.gz"), b"not really an image layer").unwrap();
    std::fs::write(
        work.join("image-config.json"),
        b"{\"architecture\":\"amd64\",\"os\":\"linux\"}",
    )
    .unwrap();
    let remote = format!("{}/oras/hello:1", reg.host);
    let image = format!("{}/oras/image:1", reg.host);
    oras_py(
        &format!(
            "import oras.provider\n\
r = oras.provider.Registry(hostname='{host}', insecure=True)\n\
r.push(target='{remote}', files=['hello.wasm:application/wasm'], manifest_config='config.json:application/vnd.wasm.config.v0+json', quiet=True)\n\
r.push(target='{image}', files=['layer.tar.gz:application/vnd.oci.image.layer.v1.tar+gzip'], manifest_config='image-config.json:application/vnd.oci.image.config.v1+json', quiet=True)\n",
            host = reg.host,
        ),
        &work,
    );
    // No wpkg capabilities in the config: it runs with nothing granted.
    env.wpkg(&["run", "--insecure-skip-verify", &remote, "--", "oras"])
        .ok()
        .stdout_has("Hello, oras!")
        .stdout_has("args: [\"oras\"]");
    // Another tool's artifact has no wpkg manifest: the operator grants by name.
    env.wpkg(&[
        "run",
        "--insecure-skip-verify",
        &remote,
        "--env",
        "GREETING=Granted",
    ])
    .ok()
    .stdout_has("Granted, world!");
    // It has no files of its own to offer.
    env.wpkg(&["run", "--insecure-skip-verify", &remote, "--rootfs", "ro"])
        .code(125)
        .stderr_has("--rootfs: it has no image files to offer at `/`");
    let r = env.wpkg(&["run", "--insecure-skip-verify", &remote]).ok();
    assert!(
        !r.stdout.contains("env:"),
        "no environment was granted: {r:#?}"
    );
    env.wpkg(&["inspect", &remote]).ok();
    env.wpkg(&["pull", &image])
        .code(125)
        .stderr_has("is not a Wasm artifact: it is a container image");
    assert!(!env.wpkg(&["images"]).ok().stdout.contains("oras/image"));
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .expect("sha256sum (coreutils) is needed");
    String::from_utf8_lossy(&out.stdout)[..64].to_owned()
}
