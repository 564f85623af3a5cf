//! Sigstore's own conformance cases (`tests/sigstore-conformance/bundle-verify`, vendored
//! data) through `wpkg verify-blob`, as the suite's CLI protocol drives a client: every
//! case, with the artifact as a file and as its digest. A `_fail` case must exit 1 or
//! 125; any other must exit 0. Prints the counts by category and the check that refused
//! each `_fail` case.

use std::collections::BTreeMap;
use std::path::Path;

use wpkg_tests::Env;

const DEFAULT_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const DEFAULT_ISSUER: &str = "https://token.actions.githubusercontent.com";

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// The category a case counts under: what it is about, from its name.
fn category(name: &str) -> &'static str {
    let n = name.trim_end_matches("_fail");
    if n.starts_with("rekor2-timestamp") || n.contains("tsa") {
        "timestamp authority (RFC 3161)"
    } else if n.starts_with("rekor2-checkpoint") || n.contains("checkpoint") {
        "checkpoint"
    } else if n.starts_with("rekor2") {
        "Rekor v2 entry"
    } else if n.starts_with("managed-key") {
        "managed key"
    } else if n.starts_with("trust-root") || n.contains("wrong-instance") || n.contains("ct-key") {
        "trust root"
    } else if n.starts_with("dsse") || n.starts_with("intoto") {
        "DSSE / in-toto"
    } else if n.starts_with("bundle") || n.starts_with("happy-path") {
        "bundle format"
    } else {
        "Rekor v1 entry and signature"
    }
}

#[test]
fn sigstore_conformance_bundle_verify_cases() {
    let env = Env::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sigstore-conformance/bundle-verify");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 70,
        "the vendored cases are missing: {}",
        root.display()
    );
    // (category) -> [expected to pass: right, total; expected to fail: right, total]
    let mut counts: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
    let mut wrong = Vec::new();
    let mut refusals = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_str().unwrap();
        let should_fail = name.ends_with("_fail");
        let artifact = if dir.join("artifact").exists() {
            dir.join("artifact")
        } else {
            root.join("a.txt")
        };
        let bundle = dir.join("bundle.sigstore.json");
        let read = |f: &str, default: &str| {
            std::fs::read_to_string(dir.join(f))
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| default.to_owned())
        };
        let (identity, issuer) = (
            read("identity", DEFAULT_IDENTITY),
            read("issuer", DEFAULT_ISSUER),
        );
        let digest = format!("sha256:{}", sha256_hex(&artifact));
        for input in [artifact.to_str().unwrap(), digest.as_str()] {
            let mut args = vec!["verify-blob", "--bundle", bundle.to_str().unwrap()];
            let key = dir.join("key.pub");
            let trusted_root = dir.join("trusted_root.json");
            if key.exists() {
                args.extend(["--key", key.to_str().unwrap()]);
            } else {
                args.extend([
                    "--certificate-identity",
                    &identity,
                    "--certificate-oidc-issuer",
                    &issuer,
                ]);
            }
            if trusted_root.exists() {
                args.extend(["--trusted-root", trusted_root.to_str().unwrap()]);
            }
            args.push(input);
            let r = env.wpkg(&args);
            let code = r.code.unwrap_or(-1);
            assert!(
                [0, 1, 125].contains(&code),
                "{name}: exit {code} (a crash?): {}",
                r.stderr
            );
            let c = counts.entry(category(name)).or_default();
            let right = if should_fail { code != 0 } else { code == 0 };
            let slot = if should_fail { 2 } else { 0 };
            c[slot + 1] += 1;
            if right {
                c[slot] += 1;
            } else {
                wrong.push(format!(
                    "{name} ({input}): exit {code}: {}",
                    r.stderr.trim()
                ));
            }
            if should_fail && input == digest {
                let why = r.stderr.lines().next().unwrap_or("").to_owned();
                refusals.push(format!(
                    "  {name}: {}",
                    why.split(": ").skip(1).collect::<Vec<_>>().join(": ")
                ));
            }
        }
    }
    let (mut right, mut total) = (0, 0);
    println!("sigstore-conformance bundle-verify, through wpkg verify-blob (path and digest):");
    println!(
        "{:<34} {:>14} {:>14}",
        "category", "verify (ok)", "refuse (ok)"
    );
    for (cat, [p, pt, f, ft]) in &counts {
        println!(
            "{cat:<34} {:>14} {:>14}",
            format!("{p}/{pt}"),
            format!("{f}/{ft}")
        );
        right += p + f;
        total += pt + ft;
    }
    println!("total: {right}/{total} as expected");
    println!("why each _fail case was refused:\n{}", refusals.join("\n"));
    assert!(
        wrong.is_empty(),
        "cases not as expected:\n{}",
        wrong.join("\n")
    );
}
