//! `cargo run -p wpkg-tests --bin demo`: the canonical wpkg demo, narrated.

fn main() -> std::process::ExitCode {
    match wpkg_tests::demo::run(&mut |line| println!("{line}")) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo FAILED: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
