//! Project templates for `wpkg new`: embedded in the binary (no network), written into a
//! new directory all at once or not at all.
//!
//! A template's files are text with two placeholders: `{{name}}` (the package name) and
//! `{{crate_name}}` (the name as a Rust identifier). Files whose names would make tools
//! treat the template directory as something else in this repository are stored under
//! another name (`Cargo.toml.tmpl`, `gitignore`) and written under their real one.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// One template.
pub struct Template {
    /// Its name on the command line, e.g. `http-rust`.
    pub name: &'static str,
    /// One line on what it makes.
    pub summary: &'static str,
    /// An HTTP service (else a command).
    pub http: bool,
    /// The toolchain its build command needs, and how to install it.
    pub needs: &'static str,
    /// The command that installs the toolchain's project dependencies, if any, run by the
    /// user in the new directory before the first build.
    pub prepare: Option<&'static str>,
    /// The files: (path in the new project, contents with placeholders).
    files: &'static [(&'static str, &'static str)],
}

macro_rules! files {
    ($dir:literal: $($stored:literal => $written:literal),* $(,)?) => {
        &[$(($written, include_str!(concat!("../templates/", $dir, "/", $stored)))),*]
    };
}

/// Every template, in the order `wpkg new --list` shows them.
pub const TEMPLATES: &[Template] = &[
    Template {
        name: "http-rust",
        http: true,
        summary: "HTTP service in Rust (wasi:http): / answers, /fetch?url= calls out when allowed",
        needs: "Rust with the wasm32-wasip2 target: rustup target add wasm32-wasip2",
        prepare: None,
        files: files!("http-rust":
            "Cargo.toml.tmpl" => "Cargo.toml",
            "src/lib.rs" => "src/lib.rs",
            "wpkg.toml" => "wpkg.toml",
            "README.md" => "README.md",
            "gitignore" => ".gitignore",
        ),
    },
    Template {
        name: "command-rust",
        http: false,
        summary: "Command-line program in Rust (wasi:cli): greets its arguments",
        needs: "Rust with the wasm32-wasip2 target: rustup target add wasm32-wasip2",
        prepare: None,
        files: files!("command-rust":
            "Cargo.toml.tmpl" => "Cargo.toml",
            "src/main.rs" => "src/main.rs",
            "wpkg.toml" => "wpkg.toml",
            "README.md" => "README.md",
            "gitignore" => ".gitignore",
        ),
    },
    Template {
        name: "http-js",
        http: true,
        summary: "HTTP service in JavaScript (componentize-js): / answers, /fetch?url= calls out when allowed",
        needs: "Node.js 20+ and componentize-js: npm install in the project \
                (or npm install -g @bytecodealliance/componentize-js@0.23.0)",
        prepare: Some("npm install"),
        files: files!("http-js":
            "package.json" => "package.json",
            "src/app.js" => "src/app.js",
            "wit/app.wit" => "wit/app.wit",
            "wpkg.toml" => "wpkg.toml",
            "README.md" => "README.md",
            "gitignore" => ".gitignore",
        ),
    },
    Template {
        name: "http-python",
        http: true,
        summary: "HTTP service in Python (componentize-py): / answers, /fetch?url= calls out when allowed",
        needs: "Python 3.10+ and componentize-py 0.25.1: a venv in the project \
                (or pip install componentize-py==0.25.1)",
        prepare: Some("python3 -m venv .venv && .venv/bin/pip install -r requirements.txt"),
        files: files!("http-python":
            "app.py" => "app.py",
            "requirements.txt" => "requirements.txt",
            "wit/service.wit" => "wit/service.wit",
            "wpkg.toml" => "wpkg.toml",
            "README.md" => "README.md",
            "gitignore" => ".gitignore",
        ),
    },
];

/// Why a project was not created. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// No template has that name.
    #[error("there is no template `{name}`")]
    UnknownTemplate {
        /// The name asked for.
        name: String,
    },
    /// The directory exists and holds something.
    #[error("`{}` already exists and is not empty", dir.display())]
    NotEmpty {
        /// The target directory.
        dir: PathBuf,
    },
    /// The target exists and is not a directory.
    #[error("`{}` already exists and is not a directory", dir.display())]
    NotADirectory {
        /// The target.
        dir: PathBuf,
    },
    /// The package name (from the directory or given) is not usable.
    #[error("`{name}` cannot be a package name: use lowercase letters, digits, `-` and `_`, starting with a letter")]
    BadName {
        /// The name.
        name: String,
    },
    /// Writing failed; what was written so far was removed.
    #[error("cannot write `{}`", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Finds a template by name.
pub fn find(name: &str) -> Result<&'static Template, ScaffoldError> {
    TEMPLATES
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| ScaffoldError::UnknownTemplate { name: name.into() })
}

/// Checks a package name: it must be a valid wpkg package name and a Cargo, npm and
/// Python project name, so `[a-z][a-z0-9_-]*`, at most 64 characters.
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ScaffoldError::BadName { name: name.into() })
    }
}

/// The package name a directory suggests: its last component, lowercased, with spaces
/// and dots turned into `-`.
pub fn name_from_dir(dir: &Path) -> String {
    let base = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    base.to_ascii_lowercase().replace([' ', '.'], "-")
}

/// Writes `template` as a new project named `name` into `dir`, which must not exist or
/// be an empty directory. The files are written into a staging directory first (beside a
/// new `dir`, inside an empty one) and renamed into place, so `dir` ends up complete or
/// as it was. Returns the paths written,
/// relative to `dir`.
pub fn create(
    template: &Template,
    name: &str,
    dir: &Path,
) -> Result<Vec<&'static str>, ScaffoldError> {
    check_name(name)?;
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ScaffoldError::Write { path, source }
    };
    let exists = match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            let mut entries = fs::read_dir(dir).map_err(write_err(dir))?;
            if entries.next().is_some() {
                return Err(ScaffoldError::NotEmpty { dir: dir.into() });
            }
            true
        }
        Ok(_) => return Err(ScaffoldError::NotADirectory { dir: dir.into() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(write_err(dir)(e)),
    };
    let crate_name = name.replace('-', "_");
    let render = |staging: &Path| -> Result<(), ScaffoldError> {
        for (path, text) in template.files {
            let dest = staging.join(path);
            if let Some(d) = dest.parent() {
                fs::create_dir_all(d).map_err(write_err(&dir.join(path)))?;
            }
            let text = text
                .replace("{{name}}", name)
                .replace("{{crate_name}}", &crate_name);
            fs::write(&dest, text).map_err(write_err(&dir.join(path)))?;
        }
        Ok(())
    };
    let staging_in = |at: &Path| {
        tempfile::Builder::new()
            .prefix(".wpkg-new-")
            .tempdir_in(at)
            .map_err(write_err(at))
    };
    if exists {
        // An existing empty directory (`.` included) keeps its inode, mode and owner:
        // stage inside it, then move each top-level entry out of the staging directory.
        let staging = staging_in(dir)?;
        render(staging.path())?;
        let mut moved = Vec::new();
        for top in top_level(template) {
            if let Err(source) = fs::rename(staging.path().join(top), dir.join(top)) {
                for m in moved {
                    let _ =
                        fs::remove_dir_all(dir.join(m)).or_else(|_| fs::remove_file(dir.join(m)));
                }
                return Err(ScaffoldError::Write {
                    path: dir.join(top),
                    source,
                });
            }
            moved.push(top);
        }
    } else {
        // A new directory: its missing parents, then one rename of the whole staging
        // directory. On failure, the parents this made are removed again.
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let first_missing = parent
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
            .last()
            .map(Path::to_path_buf);
        let undo = || {
            if let Some(m) = &first_missing {
                let _ = fs::remove_dir_all(m);
            }
        };
        let result = (|| {
            fs::create_dir_all(&parent).map_err(write_err(&parent))?;
            let staging = staging_in(&parent)?;
            render(staging.path())?;
            let staged = staging.keep();
            fs::rename(&staged, dir).map_err(|source| {
                let _ = fs::remove_dir_all(&staged);
                ScaffoldError::Write {
                    path: dir.into(),
                    source,
                }
            })
        })();
        if result.is_err() {
            undo();
        }
        result?;
    }
    Ok(template.files.iter().map(|(p, _)| *p).collect())
}

/// The distinct first components of a template's paths (`src`, `wpkg.toml`, ...).
fn top_level(template: &Template) -> Vec<&'static str> {
    let mut tops: Vec<&'static str> = Vec::new();
    for (path, _) in template.files {
        let top = path.split('/').next().unwrap_or(path);
        if !tops.contains(&top) {
            tops.push(top);
        }
    }
    tops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_grants_nothing_and_shows_every_capability() {
        for t in TEMPLATES {
            let (_, manifest) = t
                .files
                .iter()
                .find(|(p, _)| *p == "wpkg.toml")
                .unwrap_or_else(|| panic!("{} has no wpkg.toml", t.name));
            let text = manifest
                .replace("{{name}}", "probe")
                .replace("{{crate_name}}", "probe");
            let m = wpkg_spec::manifest::Manifest::parse(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", t.name));
            assert!(m.package.build.is_some(), "{}: package.build", t.name);
            assert_eq!(
                m.capabilities,
                wpkg_spec::manifest::Capabilities::default(),
                "{} grants something",
                t.name
            );
            let is_http = text.contains("type = \"http\"");
            let mut shown = vec!["env", "env_required", "files", "mounts"];
            if is_http {
                shown.push("outbound_http");
            }
            for key in shown {
                assert!(
                    text.contains(&format!("# {key} = ")),
                    "{}: `{key}` is not shown commented out",
                    t.name
                );
            }
        }
    }

    #[test]
    fn a_project_is_written_whole_or_not_at_all() {
        let tmp = tempfile::tempdir().unwrap();
        let t = find("http-rust").unwrap();
        let dir = tmp.path().join("svc");
        let files = create(t, "svc", &dir).unwrap();
        assert!(files.contains(&".gitignore"));
        let cargo = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"svc\""), "{cargo}");
        assert!(!fs::read_to_string(dir.join("src/lib.rs"))
            .unwrap()
            .contains("{{"));
        // Again into the same, now non-empty, directory: refused, nothing changed.
        assert!(matches!(
            create(t, "svc", &dir),
            Err(ScaffoldError::NotEmpty { .. })
        ));
        assert_eq!(fs::read_to_string(dir.join("Cargo.toml")).unwrap(), cargo);
        // An empty directory is filled; a bad name writes nothing.
        let empty = tmp.path().join("empty");
        fs::create_dir(&empty).unwrap();
        create(t, "empty", &empty).unwrap();
        assert!(empty.join("wpkg.toml").is_file());
        let bad = tmp.path().join("Bad");
        assert!(matches!(
            create(t, "Bad", &bad),
            Err(ScaffoldError::BadName { .. })
        ));
        assert!(!bad.exists());
        // An empty directory keeps its inode (a shell inside it stays inside it).
        use std::os::unix::fs::MetadataExt;
        let here = tmp.path().join("here");
        fs::create_dir(&here).unwrap();
        let inode = fs::metadata(&here).unwrap().ino();
        create(t, "here", &here.join(".")).unwrap();
        assert_eq!(fs::metadata(&here).unwrap().ino(), inode);
        assert!(here.join("src/lib.rs").is_file());
        assert_eq!(
            fs::read_dir(&here).unwrap().count(),
            5,
            "no staging dir left inside"
        );
        // Missing parents are made.
        create(t, "deep", &tmp.path().join("a/b/deep")).unwrap();
        assert!(tmp.path().join("a/b/deep/wpkg.toml").is_file());
        // No staging directory is left behind.
        let left: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".wpkg-new-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
