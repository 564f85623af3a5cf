//! Building a project for `wpkg build` and `wpkg run DIR`: flags and environment into a
//! [`BuildRequest`], a summary line out.

use std::path::Path;

use anyhow::{bail, Context, Result};
use wpkg_pipeline::project::{self, BuildFormat, BuildRequest, Built};
use wpkg_store::artifact::WasmKind;

use crate::env_vars;

/// Builds the project at `path` into the local store, printing a summary unless `quiet`.
pub fn build(
    path: &Path,
    tag: Option<&str>,
    run_build_command: bool,
    format: BuildFormat,
    quiet: bool,
) -> Result<Built> {
    let tag = match tag {
        Some(t) => {
            let r = crate::commands::parse_ref(t)?;
            if r.digest.is_some() {
                bail!("-t {t}: a tag cannot contain a digest; give NAME[:TAG]");
            }
            Some(r)
        }
        None => None,
    };
    let created = match std::env::var(env_vars::SOURCE_DATE_EPOCH) {
        Ok(v) if !v.is_empty() => v
            .trim()
            .parse::<i64>()
            .with_context(|| format!("SOURCE_DATE_EPOCH=`{v}` is not a number of seconds"))?,
        _ => 0,
    };
    let store = crate::settings::open_store()?;
    let built = project::build(
        &store,
        &BuildRequest {
            path,
            tag,
            run_build_command,
            created,
            format,
        },
        &mut |cmd| {
            if !quiet {
                eprintln!("running build command: {cmd}");
            }
        },
    )?;
    if !quiet {
        eprintln!(
            "built {}{} ({}, {} layer{}, {})",
            built.reference.familiar(),
            if format == BuildFormat::Image {
                " as a wasi/wasm container image"
            } else {
                ""
            },
            if built.kind == WasmKind::Component {
                "component"
            } else {
                "core module"
            },
            built.layers,
            if built.layers == 1 { "" } else { "s" },
            crate::commands::human_size(built.bytes),
        );
    }
    Ok(built)
}
