//! `containerd-shim-wpkg-v1` under a real containerd (Debian's 1.6.20, started privately
//! by the harness, as root): images made by `wpkg build --format image`, imported with
//! `ctr images import` from `wpkg save`, run with `ctr run --runtime
//! io.containerd.wpkg.v1`. The hostile guest tries each forbidden thing from inside
//! the container; each denial has a control run in which the same probe succeeds
//! because the capabilities grant it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use wpkg_tests::containerd::Containerd;
use wpkg_tests::images::{tar, Item, Layout, TAR};
use wpkg_tests::serve::{http_get, upstream};
use wpkg_tests::{command_manifest, guest, shim_dir, Env, Run};

const LIMIT: Duration = Duration::from_secs(60);
/// Where the kubelet mounts a pod's service-account token.
const TOKEN_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The cgroup file system, read-only, as the CRI plugin mounts it in every container.
const CGROUP_FS: &str = "type=cgroup,src=cgroup,dst=/sys/fs/cgroup,options=ro:nosuid:noexec:nodev";

/// Builds `dir` as a container image `tag`, saves it and imports it; returns the name
/// containerd gives it.
fn import(env: &Env, ctd: &Containerd, dir: &Path, tag: &str) -> String {
    env.build_image(dir, tag);
    let archive = env.path(&format!("{}.tar", tag.replace([':', '/'], "-")));
    env.wpkg(&["save", tag, "-o", archive.to_str().unwrap()])
        .ok();
    image_name(&ctd.import(&archive))
}

/// The image name in `ctr images import`'s `unpacking NAME (sha256:...)...` line.
fn image_name(import_output: &str) -> String {
    import_output
        .lines()
        .find_map(|l| l.strip_prefix("unpacking "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("no image in ctr's output: {import_output}"))
        .to_owned()
}

struct Hostile {
    /// Holds the temporary directories for the test's lifetime.
    _env: Env,
    ctd: Containerd,
    image: String,
    data: PathBuf,
    out: PathBuf,
    secret: PathBuf,
}

fn hostile() -> Hostile {
    let env = Env::new();
    let ctd = Containerd::start(&shim_dir());
    // A WASIp1 module keeps its exit code 42 for a leak.
    let wasm = guest("hostile", "wasm32-wasip1");
    let manifest = command_manifest(
        "hostile",
        r#"[capabilities]
env = { FIXED = "from-image" }
env_required = ["NEEDED"]
files = [{ source = "static", guest = "/static" }]
mounts = [{ guest = "/data" }, { guest = "/out", access = "read-write" }]
[limits]
memory = "32MiB"
timeout = "2s"
"#,
    );
    let dir = env.project("proj", &wasm, &manifest);
    std::fs::create_dir_all(dir.join("static")).unwrap();
    std::fs::write(dir.join("static/message.txt"), "bundled").unwrap();
    let image = import(&env, &ctd, &dir, "hostile:ctr");
    let data = env.path("data");
    let out = env.path("out");
    let secret = env.path("secret");
    for d in [&data, &out, &secret] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(data.join("ok.txt"), "fine").unwrap();
    std::fs::write(secret.join("secret.txt"), "not for the guest").unwrap();
    Hostile {
        _env: env,
        ctd,
        image,
        data,
        out,
        secret,
    }
}

fn bind(src: &Path, dst: &str, mode: &str) -> String {
    format!(
        "type=bind,src={},dst={dst},options=rbind:{mode}",
        src.display()
    )
}

impl Hostile {
    /// A run with what the capabilities let a pod give: the required variable and
    /// volumes at both declared mounts (`/data` read-only, `/out` read-write). (A pod
    /// asking for more is refused: `the_shim_refuses_what_it_cannot_run_as_declared`.)
    fn run(&self, id: &str, args: &[&str]) -> Run {
        self.run_with(id, &[], args)
    }

    fn run_with(&self, id: &str, extra: &[&str], args: &[&str]) -> Run {
        let data = bind(&self.data, "/data", "ro");
        let out = bind(&self.out, "/out", "rw");
        let mut flags = vec!["--env", "NEEDED=given", "--mount", &data, "--mount", &out];
        flags.extend_from_slice(extra);
        let mut all = vec!["/app.wasm"];
        all.extend_from_slice(args);
        self.ctd.run(&flags, &self.image, id, &all, LIMIT)
    }

    #[track_caller]
    fn leaks(&self, id: &str, args: &[&str]) -> Run {
        self.run(id, args).code(42).stdout_has("LEAK")
    }

    #[track_caller]
    fn denied(&self, id: &str, args: &[&str]) -> Run {
        let r = self.run(id, args);
        assert!(!r.stdout.contains("LEAK"), "the shim leaked:\n{r:#?}");
        r.code(0).stdout_has("denied:")
    }
}

#[test]
fn the_shim_gives_the_guest_exactly_its_capabilities() {
    let h = hostile();
    // Controls: what the capabilities grant, the guest gets through the shim.
    h.leaks("c-data", &["read", "/data/ok.txt"]);
    h.leaks("c-static", &["read", "/static/message.txt"]);
    h.leaks("c-out", &["write", "/out/new.txt"]);
    assert!(
        h.out.join("new.txt").exists(),
        "the write did not reach the volume"
    );
    h.leaks("c-needed", &["env", "NEEDED"])
        .stdout_has("NEEDED=given");
    // The image's fixed value.
    h.leaks("c-fixed", &["env", "FIXED"])
        .stdout_has("FIXED=from-image");

    // Denials: paths out of a volume, the image's own files, runtime-added variables,
    // writes to a read-only mount, the root.
    h.denied("d-dotdot", &["read", "/data/../.wpkg/capabilities.json"]);
    h.denied("d-caps", &["read", "/.wpkg/capabilities.json"]);
    h.denied("d-wasm", &["read", "/app.wasm"]);
    h.denied("d-root", &["list-root", "/"]);
    h.denied("d-ro", &["write", "/data/new.txt"]);
    assert!(!h.data.join("new.txt").exists());
    // The runtime's variable is dropped and told on stderr (the pod's log).
    h.denied("d-path", &["env", "PATH"])
        .stderr_has("not given to the guest (not in env_required)")
        .stderr_has("PATH");
    // The guest's sockets, with the host network: still none.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let r = h.run_with("d-tcp", &["--net-host"], &["tcp", &addr]);
    assert!(!r.stdout.contains("LEAK"), "{r:#?}");
    r.code(0).stdout_has("denied:");
}

#[test]
fn the_shim_applies_limits_and_reports_outcomes() {
    let h = hostile();
    h.run("l-trap", &["trap"])
        .code(134)
        .stderr_has("wpkg: error: the guest trapped");
    h.run("l-loop", &["loop"])
        .code(124)
        .stderr_has("time limit of 2s");
    h.run("l-mem", &["membomb"])
        .code(137)
        .stderr_has("memory limit of 32MiB");
    // The pod's limit narrows the declared 32MiB (to 40MiB less the runtime's 24MiB,
    // at least half: 20MiB); a wider one leaves it as declared. The cgroup file system
    // is mounted read-only as Kubernetes' CRI does (ctr does not by default).
    h.run_with(
        "l-pod-mem",
        &["--memory-limit", "41943040", "--mount", CGROUP_FS],
        &["membomb"],
    )
    .code(137)
    .stderr_has("memory limit of 20MiB");
    h.run_with(
        "l-pod-wide",
        &["--memory-limit", "1073741824", "--mount", CGROUP_FS],
        &["membomb"],
    )
    .code(137)
    .stderr_has("memory limit of 32MiB");
}

#[test]
fn the_shim_refuses_what_it_cannot_run_as_declared() {
    let h = hostile();
    let secret_vol = bind(&h.secret, "/undeclared", "ro");
    // The required variable missing (a pod without it). Control: the runs above.
    let out = bind(&h.out, "/out", "rw");
    h.ctd
        .run(
            &["--mount", &out],
            &h.image,
            "r-env",
            &["/app.wasm", "env", "NEEDED"],
            LIMIT,
        )
        .refused()
        .stderr_has("requires `NEEDED`")
        .stderr_has("wpkg: hint: set `NEEDED` in the container's env");
    // More than the image declares: a variable it does not name, a value for one it
    // fixes, a volume at a path it does not declare. (Controls: NEEDED, /data, /out
    // are given in the runs above.)
    for (id, flags, reason) in [
        (
            "r-undeclared-env",
            vec!["--env", "UNDECLARED=leak"],
            "the pod sets UNDECLARED, which the image does not declare",
        ),
        (
            "r-fixed-env",
            vec!["--env", "FIXED=from-pod"],
            "the pod sets FIXED, which the image fixes",
        ),
        (
            "r-undeclared-vol",
            vec!["--mount", &secret_vol],
            "a volume is mounted at /undeclared, which the image does not declare",
        ),
    ] {
        let r = h.run_with(id, &flags, &["read", "/undeclared/secret.txt"]);
        assert!(!r.stdout.contains("LEAK"), "{r:#?}");
        r.refused().stderr_has(reason);
    }
    // A volume over the image's capabilities, or over a bundled directory.
    let over = bind(&h.secret, "/.wpkg", "ro");
    h.run_with("r-over-caps", &["--mount", &over], &["env", "NEEDED"])
        .refused()
        .stderr_has("a volume is mounted at /.wpkg, over the image's own /.wpkg");
    let over = bind(&h.secret, "/static", "ro");
    h.run_with(
        "r-over-files",
        &["--mount", &over],
        &["read", "/static/secret.txt"],
    )
    .refused()
    .stderr_has("over the image's own /static");
    // Another program of the image (a container `command`).
    let mut flags = vec!["--env", "NEEDED=x"];
    flags.push("--mount");
    flags.push(&out);
    h.ctd
        .run(&flags, &h.image, "r-cmd", &["/static/message.txt"], LIMIT)
        .refused()
        .stderr_has("the capabilities are for `/app.wasm`");
}

#[test]
fn the_shim_refuses_images_without_capabilities_and_linux_programs() {
    let env = Env::new();
    let ctd = Containerd::start(&shim_dir());
    let wasm = std::fs::read(guest("hostile", "wasm32-wasip1")).unwrap();
    // The same wasm as a Docker+Wasm image without wpkg capabilities.
    let layout_dir = env.path("layout");
    let mut layout = Layout::new(&layout_dir);
    let plain = layout.image(
        serde_json::json!({"architecture": "wasm", "os": "wasip1", "config": {"Entrypoint": ["/app.wasm"]}}),
        &[(TAR, tar(&[Item::File("app.wasm", &wasm)]))],
    );
    layout.tag("docker.io/test/plain-wasm:1", &plain);
    // A Linux program: a static ELF that prints and exits 0.
    let src = env.path("hello.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\nint main(){puts(\"LINUX PROGRAM RAN\");return 0;}\n",
    )
    .unwrap();
    let elf = env.path("hello");
    let st = std::process::Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&elf)
        .arg(&src)
        .status()
        .expect("gcc is needed for this test: apt-get install gcc libc6-dev");
    assert!(
        st.success(),
        "gcc -static failed (apt-get install libc6-dev)"
    );
    let elf = std::fs::read(&elf).unwrap();
    let linux = layout.image(
        serde_json::json!({"architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/hello"]}}),
        &[(TAR, tar(&[Item::Executable("hello", &elf)]))],
    );
    layout.tag("docker.io/test/linux:1", &linux);
    let archive = env.path("foreign.tar");
    layout.archive(&archive);
    ctd.import(&archive);

    ctd.run(
        &[],
        "docker.io/test/plain-wasm:1",
        "p-plain",
        &["/app.wasm", "read", "/app.wasm"],
        LIMIT,
    )
    .refused()
    .stderr_has("the image carries no wpkg capabilities")
    .stderr_has("wpkg build --format image");
    // Control: the Linux image runs under containerd's default runtime (runc)...
    let o = ctd.ctr(&["run", "--rm", "docker.io/test/linux:1", "p-runc"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("LINUX PROGRAM RAN"),
        "control: the Linux image did not run under runc:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // ...and cannot start under wpkg's (runwasi would exec it as a Linux container).
    let r = ctd.run(&[], "docker.io/test/linux:1", "p-linux", &[], LIMIT);
    assert!(
        !r.stdout.contains("LINUX PROGRAM RAN"),
        "a Linux program ran under the wpkg runtime:\n{r:#?}"
    );
    assert_ne!(r.code, Some(0), "{r:#?}");
    // Marked a container by the CRI: still refused.
    let r = ctd.run(
        &["--annotation", "io.kubernetes.cri.container-type=container"],
        "docker.io/test/linux:1",
        "p-linux-ctr",
        &[],
        LIMIT,
    );
    assert!(
        !r.stdout.contains("LINUX PROGRAM RAN"),
        "a Linux program ran under the wpkg runtime:\n{r:#?}"
    );
    // The one exec the runtime allows: a pod's sandbox (`pause`) container, which the
    // CRI marks with this annotation; without it no pod could start on Kubernetes.
    let r = ctd.run(
        &["--annotation", "io.kubernetes.cri.container-type=sandbox"],
        "docker.io/test/linux:1",
        "p-sandbox",
        &[],
        LIMIT,
    );
    assert!(
        r.stdout.contains("LINUX PROGRAM RAN") && r.code == Some(0),
        "the pod's sandbox container did not run under the wpkg runtime:\n{r:#?}\n{}",
        ctd.log()
    );
}

#[test]
fn the_shim_serves_http_with_the_allow_list() {
    let env = Env::new();
    let ctd = Containerd::start(&shim_dir());
    let (up, hits) = upstream(200, "upstream says hi");
    let (other, other_hits) = upstream(200, "should never be reached");
    let wasm = guest("example-http-fetch", "wasm32-wasip2");
    let manifest = format!(
        "manifest_version = 1\n[package]\nname = \"fetch\"\nversion = \"0.1.0\"\nwasm = \"{{wasm}}\"\n[trigger]\ntype = \"http\"\n[capabilities]\noutbound_http = [\"http://{up}\"]\n[limits]\ntimeout = \"10s\"\n"
    );
    let dir = env.project("fetch", &wasm, &manifest);
    let image = import(&env, &ctd, &dir, "fetch:ctr");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("WPKG_LISTEN=127.0.0.1:{port}");
    ctd.run_detached(&["--net-host", "--env", &listen], &image, "h-fetch");
    let addr = format!("127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + LIMIT;
    while http_get(&addr, "/").map(|r| r.0) != Ok(200) {
        assert!(
            std::time::Instant::now() < deadline,
            "the shim never served on {addr}:\n{}",
            ctd.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = http_get(&addr, &format!("/fetch?url=http://{up}/x")).unwrap();
    assert_eq!(
        (status, body.contains("upstream says hi")),
        (200, true),
        "{body}"
    );
    assert_eq!(*hits.lock().unwrap(), 1);
    let (status, body) = http_get(&addr, &format!("/fetch?url=http://{other}/x")).unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");
    assert_eq!(
        *other_hits.lock().unwrap(),
        0,
        "the undeclared upstream was reached"
    );
    ctd.remove("h-fetch");
}

/// A `--format image` image made by hand: the hostile guest, its capabilities (bundling
/// `/static`), `extra` entries, and compiled code planted where the shim once cached it.
fn edge_image(layout: &Layout, wasm: &[u8], extra: &[Item<'_>]) -> serde_json::Value {
    let caps = crate::fs_edge::embedded_capabilities(
        "/app.wasm",
        wasm,
        "files = [{ source = \"static\", guest = \"/static\" }]",
    );
    let mut items = vec![
        Item::File("app.wasm", wasm),
        Item::Dir(".wpkg/"),
        Item::File(".wpkg/capabilities.json", &caps),
        Item::Dir("assets/"),
        Item::Dir("assets/v2/"),
        Item::File("assets/v2/index.html", b"bundled v2"),
    ];
    items.extend_from_slice(extra);
    layout.image(
        serde_json::json!({"architecture": "wasm", "os": "wasip1",
                           "config": {"Entrypoint": ["/app.wasm"]}}),
        &[(TAR, tar(&items))],
    )
}

#[test]
fn the_shim_opens_nothing_outside_the_image_and_loads_no_code_from_it() {
    let env = Env::new();
    let ctd = Containerd::start(&shim_dir());
    let wasm = std::fs::read(guest("hostile", "wasm32-wasip1")).unwrap();
    // Compiled code of another program (hello, a marker), keyed as the shim's cache
    // would key the hostile guest's: what an image could ship in /.wpkg/cache.
    let planted = env.path("planted");
    let other = std::fs::read(guest("example-hello-p1", "wasm32-wasip1")).unwrap();
    let digest = wpkg_store::sha256_digest(&wasm);
    let runner = wpkg_runner::Runner::new(Some(planted.clone())).unwrap();
    runner.compile(&digest, &other).unwrap();
    // Control: that entry is valid for this engine; a cache reading it runs the marker.
    let (_, status) = runner.compile(&digest, &wasm).unwrap();
    assert_eq!(status, wpkg_runner::CacheStatus::Hit);
    let mut code_files = Vec::new();
    for e in std::fs::read_dir(&planted).unwrap().flatten() {
        let name = format!(".wpkg/cache/{}", e.file_name().to_string_lossy());
        code_files.push((name, std::fs::read(e.path()).unwrap()));
    }
    assert_eq!(code_files.len(), 2, "a .cwasm and its .sum");
    let mut layout = Layout::new(&env.path("layout"));
    let mut cache_items = vec![Item::Dir(".wpkg/cache/"), Item::Dir("static/")];
    cache_items.extend(code_files.iter().map(|(n, b)| Item::File(n, b)));
    for (tag, extra) in [
        ("docker.io/edge/cache:1", cache_items),
        (
            "docker.io/edge/proc:1",
            vec![Item::Symlink("static", "/proc/self")],
        ),
        (
            "docker.io/edge/volume:1",
            vec![Item::Symlink("static", TOKEN_DIR)],
        ),
        (
            "docker.io/edge/inside:1",
            vec![Item::Symlink("static", "/assets/v2")],
        ),
    ] {
        let img = edge_image(&layout, &wasm, &extra);
        layout.tag(tag, &img);
    }
    let archive = env.path("edge.tar");
    layout.archive(&archive);
    ctd.import(&archive);

    // The planted code is not loaded: the image's own wasm runs.
    let r = ctd.run(
        &[],
        "docker.io/edge/cache:1",
        "e-cache",
        &["/app.wasm", "env", "X"],
        LIMIT,
    );
    assert!(
        !r.stdout.contains("Hello from WASIp1"),
        "planted code ran: {r:#?}"
    );
    r.code(0).stdout_has("denied:");
    // A declared directory that is an absolute link: to the container's /proc (the
    // shim's own environment) or onto the pod's service-account token.
    let secret = env.path("secret");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("environ"), "not for the guest").unwrap();
    for (image, id) in [
        ("docker.io/edge/proc:1", "e-proc"),
        ("docker.io/edge/volume:1", "e-vol"),
    ] {
        let r = ctd.run(
            &["--mount", &bind(&secret, TOKEN_DIR, "ro")],
            image,
            id,
            &["/app.wasm", "read", "/static/environ"],
            LIMIT,
        );
        assert!(!r.stdout.contains("LEAK"), "{image}: {r:#?}");
        r.refused().stderr_has("/static");
    }
    // Control: a link to a directory of the image itself is the bundled directory.
    ctd.run(
        &[],
        "docker.io/edge/inside:1",
        "e-inside",
        &["/app.wasm", "read", "/static/index.html"],
        LIMIT,
    )
    .code(42)
    .stdout_has("LEAK: read /static/index.html: 10 bytes");
}
