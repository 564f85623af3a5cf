//! One module per command. Each has an `Args` struct with `run()`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use wpkg_spec::Reference;

pub mod blob;
pub mod build;
pub mod completions;
pub mod images;
pub mod inspect;
pub mod login;
pub mod new;
pub mod push;
pub mod rm;
pub mod run;
pub mod save;
pub mod schema;
pub mod sign;
pub mod tag;
pub mod trust;
pub mod verify;

/// Parses a reference given on the command line.
pub fn parse_ref(s: &str) -> Result<Reference> {
    Ok(s.parse::<Reference>()?)
}

/// Parses several references given on the command line.
pub fn parse_refs(refs: &[String]) -> Result<Vec<Reference>> {
    refs.iter().map(|r| parse_ref(r)).collect()
}

/// Writes to stdout, turning a closed pipe into a quiet success.
pub fn out(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
        .context("writing to stdout")
}

/// Success.
pub fn ok() -> Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}

/// Formats a byte count for people.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}
