//! `wpkg new TEMPLATE [DIR]`: a new project from a template built into wpkg.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::scaffold;

/// Start a project from a template (no network needed)
#[derive(Args)]
#[command(
    after_help = "Templates: http-rust, command-rust, http-js, http-python (`wpkg new --list` says \
what each needs). Every template's wpkg.toml grants nothing and shows each capability \
commented out.\n\nExamples:\n  wpkg new http-rust hello        # ./hello, package `hello`\n  \
cd hello && wpkg run . --listen 127.0.0.1:8080\n  wpkg new http-js api --name my-api"
)]
pub struct NewArgs {
    /// The template (see --list).
    #[arg(required_unless_present = "list")]
    template: Option<String>,
    /// Where to create it: a new or empty directory (default: ./TEMPLATE).
    dir: Option<PathBuf>,
    /// The package name (default: the directory's name).
    #[arg(long)]
    name: Option<String>,
    /// List the templates and what each needs.
    #[arg(long, conflicts_with_all = ["template", "dir", "name"])]
    list: bool,
}

impl NewArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        if self.list {
            let mut text = String::new();
            for t in scaffold::TEMPLATES {
                text.push_str(&format!(
                    "{:<14} {}\n{:<14} needs {}\n",
                    t.name, t.summary, "", t.needs
                ));
            }
            super::out(&text)?;
            return super::ok();
        }
        let template = scaffold::find(self.template.as_deref().unwrap_or_default())?;
        let dir = self.dir.unwrap_or_else(|| PathBuf::from(template.name));
        let name = self.name.unwrap_or_else(|| scaffold::name_from_dir(&dir));
        let files = scaffold::create(template, &name, &dir)?;
        eprintln!(
            "created {} `{name}` in {}: {}",
            template.name,
            dir.display(),
            files.join(", ")
        );
        eprintln!("needs {}", template.needs);
        let cd = format!("cd {}", shell_word(&dir.display().to_string()));
        let run = if template.http {
            "wpkg run . --listen 127.0.0.1:8080"
        } else {
            "wpkg run . -- alice"
        };
        match template.prepare {
            Some(prepare) => eprintln!("next: {cd} && {prepare} && {run}"),
            None => eprintln!("next: {cd} && {run}"),
        }
        super::ok()
    }
}

/// `s` quoted for a POSIX shell when it needs it.
fn shell_word(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    {
        s.into()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
