//! `wpkg run REF|DIR [-- ARGS]`: resolve, verify, plan, execute.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use wpkg_pipeline::{timings, Admitted, Basis, Resolved, ServeOptions};
use wpkg_spec::manifest::Trigger;
use wpkg_spec::plan::{MountRequest, OperatorRequest};
use wpkg_spec::units::{ByteSize, DurationSpec};

/// Run an image (or a project directory) with exactly its declared permissions
#[derive(Args)]
#[command(
    after_help = "Everything is denied unless the artifact's wpkg.toml declares it: no host \
environment, no files, no sockets, no DNS. The operator supplies `env_required` values with --env, \
values for declared `[config]` keys with --config, binds declared `mounts` with --mount and may keep \
declared `key_value` stores on Redis with --kv; undeclared names, keys, paths and stores are refused. \
Flags may narrow limits, never widen them.\n\n\
Exit codes: the guest's own; 124 time limit; 134 trap; 137 memory limit; 125 wpkg's own failure.\n\n\
A registry reference is pulled when the local store lacks it (--pull missing), every digest \
checked on the way in and again as it is read. A pulled or loaded image runs only if one of \
its signatures verifies under the trust policy (`wpkg trust`); images built here need none.\n\n\
Images without a wpkg manifest (Docker+Wasm `wasi/wasm` images, other tools' Wasm \
artifacts) get nothing but what the operator grants: --env and --mount for any name and path, \
--allow-outbound URL for HTTP guests, and for container images --rootfs ro (their files, \
read-only at /) and --image-env (their Env). Their argv is Entrypoint + Cmd, the arguments \
after `--` replacing Cmd, as in Docker.\n\n\
Examples:\n  wpkg run hello:0.1.0 -- alice\n  wpkg run ghcr.io/acme/hello:1.0\n  wpkg run ./examples/files --mount ./out:/out\n  wpkg run app:1 --env API_TOKEN=secret --timeout 5s\n  wpkg run app:1 --config greeting=hi --kv default=redis://127.0.0.1:6379/0\n  wpkg run ghcr.io/acme/wasi-app:1 --rootfs ro --image-env -- --verbose"
)]
pub struct RunArgs {
    /// An image (NAME[:TAG], NAME@sha256:...) or a project directory (built first).
    pub target: String,
    /// Arguments for the guest (after `--`).
    #[arg(last = true)]
    pub args: Vec<String>,
    /// Supply a variable the artifact lists in `env_required`.
    #[arg(short, long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Bind a host directory at a declared mount: HOST:GUEST[:ro|rw].
    #[arg(short = 'm', long = "mount", value_name = "HOST:GUEST[:ro|rw]")]
    pub mounts: Vec<String>,
    /// Give a value to a key the artifact declares in `[config]` (repeatable); the
    /// guest reads it through wasi:config.
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
    pub config: Vec<String>,
    /// Read config values from a TOML file of `key = "value"` lines (flags given with
    /// --config come first and may not repeat a key).
    #[arg(long, value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Keep a declared key-value store on a Redis or Valkey server instead of this
    /// machine: NAME=redis://[:PASSWORD@]HOST[:PORT][/DB] (repeatable).
    #[arg(long = "kv", value_name = "NAME=URL")]
    pub kv: Vec<String>,
    /// Lower the memory limit (e.g. 32MiB).
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<ByteSize>,
    /// Lower the time limit (e.g. 5s).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<DurationSpec>,
    /// Refuse all outbound HTTP, whatever the artifact declares.
    #[arg(long)]
    pub deny_outbound: bool,
    /// Images without a wpkg manifest (Docker+Wasm, other tools' artifacts): allow
    /// outbound HTTP to this destination (`scheme://host[:port]`, repeatable).
    #[arg(long, value_name = "URL")]
    pub allow_outbound: Vec<wpkg_spec::outbound::OutboundPattern>,
    /// Docker+Wasm images: offer the image's own files at `/`, read-only (`ro`, the only
    /// mode).
    #[arg(long, value_enum, value_name = "MODE")]
    pub rootfs: Option<RootfsMode>,
    /// Docker+Wasm images: give the guest the image's `Env`.
    #[arg(long)]
    pub image_env: bool,
    /// HTTP trigger: the address to serve on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// HTTP trigger: most requests handled at once; more are answered 503.
    #[arg(long, default_value_t = 128, value_name = "N")]
    pub max_concurrent: usize,
    /// HTTP trigger: serve from N single-threaded worker processes sharing the port
    /// (one per core serves the most requests); the default, 1, serves from this
    /// process with a thread per core. A server with key-value stores or wasi-nn
    /// models runs in one process.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,
    /// Resolve outbound host names from this hosts file (`IP NAME...` lines) before
    /// DNS; the private-address rules still apply to what it says.
    #[arg(long, value_name = "FILE")]
    pub hosts_file: Option<PathBuf>,
    /// When to pull from the registry: `missing` (only when not in the local store),
    /// `always`, or `never`.
    #[arg(long, value_enum, default_value_t = PullPolicy::Missing, value_name = "WHEN")]
    pub pull: PullPolicy,
    /// Run a pulled image even if no signature verifies under the trust policy
    /// (prints a warning). Locally built images never need one.
    #[arg(long)]
    pub insecure_skip_verify: bool,
    #[command(flatten)]
    pub policy: crate::policy::PolicyArgs,
    #[command(flatten)]
    pub remote_args: crate::remote::RemoteArgs,
}

/// How an image's own files are offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RootfsMode {
    /// Read-only at `/`.
    Ro,
}

/// When `wpkg run` pulls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PullPolicy {
    /// Pull only when the local store lacks the reference.
    Missing,
    /// Always pull first (gets the newest content of a tag).
    Always,
    /// Never contact a registry.
    Never,
}

fn looks_like_dir(target: &str) -> bool {
    let p = Path::new(target);
    target.starts_with('.')
        || target.starts_with('/')
        || (p.is_dir() && p.join("wpkg.toml").is_file())
}

impl RunArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let home = crate::settings::home()?;
        let from_dir = looks_like_dir(&self.target);
        let reference = if from_dir {
            crate::project::build(
                Path::new(&self.target),
                None,
                true,
                wpkg_pipeline::project::BuildFormat::Artifact,
                false,
            )?
            .reference
        } else {
            super::parse_ref(&self.target)?
        };
        let mut request = OperatorRequest {
            memory: self.memory,
            timeout: self.timeout.map(|t| t.0),
            deny_outbound: self.deny_outbound,
            allow_outbound: self.allow_outbound.clone(),
            rootfs_read_only: self.rootfs == Some(RootfsMode::Ro),
            image_env: self.image_env,
            ..Default::default()
        };
        for e in &self.env {
            let (k, v) = e
                .split_once('=')
                .with_context(|| format!("--env `{e}`: write NAME=VALUE"))?;
            request.env.push((k.to_owned(), v.to_owned()));
        }
        for m in &self.mounts {
            request.mounts.push(
                m.parse::<MountRequest>()
                    .map_err(|e| anyhow::anyhow!("invalid --mount `{m}`: {e}"))?,
            );
        }
        for c in &self.config {
            let (k, v) = c
                .split_once('=')
                .with_context(|| format!("--config `{c}`: write KEY=VALUE"))?;
            request.config.push((k.to_owned(), v.to_owned()));
        }
        if let Some(f) = &self.config_file {
            request
                .config
                .extend(wpkg_pipeline::execute::read_config_file(f)?);
        }
        request.key_value = self.kv.clone();
        if let Some(f) = &self.hosts_file {
            request.resolve = wpkg_pipeline::execute::read_hosts_file(f)?;
        }
        // Resolve: every blob is checked against its digest as it is read.
        let store = home.open_store()?;
        timings::mark("open store");
        let pull = if from_dir {
            PullPolicy::Never
        } else {
            self.pull
        };
        let desc = match wpkg_pipeline::resolve(&store, &reference, pull.into())? {
            Resolved::Local(d) => d,
            Resolved::Pull { missing } => {
                let client = self.remote_args.client()?;
                if missing {
                    eprintln!(
                        "no image `{}` in the local store; pulling it from {}",
                        reference.familiar(),
                        reference.registry
                    );
                }
                crate::remote::pull(&client, &store, &reference, false).map_err(|e| {
                    if missing {
                        e.context(format!(
                            "no image `{}` in the local store",
                            reference.familiar()
                        ))
                    } else {
                        e
                    }
                })?
            }
        };
        timings::mark("resolve (index)");
        // Verify before anything executes; then run exactly the digest verified.
        let verified = if self.insecure_skip_verify {
            wpkg_pipeline::admit_unverified(&store, &reference, &desc)?
        } else {
            Admitted::Verified(wpkg_pipeline::admit(
                &store,
                &reference,
                &desc,
                &self.policy.settings()?,
            )?)
        };
        match &verified {
            Admitted::Verified(v) => match v.basis() {
                Basis::Local => {}
                Basis::Signed(v) => eprintln!("{v}"),
            },
            Admitted::Unverified(u) => eprintln!(
                "warning: --insecure-skip-verify: running {} ({}) without checking its signature",
                u.reference().familiar(),
                u.descriptor().digest
            ),
        }
        timings::mark("verify (manifest, config, signature, policy)");
        let prepared = wpkg_pipeline::prepare(&home, &store, &verified, &request)?;
        timings::mark("prepare (plan, files)");
        if prepared.plan().trigger == Trigger::Http {
            if !self.args.is_empty() {
                return Err(wpkg_pipeline::Error::HttpTakesNoArgs.into());
            }
            let outbound = &prepared.plan().outbound_http;
            if outbound.is_empty() {
                eprintln!("outbound HTTP: none allowed");
            } else {
                let list: Vec<String> = outbound.iter().map(|o| o.to_string()).collect();
                eprintln!("outbound HTTP allowed to: {}", list.join(", "));
            }
            let name = prepared.name().to_owned();
            let events = crate::diagnostics::Events::stderr();
            let served = prepared.serve(
                ServeOptions {
                    listen: self.listen,
                    max_concurrent: self.max_concurrent,
                    workers: self.workers.map(usize::from),
                    on_ready: Box::new(move |addr| {
                        eprintln!("serving {name} on http://{addr} (Ctrl-C to stop)");
                        let _ = super::out(&format!("http://{addr}\n"));
                    }),
                    shutdown: Box::new(|| Box::pin(interrupted())),
                },
                events.clone(),
            );
            events.flush();
            served?;
            return super::ok();
        }
        let events = crate::diagnostics::Events::stderr();
        let outcome = prepared.run_command(&self.args, events.clone());
        events.flush();
        let outcome = outcome?;
        if let Some(message) = outcome.describe() {
            eprintln!("error: {message}");
        }
        Ok(ExitCode::from(outcome.exit_code()))
    }
}

impl From<PullPolicy> for wpkg_pipeline::PullPolicy {
    fn from(p: PullPolicy) -> Self {
        match p {
            PullPolicy::Missing => wpkg_pipeline::PullPolicy::Missing,
            PullPolicy::Always => wpkg_pipeline::PullPolicy::Always,
            PullPolicy::Never => wpkg_pipeline::PullPolicy::Never,
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
