//! HTTP plumbing: TLS roots, retries and backoff, error descriptions.

use super::auth::parse_challenge;
use super::*;

/// Sleeps before attempt `n` (1-based retries): 250 ms, 500 ms, 1 s, ...
pub(crate) fn backoff(n: u32) -> Duration {
    Duration::from_millis(250u64 << n.saturating_sub(1).min(5))
}

/// The error text of a transport failure, with its causes, and a hint.
pub(crate) fn describe(e: &reqwest::Error) -> String {
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
    parts.join(": ")
}

/// A transport failure as an error: an untrusted certificate and a timeout are their
/// own variants (the fixes differ), everything else is `Transport`. `note` is appended
/// to the detail; `limit` is the client's request limit.
pub(crate) fn transport(
    registry: &str,
    limit: Duration,
    e: &reqwest::Error,
    note: &str,
) -> RegistryError {
    let registry = registry.to_owned();
    if e.is_timeout() {
        return timed_out(registry, limit, e.url().map(|u| u.path()), note);
    }
    let detail = format!("{}{note}", describe(e));
    if is_cert_error(e) {
        RegistryError::UntrustedCertificate { registry, detail }
    } else {
        RegistryError::Transport { registry, detail }
    }
}

/// The error of a request to `path` that ran out of its time.
pub(crate) fn timed_out(
    registry: String,
    limit: Duration,
    path: Option<&str>,
    note: &str,
) -> RegistryError {
    let what = path.map_or_else(
        || "a request".to_owned(),
        |p| format!("the request for {p}"),
    );
    RegistryError::TimedOut {
        registry,
        detail: format!(
            "{what} did not complete within its time limit ({} s per request, more for large blobs){note}",
            limit.as_secs_f64()
        ),
        limit,
    }
}

/// Whether an I/O error reading a response body is the request's timeout.
pub(crate) fn is_timeout_io(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
            .is_some_and(reqwest::Error::is_timeout)
}

pub(crate) fn chain_text(e: &reqwest::Error) -> String {
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

pub(crate) fn is_cert_error(e: &reqwest::Error) -> bool {
    let t = chain_text(e);
    t.contains("invalid peer certificate") || t.contains("certificate")
}

/// Whether a transport failure is worth retrying.
pub(crate) fn retryable(e: &reqwest::Error) -> bool {
    !is_cert_error(e) && !e.is_builder() && !e.is_redirect() && !e.is_timeout()
}

pub(crate) fn retryable_status(s: StatusCode) -> bool {
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
    // One line, and nothing a terminal would act on: the registry's text is untrusted.
    let detail: String = detail
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(1000)
        .collect();
    let detail = detail.trim();
    if detail.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {detail}")
    }
}

/// TLS roots: Mozilla's, the system's, and `ca_files`.
pub fn tls_config(ca_files: &[PathBuf]) -> Result<rustls::ClientConfig, RegistryError> {
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

pub(crate) fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

impl Registry {
    /// Sends a request built by `make` for `url` (absolute, or a path under the
    /// registry's base), authenticating on a 401 challenge and retrying transient
    /// failures when `retry` is set. Returns the response, whatever its status, except
    /// 401 after authenticating, which is an error.
    pub(crate) fn send(
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
                    let note = if attempt > 1 {
                        format!(" (after {attempt} attempts)")
                    } else {
                        String::new()
                    };
                    return Err(transport(registry, self.timeout(), &e, &note));
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

    pub(crate) fn refused(&self, registry: &str, resp: Response) -> RegistryError {
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

    pub(crate) fn status_error(
        &self,
        r: &Reference,
        what: String,
        resp: Response,
    ) -> RegistryError {
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
}
