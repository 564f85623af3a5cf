//! The one place errors are rendered: the message and its causes on one `error:` line,
//! then `hint:` lines with the fix. Libraries give typed errors with the facts; the
//! wording of fixes (command and flag names) lives here.

use std::error::Error as StdError;

use wpkg_distribution::registry::RegistryError;
use wpkg_distribution::transfer::TransferError;
use wpkg_pipeline::verify::TrustSource;
use wpkg_pipeline::{Error as Pipeline, Refusal, RunnerError};
use wpkg_signing::error::Part;
use wpkg_signing::keyless_sign::KeylessError;
use wpkg_signing::trust::TrustError;
use wpkg_signing::tuf::TufError;
use wpkg_signing::VerifyError;
use wpkg_spec::config::ConfigError;
use wpkg_spec::keyvalue::KeyValueError;
use wpkg_spec::plan::PlanError;
use wpkg_store::Error as StoreError;

use crate::scaffold::{self, ScaffoldError};

/// Renders an error chain: `error: ...` then any `hint: ...` lines (no trailing newline).
pub fn render(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let t = cli_text(cause).unwrap_or_else(|| cause.to_string());
        if t.is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&t);
    }
    let mut out = format!("error: {text}");
    for h in hints(e) {
        out.push_str("\nhint: ");
        out.push_str(&h);
    }
    out
}

/// `e` as a `T`, whether it is one or a box of one.
fn view<'a, T: StdError + 'static>(e: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    e.downcast_ref::<T>()
        .or_else(|| e.downcast_ref::<Box<T>>().map(|b| &**b))
}

/// The library errors a link may be, looking through transparent wrappers.
enum Known<'a> {
    Pipeline(&'a Pipeline),
    Refusal(&'a Refusal),
    Plan(&'a PlanError),
    Runner(&'a RunnerError),
    Store(&'a StoreError),
    Registry(&'a RegistryError),
    Keyless(&'a KeylessError),
    Trust(&'a TrustError),
    Scaffold(&'a ScaffoldError),
    Tuf(&'a TufError),
}

fn known<'a>(e: &'a (dyn StdError + 'static)) -> Option<Known<'a>> {
    if let Some(p) = view::<Pipeline>(e) {
        return Some(match p {
            Pipeline::Plan(x) => Known::Plan(x),
            Pipeline::Runner(x) => Known::Runner(x),
            Pipeline::Store(x) => Known::Store(x),
            Pipeline::Policy(x) => Known::Trust(x),
            other => Known::Pipeline(other),
        });
    }
    if let Some(t) = view::<TransferError>(e) {
        return match t {
            TransferError::Registry(x) => Some(Known::Registry(x)),
            TransferError::Store(x) => Some(Known::Store(x)),
            _ => None,
        };
    }
    view::<Refusal>(e)
        .map(Known::Refusal)
        .or_else(|| view::<PlanError>(e).map(Known::Plan))
        .or_else(|| view::<RunnerError>(e).map(Known::Runner))
        .or_else(|| view::<StoreError>(e).map(Known::Store))
        .or_else(|| view::<RegistryError>(e).map(Known::Registry))
        .or_else(|| view::<KeylessError>(e).map(Known::Keyless))
        .or_else(|| view::<TrustError>(e).map(Known::Trust))
        .or_else(|| view::<ScaffoldError>(e).map(Known::Scaffold))
        .or_else(|| view::<TufError>(e).map(Known::Tuf))
}

/// The CLI's wording of a link, where it names the flag the operator used.
fn cli_text(e: &(dyn StdError + 'static)) -> Option<String> {
    match known(e)? {
        Known::Plan(p) => Some(match p {
            PlanError::EnvFixed { name } | PlanError::EnvUndeclared { name } => {
                format!("--env {name}: {p}")
            }
            PlanError::EnvTwice { name } => format!("--env {name} is given twice"),
            PlanError::MountUndeclared { host, guest, .. } => format!("--mount {host}:{guest}: {p}"),
            PlanError::MountWider { host, guest, .. } => format!("--mount {host}:{guest}:rw: {p}"),
            PlanError::MountTwice { guest } => format!("--mount for `{guest}` is given twice"),
            PlanError::MemoryAboveDeclared { asked, declared } => format!(
                "--memory {asked} is more than the artifact's limit of {declared}; flags may only narrow limits"
            ),
            PlanError::MemoryTooSmall { .. } => format!("--memory {p}"),
            PlanError::TimeoutAboveDeclared { asked, declared } => format!(
                "--timeout {} is longer than the artifact's limit of {}; flags may only narrow limits",
                wpkg_spec::units::DurationSpec(*asked),
                wpkg_spec::units::DurationSpec(*declared)
            ),
            PlanError::ManifestedGrant { grant } => format!(
                "--{grant}: the artifact has a wpkg manifest; its permissions come from it"
            ),
            PlanError::NoRootfs => format!("--rootfs: {p}"),
            PlanError::Config(c) => match c {
                ConfigError::Undeclared { key, .. } | ConfigError::TooLong { key, .. } => {
                    format!("--config {key}: {c}")
                }
                ConfigError::Twice { key } => format!("--config {key} is given twice"),
                ConfigError::Missing { .. } => return None,
            },
            PlanError::KeyValue(k) => match k {
                KeyValueError::Undeclared { name, .. } => format!("--kv {name}: {k}"),
                KeyValueError::Twice { name } => format!("--kv {name} is given twice"),
                KeyValueError::BadBinding { binding, reason } => {
                    format!("--kv {binding}: {reason}")
                }
            },
            PlanError::EnvMissing { .. } => return None,
        }),
        Known::Runner(RunnerError::MountNotADirectory { host, guest }) => Some(format!(
            "--mount {host}:{guest}: `{host}` is not a directory on this machine"
        )),
        _ => None,
    }
}

/// The fixes for every link of the chain that has one, in order, without repeats.
pub fn hints(e: &anyhow::Error) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for cause in e.chain() {
        let found = match known(cause) {
            Some(Known::Pipeline(p)) => pipeline_hint(p),
            Some(Known::Refusal(r)) => refusal_hint(r),
            Some(Known::Plan(p)) => plan_hint(p),
            Some(Known::Runner(r)) => runner_hint(r),
            Some(Known::Store(s)) => store_hint(s),
            Some(Known::Registry(r)) => registry_hint(r),
            Some(Known::Keyless(k)) => keyless_hint(k),
            Some(Known::Trust(TrustError::Invalid { .. })) => {
                Some("fix the file or manage it with `wpkg trust`".into())
            }
            Some(Known::Trust(_)) => None,
            Some(Known::Scaffold(x)) => scaffold_hint(x),
            Some(Known::Tuf(t)) => tuf_hint(t),
            None => None,
        };
        // A link's fix that an earlier hint already says (a refusal's, inside the
        // "refusing to run" hint) is not said twice.
        if let Some(h) = found.filter(|h| !out.iter().any(|o| o.contains(h.as_str()))) {
            out.push(h);
        }
    }
    out
}

fn tuf_hint(e: &TufError) -> Option<String> {
    Some(match e {
        TufError::Verify { .. } | TufError::NoTrustedRoot { .. } | TufError::BadTarget { .. } => {
            "nothing was changed: the trust root in use stays as it was; for a private instance check --tuf-url and --tuf-root".into()
        }
        TufError::BadRoot(_) => "give the TUF root.json of that repository with --tuf-root".into(),
        TufError::BadUrl { .. } => "give the repository's https:// base URL".into(),
        _ => return None,
    })
}

fn scaffold_hint(e: &ScaffoldError) -> Option<String> {
    Some(match e {
        ScaffoldError::UnknownTemplate { .. } => {
            let names: Vec<&str> = scaffold::TEMPLATES.iter().map(|t| t.name).collect();
            format!(
                "the templates are {}; `wpkg new --list` says what each needs",
                names.join(", ")
            )
        }
        ScaffoldError::NotEmpty { .. } | ScaffoldError::NotADirectory { .. } => {
            "give a new or empty directory: `wpkg new TEMPLATE DIR`".into()
        }
        ScaffoldError::BadName { .. } => {
            "choose the name with --name, e.g. --name my-service".into()
        }
        ScaffoldError::Write { .. } => {
            "nothing was created; choose a directory you can write".into()
        }
    })
}

fn plan_hint(p: &PlanError) -> Option<String> {
    Some(match p {
        PlanError::EnvUndeclared { name } => {
            format!("add `env_required = [\"{name}\"]` to wpkg.toml and rebuild")
        }
        PlanError::EnvMissing { name } => format!("supply it with `--env {name}=VALUE`"),
        PlanError::ManifestedGrant { .. } => {
            "grant through wpkg.toml (and rebuild); --env and --mount supply what it declares"
                .into()
        }
        PlanError::NoRootfs => "--rootfs is for container images (wasi/wasm)".into(),
        PlanError::MountUndeclared { guest, .. } => {
            format!("add `mounts = [{{ guest = \"{guest}\" }}]` to wpkg.toml and rebuild")
        }
        PlanError::Config(ConfigError::Undeclared { key, .. }) => {
            format!("declare it in wpkg.toml (`[config]` then `{key} = {{}}`) and rebuild")
        }
        PlanError::Config(ConfigError::Missing { key }) => {
            format!("supply it with `--config {key}=VALUE` or `--config-file FILE`")
        }
        PlanError::KeyValue(KeyValueError::Undeclared { name, .. }) => format!(
            "declare it in wpkg.toml (`key_value = [\"{name}\"]` under [capabilities]) and rebuild"
        ),
        PlanError::KeyValue(KeyValueError::BadBinding { .. }) => {
            "write --kv NAME=redis://HOST[:PORT][/DB]".into()
        }
        _ => return None,
    })
}

fn runner_hint(r: &RunnerError) -> Option<String> {
    match r {
        RunnerError::Listen { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse => {
            Some("the address is in use; pick another with --listen".into())
        }
        RunnerError::NnRuntime { .. } => Some(
            "install ONNX Runtime (`pip install onnxruntime`) and set ORT_DYLIB_PATH to its libonnxruntime.so (in site-packages/onnxruntime/capi/)".into(),
        ),
        RunnerError::Nn { .. } => Some(
            "check the model with ONNX Runtime itself (python -c 'import onnxruntime as o; o.InferenceSession(\"m.onnx\")'), then rebuild".into(),
        ),
        RunnerError::Threads => Some(
            "build it without threads (wasm32-wasip1, not wasm32-wasip1-threads)".into(),
        ),
        RunnerError::Undeclared { declaration, .. } => Some(format!(
            "to grant it, add {declaration} to wpkg.toml and rebuild"
        )),
        RunnerError::KeyValue { reason, .. } if reason.contains("another wpkg process") => Some(
            "an embedded store belongs to one process at a time; stop the other run, or bind the store to Redis with --kv NAME=redis://HOST".into(),
        ),
        RunnerError::KeyValue { .. } => Some(
            "check the address and that the server runs (`redis-cli -u URL ping`)".into(),
        ),
        RunnerError::BundledUnsafe { guest, .. } => Some(format!(
            "the image's {guest} must be a directory of the image itself (a link may point \
             only at another directory of the image); rebuild it with `wpkg build`"
        )),
        _ => None,
    }
}

fn store_hint(s: &StoreError) -> Option<String> {
    Some(match s {
        StoreError::NotFound(_) => "see `wpkg images`, or build it with `wpkg build -t`".into(),
        StoreError::CorruptBlob { .. } => {
            "remove the image with `wpkg rm` and build or pull it again".into()
        }
        StoreError::ArchiveNeedsName { .. } => "give the repository with --name".into(),
        StoreError::TooLarge { .. } => "if you trust the image, raise the bound with \
             WPKG_MAX_LAYER_SIZE (a layer, default 1GiB) or WPKG_MAX_FILE_SIZE (a file, default \
             512MiB), e.g. WPKG_MAX_LAYER_SIZE=4GiB"
            .into(),
        StoreError::Io { source, .. }
            if matches!(
                source.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ) =>
        {
            "the disk holding wpkg's store is full (nothing was half-stored): free space on \
             it, or set WPKG_HOME to a directory on another disk, and run the command again"
                .into()
        }
        _ => return None,
    })
}

fn registry_hint(r: &RegistryError) -> Option<String> {
    Some(match r {
        RegistryError::UntrustedCertificate { .. } => {
            "pass --ca-file CA.pem (or set WPKG_CA_FILE) to trust its CA".into()
        }
        RegistryError::InsecureTokenService { host, .. } => {
            format!("pass `--insecure {host}` if you trust it")
        }
        RegistryError::TimedOut { limit, .. } => format!(
            "check the network and the registry; if it is just slow, allow more time with \
             --registry-timeout SECONDS or WPKG_REGISTRY_TIMEOUT (now {})",
            limit.as_secs()
        ),
        _ => return None,
    })
}

fn pipeline_hint(e: &Pipeline) -> Option<String> {
    Some(match e {
        Pipeline::ManifestUnreadable { .. } => {
            "give a directory with a wpkg.toml, or its path".into()
        }
        Pipeline::VersionNotATag { .. } => "pass -t NAME:TAG".into(),
        Pipeline::WasmUnreadable {
            has_build_command, ..
        } => {
            if *has_build_command {
                "build it first".into()
            } else {
                "build it first or add `build = \"...\"` to [package]".into()
            }
        }
        Pipeline::LocalOnly {
            reference,
            repository,
        } => format!("give a registry, e.g. `wpkg push {reference} localhost:5000/{repository}`"),
        Pipeline::PushedUnsigned { .. } => "push again to retry".into(),
        Pipeline::HttpTakesNoArgs => "remove the arguments after `--`".into(),
        Pipeline::WorkersNeedOneProcess { .. } => {
            "leave out --workers (or give --workers 1): such a server runs in one process".into()
        }
        Pipeline::EntryFunction { .. } => {
            "rebuild the image with the .wasm itself as its Entrypoint".into()
        }
        Pipeline::EmbeddedCapabilities { .. } => {
            "rebuild it with `wpkg build --format image`; do not edit a built image's files".into()
        }
        Pipeline::NotACommand => "serve it with `wpkg run` (it listens on --listen)".into(),
        Pipeline::NothingTrusted => "give --key PUB, or --certificate-identity[-regexp] and --certificate-oidc-issuer[-regexp]".into(),
        Pipeline::NotVerified { source, .. } => {
            let mut h = refusal_hint(source)
                .map(|h| format!("{h}; "))
                .unwrap_or_default();
            h.push_str("to run it unverified anyway: --insecure-skip-verify");
            h
        }
        Pipeline::Keyless(k) => return keyless_hint(k),
        _ => return None,
    })
}

/// The fix for a trust refusal.
pub fn refusal_hint(r: &Refusal) -> Option<String> {
    match r {
        Refusal::NoScope {
            suggested_scope, ..
        } => Some(format!(
            "trust its publisher with `wpkg trust add {suggested_scope} --key PUBLISHER.pub` (or --issuer and --subject for keyless signatures)"
        )),
        Refusal::Unsigned { .. } => Some(
            "the publisher signs it with `wpkg sign --key` or `--keyless` (or `cosign sign`)"
                .into(),
        ),
        Refusal::NoneVerifies {
            rejected,
            source_of_trust,
        } => rejected
            .first()
            .and_then(|r| none_verifies_hint(&r.error, source_of_trust)),
    }
}

/// The fix for the first signature that did not verify, by the check it failed.
pub fn none_verifies_hint(e: &VerifyError, trust: &TrustSource) -> Option<String> {
    let scope = match trust {
        TrustSource::Scope(s) => s.as_str(),
        TrustSource::Given => "SCOPE",
    };
    Some(match e {
        VerifyError::Identity { subject, issuer } => format!(
            "if you trust that signer: `wpkg trust add '{scope}' --issuer {issuer} --subject {subject}`"
        ),
        VerifyError::Issuer { issuer, .. } => format!(
            "the certificate was issued through {issuer}; a rule for that identity names another issuer, and both must match"
        ),
        VerifyError::Claim { claim, .. } => format!(
            "the signature was made from another {claim} than the rule allows; if that is expected, widen the rule (`wpkg trust add` with --claim-regexp)"
        ),
        VerifyError::KeylessNotTrusted => format!(
            "trust the signer's identity: `wpkg trust add '{scope}' --github OWNER/REPO` or --issuer URL --subject ID"
        ),
        VerifyError::Key | VerifyError::NoKeys => format!(
            "it is signed with a key not trusted here: get the publisher's public key and `wpkg trust add '{scope}' --key PUBLISHER.pub`"
        ),
        VerifyError::Subject { .. } => "the signature is for another image: sign this digest".into(),
        VerifyError::TrustRoot(_) => "give a readable Sigstore trusted_root.json with --trusted-root".into(),
        e if e.part() == Part::Log || e.part() == Part::Certificate => {
            "signed with a private Sigstore instance? give its trusted_root.json with --trusted-root; otherwise the signature was tampered with".into()
        }
        _ => return None,
    })
}

/// The fix for a keyless signing failure.
pub fn keyless_hint(e: &KeylessError) -> Option<String> {
    Some(
        match e {
            KeylessError::TokenExpired { .. } => "get a fresh identity token and sign again",
            KeylessError::BadToken { .. } => {
                "give the OIDC token itself (a JWT for audience `sigstore`)"
            }
            KeylessError::NoToken => "pass --identity-token (or set SIGSTORE_ID_TOKEN), or run in GitHub Actions with `permissions: id-token: write`",
            KeylessError::Fulcio { .. } => {
                "check --fulcio-url and that the token's issuer is one Fulcio accepts"
            }
            KeylessError::Rekor { .. } => "check --rekor-url; nothing was stored or pushed",
            KeylessError::SelfCheck { .. } => {
                "nothing was stored or pushed; signing with a private Sigstore instance? give its trusted_root.json with --trusted-root"
            }
            _ => return None,
        }
        .into(),
    )
}

/// The CLI's [`Observer`](wpkg_pipeline::Observer): events of a running guest, rendered
/// on stderr. Access-log lines go through one writer thread that writes whatever has
/// queued up in one `write` call: no stderr lock, syscall or thread wake-up on the
/// request path while requests keep coming. The writer starts with the first line, in
/// the process that logs it: a server forks its worker processes before any request,
/// and a fork takes no thread along.
pub struct Events {
    tx: std::sync::OnceLock<std::sync::mpsc::Sender<LogMsg>>,
    /// Lines sent, and lines written (by the writer).
    sent: std::sync::atomic::AtomicU64,
    written: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

enum LogMsg {
    Line(String),
    Flush(std::sync::mpsc::Sender<()>),
}

impl Events {
    /// Events for stderr (the writer starts with the first access-log line).
    pub fn stderr() -> std::sync::Arc<Events> {
        std::sync::Arc::new(Events {
            tx: std::sync::OnceLock::new(),
            sent: std::sync::atomic::AtomicU64::new(0),
            written: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
        })
    }

    fn writer(&self) -> &std::sync::mpsc::Sender<LogMsg> {
        self.tx.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<LogMsg>();
            let counter = self.written.clone();
            std::thread::Builder::new()
                .name("wpkg-log".into())
                .spawn(move || write_log(rx, counter))
                .expect("spawning the log writer");
            tx
        })
    }

    fn send(&self, msg: LogMsg) {
        let _ = self.writer().send(msg);
    }

    /// Waits until every line sent so far is written.
    pub fn flush(&self) {
        use std::sync::atomic::Ordering;
        if self.sent.load(Ordering::SeqCst) == self.written.load(Ordering::SeqCst) {
            return;
        }
        let (done, wait) = std::sync::mpsc::channel();
        self.send(LogMsg::Flush(done));
        let _ = wait.recv_timeout(std::time::Duration::from_secs(2));
    }
}

/// The access-log writer: under load it polls every 5 ms, so that a request never pays
/// for waking it; after 200 ms without lines it blocks until the next.
fn write_log(
    rx: std::sync::mpsc::Receiver<LogMsg>,
    counter: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use std::io::Write;
    use std::sync::mpsc::TryRecvError;
    let mut batch = String::new();
    let mut idle = 40u32;
    loop {
        let mut flushed = Vec::new();
        batch.clear();
        let mut lines = 0u64;
        let mut take = |msg: LogMsg, batch: &mut String| match msg {
            LogMsg::Line(l) => {
                batch.push_str(&l);
                lines += 1;
            }
            LogMsg::Flush(done) => flushed.push(done),
        };
        if idle >= 40 {
            match rx.recv() {
                Ok(m) => take(m, &mut batch),
                Err(_) => return,
            }
        }
        loop {
            match rx.try_recv() {
                Ok(m) => take(m, &mut batch),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let _ = std::io::stderr().write_all(batch.as_bytes());
                    return;
                }
            }
            if batch.len() > 64 * 1024 {
                break;
            }
        }
        if batch.is_empty() && flushed.is_empty() {
            idle += 1;
        } else {
            idle = 0;
            let _ = std::io::stderr().write_all(batch.as_bytes());
            counter.fetch_add(lines, std::sync::atomic::Ordering::SeqCst);
        }
        for done in flushed {
            let _ = done.send(());
        }
        if idle < 40 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

impl wpkg_pipeline::Observer for Events {
    fn flush(&self) {
        Events::flush(self);
    }

    fn event(&self, event: &wpkg_pipeline::Event<'_>) {
        use wpkg_pipeline::Event;
        match event {
            Event::Served { .. } => {
                self.sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                self.send(LogMsg::Line(format!("{event}\n")));
            }
            Event::Draining => {
                self.flush();
                eprintln!("{event}");
            }
            _ => eprintln!("{event}"),
        }
    }
}
