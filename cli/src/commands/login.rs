//! `wpkg login` and `wpkg logout`: credentials where Docker keeps them.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use wpkg_distribution::credentials::{
    normalize_registry, Credential, Credentials, EnvCredential, Secret,
};

use crate::remote::RemoteArgs;

/// Log in to a registry (shared with `docker login`)
#[derive(Args)]
#[command(
    after_help = "The credentials are checked against the registry first, then saved where \
Docker saves them: the credential helper config.json names (credsStore / credHelpers), else \
`auths` in $DOCKER_CONFIG/config.json (default ~/.docker/config.json, mode 0600). The password is \
never taken as a flag: pipe it with --password-stdin, or type it at the prompt.\n\n\
Examples:\n  echo \"$GITHUB_TOKEN\" | wpkg login ghcr.io -u octocat --password-stdin\n  \
wpkg login localhost:5000 -u alice"
)]
pub struct LoginArgs {
    /// The registry (host[:port]); default Docker Hub.
    #[arg(default_value = "docker.io")]
    pub registry: String,
    /// The user name (prompted for on a terminal when missing).
    #[arg(short, long)]
    pub username: Option<String>,
    /// Read the password (or token) from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub remote_args: RemoteArgs,
}

fn registry_name(input: &str) -> Result<String> {
    let r = normalize_registry(input);
    if r.is_empty()
        || !r
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    {
        bail!("`{input}` is not a registry name; give a host with an optional port, like ghcr.io or localhost:5000");
    }
    Ok(r)
}

impl LoginArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let registry = registry_name(&self.registry)?;
        let tty = std::io::stdin().is_terminal();
        let username = match self.username.clone() {
            Some(u) => u,
            None if tty && !self.password_stdin => {
                eprint!("Username for {registry}: ");
                std::io::stderr().flush().ok();
                let mut u = String::new();
                std::io::stdin().lock().read_line(&mut u)?;
                u.trim().to_owned()
            }
            None => bail!("give the user name with -u USER"),
        };
        if username.is_empty() {
            bail!("the user name is empty; give it with -u USER");
        }
        let password = if self.password_stdin {
            let mut p = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut p)
                .context("reading the password from standard input")?;
            p.trim_end_matches(['\n', '\r']).to_owned()
        } else if tty {
            rpassword::prompt_password(format!("Password for {username}@{registry}: "))
                .context("reading the password")?
        } else {
            bail!("no password: pipe it in with --password-stdin (passwords are never taken as a flag)");
        };
        if password.is_empty() {
            bail!("the password is empty");
        }
        let password = Secret::new(password);
        // Check first, with these credentials only, then save: a wrong password is
        // never written.
        let saved = crate::settings::credentials()?;
        let trial = Credentials::new(
            crate::settings::docker_config_dir()?,
            Some(EnvCredential {
                registry: registry.clone(),
                credential: Credential::Basic {
                    username: username.clone(),
                    password: password.clone(),
                },
            }),
        );
        let client = wpkg_distribution::registry::Registry::new(self.remote_args.options(), trial)?;
        client
            .check_login(&registry)
            .with_context(|| format!("cannot log in to {registry}"))?;
        let source = saved
            .store(&registry, &username, &password)
            .with_context(|| format!("logged in to {registry}, but cannot save the credentials"))?;
        eprintln!("Login Succeeded ({username}@{registry}; saved in {source})");
        super::ok()
    }
}

/// Log out of a registry (removes the saved credentials)
#[derive(Args)]
pub struct LogoutArgs {
    /// The registry (host[:port]); default Docker Hub.
    #[arg(default_value = "docker.io")]
    pub registry: String,
}

impl LogoutArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let registry = registry_name(&self.registry)?;
        let creds = crate::settings::credentials()?;
        if creds.erase(&registry)? {
            eprintln!("Removing login credentials for {registry}");
        } else {
            eprintln!("Not logged in to {registry}");
        }
        super::ok()
    }
}
