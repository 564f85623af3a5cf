//! A client for the OCI distribution API: the bearer-token flow (challenge, anonymous
//! tokens, tokens reused until they expire), basic auth, HTTPS with the system's and
//! Mozilla's roots plus user CAs, plain HTTP only for loopback registries and those the
//! user names as insecure, and retries with backoff on transient failures.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use wpkg_spec::media;
use wpkg_spec::Reference;

use crate::credentials::{normalize_registry, Credential, CredentialError, Credentials, Source};

/// The longest a request may take, blobs aside (they get [`transfer_timeout`]).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The longest a blob transfer of `size` bytes may take: two minutes plus the time the
/// bytes need at 50 kB/s, so that a stalled connection fails instead of hanging.
pub fn transfer_timeout(size: u64) -> Duration {
    REQUEST_TIMEOUT + Duration::from_secs(size / 50_000)
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
    /// Plain HTTP is needed but not allowed.
    #[error("registry {registry} does not answer over HTTPS ({detail}); if it is a plain-HTTP registry you trust, pass `--insecure {registry}`")]
    NeedsInsecure {
        /// The registry.
        registry: String,
        /// The HTTPS error.
        detail: String,
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

/// A cached token.
struct Token {
    value: String,
    expires: Instant,
}

/// What a registry asked for in its challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Scheme {
    /// No challenge seen yet.
    Unknown,
    /// `Basic`.
    Basic,
    /// `Bearer realm=... service=...`.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

struct HostState {
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

/// Sleeps before attempt `n` (1-based retries): 250 ms, 500 ms, 1 s, ...
fn backoff(n: u32) -> Duration {
    Duration::from_millis(250u64 << n.saturating_sub(1).min(5))
}

/// The error text of a transport failure, with its causes, and a hint.
fn describe(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let mut text = err.to_string();
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                text = inner.to_string();
            }
        }
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    // Drop reqwest's own "error sending request for url (...)" when a cause follows.
    if parts.len() > 1 && parts[0].starts_with("error sending request") {
        parts.remove(0);
    }
    let mut out = parts.join(": ");
    if is_cert_error(e) {
        out.push_str("; the registry's TLS certificate is not trusted: pass --ca-file CA.pem (or set WPKG_CA_FILE) to trust its CA");
    }
    out
}

fn chain_text(e: &reqwest::Error) -> String {
    let mut s = String::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        s.push_str(&err.to_string());
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            s.push_str(&inner.to_string());
        }
        s.push('\n');
        cur = err.source();
    }
    s
}

fn is_cert_error(e: &reqwest::Error) -> bool {
    let t = chain_text(e);
    t.contains("invalid peer certificate") || t.contains("certificate")
}

/// Whether a transport failure is worth retrying.
fn retryable(e: &reqwest::Error) -> bool {
    !is_cert_error(e) && !e.is_builder() && !e.is_redirect()
}

fn retryable_status(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS
        || s == StatusCode::REQUEST_TIMEOUT
        || (s.is_server_error()
            && s != StatusCode::NOT_IMPLEMENTED
            && s != StatusCode::HTTP_VERSION_NOT_SUPPORTED)
}

/// Reads the registry's error body (`{"errors":[{code,message}]}`) into one line.
pub fn error_text(resp: Response) -> String {
    let status = resp.status();
    let mut body = String::new();
    let _ = resp.take(64 * 1024).read_to_string(&mut body);
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let detail = match serde_json::from_str::<Errors>(&body) {
        Ok(e) if !e.errors.is_empty() => e
            .errors
            .iter()
            .map(|e| {
                if e.message.is_empty() {
                    e.code.clone()
                } else {
                    format!("{} ({})", e.message, e.code)
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => {
            let b = body.trim();
            if b.is_empty() || b.len() > 200 || b.starts_with('<') {
                String::new()
            } else {
                b.to_owned()
            }
        }
    };
    if detail.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {detail}")
    }
}

/// Parses `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
fn parse_challenge(headers: &HeaderMap) -> Option<Scheme> {
    let mut found = None;
    for v in headers.get_all(WWW_AUTHENTICATE) {
        let Ok(v) = v.to_str() else { continue };
        let v = v.trim();
        let (kind, rest) = v.split_once(' ').unwrap_or((v, ""));
        if kind.eq_ignore_ascii_case("basic") {
            found.get_or_insert(Scheme::Basic);
        } else if kind.eq_ignore_ascii_case("bearer") {
            let params = parse_params(rest);
            if let Some(realm) = params.get("realm") {
                return Some(Scheme::Bearer {
                    realm: realm.clone(),
                    service: params.get("service").cloned(),
                });
            }
        }
    }
    found
}

fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let mut val = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            val.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => val.push(c),
                }
            }
            (val, &q[end.min(q.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        out.insert(key, value);
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// TLS roots: Mozilla's, the system's, and `ca_files`.
pub(crate) fn tls_config(ca_files: &[PathBuf]) -> Result<rustls::ClientConfig, RegistryError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    for f in ca_files {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(f)
            .map_err(|e| RegistryError::Setup(format!("cannot read CA file {}: {e}", f.display())))?
            .collect::<Result<_, _>>()
            .map_err(|e| {
                RegistryError::Setup(format!("CA file {} is not PEM: {e}", f.display()))
            })?;
        if certs.is_empty() {
            return Err(RegistryError::Setup(format!(
                "CA file {} holds no `BEGIN CERTIFICATE` block; give a PEM certificate",
                f.display()
            )));
        }
        for c in certs {
            roots.add(c).map_err(|e| {
                RegistryError::Setup(format!(
                    "CA file {}: unusable certificate: {e}",
                    f.display()
                ))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Registry {
    /// A client with these options and credentials.
    pub fn new(opts: ClientOptions, creds: Credentials) -> Result<Registry, RegistryError> {
        let tls = tls_config(&opts.ca_files)?;
        let http = Client::builder()
            .use_preconfigured_tls(tls)
            .user_agent(concat!("wpkg/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .timeout(REQUEST_TIMEOUT)
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
            match self.probe(&https) {
                Ok(()) => https,
                Err(tls_err) => {
                    let http = format!("http://{api}");
                    match self.probe(&http) {
                        Ok(()) => http,
                        Err(_) => {
                            return Err(RegistryError::Transport {
                                registry: registry.to_owned(),
                                detail: tls_err,
                            })
                        }
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
    /// 200/401).
    fn probe(&self, base: &str) -> Result<(), String> {
        // One attempt: a failure here falls back to plain HTTP, and the real requests
        // that follow retry on their own.
        match self.http.get(format!("{base}/v2/")).send() {
            Ok(r) => {
                let s = r.status();
                if s == StatusCode::OK
                    || s == StatusCode::UNAUTHORIZED
                    || r.headers().contains_key("docker-distribution-api-version")
                {
                    Ok(())
                } else {
                    Err(format!(
                        "{base}/v2/ answered HTTP {s}; it does not look like an OCI registry"
                    ))
                }
            }
            Err(e) => Err(describe(&e)),
        }
    }

    fn cached_auth(
        &self,
        state: &HostState,
        registry: &str,
        scope: &str,
    ) -> Result<Option<String>, RegistryError> {
        match &state.scheme {
            Scheme::Unknown => Ok(None),
            Scheme::Basic => Ok(match self.credential(registry)? {
                Some((Credential::Basic { username, password }, _)) => {
                    Some(basic(&username, password.expose()))
                }
                Some((Credential::RegistryToken(t), _)) => Some(format!("Bearer {}", t.expose())),
                _ => None,
            }),
            Scheme::Bearer { .. } => Ok(state
                .tokens
                .get(scope)
                .filter(|t| t.expires > Instant::now())
                .map(|t| format!("Bearer {}", t.value))),
        }
    }

    /// Sends a request built by `make` for `url` (absolute, or a path under the
    /// registry's base), authenticating on a 401 challenge and retrying transient
    /// failures when `retry` is set. Returns the response, whatever its status, except
    /// 401 after authenticating, which is an error.
    fn send(
        &self,
        r: &Reference,
        access: Access,
        method: Method,
        url: &str,
        retry: bool,
        make: &mut dyn FnMut(RequestBuilder) -> Result<RequestBuilder, RegistryError>,
    ) -> Result<Response, RegistryError> {
        let registry = r.registry.as_str();
        let state = self.host(registry)?;
        let scope = access.scope(&r.repository);
        let full = if url.starts_with("http://") || url.starts_with("https://") {
            url.to_owned()
        } else {
            format!("{}{url}", state.lock().expect("host lock").base)
        };
        let mut attempt = 0;
        let mut authenticated = false;
        loop {
            let auth = {
                let st = state.lock().expect("host lock");
                self.cached_auth(&st, registry, &scope)?
            };
            let mut req = make(self.http.request(method.clone(), &full))?;
            if let Some(a) = &auth {
                req = req.header(AUTHORIZATION, a);
            }
            match req.send() {
                Err(e) => {
                    attempt += 1;
                    if retry && retryable(&e) && attempt < self.attempts() {
                        std::thread::sleep(backoff(attempt));
                        continue;
                    }
                    let mut detail = describe(&e);
                    if attempt > 1 {
                        detail.push_str(&format!(" (after {attempt} attempts)"));
                    }
                    return Err(RegistryError::Transport {
                        registry: registry.to_owned(),
                        detail,
                    });
                }
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    if authenticated {
                        return Err(self.refused(registry, resp));
                    }
                    authenticated = true;
                    let Some(scheme) = parse_challenge(resp.headers()) else {
                        return Err(RegistryError::Protocol {
                            registry: registry.to_owned(),
                            detail: "HTTP 401 without a usable WWW-Authenticate challenge".into(),
                        });
                    };
                    self.authenticate(registry, &state, scheme, &scope)?;
                }
                Ok(resp) if retry && retryable_status(resp.status()) => {
                    attempt += 1;
                    if attempt < self.attempts() {
                        let wait = resp
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u64>().ok())
                            .map(|s| Duration::from_secs(s.min(10)))
                            .unwrap_or_else(|| backoff(attempt));
                        std::thread::sleep(wait);
                        continue;
                    }
                    return Ok(resp);
                }
                Ok(resp) => return Ok(resp),
            }
        }
    }

    fn refused(&self, registry: &str, resp: Response) -> RegistryError {
        let text = error_text(resp);
        let detail = match self.credential(registry) {
            Ok(Some((c, src))) => format!(
                "{text}; the registry refused the credentials{} from {src}; log in again with `wpkg login {registry}`",
                c.username().map(|u| format!(" of `{u}`")).unwrap_or_default()
            ),
            _ => format!("{text}; the registry wants credentials: log in with `wpkg login {registry}`"),
        };
        RegistryError::Unauthorized {
            registry: registry.to_owned(),
            detail,
        }
    }

    fn authenticate(
        &self,
        registry: &str,
        state: &Mutex<HostState>,
        scheme: Scheme,
        scope: &str,
    ) -> Result<(), RegistryError> {
        let cred = self.credential(registry)?;
        match &scheme {
            Scheme::Basic => {
                if !matches!(
                    cred,
                    Some((Credential::Basic { .. } | Credential::RegistryToken(_), _))
                ) {
                    return Err(RegistryError::Unauthorized {
                        registry: registry.to_owned(),
                        detail: format!("the registry wants a user name and password: log in with `wpkg login {registry}`"),
                    });
                }
                // Over plain HTTP only for loopback and `--insecure` registries: the
                // only ones `host()` lets use it.
                state.lock().expect("host lock").scheme = scheme;
            }
            Scheme::Bearer { realm, service } => {
                let token = self.fetch_token(registry, realm, service.as_deref(), scope, cred)?;
                let mut st = state.lock().expect("host lock");
                st.tokens.insert(scope.to_owned(), token);
                st.scheme = scheme.clone();
            }
            Scheme::Unknown => {}
        }
        Ok(())
    }

    fn fetch_token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        cred: Option<(Credential, Source)>,
    ) -> Result<Token, RegistryError> {
        let fail = |detail: String| RegistryError::Unauthorized {
            registry: registry.to_owned(),
            detail,
        };
        let url = reqwest::Url::parse(realm)
            .map_err(|_| fail(format!("the token service address `{realm}` is not a URL")))?;
        let realm_host = url.host_str().unwrap_or_default().to_owned();
        if url.scheme() != "https"
            && !(is_loopback_registry(&realm_host) || self.plain_http_allowed(&realm_host))
        {
            return Err(fail(format!(
                "the token service `{realm}` is not HTTPS; refusing to send credentials to it (pass `--insecure {realm_host}` if you trust it)"
            )));
        }
        if let Some((Credential::RegistryToken(t), _)) = &cred {
            return Ok(Token {
                value: t.expose().to_owned(),
                expires: Instant::now() + Duration::from_secs(3600),
            });
        }
        let mut attempt = 0;
        let resp = loop {
            let req = match &cred {
                Some((Credential::IdentityToken(t), _)) => {
                    let mut form = vec![
                        ("grant_type", "refresh_token"),
                        ("refresh_token", t.expose()),
                        ("client_id", "wpkg"),
                        ("scope", scope),
                    ];
                    if let Some(s) = service {
                        form.push(("service", s));
                    }
                    self.http.post(url.clone()).form(&form)
                }
                other => {
                    let mut u = url.clone();
                    {
                        let mut q = u.query_pairs_mut();
                        if let Some(s) = service {
                            q.append_pair("service", s);
                        }
                        q.append_pair("scope", scope);
                    }
                    let mut req = self.http.get(u);
                    if let Some((Credential::Basic { username, password }, _)) = other {
                        req = req.header(AUTHORIZATION, basic(username, password.expose()));
                    }
                    req
                }
            };
            match req.send() {
                Ok(r) if retryable_status(r.status()) && attempt + 1 < self.attempts() => {}
                Ok(r) => break r,
                Err(e) if retryable(&e) && attempt + 1 < self.attempts() => {}
                Err(e) => {
                    return Err(RegistryError::Transport {
                        registry: registry.to_owned(),
                        detail: format!("token service {realm}: {}", describe(&e)),
                    })
                }
            }
            attempt += 1;
            std::thread::sleep(backoff(attempt));
        };
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let text = error_text(resp);
            return Err(fail(match &cred {
                Some((c, src)) => format!(
                    "the token service refused the credentials{} from {src} ({text}); log in again with `wpkg login {registry}`",
                    c.username().map(|u| format!(" of `{u}`")).unwrap_or_default()
                ),
                None => format!("the token service wants credentials ({text}); log in with `wpkg login {registry}`"),
            }));
        }
        if !status.is_success() {
            return Err(fail(format!(
                "the token service {realm} answered {}",
                error_text(resp)
            )));
        }
        #[derive(serde::Deserialize)]
        struct TokenReply {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let mut body = Vec::new();
        resp.take(1024 * 1024)
            .read_to_end(&mut body)
            .map_err(|e| fail(format!("reading the token: {e}")))?;
        let reply: TokenReply = serde_json::from_slice(&body)
            .map_err(|e| fail(format!("the token service's answer is not JSON: {e}")))?;
        let value = reply
            .token
            .or(reply.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| fail("the token service's answer has no token".into()))?;
        // Renew a little early; 60 s is the spec's default lifetime.
        let life = reply.expires_in.unwrap_or(60).clamp(10, 86_400);
        Ok(Token {
            value,
            expires: Instant::now() + Duration::from_secs(life - 5),
        })
    }

    /// Checks that the registry accepts the configured credentials (for `wpkg login`).
    pub fn check_login(&self, registry: &str) -> Result<(), RegistryError> {
        let state = self.host(registry)?;
        let url = format!("{}/v2/", state.lock().expect("host lock").base);
        let resp = self
            .http
            .get(&url)
            .send()
            .map_err(|e| RegistryError::Transport {
                registry: registry.to_owned(),
                detail: describe(&e),
            })?;
        if resp.status().is_success() {
            // No auth at all: nothing to check against.
            return Ok(());
        }
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Err(RegistryError::Protocol {
                registry: registry.to_owned(),
                detail: format!("GET /v2/ answered {}", error_text(resp)),
            });
        }
        let scheme = parse_challenge(resp.headers()).ok_or_else(|| RegistryError::Protocol {
            registry: registry.to_owned(),
            detail: "HTTP 401 without a usable WWW-Authenticate challenge".into(),
        })?;
        let cred = self.credential(registry)?;
        match scheme {
            Scheme::Bearer { realm, service } => {
                // A token with no scope proves the credentials (as `docker login` does).
                let fail = |detail: String| RegistryError::Unauthorized {
                    registry: registry.to_owned(),
                    detail,
                };
                if cred.is_none() {
                    return Err(fail("no credentials given".into()));
                }
                let token = self.fetch_token(registry, &realm, service.as_deref(), "", cred)?;
                self.get_with_auth(registry, &url, format!("Bearer {}", token.value))
            }
            Scheme::Basic | Scheme::Unknown => {
                let Some((Credential::Basic { username, password }, _)) = cred else {
                    return Err(RegistryError::Unauthorized {
                        registry: registry.to_owned(),
                        detail: "no user name and password given".into(),
                    });
                };
                self.get_with_auth(registry, &url, basic(&username, password.expose()))
            }
        }
    }

    /// GET `url` with an Authorization header; a 401 means the credentials are refused.
    fn get_with_auth(&self, registry: &str, url: &str, auth: String) -> Result<(), RegistryError> {
        let resp = self
            .http
            .get(url)
            .header(AUTHORIZATION, auth)
            .send()
            .map_err(|e| RegistryError::Transport {
                registry: registry.to_owned(),
                detail: describe(&e),
            })?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(self.refused(registry, resp));
        }
        Ok(())
    }

    fn status_error(&self, r: &Reference, what: String, resp: Response) -> RegistryError {
        let status = resp.status();
        let registry = r.registry.clone();
        let detail = error_text(resp);
        match status {
            StatusCode::NOT_FOUND => RegistryError::NotFound {
                registry,
                what,
                detail: detail
                    .strip_prefix("HTTP 404 Not Found: ")
                    .unwrap_or(&detail)
                    .to_owned(),
            },
            StatusCode::FORBIDDEN => RegistryError::Denied {
                registry,
                repository: r.repository.clone(),
                detail: format!("{detail}; check that your login may read/write this repository"),
            },
            _ => RegistryError::Protocol {
                registry,
                detail: format!("{what}: {detail}"),
            },
        }
    }

    /// Fetches a manifest by the reference's digest (if any) or tag, checking its
    /// digest against the reference and the `Docker-Content-Digest` header.
    pub fn get_manifest(&self, r: &Reference) -> Result<FetchedManifest, RegistryError> {
        let target = r
            .digest
            .clone()
            .or_else(|| r.tag.clone())
            .unwrap_or_else(|| wpkg_spec::reference::DEFAULT_TAG.to_owned());
        self.get_manifest_at(r, &target)
    }

    /// Fetches the manifest at `target` (a tag or digest) in `r`'s repository.
    pub fn get_manifest_at(
        &self,
        r: &Reference,
        target: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let url = format!("/v2/{}/manifests/{target}", r.repository);
        let resp = self.send(r, Access::Pull, Method::GET, &url, true, &mut |b| {
            Ok(b.header(ACCEPT, MANIFEST_ACCEPT))
        })?;
        let what = format!("manifest `{}:{target}`", r.name());
        if !resp.status().is_success() {
            return Err(self.status_error(r, what, resp));
        }
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let mut bytes = Vec::new();
        resp.take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| RegistryError::Transport {
                registry: r.registry.clone(),
                detail: format!("reading {what}: {e}"),
            })?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(RegistryError::Protocol {
                registry: r.registry.clone(),
                detail: format!("{what} is larger than {MAX_MANIFEST_BYTES} bytes"),
            });
        }
        let digest = crate::store::sha256_digest(&bytes);
        let expected = if wpkg_spec::reference::is_valid_digest(target) {
            Some(target.to_owned())
        } else {
            header_digest.filter(|d| d.starts_with("sha256:"))
        };
        if let Some(exp) = expected {
            if exp != digest {
                return Err(RegistryError::Integrity {
                    registry: r.registry.clone(),
                    what,
                    detail: format!("expected {exp}, the bytes hash to {digest}"),
                });
            }
        }
        #[derive(serde::Deserialize)]
        struct Probe {
            #[serde(rename = "mediaType", default)]
            media_type: Option<String>,
        }
        let probe: Probe = serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
            registry: r.registry.clone(),
            detail: format!("{what} is not JSON: {e}"),
        })?;
        let media_type = probe
            .media_type
            .or(content_type)
            .unwrap_or_else(|| media::OCI_MANIFEST.to_owned());
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Like [`Registry::get_manifest_at`], but a missing manifest is `None`.
    pub fn find_manifest(
        &self,
        r: &Reference,
        target: &str,
    ) -> Result<Option<FetchedManifest>, RegistryError> {
        match self.get_manifest_at(r, target) {
            Ok(m) => Ok(Some(m)),
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The referrers of `digest` from the referrers API, or `None` when the registry
    /// does not offer it (the caller then reads the `sha256-<hex>` fallback tag).
    pub fn referrers(
        &self,
        r: &Reference,
        digest: &str,
    ) -> Result<Option<wpkg_spec::media::ImageIndex>, RegistryError> {
        let url = format!("/v2/{}/referrers/{digest}", r.repository);
        let resp = self.send(r, Access::Pull, Method::GET, &url, true, &mut |b| {
            Ok(b.header(ACCEPT, media::OCI_INDEX))
        })?;
        let is_index = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(media::OCI_INDEX));
        if !resp.status().is_success() || !is_index {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        resp.take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| RegistryError::Transport {
                registry: r.registry.clone(),
                detail: format!("reading the referrers of {digest}: {e}"),
            })?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RegistryError::Protocol {
                registry: r.registry.clone(),
                detail: format!("the referrers of {digest} are not an OCI index: {e}"),
            })
    }

    /// Downloads a small blob (at most `max` bytes) into memory, checking its size and
    /// digest.
    pub fn get_small_blob(
        &self,
        r: &Reference,
        desc: &wpkg_spec::media::Descriptor,
        max: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let what = format!("blob {}", desc.digest);
        if desc.size > max {
            return Err(RegistryError::Protocol {
                registry: r.registry.clone(),
                detail: format!(
                    "{what} is {} bytes, more than the {max} allowed here",
                    desc.size
                ),
            });
        }
        let resp = self.get_blob(r, &desc.digest, desc.size)?;
        let mut bytes = Vec::new();
        resp.take(desc.size + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| RegistryError::Transport {
                registry: r.registry.clone(),
                detail: format!("reading {what}: {e}"),
            })?;
        let actual = crate::store::sha256_digest(&bytes);
        if bytes.len() as u64 != desc.size || actual != desc.digest {
            return Err(RegistryError::Integrity {
                registry: r.registry.clone(),
                what,
                detail: format!("{} bytes hashing to {actual}", bytes.len()),
            });
        }
        Ok(bytes)
    }

    /// Whether the repository already has the blob (HEAD).
    pub fn blob_exists(
        &self,
        r: &Reference,
        access: Access,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        let url = format!("/v2/{}/blobs/{digest}", r.repository);
        let resp = self.send(r, access, Method::HEAD, &url, true, &mut |b| Ok(b))?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.status_error(r, format!("blob {digest}"), resp)),
        }
    }

    /// Starts a blob download of `size` bytes; the caller streams and verifies the body.
    pub fn get_blob(
        &self,
        r: &Reference,
        digest: &str,
        size: u64,
    ) -> Result<Response, RegistryError> {
        let url = format!("/v2/{}/blobs/{digest}", r.repository);
        let resp = self.send(r, Access::Pull, Method::GET, &url, true, &mut |b| {
            Ok(b.timeout(transfer_timeout(size)))
        })?;
        if !resp.status().is_success() {
            return Err(self.status_error(r, format!("blob {digest} of `{}`", r.name()), resp));
        }
        Ok(resp)
    }

    /// Uploads one blob: POST to open an upload session, then one PUT with the
    /// content. `body` is called once per attempt; the whole upload is retried on a
    /// transient failure.
    pub fn upload_blob(
        &self,
        r: &Reference,
        digest: &str,
        size: u64,
        body: &mut dyn FnMut() -> Result<reqwest::blocking::Body, RegistryError>,
    ) -> Result<(), RegistryError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.upload_once(r, digest, size, body) {
                Ok(()) => return Ok(()),
                Err((_, true)) if attempt < self.attempts() => {
                    std::thread::sleep(backoff(attempt));
                }
                Err((RegistryError::Transport { registry, detail }, _))
                    if attempt > 1 && !detail.contains("attempts)") =>
                {
                    return Err(RegistryError::Transport {
                        registry,
                        detail: format!("{detail} (after {attempt} uploads)"),
                    })
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// The error of a failed upload step, and whether starting over may help
    /// (transport failures, 5xx, 429).
    fn upload_failure(&self, r: &Reference, what: String, resp: Response) -> (RegistryError, bool) {
        let retry = retryable_status(resp.status());
        (self.status_error(r, what, resp), retry)
    }

    fn upload_once(
        &self,
        r: &Reference,
        digest: &str,
        size: u64,
        body: &mut dyn FnMut() -> Result<reqwest::blocking::Body, RegistryError>,
    ) -> Result<(), (RegistryError, bool)> {
        let transient = |e: RegistryError| {
            let retry = matches!(e, RegistryError::Transport { .. });
            (e, retry)
        };
        let url = format!("/v2/{}/blobs/uploads/", r.repository);
        let resp = self
            .send(r, Access::Push, Method::POST, &url, true, &mut |b| {
                Ok(b.header(reqwest::header::CONTENT_LENGTH, "0"))
            })
            .map_err(transient)?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.upload_failure(r, format!("starting the upload of {digest}"), resp));
        }
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                (
                    RegistryError::Protocol {
                        registry: r.registry.clone(),
                        detail: "the upload session has no Location header".into(),
                    },
                    false,
                )
            })?
            .to_owned();
        let base = resp.url().clone();
        let mut put = base.join(&location).map_err(|_| {
            (
                RegistryError::Protocol {
                    registry: r.registry.clone(),
                    detail: format!("the upload Location `{location}` is not a URL"),
                },
                false,
            )
        })?;
        // Credentials go with the PUT: only to where the POST went, never downgraded.
        if put.scheme() != base.scheme()
            || put.host_str() != base.host_str()
            || put.port_or_known_default() != base.port_or_known_default()
        {
            return Err((
                RegistryError::Protocol {
                    registry: r.registry.clone(),
                    detail: format!(
                        "the upload Location `{location}` points to another host or scheme than {}; refusing to send credentials there",
                        base.origin().ascii_serialization()
                    ),
                },
                false,
            ));
        }
        put.query_pairs_mut().append_pair("digest", digest);
        let resp = self
            .send(
                r,
                Access::Push,
                Method::PUT,
                put.as_str(),
                false,
                &mut |b| {
                    Ok(b.timeout(transfer_timeout(size))
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(reqwest::header::CONTENT_LENGTH, size.to_string())
                        .body(body()?))
                },
            )
            .map_err(transient)?;
        if !resp.status().is_success() {
            return Err(self.upload_failure(r, format!("uploading {digest}"), resp));
        }
        if let Some(d) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if d != digest {
                return Err((
                    RegistryError::Integrity {
                        registry: r.registry.clone(),
                        what: format!("the upload of {digest}"),
                        detail: format!("the registry stored it as {d}"),
                    },
                    false,
                ));
            }
        }
        Ok(())
    }

    /// Uploads a manifest under `target` (a tag or its digest). Returns the digest the
    /// registry reports (checked against ours).
    pub fn put_manifest(
        &self,
        r: &Reference,
        target: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, RegistryError> {
        let url = format!("/v2/{}/manifests/{target}", r.repository);
        let ours = crate::store::sha256_digest(bytes);
        let body = bytes.to_vec();
        let resp = self.send(r, Access::Push, Method::PUT, &url, true, &mut |b| {
            Ok(b.header(CONTENT_TYPE, media_type).body(body.clone()))
        })?;
        if !resp.status().is_success() {
            return Err(self.status_error(r, format!("manifest `{}:{target}`", r.name()), resp));
        }
        if let Some(d) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if d != ours {
                return Err(RegistryError::Integrity {
                    registry: r.registry.clone(),
                    what: format!("manifest `{}:{target}`", r.name()),
                    detail: format!("we sent {ours}, the registry stored {d}"),
                });
            }
        }
        Ok(ours)
    }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let mut h = HeaderMap::new();
        h.insert(
            WWW_AUTHENTICATE,
            r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull""#
                .parse()
                .unwrap(),
        );
        assert_eq!(
            parse_challenge(&h),
            Some(Scheme::Bearer {
                realm: "https://ghcr.io/token".into(),
                service: Some("ghcr.io".into())
            })
        );
        let mut h = HeaderMap::new();
        h.insert(
            WWW_AUTHENTICATE,
            r#"Basic realm="Registry Realm""#.parse().unwrap(),
        );
        assert_eq!(parse_challenge(&h), Some(Scheme::Basic));
        let p = parse_params(r#"realm="a\"b", service=x ,scope="c,d""#);
        assert_eq!(p["realm"], "a\"b");
        assert_eq!(p["service"], "x");
        assert_eq!(p["scope"], "c,d");
    }

    #[test]
    fn plain_http_only_for_loopback_and_named_registries() {
        let creds = Credentials::new(std::env::temp_dir().join("wpkg-no-docker-config"), None);
        let reg = Registry::new(
            ClientOptions {
                insecure: vec!["registry.lan:5000".into()],
                ..Default::default()
            },
            creds,
        )
        .unwrap();
        assert!(reg.plain_http_allowed("127.0.0.1:5000"));
        assert!(reg.plain_http_allowed("registry.lan:5000"));
        assert!(!reg.plain_http_allowed("registry.lan:5001"));
        assert!(!reg.plain_http_allowed("ghcr.io"));
        assert!(retryable_status(StatusCode::SERVICE_UNAVAILABLE));
        assert!(retryable_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(!retryable_status(StatusCode::NOT_IMPLEMENTED));
        assert!(!retryable_status(StatusCode::NOT_FOUND));
    }

    #[test]
    fn loopback_names() {
        for r in [
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_loopback_registry(r), "{r}");
        }
        for r in [
            "ghcr.io",
            "10.0.0.1:5000",
            "docker.io",
            "localhost.example.com",
        ] {
            assert!(!is_loopback_registry(r), "{r}");
        }
    }
}
