//! What the registry commands share: connection flags, the client, progress display.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use wpkg_distribution::registry::{ClientOptions, Registry};
use wpkg_distribution::transfer::{Event, Progress};
use wpkg_spec::Reference;

use crate::env_vars;

/// How to reach registries.
#[derive(Args, Clone, Debug, Default)]
pub struct RemoteArgs {
    /// Trust this CA certificate (PEM) for registries' HTTPS, besides the system's.
    #[arg(long, value_name = "FILE", env = env_vars::WPKG_CA_FILE)]
    pub ca_file: Option<PathBuf>,
    /// Allow plain HTTP for this registry (host[:port]); loopback registries always
    /// may. Certificates are still checked when it speaks HTTPS.
    #[arg(long, value_name = "REGISTRY", env = env_vars::WPKG_INSECURE_REGISTRIES, value_delimiter = ',')]
    pub insecure: Vec<String>,
    /// Give up on a registry request after this many seconds (blob transfers get more
    /// by their size: 1 s per 50 kB). A stalled registry fails instead of hanging.
    #[arg(long, value_name = "SECONDS", env = env_vars::WPKG_REGISTRY_TIMEOUT, default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub registry_timeout: u64,
}

impl RemoteArgs {
    /// The client options these flags ask for.
    pub fn options(&self) -> ClientOptions {
        ClientOptions {
            ca_files: self.ca_file.iter().cloned().collect(),
            insecure: self.insecure.clone(),
            attempts: None,
            timeout: Some(Duration::from_secs(self.registry_timeout)),
        }
    }

    /// A registry client with these settings and the user's credentials.
    pub fn client(&self) -> Result<Registry> {
        Ok(Registry::new(
            self.options(),
            crate::settings::credentials()?,
        )?)
    }
}

/// Progress on a terminal: one line per blob, redrawn in place; nothing otherwise.
pub struct TtyProgress {
    verb: &'static str,
    state: Mutex<State>,
}

struct State {
    current: Option<(String, u64)>,
    last_draw: Instant,
}

fn short(digest: &str) -> String {
    wpkg_spec::Digest::parse(digest)
        .map(|d| d.short().to_owned())
        .unwrap_or_else(|_| digest.to_owned())
}

impl TtyProgress {
    /// A display for `verb` ("pushing", "pulling"), or a silent one when stderr is not
    /// a terminal or `quiet` is set.
    pub fn for_stderr(verb: &'static str, quiet: bool) -> Arc<dyn Progress> {
        if quiet || !std::io::stderr().is_terminal() {
            return Arc::new(wpkg_distribution::transfer::Quiet);
        }
        Arc::new(TtyProgress {
            verb,
            state: Mutex::new(State {
                current: None,
                last_draw: Instant::now() - Duration::from_secs(1),
            }),
        })
    }
}

impl Progress for TtyProgress {
    fn event(&self, e: Event<'_>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        match e {
            Event::Exists { digest, size } => {
                let _ = writeln!(
                    err,
                    "\r\x1b[2K{}: already there ({})",
                    short(digest),
                    crate::commands::human_size(size)
                );
            }
            Event::Start { digest, size } => {
                st.current = Some((digest.to_owned(), size));
                let _ = write!(
                    err,
                    "\r\x1b[2K{}: {} 0B / {}",
                    short(digest),
                    self.verb,
                    crate::commands::human_size(size)
                );
            }
            Event::Bytes { digest, done } => {
                if st.last_draw.elapsed() < Duration::from_millis(100) {
                    return;
                }
                st.last_draw = Instant::now();
                let total = st.current.as_ref().map_or(0, |c| c.1);
                let pct = (done * 100).checked_div(total).unwrap_or(100);
                let _ = write!(
                    err,
                    "\r\x1b[2K{}: {} {} / {} ({pct}%)",
                    short(digest),
                    self.verb,
                    crate::commands::human_size(done),
                    crate::commands::human_size(total)
                );
            }
            Event::Done { digest } => {
                let total = st.current.take().map_or(0, |c| c.1);
                let _ = writeln!(
                    err,
                    "\r\x1b[2K{}: done ({})",
                    short(digest),
                    crate::commands::human_size(total)
                );
            }
        }
        let _ = err.flush();
    }
}

/// Pulls with a progress display and a summary line; returns the manifest digest.
pub fn pull(
    client: &wpkg_distribution::registry::Registry,
    store: &wpkg_store::Store,
    remote: &Reference,
    quiet: bool,
) -> Result<wpkg_spec::media::Descriptor> {
    let progress = TtyProgress::for_stderr("pulling", quiet);
    let report = wpkg_pipeline::resolve::pull(client, store, remote, &progress)?;
    if !quiet {
        eprintln!(
            "pulled {} ({} blob(s) downloaded, {}; {} already present)",
            remote.familiar(),
            report.downloaded,
            crate::commands::human_size(report.bytes),
            report.present
        );
    }
    Ok(report.descriptor)
}
