//! The fuzz targets (`fuzz/targets.rs`, run by cargo-fuzz with `bash fuzz/run.sh`)
//! replayed on stable as part of `cargo test`: every seed in `fuzz/corpus/NAME` and
//! every saved crash in `fuzz/regressions/NAME` goes through its target, so a parser
//! change that breaks a seed, or brings back a crash the fuzzer once found, fails here.

#[path = "../../fuzz/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The directory names under `dir`, sorted (none when it does not exist).
fn subdirectories(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut out: Vec<String> = entries
        .map(|e| e.unwrap_or_else(|e| panic!("{}: {e}", dir.display())))
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// The files in `dir`, sorted (none when it does not exist).
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| {
            e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

fn target_names() -> Vec<String> {
    let mut names: Vec<String> = targets::TARGETS
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn every_target_has_a_corpus_directory_and_nothing_else_does() {
    assert_eq!(
        subdirectories(&fuzz_dir().join("corpus")),
        target_names(),
        "fuzz/corpus/ must hold one directory per target of fuzz/targets.rs TARGETS"
    );
    // Crashes saved for a target that was renamed or removed would stop being replayed.
    for dir in subdirectories(&fuzz_dir().join("regressions")) {
        assert!(
            target_names().contains(&dir),
            "fuzz/regressions/{dir} is not the name of a target"
        );
    }
}

#[test]
fn seeds_and_saved_crashes_replay_without_a_panic() {
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (name, target) in targets::TARGETS {
        let seeds = files(&fuzz_dir().join("corpus").join(name));
        assert!(
            !seeds.is_empty(),
            "fuzz/corpus/{name} has no seed, so the replay of `{name}` would prove nothing"
        );
        let saved = files(&fuzz_dir().join("regressions").join(name));
        for f in seeds.iter().chain(&saved) {
            let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                failures.push(f.display().to_string());
            }
            replayed += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {replayed} inputs panicked (messages above):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}
