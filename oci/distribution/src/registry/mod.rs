//! A client for the OCI distribution API: the bearer-token flow (challenge, anonymous
//! tokens, tokens reused until they expire), basic auth, HTTPS with the system's and
//! Mozilla's roots plus user CAs, plain HTTP only for loopback registries and those the
//! user names as insecure, and retries with backoff on transient failures.

use crate::credentials::{normalize_registry, Credential, CredentialError, Credentials, Source};
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wpkg_spec::media;
use wpkg_spec::Reference;

mod auth;
mod content;
mod http;
#[cfg(test)]
mod tests;

use auth::Token;
pub use auth::{parse_challenge, Scheme};
use http::{backoff, basic, retryable, retryable_status, transport};
pub use http::{error_text, tls_config};
pub(crate) use http::{is_timeout_io, timed_out};

/// The longest a request may take by default, blobs aside (they get
/// [`transfer_timeout`]); [`ClientOptions::timeout`] changes it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The longest a blob transfer of `size` bytes may take when requests may take `base`:
/// `base` plus the time the bytes need at 50 kB/s, so that a stalled connection fails
/// instead of hanging while a large blob on a slow link still arrives.
pub fn transfer_timeout(base: Duration, size: u64) -> Duration {
    base + Duration::from_secs(size / 50_000)
}

/// Manifests larger than this are refused (the distribution spec suggests 4 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// Media types wpkg accepts for manifests, in the `Accept` header.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Errors talking to a registry. Each names the registry, what went wrong and the fix.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached or the connection broke.
    #[error("cannot reach registry {registry}: {detail}")]
    Transport {
        /// The registry.
        registry: String,
        /// What happened, with a hint.
        detail: String,
    },
    /// The registry's TLS certificate does not chain to a trusted root.
    #[error("cannot reach registry {registry}: {detail}; its TLS certificate is not trusted")]
    UntrustedCertificate {
        /// The registry.
        registry: String,
        /// What happened.
        detail: String,
    },
    /// The token service the registry names is on plain HTTP, and that is not allowed.
    #[error("authentication to {registry} failed: the token service `{realm}` is not HTTPS; refusing to send credentials to it")]
    InsecureTokenService {
        /// The registry.
        registry: String,
        /// The token service URL.
        realm: String,
        /// Its host.
        host: String,
    },
    /// Authentication is needed or was refused.
    #[error("authentication to {registry} failed: {detail}")]
    Unauthorized {
        /// The registry.
        registry: String,
        /// What happened and what to do.
        detail: String,
    },
    /// Authenticated but not allowed.
    #[error("{registry} denied access to `{repository}`: {detail}")]
    Denied {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// What the registry said.
        detail: String,
    },
    /// The repository, tag or blob does not exist.
    #[error("{what} not found in {registry} ({detail}); check the name and tag")]
    NotFound {
        /// The registry.
        registry: String,
        /// What was looked for.
        what: String,
        /// What the registry said.
        detail: String,
    },
    /// The registry answered something the protocol does not allow.
    #[error("registry {registry} answered unexpectedly: {detail}")]
    Protocol {
        /// The registry.
        registry: String,
        /// What was wrong.
        detail: String,
    },
    /// The registry did not answer in time (a stalled or very slow connection).
    /// Not retried: the request already used all its time.
    #[error("registry {registry} is too slow: {detail}")]
    TimedOut {
        /// The registry.
        registry: String,
        /// Which request, and the limit it ran into.
        detail: String,
        /// The limit for requests ([`ClientOptions::timeout`] or the default).
        limit: Duration,
    },
    /// Content did not match its digest or size.
    #[error("{what} from {registry} does not match its digest: {detail}; nothing was stored")]
    Integrity {
        /// The registry.
        registry: String,
        /// Which content.
        what: String,
        /// Expected vs actual.
        detail: String,
    },
    /// Credentials could not be read.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// The client could not be set up (CA file and the like).
    #[error("{0}")]
    Setup(String),
}

/// How the client connects.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// Extra CA certificates (PEM files) trusted for HTTPS.
    pub ca_files: Vec<PathBuf>,
    /// Registries allowed over plain HTTP (besides loopback ones).
    pub insecure: Vec<String>,
    /// Attempts for a request that fails transiently (default 4).
    pub attempts: Option<u32>,
    /// The longest a request may take (default [`REQUEST_TIMEOUT`]); blob transfers
    /// get more by their size (see [`transfer_timeout`]).
    pub timeout: Option<Duration>,
}

/// Whether `registry` (host[:port]) is a loopback address or `localhost`.
pub fn is_loopback_registry(registry: &str) -> bool {
    let host = host_of(registry);
    if host == "localhost" {
        return true;
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

fn host_of(registry: &str) -> &str {
    if registry.starts_with('[') {
        return registry
            .split_once(']')
            .map_or(registry, |(h, _)| h)
            .trim_start_matches('[');
    }
    registry.split(':').next().unwrap_or(registry)
}

pub(crate) struct HostState {
    base: String,
    scheme: Scheme,
    tokens: HashMap<String, Token>,
}

/// A registry client. Cheap to share; state (scheme, tokens) is per registry host.
pub struct Registry {
    http: Client,
    opts: ClientOptions,
    creds: Credentials,
    hosts: Mutex<HashMap<String, Arc<Mutex<HostState>>>>,
    /// Credentials looked up once per registry (a helper is a process per lookup).
    found: Mutex<HashMap<String, Option<(Credential, Source)>>>,
}

/// What a request is allowed to do to the repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read.
    Pull,
    /// Read and write.
    Push,
}

impl Access {
    fn scope(self, repository: &str) -> String {
        match self {
            Access::Pull => format!("repository:{repository}:pull"),
            Access::Push => format!("repository:{repository}:pull,push"),
        }
    }
}

/// A manifest fetched from a registry, its digest checked.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    /// The bytes as served.
    pub bytes: Vec<u8>,
    /// The media type (from the body, else the Content-Type header).
    pub media_type: String,
    /// `sha256:` of the bytes.
    pub digest: String,
}

impl Registry {
    /// A client with these options and credentials.
    pub fn new(opts: ClientOptions, creds: Credentials) -> Result<Registry, RegistryError> {
        let tls = tls_config(&opts.ca_files)?;
        let http = Client::builder()
            .use_preconfigured_tls(tls)
            .user_agent(concat!("wpkg/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .timeout(opts.timeout.unwrap_or(REQUEST_TIMEOUT))
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                // Blob downloads may redirect to a CDN (reqwest drops the credentials
                // on another host); never from HTTPS down to plain HTTP.
                let downgrade = attempt.url().scheme() == "http"
                    && attempt.previous().iter().any(|u| u.scheme() == "https");
                if downgrade {
                    attempt.error("refusing a redirect from HTTPS to plain HTTP")
                } else if attempt.previous().len() > 10 {
                    attempt.error("too many redirects")
                } else {
                    attempt.follow()
                }
            }))
            .build()
            .map_err(|e| RegistryError::Setup(format!("cannot set up HTTP: {e}")))?;
        Ok(Registry {
            http,
            opts,
            creds,
            hosts: Mutex::new(HashMap::new()),
            found: Mutex::new(HashMap::new()),
        })
    }

    /// The credentials in use.
    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    /// The credential for `registry`, looked up once.
    fn credential(&self, registry: &str) -> Result<Option<(Credential, Source)>, RegistryError> {
        if let Some(c) = self.found.lock().expect("creds lock").get(registry) {
            return Ok(c.clone());
        }
        let c = self.creds.get(registry)?;
        self.found
            .lock()
            .expect("creds lock")
            .insert(registry.to_owned(), c.clone());
        Ok(c)
    }

    /// The limit for one request (blobs aside).
    pub fn timeout(&self) -> Duration {
        self.opts.timeout.unwrap_or(REQUEST_TIMEOUT)
    }

    fn attempts(&self) -> u32 {
        self.opts.attempts.unwrap_or(4).max(1)
    }

    fn plain_http_allowed(&self, registry: &str) -> bool {
        is_loopback_registry(registry)
            || self
                .opts
                .insecure
                .iter()
                .any(|i| normalize_registry(i) == normalize_registry(registry))
    }

    fn api_host(registry: &str) -> &str {
        if registry == wpkg_spec::reference::DEFAULT_REGISTRY {
            "registry-1.docker.io"
        } else {
            registry
        }
    }

    /// The per-host state, probing HTTPS (and plain HTTP when allowed) the first time.
    fn host(&self, registry: &str) -> Result<Arc<Mutex<HostState>>, RegistryError> {
        if let Some(h) = self.hosts.lock().expect("hosts lock").get(registry) {
            return Ok(h.clone());
        }
        let api = Self::api_host(registry);
        let https = format!("https://{api}");
        let base = if self.plain_http_allowed(registry) {
            match self.probe(registry, &https) {
                Ok(()) => https,
                Err(tls_err) => {
                    let http = format!("http://{api}");
                    match self.probe(registry, &http) {
                        Ok(()) => http,
                        Err(_) => return Err(tls_err),
                    }
                }
            }
        } else {
            https
        };
        let state = Arc::new(Mutex::new(HostState {
            base,
            scheme: Scheme::Unknown,
            tokens: HashMap::new(),
        }));
        self.hosts
            .lock()
            .expect("hosts lock")
            .insert(registry.to_owned(), state.clone());
        Ok(state)
    }

    /// Whether `base/v2/` answers like a registry (any status with the API header, or
    /// 200/401), or like a registry that is busy or restarting (429, 408, 5xx: the
    /// scheme is right, and the requests that follow retry).
    fn probe(&self, registry: &str, base: &str) -> Result<(), RegistryError> {
        // One attempt: a failure here falls back to plain HTTP, and the real requests
        // that follow retry on their own.
        match self.http.get(format!("{base}/v2/")).send() {
            Ok(r) => {
                let s = r.status();
                if s == StatusCode::OK
                    || s == StatusCode::UNAUTHORIZED
                    || retryable_status(s)
                    || r.headers().contains_key("docker-distribution-api-version")
                {
                    Ok(())
                } else {
                    Err(RegistryError::Transport {
                        registry: registry.to_owned(),
                        detail: format!(
                            "{base}/v2/ answered HTTP {s}; it does not look like an OCI registry"
                        ),
                    })
                }
            }
            Err(e) => Err(transport(registry, self.timeout(), &e, "")),
        }
    }
}
