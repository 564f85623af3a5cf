//! The filesystem edge: content from outside (image layers) never steers a host path.
//! Each attack a review found is an image loaded with `wpkg load` (an admitted image:
//! local content runs without a signature) and run; each has a control showing that the
//! same links, resolved from the host's side, do leave the image's files, and that the
//! legitimate shape still works.

use std::path::{Path, PathBuf};

use serde_json::json;
use wpkg_tests::images::{tar, Item, Layout, TAR, TAR_GZIP, WASM};
use wpkg_tests::{guest, Env, Run};

/// Links that each look inside by counting `..` against their depth, but that the
/// kernel, resolving from the host, follows to three levels above the directory they
/// are unpacked in: `d1/l3` is `ROOT/../../..` (`$WPKG_HOME` under the old layout).
fn climb() -> Vec<Item<'static>> {
    vec![
        Item::Dir("d1/"),
        Item::Dir("d1/d2/"),
        Item::Symlink("d1/d2/l1", ".."),
        Item::Symlink("d1/l2", "d2/l1/../.."),
        Item::Symlink("d1/l3", "l2/../.."),
    ]
}

/// Loads the image `desc` of `layout` as `name` into `env`'s store.
fn load(env: &Env, layout: &mut Layout, name: &str, desc: &serde_json::Value) {
    layout.tag(name, desc);
    let archive = env.path(&format!("{}.tar", name.replace(['/', ':'], "-")));
    layout.archive(&archive);
    env.wpkg(&["load", "-i", archive.to_str().unwrap()]).ok();
}

fn run(env: &Env, image: &str, args: &[&str]) -> Run {
    // The images come from crafted archives: loaded, so unsigned content needs the flag.
    let mut all = vec!["run", "--insecure-skip-verify", image, "--"];
    all.extend_from_slice(args);
    env.wpkg(&all)
}

/// Every path under `dir` (not following links).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
            out.push(e.path());
        }
    }
    out
}

/// The unpacked link named `name` pointing at `target` somewhere under the store's
/// rootfs directories.
fn unpacked_link(env: &Env, name: &str, target: &str) -> PathBuf {
    walk(&env.home().join("store/rootfs"))
        .into_iter()
        .find(|p| {
            p.file_name().is_some_and(|n| n == name)
                && std::fs::read_link(p).is_ok_and(|t| t == Path::new(target))
        })
        .unwrap_or_else(|| panic!("no unpacked `{name}` -> {target}"))
}

#[test]
fn a_link_chain_and_a_raw_wasm_layer_write_nothing_outside_the_image() {
    let env = Env::new();
    let mut layout = Layout::new(&env.path("layout"));
    let wasm = std::fs::read(guest("hostile", "wasm32-wasip1")).unwrap();
    let mut links = climb();
    links.push(Item::Symlink("component.wasm", "d1/l3/planted"));
    let img = layout.image(
        json!({"architecture": "wasm", "os": "wasip1",
               "config": {"Entrypoint": ["/component.wasm"], "Cmd": ["env", "X"]}}),
        &[(TAR, tar(&links)), (WASM, wasm)],
    );
    load(&env, &mut layout, "edge/chain:1", &img);
    let r = run(&env, "edge/chain:1", &[]);
    let planted: Vec<_> = walk(env.dir.path())
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "planted"))
        .collect();
    assert!(planted.is_empty(), "written outside the image: {planted:?}");
    // The wasm layer replaced the link; the guest runs (and is denied what it asks).
    r.ok().stdout_has("denied:");
    // Control: from the host's side the unpacked chain does leave the image's files.
    let l3 = unpacked_link(&env, "l3", "l2/../..");
    let files = l3.parent().unwrap().parent().unwrap();
    let resolved = std::fs::canonicalize(&l3).unwrap();
    assert!(
        !resolved.starts_with(files),
        "{} resolves to {}, inside",
        l3.display(),
        resolved.display()
    );
}

/// `/.wpkg/capabilities.json` as `wpkg build --format image` writes it: a command whose
/// `[capabilities]` section is `capabilities`, bound to `wasm` at `path`.
pub(crate) fn embedded_capabilities(path: &str, wasm: &[u8], capabilities: &str) -> Vec<u8> {
    let manifest = wpkg_spec::Manifest::parse(&format!(
        "manifest_version = 1\n[package]\nname = \"edge\"\nversion = \"1\"\nwasm = \"a.wasm\"\n\
         [trigger]\ntype = \"command\"\n[capabilities]\n{capabilities}\n"
    ))
    .unwrap();
    wpkg_spec::image::EmbeddedCapabilities {
        wasm: path.into(),
        wasm_digest: wpkg_store::sha256_digest(wasm),
        capabilities: manifest.to_artifact_capabilities(),
    }
    .to_bytes()
}

/// An image made as `wpkg build --format image` makes one (capabilities in its files,
/// bound to the wasm) that bundles `/static`, where `/static` is what `link` says.
fn files_image(layout: &Layout, wasm: &[u8], link: Item<'_>) -> serde_json::Value {
    let caps = embedded_capabilities(
        "/hostile.wasm",
        wasm,
        "files = [{ source = \"static\", guest = \"/static\" }]",
    );
    let mut items = vec![
        Item::File("hostile.wasm", wasm),
        Item::Dir(".wpkg/"),
        Item::File(".wpkg/capabilities.json", &caps),
        Item::Dir("assets/"),
        Item::Dir("assets/v2/"),
        Item::File("assets/v2/index.html", b"bundled v2"),
    ];
    items.extend(climb());
    items.push(link);
    layout.image(
        json!({"architecture": "wasm", "os": "wasip1",
               "config": {"Entrypoint": ["/hostile.wasm"]}}),
        &[(TAR_GZIP, tar(&items))],
    )
}

#[test]
fn a_declared_files_directory_that_links_out_gives_the_guest_nothing() {
    let env = Env::new();
    // A host directory with a secret where the chain lands, under either layout of the
    // store (three levels above the unpacked files).
    for dir in [env.home().join("hostdir"), env.home().join("store/hostdir")] {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("secret.txt"), "host secret").unwrap();
    }
    let wasm = std::fs::read(guest("hostile", "wasm32-wasip1")).unwrap();
    let mut layout = Layout::new(&env.path("layout"));
    let out = files_image(&layout, &wasm, Item::Symlink("static", "d1/l3/hostdir"));
    load(&env, &mut layout, "edge/out:1", &out);
    let abs = files_image(&layout, &wasm, Item::Symlink("static", "/proc/self"));
    load(&env, &mut layout, "edge/proc:1", &abs);
    let inside = files_image(&layout, &wasm, Item::Symlink("static", "assets/v2"));
    load(&env, &mut layout, "edge/inside:1", &inside);

    let r = run(&env, "edge/out:1", &["read", "/static/secret.txt"]);
    assert!(!r.stdout.contains("LEAK"), "leaked: {r:#?}");
    r.code(125).stderr_has("/static");
    let r = run(&env, "edge/proc:1", &["read", "/static/environ"]);
    assert!(!r.stdout.contains("LEAK"), "leaked: {r:#?}");
    r.code(125);
    // Control: from the host's side the unpacked `/static` reaches the secret.
    let link = unpacked_link(&env, "static", "d1/l3/hostdir");
    assert_eq!(
        std::fs::read_to_string(link.join("secret.txt")).unwrap(),
        "host secret"
    );
    // Control: a link to a directory of the image itself is the bundled directory.
    run(&env, "edge/inside:1", &["read", "/static/index.html"])
        .code(42)
        .stdout_has("LEAK: read /static/index.html: 10 bytes");
}

#[test]
fn a_gzip_bomb_is_refused_by_inspect_and_run_with_nothing_left() {
    let env = Env::new();
    let wasm = std::fs::read(guest("hostile", "wasm32-wasip1")).unwrap();
    let zeros = vec![0u8; 8 << 20];
    let mut layout = Layout::new(&env.path("layout"));
    let img = layout.image(
        json!({"architecture": "wasm", "os": "wasip1",
               "config": {"Entrypoint": ["/hostile.wasm"], "Cmd": ["env", "X"]}}),
        &[(
            TAR_GZIP,
            tar(&[
                Item::File("hostile.wasm", &wasm),
                Item::File("zeros", &zeros),
            ]),
        )],
    );
    load(&env, &mut layout, "edge/bomb:1", &img);
    let small = [("WPKG_MAX_LAYER_SIZE", "1MiB")];
    for args in [
        &["inspect", "edge/bomb:1"][..],
        &["run", "--insecure-skip-verify", "edge/bomb:1"][..],
    ] {
        env.wpkg_with(args, &small, None)
            .code(125)
            .stderr_has("unpacks to more than 1048576 bytes")
            .stderr_has("WPKG_MAX_LAYER_SIZE");
    }
    env.wpkg_with(
        &["run", "--insecure-skip-verify", "edge/bomb:1"],
        &[("WPKG_MAX_FILE_SIZE", "4MiB")],
        None,
    )
    .code(125)
    .stderr_has("`/zeros`")
    .stderr_has("WPKG_MAX_FILE_SIZE");
    assert!(
        walk(&env.home().join("store/rootfs")).is_empty(),
        "left behind: {:?}",
        walk(&env.home().join("store/rootfs"))
    );
    // Control: under the bounds it runs.
    env.wpkg_with(
        &["run", "--insecure-skip-verify", "edge/bomb:1"],
        &[("WPKG_MAX_LAYER_SIZE", "64MiB")],
        None,
    )
    .ok()
    .stdout_has("denied:");
}

#[test]
fn an_unpacked_image_that_changed_is_rebuilt_not_trusted() {
    let env = Env::new();
    let wasm = std::fs::read(guest("hostile", "wasm32-wasip1")).unwrap();
    let mut layout = Layout::new(&env.path("layout"));
    let img = layout.image(
        json!({"architecture": "wasm", "os": "wasip1",
               "config": {"Entrypoint": ["/hostile.wasm"], "Cmd": ["env", "X"]}}),
        &[(TAR_GZIP, tar(&[Item::File("hostile.wasm", &wasm)]))],
    );
    load(&env, &mut layout, "edge/changed:1", &img);
    run(&env, "edge/changed:1", &[]).ok().stdout_has("denied:");
    // Someone replaces the unpacked wasm with another program (here: the hello example).
    let unpacked = walk(&env.home().join("store/rootfs"))
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "hostile.wasm"))
        .unwrap();
    let other = std::fs::read(guest("example-hello-p1", "wasm32-wasip1")).unwrap();
    std::fs::write(&unpacked, &other).unwrap();
    // The run notices, unpacks the layers again and runs the image's own wasm.
    run(&env, "edge/changed:1", &[]).ok().stdout_has("denied:");
    assert_eq!(std::fs::read(&unpacked).unwrap(), wasm);
}

#[test]
fn inspect_shows_the_capabilities_a_run_uses_even_when_a_layer_writes_through_a_link() {
    let env = Env::new();
    let wasm = std::fs::read(guest("hostile", "wasm32-wasip1")).unwrap();
    let caps = |line: &str| embedded_capabilities("/hostile.wasm", &wasm, line);
    let lower = caps("env = { SHOWN = \"lower\" }");
    let upper = caps("env = { WIDER = \"upper\" }");
    let mut layout = Layout::new(&env.path("layout"));
    // The upper layer replaces the capabilities through a link to their directory.
    let img = layout.image(
        json!({"architecture": "wasm", "os": "wasip1",
               "config": {"Entrypoint": ["/hostile.wasm"]}}),
        &[
            (
                TAR,
                tar(&[
                    Item::File("hostile.wasm", &wasm),
                    Item::Dir(".wpkg/"),
                    Item::File(".wpkg/capabilities.json", &lower),
                ]),
            ),
            (
                TAR,
                tar(&[
                    Item::Symlink("x", ".wpkg"),
                    Item::File("x/capabilities.json", &upper),
                ]),
            ),
        ],
    );
    load(&env, &mut layout, "edge/through:1", &img);
    let shown = env.wpkg(&["inspect", "edge/through:1"]).ok();
    run(&env, "edge/through:1", &["env", "WIDER"])
        .code(42)
        .stdout_has("LEAK");
    // What inspect shows is what ran: the upper layer's.
    assert!(
        shown.stdout.contains("WIDER") && !shown.stdout.contains("SHOWN"),
        "{shown:#?}"
    );
}
