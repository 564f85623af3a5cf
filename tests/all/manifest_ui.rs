//! Golden tests for wpkg.toml: each `tests/ui/*.toml` has a `.json` with the expected
//! normalized manifest or a `.err` with the expected error. `WPKG_BLESS=1` rewrites
//! the expectations; review the diff.

use wpkg_spec::Manifest;
use wpkg_tests::root;

fn bless() -> bool {
    std::env::var_os("WPKG_BLESS").is_some()
}

#[test]
fn ui_cases() {
    let dir = root().join("tests/ui");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 20,
        "expected the ui cases in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for case in cases {
        let src = std::fs::read_to_string(&case).unwrap();
        let (ext, actual) = match Manifest::parse(&src) {
            Ok(m) => ("json", serde_json::to_string_pretty(&m).unwrap() + "\n"),
            Err(e) => ("err", format!("{e}\n")),
        };
        let expected_path = case.with_extension(ext);
        let other = case.with_extension(if ext == "json" { "err" } else { "json" });
        if bless() {
            std::fs::write(&expected_path, &actual).unwrap();
            let _ = std::fs::remove_file(&other);
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{}:\n--- expected\n{expected}--- actual\n{actual}",
                case.display()
            )),
            Err(_) => failures.push(format!(
                "{}: expected {} to exist; got\n{actual}",
                case.display(),
                expected_path.display()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} ui case(s) differ (WPKG_BLESS=1 to update):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn json_schema_has_not_drifted() {
    let path = root().join("docs/wpkg.schema.json");
    let actual = wpkg_spec::manifest::json_schema();
    if bless() {
        std::fs::write(&path, &actual).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == actual,
        "docs/wpkg.schema.json is out of date: run `WPKG_BLESS=1 cargo test -p wpkg-tests json_schema` and commit it"
    );
}
