//! `wpkg save` / `wpkg load`: OCI layout tarballs between stores.

use wpkg_tests::{command_manifest, guest, Env};

fn saved(env: &Env) -> (Vec<u8>, String) {
    let wasm = guest("example-hello", "wasm32-wasip2");
    let dir = env.project(
        "p",
        &wasm,
        &command_manifest("hello", "[capabilities]\nenv = { GREETING = \"Moved\" }\n"),
    );
    let digest = env.build(&dir, "hello:moved");
    let out = env.path("hello.tar");
    env.wpkg(&["save", "hello:moved", "-o", out.to_str().unwrap()])
        .ok();
    (std::fs::read(out).unwrap(), digest)
}

fn store_is_empty(env: &Env) -> bool {
    let blobs = env.home().join("store/blobs/sha256");
    !blobs.exists() || std::fs::read_dir(&blobs).unwrap().next().is_none()
}

#[test]
fn save_and_load_round_trip_plain_and_gzip() {
    let a = Env::new();
    let (tar, digest) = saved(&a);
    let b = Env::new();
    let f = b.path("in.tar");
    std::fs::write(&f, &tar).unwrap();
    b.wpkg(&["load", "-i", f.to_str().unwrap()])
        .ok()
        .stdout_has(&format!("loaded hello:moved {digest}"));
    b.wpkg(&["run", "hello:moved"])
        .ok()
        .stdout_has("Moved, world!");

    let c = Env::new();
    let gz = c.path("in.tar.gz");
    let mut enc = flate2_like_gzip(&tar);
    std::fs::write(&gz, &mut enc).unwrap();
    c.wpkg(&["load", "-i", gz.to_str().unwrap()]).ok();
    c.wpkg(&["inspect", "hello:moved"]).ok().stdout_has(&digest);
}

/// gzip via the system's `gzip`, so the test does not trust wpkg's decoder alone.
fn flate2_like_gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut c = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip is needed");
    c.stdin.take().unwrap().write_all(data).unwrap();
    c.wait_with_output().unwrap().stdout
}

#[test]
fn damaged_archives_are_refused_without_touching_the_store() {
    let a = Env::new();
    let (tar, _) = saved(&a);
    let b = Env::new();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            tar[..tar.len() / 2].to_vec(),
            "cannot load the archive",
        ),
        ("empty", vec![], "cannot load the archive"),
        (
            "garbage",
            b"not a tar file at all, sorry".repeat(40),
            "cannot load the archive",
        ),
        (
            "flipped",
            {
                // Flip a byte inside the wasm blob.
                let mut t = tar.clone();
                let at = t
                    .windows(4)
                    .position(|w| w == b"\0asm")
                    .expect("the wasm is in the tar");
                t[at + 1000] ^= 0x55;
                t
            },
            "damaged",
        ),
    ];
    for (name, data, msg) in cases {
        let f = b.path(&format!("{name}.tar"));
        std::fs::write(&f, data).unwrap();
        b.wpkg(&["load", "-i", f.to_str().unwrap()])
            .code(125)
            .stderr_has(msg);
        assert!(store_is_empty(&b), "{name} left blobs in the store");
    }
    b.wpkg(&["images", "--json"]).ok().stdout_has("[]");
}

/// `tar` with index.json replaced by `edit(index.json)`.
fn with_index(tar: &[u8], edit: impl Fn(&str) -> String) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    for entry in tar::Archive::new(tar).entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        if path.trim_start_matches("./") == "index.json" {
            data = edit(std::str::from_utf8(&data).unwrap()).into_bytes();
        }
        let mut header = entry.header().clone();
        header.set_size(data.len() as u64);
        header.set_cksum();
        out.append(&header, &data[..]).unwrap();
    }
    out.into_inner().unwrap()
}

#[test]
fn a_ref_name_naming_another_digest_is_refused() {
    let a = Env::new();
    let (tar, digest) = saved(&a);
    let b = Env::new();
    let other = format!("sha256:{}", "0".repeat(64));
    let lying = with_index(&tar, |index| {
        index.replace(
            "\"docker.io/library/hello:moved\"",
            &format!("\"docker.io/library/hello:moved@{other}\""),
        )
    });
    assert_ne!(lying, tar, "the ref name was not found in index.json");
    let f = b.path("lying.tar");
    std::fs::write(&f, lying).unwrap();
    b.wpkg(&["load", "-i", f.to_str().unwrap()])
        .code(125)
        .stderr_has("names another digest");
    assert!(store_is_empty(&b));
    // Control: the same rewrite naming the real digest loads.
    let honest = with_index(&tar, |index| {
        index.replace(
            "\"docker.io/library/hello:moved\"",
            &format!("\"docker.io/library/hello:moved@{digest}\""),
        )
    });
    std::fs::write(&f, honest).unwrap();
    b.wpkg(&["load", "-i", f.to_str().unwrap()]).ok();
}
