//! The images people already publish: Docker+Wasm `wasi/wasm` images laid out as buildx
//! writes them (tar and tar+gzip layers, an index with linux/amd64, wasm and attestation
//! entries, OCI and Docker v2 media types), pushed with skopeo to a real registry and
//! run by wpkg: Docker's argv rules, nothing granted unless the operator says so, every
//! layer escape refused or kept inside the image's files, nothing written outside.

use serde_json::json;
use wpkg_tests::images::{skopeo_copy, tar, Item, Layout, TAR, TAR_GZIP};
use wpkg_tests::registry::{Registry, Setup};
use wpkg_tests::{guest, Env, Run};

/// A wasi/wasm image of the hostile guest: its files (`/data/msg.txt`, and a file a
/// later layer whites out), `Entrypoint` the wasm, `Cmd` a default probe, an `Env`.
fn wasi_image(layout: &Layout, os: &str, target: &str) -> serde_json::Value {
    let wasm = std::fs::read(guest("hostile", target)).unwrap();
    let lower = tar(&[
        Item::File("hostile.wasm", &wasm),
        Item::Dir("data/"),
        Item::File("data/msg.txt", b"from the image"),
        Item::File("data/old.txt", b"whited out"),
    ]);
    let upper = tar(&[Item::File("data/.wh.old.txt", b"")]);
    layout.image(
        json!({
            "architecture": "wasm", "os": os,
            "config": {
                "Entrypoint": ["/hostile.wasm"],
                "Cmd": ["read", "/data/msg.txt"],
                "Env": ["IMAGE_SECRET=from-image"],
                "WorkingDir": "/",
            },
        }),
        &[(TAR_GZIP, lower), (TAR, upper)],
    )
}

fn linux_image(layout: &Layout) -> serde_json::Value {
    layout.image(
        json!({"architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/bin/sh"]}}),
        &[(TAR_GZIP, tar(&[Item::File("bin/sh", b"not wasm")]))],
    )
}

fn attestation(layout: &Layout) -> serde_json::Value {
    layout.image(
        json!({"architecture": "unknown", "os": "unknown"}),
        &[(TAR, tar(&[Item::File("sbom.json", b"{}")]))],
    )
}

/// Runs `wpkg run --insecure-skip-verify REF [flags] [-- args]`.
fn run(env: &Env, image: &str, flags: &[&str], args: &[&str]) -> Run {
    let mut all = vec!["run", "--insecure-skip-verify", image];
    all.extend_from_slice(flags);
    if !args.is_empty() {
        all.push("--");
        all.extend_from_slice(args);
    }
    env.wpkg(&all)
}

#[track_caller]
fn denied(r: Run) {
    assert!(
        !r.stdout.contains("LEAK"),
        "granted without a grant: {r:#?}"
    );
    r.code(0).stdout_has("denied:");
}

#[track_caller]
fn granted(r: Run, code: i32) -> Run {
    r.code(code).stdout_has("LEAK:")
}

#[test]
fn buildx_style_images_run_with_docker_argv_and_only_explicit_grants() {
    let reg = Registry::start(Setup::Plain);
    let scratch = Env::new();
    let mut layout = Layout::new(&scratch.path("layout"));
    let p1 = wasi_image(&layout, "wasip1", "wasm32-wasip1");
    let index = layout.index(&[
        (linux_image(&layout), "linux", "amd64", false),
        (p1.clone(), "wasip1", "wasm", false),
        (attestation(&layout), "unknown", "unknown", true),
    ]);
    layout.tag("multi", &index);
    layout.tag("p1", &p1);
    let p2 = wasi_image(&layout, "wasip2", "wasm32-wasip2");
    layout.tag("p2", &p2);
    let multi = format!("{}/w/app:multi", reg.host);
    let docker = format!("{}/w/app:docker", reg.host);
    let component = format!("{}/w/app:p2", reg.host);
    skopeo_copy(&[
        "--all",
        &layout.skopeo_ref("multi"),
        &format!("docker://{multi}"),
    ]);
    // Docker v2 schema 2 media types (manifest, config, layers), as `docker push` makes.
    skopeo_copy(&[
        "--format",
        "v2s2",
        &layout.skopeo_ref("p1"),
        &format!("docker://{docker}"),
    ]);
    skopeo_copy(&[&layout.skopeo_ref("p2"), &format!("docker://{component}")]);

    let env = Env::new();
    // Trust applies as to any pulled image.
    env.wpkg(&["run", &multi])
        .code(125)
        .stderr_has("refusing to run");
    // Cmd is the default probe; nothing is granted: the image's own files are invisible.
    denied(run(&env, &multi, &[], &[]));
    // --rootfs ro: its files at /, read-only; the later layer's whiteout holds.
    granted(run(&env, &multi, &["--rootfs", "ro"], &[]), 42).stdout_has("read /data/msg.txt");
    denied(run(
        &env,
        &multi,
        &["--rootfs", "ro"],
        &["read", "/data/old.txt"],
    ));
    denied(run(
        &env,
        &multi,
        &["--rootfs", "ro"],
        &["write", "/data/new.txt"],
    ));
    // Its Env only with --image-env; operator --env for any name (no manifest declares).
    denied(run(&env, &multi, &[], &["env", "IMAGE_SECRET"]));
    granted(
        run(&env, &multi, &["--image-env"], &["env", "IMAGE_SECRET"]),
        42,
    )
    .stdout_has("IMAGE_SECRET=from-image");
    granted(
        run(&env, &multi, &["--env", "MINE=1"], &["env", "MINE"]),
        42,
    );
    // Sockets are never granted.
    denied(run(&env, &multi, &[], &["dns", "localhost"]));
    // inspect says what it would get and how to grant more.
    env.wpkg(&["inspect", &multi])
        .ok()
        .stdout_has("container image (wasip1/wasm, Docker+Wasm)")
        .stdout_has("--rootfs ro")
        .stdout_has("--image-env gives its Env: IMAGE_SECRET");

    // The same image with Docker media types.
    granted(run(&env, &docker, &["--rootfs", "ro"], &[]), 42);
    // Listed with its size like any image (not as damaged).
    let list: serde_json::Value =
        serde_json::from_str(&env.wpkg(&["images", "--json"]).ok().stdout).unwrap();
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reference"].as_str().unwrap().ends_with("w/app:docker"))
        .unwrap_or_else(|| panic!("{list:#}"));
    assert!(entry["size"].as_u64().unwrap() > 1000, "{entry:#}");
    assert_ne!(entry["created"], "damaged", "{entry:#}");
    // A p2 component image (a leak exits 1 there: wasi:cli/exit).
    denied(run(&env, &component, &[], &[]));
    granted(run(&env, &component, &["--rootfs", "ro"], &[]), 1);
    // Signed like any image: pulled here, signed with a key, pushed; a consumer that
    // trusts the key runs it without --insecure-skip-verify.
    let key_env =
        |env: &Env, args: &[&str]| env.wpkg_with(args, &[("COSIGN_PASSWORD", "pw")], None);
    let prefix = env.path("publisher");
    key_env(
        &env,
        &["keygen", "--output-key-prefix", prefix.to_str().unwrap()],
    )
    .ok();
    let signed = format!("{}/w/signed:1", reg.host);
    env.wpkg(&["tag", &docker, &signed]).ok();
    key_env(
        &env,
        &[
            "push",
            "-q",
            "--sign",
            "--key",
            &format!("{}.key", prefix.display()),
            &signed,
        ],
    )
    .ok();
    let consumer = Env::new();
    consumer
        .wpkg(&[
            "trust",
            "add",
            &format!("{}/w/*", reg.host),
            "--key",
            &format!("{}.pub", prefix.display()),
        ])
        .ok();
    granted(consumer.wpkg(&["run", &signed, "--rootfs", "ro"]), 42).stderr_has("verified");
    // A pulled image pushes on as it is, and travels through save/load.
    let copy = format!("{}/w/copy:1", reg.host);
    env.wpkg(&["push", "-q", &docker, &copy]).ok();
    granted(run(&Env::new(), &copy, &["--rootfs", "ro"], &[]), 42);
    let archive = env.path("app.tar");
    env.wpkg(&["save", "-o", archive.to_str().unwrap(), &docker])
        .ok();
    let other = Env::new();
    other.wpkg(&["load", "-i", archive.to_str().unwrap()]).ok();
    // Loaded content is verified like pulled content: this image has no signature.
    other
        .wpkg(&["run", &docker, "--pull", "never", "--rootfs", "ro"])
        .code(125)
        .stderr_has("refusing to run");
    granted(
        other.wpkg(&[
            "run",
            "--insecure-skip-verify",
            &docker,
            "--pull",
            "never",
            "--rootfs",
            "ro",
        ]),
        42,
    );
    // `wpkg rm` takes the applied layers with the image.
    let rootfs = other.home().join("store/rootfs");
    assert_eq!(std::fs::read_dir(&rootfs).unwrap().count(), 1);
    other.wpkg(&["rm", &docker]).ok();
    assert_eq!(std::fs::read_dir(&rootfs).unwrap().count(), 0);
    // Grants meant for unmanifested content are refused for a wpkg artifact.
    let mine = Env::new();
    let wasm = guest("example-hello", "wasm32-wasip2");
    let dir = mine.project("hello", &wasm, &wpkg_tests::command_manifest("hello", ""));
    mine.build(&dir, "hello:1");
    for grant in [
        &["--allow-outbound", "http://example.com"][..],
        &["--rootfs", "ro"],
        &["--image-env"],
    ] {
        let mut args = vec!["run", "hello:1"];
        args.extend_from_slice(grant);
        mine.wpkg(&args)
            .code(125)
            .stderr_has("has a wpkg manifest")
            .stderr_has("hint: grant through wpkg.toml");
    }
}

#[test]
fn no_wasm_platform_and_unsafe_layers_are_refused() {
    let reg = Registry::start(Setup::Plain);
    let scratch = Env::new();
    let mut layout = Layout::new(&scratch.path("layout"));
    let index = layout.index(&[
        (linux_image(&layout), "linux", "amd64", false),
        (attestation(&layout), "unknown", "unknown", true),
    ]);
    layout.tag("linux", &index);
    let wasm = std::fs::read(guest("hostile", "wasm32-wasip1")).unwrap();
    let hostile_layers: Vec<(&str, Vec<u8>)> = vec![
        ("dotdot", tar(&[Item::File("../evil", b"x")])),
        ("absolute", tar(&[Item::File("/evil", b"x")])),
        ("link-out", tar(&[Item::Symlink("out", "/")])),
        (
            "through-link",
            tar(&[
                Item::Dir("sub/"),
                Item::Symlink("via", "sub"),
                Item::File("via/evil", b"x"),
            ]),
        ),
    ];
    for (name, layer) in &hostile_layers {
        let img = layout.image(
            json!({"architecture": "wasm", "os": "wasip1",
                   "config": {"Entrypoint": ["/hostile.wasm"], "Cmd": ["env", "X"]}}),
            &[
                (TAR, tar(&[Item::File("hostile.wasm", &wasm)])),
                (TAR, layer.clone()),
            ],
        );
        layout.tag(name, &img);
        skopeo_copy(&[
            &layout.skopeo_ref(name),
            &format!("docker://{}/w/bad:{name}", reg.host),
        ]);
    }
    skopeo_copy(&[
        "--all",
        &layout.skopeo_ref("linux"),
        &format!("docker://{}/w/linux:1", reg.host),
    ]);

    // Entries wpkg cannot run: runwasi's `path#function`, no program, a missing file.
    let wasm_layer = || (TAR, tar(&[Item::File("hostile.wasm", &wasm)]));
    for (name, config) in [
        ("function", json!({"Entrypoint": ["/hostile.wasm#run"]})),
        ("no-entry", json!({})),
        ("missing", json!({"Entrypoint": ["/nope.wasm"]})),
        (
            "start",
            json!({"Entrypoint": ["/hostile.wasm#_start"], "Cmd": ["env", "X"]}),
        ),
    ] {
        let img = layout.image(
            json!({"architecture": "wasm", "os": "wasip1", "config": config}),
            &[wasm_layer()],
        );
        layout.tag(name, &img);
        skopeo_copy(&[
            &layout.skopeo_ref(name),
            &format!("docker://{}/w/entry:{name}", reg.host),
        ]);
    }
    // A layer wpkg does not apply is refused, never skipped: the same image, its layer
    // relabelled zstd in the registry.
    let plain = layout.image(
        json!({"architecture": "wasm", "os": "wasip1", "config": {"Entrypoint": ["/hostile.wasm"]}}),
        &[wasm_layer()],
    );
    layout.tag("zstd", &plain);
    skopeo_copy(&[
        &layout.skopeo_ref("zstd"),
        &format!("docker://{}/w/zstd:1", reg.host),
    ]);
    let out = std::process::Command::new("curl")
        .args([
            "-sf",
            "-H",
            &format!("Accept: {}", wpkg_tests::images::OCI_MANIFEST),
        ])
        .arg(format!("http://{}/v2/w/zstd/manifests/1", reg.host))
        .output()
        .expect("curl (bash scripts/setup.sh installs it)");
    let mut m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    m["layers"][0]["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar+zstd");
    crate::registry::put_manifest(
        &reg.host,
        "w/zstd",
        "1",
        wpkg_tests::images::OCI_MANIFEST,
        &m.to_string(),
    );
    let env = Env::new();
    env.wpkg(&["pull", &format!("{}/w/linux:1", reg.host)])
        .code(125)
        .stderr_has("multi-platform image for linux/amd64 with no wasm entry");
    env.wpkg(&["pull", &format!("{}/w/zstd:1", reg.host)])
        .code(125)
        .stderr_has("tar+zstd`, which wpkg does not apply");
    // `#_start` is what runs anyway: accepted.
    denied(run(&env, &format!("{}/w/entry:start", reg.host), &[], &[]));
    for (name, why) in [
        ("function", "names a function"),
        ("no-entry", "names no program"),
        ("missing", "has no such file"),
    ] {
        run(&env, &format!("{}/w/entry:{name}", reg.host), &[], &[])
            .code(125)
            .stderr_has(why);
    }
    for (name, _) in &hostile_layers {
        let r = run(&env, &format!("{}/w/bad:{name}", reg.host), &[], &[]);
        if name.starts_with("dotdot") || name.starts_with("absolute") {
            r.code(125)
                .stderr_has("unsafe entry")
                .stderr_has("nothing was extracted");
        } else {
            // Links, even out of the image, resolve inside its files as in a chroot.
            denied(r);
        }
    }
    // Nothing named `evil` anywhere under the test's directories but inside an
    // unpacked image's own files, and no half rootfs.
    let unpacked = env.home().join("store/rootfs");
    let mut stack = vec![env.dir.path().to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                name != "evil" || e.path().starts_with(&unpacked),
                "written: {}",
                e.path().display()
            );
            assert!(
                !name.starts_with(".rootfs-"),
                "left behind: {}",
                e.path().display()
            );
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    assert!(!std::path::Path::new("/evil").exists());
}

#[test]
fn an_http_handler_image_calls_out_only_where_the_operator_allows() {
    let reg = Registry::start(Setup::Plain);
    let scratch = Env::new();
    let mut layout = Layout::new(&scratch.path("layout"));
    let wasm = std::fs::read(guest("example-http-fetch", "wasm32-wasip2")).unwrap();
    let img = layout.image(
        json!({"architecture": "wasm", "os": "wasip2",
               "config": {"Entrypoint": ["/fetch.wasm"]}}),
        &[(TAR_GZIP, tar(&[Item::File("fetch.wasm", &wasm)]))],
    );
    layout.tag("fetch", &img);
    let image = format!("{}/w/fetch:1", reg.host);
    skopeo_copy(&[&layout.skopeo_ref("fetch"), &format!("docker://{image}")]);
    let (up, hits) = wpkg_tests::serve::upstream(200, "upstream says hi");
    let env = Env::new();
    let serve = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--insecure-skip-verify",
            &image,
            "--listen",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        wpkg_tests::serve::Server::start(env.cmd(&args)).unwrap()
    };
    // Nothing granted: the call is denied, and the guest sees it.
    let server = serve(&[]);
    let (status, body) = server.get(&format!("/fetch?url=http://{up}/")).unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");
    drop(server);
    assert_eq!(*hits.lock().unwrap(), 0);
    // Granted by the operator: the same call goes out.
    let allow = format!("http://{up}");
    let server = serve(&["--allow-outbound", &allow]);
    let (status, body) = server.get(&format!("/fetch?url=http://{up}/")).unwrap();
    assert_eq!(status, 200, "{body}\n{}", server.stderr());
    assert!(body.contains("upstream says hi"), "{body}");
    assert_eq!(*hits.lock().unwrap(), 1);
}
