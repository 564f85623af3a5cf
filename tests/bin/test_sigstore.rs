//! `test-sigstore --dir DIR [--timeout SECS]`: the loopback Sigstore instance of the
//! test harness (OIDC token endpoint shaped like GitHub Actions', Fulcio, Rekor) as a
//! process, for `scripts/try-action.sh` and `bench/sign.sh`. Writes to DIR:
//! `trusted_root.json`, `trust_config.json`, and `env` (shell `export` lines:
//! ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN, WPKG_FULCIO_URL, WPKG_REKOR_URL,
//! WPKG_TRUSTED_ROOT, TEST_SIGSTORE_ISSUER, TEST_SIGSTORE_IDENTITY,
//! TEST_SIGSTORE_TRUST_CONFIG); prints `ready`; serves until it is killed, or for
//! SECS seconds (default 900).

use std::path::PathBuf;
use std::time::Duration;

fn main() {
    let mut dir = None;
    let mut timeout = 900u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = args.next().map(PathBuf::from),
            "--timeout" => {
                timeout = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| usage("--timeout takes seconds"))
            }
            _ => usage(&format!("unknown argument `{a}`")),
        }
    }
    let dir = dir.unwrap_or_else(|| usage("--dir DIR is required"));
    std::fs::create_dir_all(&dir).unwrap();
    let ts = wpkg_tests::sigstore_services::TestSigstore::start(&dir);
    std::fs::write(dir.join("env"), ts.env_lines()).unwrap();
    println!("ready");
    std::thread::sleep(Duration::from_secs(timeout));
    drop(ts);
}

fn usage(msg: &str) -> ! {
    eprintln!("test-sigstore: {msg}\nusage: test-sigstore --dir DIR [--timeout SECS]");
    std::process::exit(2)
}
