//! Outbound HTTP: the allow-list, enforced in wasi-http's `send_request` hook.
//!
//! For each request a guest makes (redirects are not followed by the host, so every
//! hop is a new request checked here): the scheme, host and port must match an entry
//! of `outbound_http`; a name entry never grants an IP literal; a name is resolved by
//! the host, every address is checked, and the connection goes to the address that was
//! checked (no second lookup). Loopback, private, link-local, CGNAT and metadata
//! addresses are refused unless an IP entry lists them. A denial is
//! `HttpRequestDenied` for the guest and one line on stderr naming the destination and
//! the `outbound_http` entry that would allow it.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};
use wpkg_spec::outbound::{self, Host, HostPattern, OutboundPattern, Scheme};
use wpkg_spec::plan::RunPlan;

/// Names mapped to addresses before DNS is asked (an operator's hosts file, for tests
/// and air-gapped set-ups); [`RunPlan::resolve`] carries it to the runner.
pub type HostsOverride = BTreeMap<String, Vec<IpAddr>>;

/// Parses a hosts file: `ADDRESS NAME [NAME...]` per line, `#` comments.
pub fn parse_hosts(text: &str) -> Result<HostsOverride, String> {
    let mut map: HostsOverride = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let addr: IpAddr = parts.next().unwrap_or("").parse().map_err(|_| {
            format!(
                "hosts file line {}: `{line}` does not start with an IP address",
                i + 1
            )
        })?;
        for name in parts {
            map.entry(outbound::normalize_host(name))
                .or_default()
                .push(addr);
        }
    }
    Ok(map)
}

/// The allow-list of one guest.
pub struct OutboundPolicy {
    patterns: Vec<OutboundPattern>,
    hosts: HostsOverride,
}

/// What the policy decided about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Connect to exactly this address.
    Allow(SocketAddr),
    /// Refuse; `reason` says why, `entry` is the line that would allow it (if any).
    Deny {
        /// Why.
        reason: String,
        /// The `outbound_http` entry that would allow it.
        entry: Option<String>,
    },
}

fn entry_for(scheme: Scheme, host: &str, port: u16) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    if port == scheme.default_port() {
        format!("{}://{host}", scheme.as_str())
    } else {
        format!("{}://{host}:{port}", scheme.as_str())
    }
}

impl OutboundPolicy {
    /// A policy from the plan's entries and an optional hosts override.
    pub fn new(patterns: Vec<OutboundPattern>, hosts: HostsOverride) -> OutboundPolicy {
        OutboundPolicy { patterns, hosts }
    }

    /// The policy a plan grants: its `outbound_http` entries and its name overrides.
    pub fn from_plan(plan: &RunPlan) -> OutboundPolicy {
        OutboundPolicy::new(plan.outbound_http.clone(), plan.resolve.clone())
    }

    /// Whether an IP entry explicitly allows `ip` for this scheme and port.
    fn ip_listed(&self, scheme: Scheme, ip: IpAddr, port: u16) -> bool {
        self.patterns.iter().any(|p| {
            matches!(p.host, HostPattern::Ip { .. }) && p.matches(scheme, &Host::Ip(ip), port)
        })
    }

    /// Decides about `scheme://host:port`, resolving names itself.
    pub async fn check(&self, scheme: &str, host: &str, port: Option<u16>) -> Decision {
        let scheme = match scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => {
                return Decision::Deny {
                    reason: format!("scheme `{other}` is not allowed (only http and https)"),
                    entry: None,
                }
            }
        };
        let port = port.unwrap_or(scheme.default_port());
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            let ip = outbound::canonical_ip(ip);
            if self
                .patterns
                .iter()
                .any(|p| p.matches(scheme, &Host::Ip(ip), port))
            {
                return Decision::Allow(SocketAddr::new(ip, port));
            }
            let has_names = self
                .patterns
                .iter()
                .any(|p| matches!(p.host, HostPattern::Name(_) | HostPattern::Subdomains(_)));
            let reason = if has_names {
                "the address is not in outbound_http (host name entries never allow IP literals)"
            } else {
                "the address is not in outbound_http"
            };
            return Decision::Deny {
                reason: reason.into(),
                entry: Some(entry_for(scheme, &ip.to_string(), port)),
            };
        }
        let name = outbound::normalize_host(bare);
        if !self
            .patterns
            .iter()
            .any(|p| p.matches(scheme, &Host::Name(&name), port))
        {
            return Decision::Deny {
                reason: "the destination is not in outbound_http".into(),
                entry: Some(entry_for(scheme, &name, port)),
            };
        }
        let addrs: Vec<IpAddr> = match self.hosts.get(&name) {
            Some(a) => a.clone(),
            None => match tokio::time::timeout(
                Duration::from_secs(10),
                tokio::net::lookup_host((name.as_str(), port)),
            )
            .await
            {
                Ok(Ok(it)) => it.map(|a| a.ip()).collect(),
                Ok(Err(e)) => {
                    return Decision::Deny {
                        reason: format!("`{name}` does not resolve: {e}"),
                        entry: None,
                    }
                }
                Err(_) => {
                    return Decision::Deny {
                        reason: format!("resolving `{name}` timed out"),
                        entry: None,
                    }
                }
            },
        };
        let mut refused = Vec::new();
        for ip in addrs {
            let ip = outbound::canonical_ip(ip);
            if outbound::is_special_address(ip) && !self.ip_listed(scheme, ip, port) {
                refused.push(ip);
                continue;
            }
            return Decision::Allow(SocketAddr::new(ip, port));
        }
        match refused.first() {
            Some(ip) => Decision::Deny {
                reason: format!(
                    "`{name}` resolves to {ip}, a loopback, private, link-local or metadata address, which is refused unless listed"
                ),
                entry: Some(entry_for(scheme, &ip.to_string(), port)),
            },
            None => Decision::Deny { reason: format!("`{name}` has no addresses"), entry: None },
        }
    }
}

/// The wasi-http hooks of one guest instance: every outgoing request goes through
/// the policy.
pub struct GuardedHooks {
    /// The allow-list.
    pub policy: Arc<OutboundPolicy>,
    /// The guest's name, for log lines.
    pub guest: Arc<str>,
    /// Where denials are reported.
    pub observer: Arc<dyn crate::host::Observer>,
}

type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

impl WasiHttpHooks for GuardedHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        let policy = self.policy.clone();
        let guest = self.guest.clone();
        let observer = self.observer.clone();
        Box::new(async move { guarded_send(&policy, &guest, &*observer, request, options).await })
    }
}

async fn guarded_send(
    policy: &OutboundPolicy,
    guest: &str,
    observer: &dyn crate::host::Observer,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> SendResult {
    let uri = request.uri().clone();
    let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
    let host = uri
        .host()
        .ok_or(HttpError::HttpRequestUriInvalid)?
        .to_owned();
    let addr = match policy.check(&scheme, &host, uri.port_u16()).await {
        Decision::Allow(addr) => addr,
        Decision::Deny { reason, entry } => {
            let destination = format!(
                "{scheme}://{}{}",
                uri.authority().map(|a| a.as_str()).unwrap_or(&host),
                uri.path()
            );
            observer.event(&crate::host::Event::OutboundDenied {
                guest,
                method: request.method().as_str(),
                destination: &destination,
                reason: &reason,
                entry: entry.as_deref(),
            });
            return Err(HttpError::HttpRequestDenied);
        }
    };
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(Duration::from_secs(30));
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(Duration::from_secs(60));
    let tcp = tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(HttpError::Connect)?;
    // The request line carries only the path; Host was set from the authority.
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let response = if scheme == "https" {
        let server_name = match host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => rustls::pki_types::ServerName::from(ip),
            Err(_) => rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|_| HttpError::HttpRequestUriInvalid)?,
        };
        let config = tls_config().ok_or(HttpError::TlsProtocolError)?;
        let tls = tokio::time::timeout(
            connect_timeout,
            tokio_rustls::TlsConnector::from(config).connect(server_name, tcp),
        )
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(HttpError::Tls)?;
        exchange(tls, request, first_byte_timeout).await?
    } else {
        exchange(tcp, request, first_byte_timeout).await?
    };
    Ok((response, Box::new(async { Ok(()) })))
}

/// The TLS client configuration (web PKI roots), built once per process.
fn tls_config() -> Option<Arc<rustls::ClientConfig>> {
    static CONFIG: std::sync::OnceLock<Option<Arc<rustls::ClientConfig>>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .ok()?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Some(Arc::new(config))
        })
        .clone()
}

async fn exchange<S>(
    stream: S,
    request: http::Request<WasiBody>,
    first_byte_timeout: Duration,
) -> Result<http::Response<WasiBody>, HttpError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let io = wasmtime_wasi_http::io::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
        .await
        .map_err(|_| HttpError::ConnectionReadTimeout)??;
    Ok(response.map(|body| body.map_err(HttpError::from).boxed_unsync()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str], hosts: &str) -> OutboundPolicy {
        OutboundPolicy::new(
            entries.iter().map(|e| e.parse().unwrap()).collect(),
            parse_hosts(hosts).unwrap(),
        )
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn decisions() {
        let rt = rt();
        let p = policy(
            &[
                "http://allowed.test:8080",
                "http://public.test",
                "http://127.0.0.1:9000",
            ],
            "127.0.0.1 allowed.test\n93.184.216.34 public.test # a public address\n",
        );
        // Allowed name resolving to loopback: refused, loopback not listed on that port.
        let d = rt.block_on(p.check("http", "allowed.test", Some(8080)));
        assert!(
            matches!(d, Decision::Deny { ref reason, .. } if reason.contains("loopback")),
            "{d:?}"
        );
        assert_eq!(
            rt.block_on(p.check("http", "PUBLIC.test.", None)),
            Decision::Allow("93.184.216.34:80".parse().unwrap())
        );
        // IP literal of an allowed name: refused.
        let d = rt.block_on(p.check("http", "93.184.216.34", None));
        assert!(
            matches!(d, Decision::Deny { entry: Some(ref e), .. } if e == "http://93.184.216.34"),
            "{d:?}"
        );
        assert_eq!(
            rt.block_on(p.check("http", "127.0.0.1", Some(9000))),
            Decision::Allow("127.0.0.1:9000".parse().unwrap())
        );
        let d = rt.block_on(p.check("https", "public.test", None));
        assert!(
            matches!(d, Decision::Deny { entry: Some(ref e), .. } if e == "https://public.test"),
            "{d:?}"
        );
        let d = rt.block_on(p.check("http", "169.254.169.254", None));
        assert!(matches!(d, Decision::Deny { .. }));
        let d = rt.block_on(p.check("http", "[::1]", Some(9000)));
        assert!(
            matches!(d, Decision::Deny { entry: Some(ref e), .. } if e == "http://[::1]:9000"),
            "{d:?}"
        );
    }

    fn plan(manifest_caps: &str, req: wpkg_spec::plan::OperatorRequest) -> RunPlan {
        let m = wpkg_spec::Manifest::parse(&format!(
            "manifest_version = 1\n[package]\nname = \"a\"\nversion = \"1\"\nwasm = \"a.wasm\"\n[trigger]\ntype = \"http\"\n[capabilities]\n{manifest_caps}"
        ))
        .unwrap();
        RunPlan::new(&m.to_artifact_capabilities(), &req).unwrap()
    }

    #[test]
    fn the_plan_is_the_policy() {
        // The runner enforces only what the plan says: its entries and its overrides.
        let rt = rt();
        let req = wpkg_spec::plan::OperatorRequest {
            resolve: parse_hosts("93.184.216.34 api.test\n").unwrap(),
            ..Default::default()
        };
        let p =
            OutboundPolicy::from_plan(&plan("outbound_http = [\"http://api.test\"]", req.clone()));
        assert_eq!(
            rt.block_on(p.check("http", "api.test", None)),
            Decision::Allow("93.184.216.34:80".parse().unwrap())
        );
        // The operator narrows: nothing is allowed, whatever the artifact declares.
        let denied = wpkg_spec::plan::OperatorRequest {
            deny_outbound: true,
            ..req
        };
        let p = OutboundPolicy::from_plan(&plan("outbound_http = [\"http://api.test\"]", denied));
        assert!(matches!(
            rt.block_on(p.check("http", "api.test", None)),
            Decision::Deny { .. }
        ));
        // Nothing declared: nothing allowed.
        let p = OutboundPolicy::from_plan(&plan("", Default::default()));
        assert!(matches!(
            rt.block_on(p.check("http", "api.test", None)),
            Decision::Deny { .. }
        ));
    }

    #[test]
    fn listed_private_range_allows_resolved_names() {
        let rt = rt();
        let p = policy(
            &["http://svc.internal", "http://10.0.0.0/8:*"],
            "10.1.2.3 svc.internal\n",
        );
        assert_eq!(
            rt.block_on(p.check("http", "svc.internal", None)),
            Decision::Allow("10.1.2.3:80".parse().unwrap())
        );
    }

    #[test]
    fn hosts_file_errors() {
        assert!(parse_hosts("not-an-ip name").is_err());
        assert!(parse_hosts("# only a comment\n\n").unwrap().is_empty());
    }
}
