//! The README's main demo, as a test: the same sequence `scripts/demo.sh` runs.

#[test]
fn canonical_demo_denies_then_allows_with_one_line() {
    let mut lines = Vec::new();
    let result = wpkg_tests::demo::run(&mut |l| lines.push(l.to_owned()));
    assert!(
        result.is_ok(),
        "{}\n{}",
        lines.join("\n"),
        result.unwrap_err()
    );
    assert!(lines.iter().any(|l| l.contains("HttpRequestDenied")));
    assert!(lines.last().unwrap().starts_with("demo passed"));
}
