//! `wpkg build [DIR] [-t NAME:TAG]`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use wpkg_spec::{Manifest, Reference};

use crate::env_vars;
use crate::settings::Paths;

/// Pack a .wasm and its wpkg.toml into an OCI artifact in the local store
#[derive(Args)]
#[command(
    after_help = "Runs `package.build` first when wpkg.toml gives one, then reads `package.wasm`.\n\
The build is reproducible: the same inputs give the same digest (set SOURCE_DATE_EPOCH to stamp a time).\n\n\
Example: wpkg build examples/hello -t hello:dev"
)]
pub struct BuildArgs {
    /// The project directory holding wpkg.toml (or the path of a wpkg.toml).
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Name and tag; default: the package's name and version.
    #[arg(short, long, value_name = "NAME[:TAG]")]
    pub tag: Option<String>,
    /// Do not run `package.build`; use the .wasm as it is.
    #[arg(long)]
    pub no_build_command: bool,
    /// Print only the digest.
    #[arg(short, long)]
    pub quiet: bool,
}

/// The result of a build.
pub struct Built {
    /// The tag written.
    pub reference: Reference,
    /// The manifest digest.
    pub digest: String,
}

/// Reads and parses `wpkg.toml` from a directory or file path.
pub fn read_manifest(path: &Path) -> Result<(PathBuf, Manifest)> {
    let file = if path.is_dir() {
        path.join("wpkg.toml")
    } else {
        path.to_owned()
    };
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "cannot read {}: give a directory with a wpkg.toml, or its path",
            file.display()
        )
    })?;
    let manifest =
        Manifest::parse(&text).with_context(|| format!("{} is invalid", file.display()))?;
    let dir = file
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    Ok((dir, manifest))
}

/// Builds the project at `path` into the store.
pub fn build(
    path: &Path,
    tag: Option<&str>,
    run_build_command: bool,
    quiet: bool,
) -> Result<Built> {
    let (dir, manifest) = read_manifest(path)?;
    let reference: Reference = match tag {
        Some(t) => {
            let r = super::parse_ref(t)?;
            if r.digest.is_some() {
                bail!("-t {t}: a tag cannot contain a digest; give NAME[:TAG]");
            }
            r
        }
        None => format!("{}:{}", manifest.package.name, manifest.package.version)
            .parse()
            .with_context(|| {
                format!(
                    "the package version `{}` is not a valid tag; pass -t NAME:TAG",
                    manifest.package.version
                )
            })?,
    };
    if let (Some(cmd), true) = (&manifest.package.build, run_build_command) {
        if !quiet {
            eprintln!("running build command: {cmd}");
        }
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(&dir)
            .stdout(std::process::Stdio::from(std::io::stderr()))
            .status()
            .with_context(|| format!("cannot start the build command `{cmd}`"))?;
        if !status.success() {
            bail!("the build command `{cmd}` failed ({status}); nothing was written");
        }
    }
    let wasm_path = dir.join(&manifest.package.wasm);
    let wasm = std::fs::read(&wasm_path).with_context(|| {
        format!(
            "cannot read the wasm file {} (package.wasm); build it first{}",
            wasm_path.display(),
            if manifest.package.build.is_some() {
                ""
            } else {
                " or add `build = \"...\"` to [package]"
            }
        )
    })?;
    let created = match std::env::var(env_vars::SOURCE_DATE_EPOCH) {
        Ok(v) if !v.is_empty() => v
            .trim()
            .parse::<i64>()
            .with_context(|| format!("SOURCE_DATE_EPOCH=`{v}` is not a number of seconds"))?,
        _ => 0,
    };
    let file_name = wasm_path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("module.wasm")
        .to_owned();
    let built = wpkg_oci::artifact::build(&wpkg_oci::artifact::BuildInput {
        manifest: &manifest,
        project_dir: &dir,
        wasm: &wasm,
        wasm_file_name: &file_name,
        created,
    })
    .context("nothing was written")?;
    let store = Paths::from_env()?.open_store()?;
    wpkg_oci::artifact::store_built(&store, &built, &reference)?;
    if !quiet {
        eprintln!(
            "built {} ({}, {} layer{}, {})",
            reference.familiar(),
            if built.kind == wpkg_oci::artifact::WasmKind::Component {
                "component"
            } else {
                "core module"
            },
            built.layers.len(),
            if built.layers.len() == 1 { "" } else { "s" },
            super::human_size(built.layers.iter().map(|l| l.len() as u64).sum()),
        );
    }
    Ok(Built {
        reference,
        digest: built.descriptor.digest,
    })
}

impl BuildArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let b = build(
            &self.path,
            self.tag.as_deref(),
            !self.no_build_command,
            self.quiet,
        )?;
        super::out(&format!("{}\n", b.digest))?;
        super::ok()
    }
}
