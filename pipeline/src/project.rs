//! Building a project directory (`wpkg.toml` + its `.wasm`) into the local store.

use std::path::{Path, PathBuf};

use wpkg_spec::{Manifest, Reference};
use wpkg_store::artifact::{BuildInput, WasmKind};

pub use wpkg_store::artifact::BuildFormat;
use wpkg_store::Store;

use crate::Error;

/// What to build.
#[derive(Clone, Debug)]
pub struct BuildRequest<'a> {
    /// The project directory holding `wpkg.toml`, or the path of a `wpkg.toml`.
    pub path: &'a Path,
    /// The name and tag to write; default: the package's name and version.
    pub tag: Option<Reference>,
    /// Whether to run `package.build` first.
    pub run_build_command: bool,
    /// The creation time stamped into the artifact (seconds since the epoch); `0`
    /// keeps builds reproducible.
    pub created: i64,
    /// The layout to write.
    pub format: BuildFormat,
}

/// What a build wrote.
#[derive(Clone, Debug)]
pub struct Built {
    /// The tag written.
    pub reference: Reference,
    /// The manifest digest.
    pub digest: String,
    /// Component or core module.
    pub kind: WasmKind,
    /// Number of layers.
    pub layers: usize,
    /// Total size of the layers in bytes.
    pub bytes: u64,
}

/// Reads and parses `wpkg.toml` from a directory or file path; returns the project
/// directory and the manifest.
pub fn read_manifest(path: &Path) -> Result<(PathBuf, Manifest), Error> {
    let file = if path.is_dir() {
        path.join("wpkg.toml")
    } else {
        path.to_owned()
    };
    let text = std::fs::read_to_string(&file).map_err(|source| Error::ManifestUnreadable {
        path: file.clone(),
        source,
    })?;
    let manifest = Manifest::parse(&text).map_err(|source| Error::ManifestInvalid {
        path: file.clone(),
        source,
    })?;
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."));
    Ok((dir, manifest))
}

/// Builds the project into `store`. `on_build_command` is told the build command
/// before it runs (its output goes to stderr). Nothing is stored unless every step
/// succeeded.
pub fn build(
    store: &Store,
    req: &BuildRequest<'_>,
    on_build_command: &mut dyn FnMut(&str),
) -> Result<Built, Error> {
    let (dir, manifest) = read_manifest(req.path)?;
    let reference = match &req.tag {
        Some(r) => r.clone(),
        None => format!("{}:{}", manifest.package.name, manifest.package.version)
            .parse()
            .map_err(|_| Error::VersionNotATag {
                version: manifest.package.version.to_string(),
            })?,
    };
    if let (Some(command), true) = (&manifest.package.build, req.run_build_command) {
        on_build_command(command);
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(&dir)
            .stdout(std::process::Stdio::from(std::io::stderr()))
            .status()
            .map_err(|source| Error::BuildCommandStart {
                command: command.clone(),
                source,
            })?;
        if !status.success() {
            return Err(Error::BuildCommandFailed {
                command: command.clone(),
                status,
            });
        }
    }
    let wasm_path = dir.join(&manifest.package.wasm);
    let wasm = std::fs::read(&wasm_path).map_err(|source| Error::WasmUnreadable {
        path: wasm_path.clone(),
        has_build_command: manifest.package.build.is_some(),
        source,
    })?;
    let file_name = wasm_path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("module.wasm")
        .to_owned();
    let built = wpkg_store::artifact::build(&BuildInput {
        manifest: &manifest,
        project_dir: &dir,
        wasm: &wasm,
        wasm_file_name: &file_name,
        created: req.created,
        format: req.format,
    })
    .map_err(Error::Pack)?;
    wpkg_store::artifact::store_built(store, &built, &reference)?;
    Ok(Built {
        reference,
        digest: built.descriptor.digest,
        kind: built.kind,
        layers: built.layers.len(),
        bytes: built.layers.iter().map(|l| l.len() as u64).sum(),
    })
}
