//! `wpkg save` / `wpkg load`: OCI layout tarballs between stores.

use wpkg_tests::sigstore_services::TestSigstore;
use wpkg_tests::{command_manifest, guest, Env};

use crate::keyless::{ci_env, run_with};

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
    // Loaded content is verified like pulled content: unsigned, it is refused; the
    // operator's explicit way out runs it, with a warning.
    b.wpkg(&["run", "hello:moved"])
        .code(125)
        .stderr_has("refusing to run hello:moved");
    b.wpkg(&["run", "--insecure-skip-verify", "hello:moved"])
        .ok()
        .stdout_has("Moved, world!")
        .stderr_has("without checking its signature");

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

/// A signed image saved, loaded on another machine and run there: the signature travels
/// in the archive and verify-before-run applies as after a pull (classic key signatures).
#[test]
fn key_signatures_travel_with_save_and_load() {
    let a = Env::new();
    let key = a.path("cosign");
    a.wpkg_with(
        &["keygen", "--output-key-prefix", key.to_str().unwrap()],
        &[("COSIGN_PASSWORD", "")],
        None,
    )
    .ok();
    let (unsigned, digest) = saved(&a);
    a.wpkg_with(
        &[
            "sign",
            "hello:moved",
            "--key",
            &format!("{}.key", key.display()),
        ],
        &[("COSIGN_PASSWORD", "")],
        None,
    )
    .ok();
    let signed = a.path("signed.tar");
    a.wpkg(&["save", "hello:moved", "-o", signed.to_str().unwrap()])
        .ok();
    let index = index_of(&std::fs::read(&signed).unwrap());
    assert!(
        index.contains(&format!("hello:{}.sig", digest.replace(':', "-"))),
        "{index}"
    );
    let sig_tag = format!("{}.sig", digest.replace(':', "-"));
    // Other tools read the archive, the signature included (skopeo: see scripts/setup.sh).
    let skopeo = std::process::Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!(
            "oci-archive:{}:docker.io/library/hello:{sig_tag}",
            signed.display()
        ))
        .output()
        .expect("skopeo is missing: run `bash scripts/setup.sh` (apt-get install skopeo)");
    assert!(
        String::from_utf8_lossy(&skopeo.stdout)
            .contains("application/vnd.dev.cosign.simplesigning.v1+json"),
        "{skopeo:?}"
    );

    let pub_key = format!("{}.pub", key.display());
    let b = Env::new();
    b.wpkg(&["load", "-i", signed.to_str().unwrap()])
        .ok()
        .stdout_has(&format!("loaded hello:moved {digest}"))
        .stderr_has("signature material");
    // No trust policy: refused. The publisher's key: verified, and it runs.
    let refused = b
        .wpkg(&["run", "hello:moved"])
        .code(125)
        .stderr_has("no trust policy scope covers");
    // One fix, said once (the refusal's hint is inside the "refusing to run" one).
    assert_eq!(refused.stderr.matches("hint:").count(), 1, "{refused:#?}");
    b.wpkg(&["trust", "add", "hello", "--key", &pub_key]).ok();
    b.wpkg(&["run", "hello:moved"])
        .ok()
        .stdout_has("Moved, world!")
        .stderr_has("verified hello@");
    // Control: the same image saved before it was signed is refused under that policy.
    let c = Env::new();
    let f = c.path("unsigned.tar");
    std::fs::write(&f, &unsigned).unwrap();
    c.wpkg(&["load", "-i", f.to_str().unwrap()])
        .ok()
        .stderr_has("holds no signatures");
    c.wpkg(&["trust", "add", "hello", "--key", &pub_key]).ok();
    c.wpkg(&["run", "hello:moved"])
        .code(125)
        .stderr_has("refusing to run");
    // Another key's policy refuses the signed archive.
    let d = Env::new();
    let other = d.path("other");
    d.wpkg_with(
        &["keygen", "--output-key-prefix", other.to_str().unwrap()],
        &[("COSIGN_PASSWORD", "")],
        None,
    )
    .ok();
    d.wpkg(&["load", "-i", signed.to_str().unwrap()]).ok();
    d.wpkg(&[
        "trust",
        "add",
        "hello",
        "--key",
        &format!("{}.pub", other.display()),
    ])
    .ok();
    d.wpkg(&["run", "hello:moved"])
        .code(125)
        .stderr_has("refusing to run");
    // A built image stays the user's own: no signature needed.
    a.wpkg(&["run", "hello:moved"])
        .ok()
        .stdout_has("Moved, world!");
}

/// Keyless (v3 bundle, referrers index) signatures travel too.
#[test]
fn keyless_bundles_travel_with_save_and_load() {
    let a = Env::new();
    let ts = TestSigstore::start(a.dir.path());
    let (_, digest) = saved(&a);
    run_with(&a, &["sign", "hello:moved"], &ci_env(&ts)).ok();
    let signed = a.path("signed.tar");
    a.wpkg(&["save", "hello:moved", "-o", signed.to_str().unwrap()])
        .ok();
    let index = index_of(&std::fs::read(&signed).unwrap());
    assert!(
        index.contains(&format!("hello:{}\"", digest.replace(':', "-"))),
        "{index}"
    );
    let b = Env::new();
    b.wpkg(&["load", "-i", signed.to_str().unwrap()]).ok();
    b.wpkg(&[
        "trust",
        "add",
        "hello",
        "--issuer",
        &ts.issuer,
        "--subject",
        &ts.identity,
    ])
    .ok();
    let root = [(
        "WPKG_TRUSTED_ROOT",
        ts.trusted_root.to_str().unwrap().to_owned(),
    )];
    run_with(&b, &["run", "hello:moved"], &root)
        .ok()
        .stdout_has("Moved, world!")
        .stderr_has("keyless signature by");
    // Control: another identity's policy refuses it.
    let c = Env::new();
    c.wpkg(&["load", "-i", signed.to_str().unwrap()]).ok();
    c.wpkg(&[
        "trust",
        "add",
        "hello",
        "--issuer",
        &ts.issuer,
        "--subject",
        "someone@else.example",
    ])
    .ok();
    run_with(&c, &["run", "hello:moved"], &root)
        .code(125)
        .stderr_has("refusing to run");
}

/// The `index.json` of a saved archive.
fn index_of(tar: &[u8]) -> String {
    let mut archive = tar::Archive::new(tar);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == "index.json" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            return s;
        }
    }
    panic!("no index.json in the archive");
}
