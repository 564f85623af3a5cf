//! `wpkg completions SHELL` and the hidden `wpkg man --out DIR`: shell completions and
//! man pages generated from the argument definitions, for packagers and the release
//! archives.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Command};
use clap_complete::Shell;

/// Print shell completions for wpkg
#[derive(Args)]
#[command(
    after_help = "Examples:\n  wpkg completions bash > ~/.local/share/bash-completion/completions/wpkg\n  \
wpkg completions zsh > \"${fpath[1]}/_wpkg\"\n  \
wpkg completions fish > ~/.config/fish/completions/wpkg.fish\n  \
wpkg completions powershell >> $PROFILE"
)]
pub struct CompletionsArgs {
    /// The shell.
    shell: Shell,
}

impl CompletionsArgs {
    /// Runs the command; `cli` is wpkg's whole command line definition.
    pub fn run(self, mut cli: Command) -> Result<ExitCode> {
        let mut text = Vec::new();
        clap_complete::generate(self.shell, &mut cli, "wpkg", &mut text);
        super::out(&String::from_utf8_lossy(&text))?;
        super::ok()
    }
}

/// Write man pages for wpkg and each command (wpkg.1, wpkg-run.1, ...)
#[derive(Args)]
pub struct ManArgs {
    /// The directory to write them into (created if missing).
    #[arg(long)]
    out: PathBuf,
}

impl ManArgs {
    /// Runs the command; `cli` is wpkg's whole command line definition.
    pub fn run(self, cli: Command) -> Result<ExitCode> {
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        // clap names are `&'static str`: this short-lived command leaks a few.
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let version = leak(cli.get_version().unwrap_or_default().to_owned());
        let mut pages = vec![("wpkg".to_owned(), cli.clone())];
        for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = format!("wpkg-{}", sub.get_name());
            pages.push((name.clone(), sub.clone().name(leak(name)).version(version)));
        }
        for (name, page) in pages {
            let mut text = Vec::new();
            clap_mangen::Man::new(page)
                .render(&mut text)
                .context("rendering a man page")?;
            let path = self.out.join(format!("{name}.1"));
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        eprintln!("wrote man pages to {}", self.out.display());
        super::ok()
    }
}
