//! A real OCI registry for tests: Debian's `docker-registry` (the CNCF distribution
//! server) on 127.0.0.1 with a temporary store, in three setups — plain HTTP, TLS with
//! htpasswd basic auth (a CA generated at test time), and bearer-token auth with a test
//! token issuer — plus a TCP proxy that breaks connections on purpose.
//!
//! Every server stops by itself: the registry runs under `timeout`, and is killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

/// The test user of the authenticated setups.
pub const USER: &str = "alice";
/// Her password.
pub const PASSWORD: &str = "s3cret-Pa55";

/// Where Debian installs the registry.
fn registry_program() -> PathBuf {
    for p in ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"] {
        if Path::new(p).is_file() {
            return p.into();
        }
    }
    if let Some(p) = which("docker-registry") {
        return p;
    }
    panic!(
        "`docker-registry` (Debian's CNCF distribution server) is not installed; run `bash scripts/setup.sh` \
(it runs `apt-get install docker-registry`)"
    );
}

/// Finds a program on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How the registry authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// Plain HTTP, no auth.
    Plain,
    /// HTTPS with a test CA, htpasswd basic auth.
    TlsBasic,
    /// Plain HTTP on loopback, bearer tokens from a test issuer.
    Token,
}

/// A test CA and a server certificate for 127.0.0.1 and localhost.
pub struct TestCa {
    /// The CA certificate (PEM file) clients trust.
    pub ca_pem: PathBuf,
    /// The server certificate chain (PEM).
    pub cert_pem: PathBuf,
    /// The server key (PEM).
    pub key_pem: PathBuf,
}

impl TestCa {
    /// Generates a CA and a server certificate into `dir`.
    pub fn generate(dir: &Path) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "wpkg test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params
            .distinguished_name
            .push(DnType::CommonName, "wpkg test registry");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let out = TestCa {
            ca_pem: dir.join("ca.pem"),
            cert_pem: dir.join("server.pem"),
            key_pem: dir.join("server.key"),
        };
        std::fs::write(&out.ca_pem, ca.pem()).unwrap();
        std::fs::write(&out.cert_pem, cert.pem()).unwrap();
        std::fs::write(&out.key_pem, key.serialize_pem()).unwrap();
        out
    }
}

/// A running `docker-registry`.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT` (as a registry name in references).
    pub host: String,
    /// The registry's storage root.
    pub storage: PathBuf,
    /// The test CA (TLS setup only).
    pub ca: Option<TestCa>,
    /// The token issuer (token setup only).
    pub tokens: Option<TokenServer>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry in `setup` and waits until it answers.
    pub fn start(setup: Setup) -> Registry {
        let program = registry_program();
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let mut ca = None;
        let mut tokens = None;
        let mut extra = String::new();
        match setup {
            Setup::Plain => {}
            Setup::TlsBasic => {
                let c = TestCa::generate(dir.path());
                let hash = bcrypt::hash_with_salt(PASSWORD, 4, *b"wpkg-test-salt16")
                    .unwrap()
                    .format_for_version(bcrypt::Version::TwoY);
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, format!("{USER}:{hash}\n")).unwrap();
                extra = format!(
                    "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: wpkg-test\n    path: {}\n",
                    c.cert_pem.display(),
                    c.key_pem.display(),
                    htpasswd.display()
                );
                ca = Some(c);
            }
            Setup::Token => {
                let t = TokenServer::start(dir.path());
                extra = format!(
                    "auth:\n  token:\n    realm: http://{}/token\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    t.addr,
                    TokenServer::SERVICE,
                    TokenServer::ISSUER,
                    t.cert_pem.display()
                );
                tokens = Some(t);
            }
        }
        let log = dir.path().join("registry.log");
        for _ in 0..5 {
            let port = free_port();
            let host = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            // `extra` starts with the rest of `http:` (tls) or a top-level `auth:`.
            let (http_extra, top_extra) = if extra.starts_with("  tls:") {
                let (tls, auth) = extra.split_at(extra.find("auth:").unwrap());
                (tls.to_owned(), auth.to_owned())
            } else {
                (String::new(), extra.clone())
            };
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n{http_extra}{top_extra}",
                    storage.display()
                ),
            )
            .unwrap();
            let logf = std::fs::File::create(&log).unwrap();
            // `timeout` stops the registry even if this test process dies.
            let child = Command::new("timeout")
                .arg("900")
                .arg(&program)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(logf.try_clone().unwrap())
                .stderr(logf)
                .spawn()
                .expect("starting docker-registry");
            let mut reg = Registry {
                child,
                host: host.clone(),
                storage: storage.clone(),
                ca: None,
                tokens: None,
                log: log.clone(),
                _dir: tempfile::tempdir().unwrap(),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut up = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = reg.child.try_wait() {
                    break;
                }
                if TcpStream::connect(&host).is_ok() {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            if up {
                reg.ca = ca;
                reg.tokens = tokens;
                reg._dir = dir;
                return reg;
            }
            stop_under_timeout(&mut reg.child);
            let _ = reg.child.wait();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if !text.contains("address already in use") {
                panic!("docker-registry did not start:\n{text}");
            }
        }
        panic!("docker-registry did not start: no free port after 5 tries");
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The file holding a blob's bytes in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Stops the registry. SIGTERM to `timeout`, which passes it on to the registry
    /// (a SIGKILL would leave the registry running as an orphan), then SIGKILL if
    /// anything is left after two seconds.
    pub fn stop(&mut self) {
        stop_under_timeout(&mut self.child);
    }
}

/// Stops a child started as `timeout N program ...`: SIGTERM first (forwarded to the
/// program), SIGKILL after two seconds.
fn stop_under_timeout(child: &mut std::process::Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A bearer-token issuer like GHCR's and Docker Hub's: `GET /token?service=&scope=`
/// with optional basic auth; grants what it asks for to the test user, and anonymous
/// pulls of `public/...` repositories. Tokens are ES256 JWTs with the signing certificate in `x5c`.
pub struct TokenServer {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The signing certificate the registry trusts.
    pub cert_pem: PathBuf,
    /// Token requests served (granted or not).
    pub requests: Arc<AtomicUsize>,
    /// Requests refused for bad credentials.
    pub refused: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl TokenServer {
    /// The registry's service name.
    pub const SERVICE: &'static str = "wpkg-test-registry";
    /// The token issuer.
    pub const ISSUER: &'static str = "wpkg-test-issuer";

    fn start(dir: &Path) -> TokenServer {
        use rcgen::{CertificateParams, DnType, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "wpkg test token signer");
        let cert = params.self_signed(&key).unwrap();
        let cert_pem = dir.join("token-signer.pem");
        std::fs::write(&cert_pem, cert.pem()).unwrap();
        let x5c = base64::engine::general_purpose::STANDARD.encode(cert.der());
        let rng = ring::rand::SystemRandom::new();
        let signer = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &rng,
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r2, f2, s2) = (requests.clone(), refused.clone(), stop.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            while !s2.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(900) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        serve_token(stream, &signer, &rng, &x5c, &r2, &f2);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TokenServer {
            addr,
            cert_pem,
            requests,
            refused,
            stop,
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn url_decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(h, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve_token(
    stream: TcpStream,
    signer: &ring::signature::EcdsaKeyPair,
    rng: &ring::rand::SystemRandom,
    x5c: &str,
    requests: &AtomicUsize,
    refused: &AtomicUsize,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
    let mut auth = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("authorization") {
                auth = Some(v.trim().to_owned());
            }
        }
    }
    requests.fetch_add(1, Ordering::Relaxed);
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut scopes = Vec::new();
    for pair in query.split('&') {
        if let Some(v) = pair.strip_prefix("scope=") {
            let v = url_decode(v);
            if !v.is_empty() {
                scopes.push(v);
            }
        }
    }
    let user = auth.as_deref().and_then(|a| {
        let enc = a.strip_prefix("Basic ")?;
        let dec = base64::engine::general_purpose::STANDARD.decode(enc).ok()?;
        String::from_utf8(dec).ok()
    });
    let mut out = stream;
    let (status, body) = match user.as_deref() {
        Some(u) if u != format!("{USER}:{PASSWORD}") => {
            refused.fetch_add(1, Ordering::Relaxed);
            (
                "401 Unauthorized",
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"invalid username or password"}]}"#
                    .to_owned(),
            )
        }
        _ => {
            let granted = user.is_some();
            // The test user gets what she asks for; anonymous clients may pull the
            // repositories under `public/`, like public images on GHCR or Docker Hub.
            let access: Vec<serde_json::Value> = scopes
                .iter()
                .filter_map(|s| {
                    let mut parts = s.splitn(3, ':');
                    let (t, n, a) = (parts.next()?, parts.next()?, parts.next()?);
                    let actions: Vec<&str> = a
                        .split(',')
                        .filter(|act| granted || (n.starts_with("public/") && *act == "pull"))
                        .collect();
                    (!actions.is_empty())
                        .then(|| serde_json::json!({ "type": t, "name": n, "actions": actions }))
                })
                .collect();
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
            let claims = serde_json::json!({
                "iss": TokenServer::ISSUER,
                "sub": if granted { USER } else { "" },
                "aud": TokenServer::SERVICE,
                "exp": now + 300,
                "nbf": now - 10,
                "iat": now,
                "jti": format!("{now}-{}", requests.load(Ordering::Relaxed)),
                "access": access,
            });
            let signing_input = format!(
                "{}.{}",
                b64url(header.to_string().as_bytes()),
                b64url(claims.to_string().as_bytes())
            );
            let sig = signer.sign(rng, signing_input.as_bytes()).unwrap();
            let token = format!("{signing_input}.{}", b64url(sig.as_ref()));
            (
                "200 OK",
                serde_json::json!({"token": token, "expires_in": 300}).to_string(),
            )
        }
    };
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = out.flush();
}

/// What a [`Proxy`] does to the traffic.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Once `after` bytes have gone from client to server in one connection, cut that
    /// connection; later connections pass untouched.
    CutOnce {
        /// Bytes before the cut.
        after: u64,
    },
    /// Once `after` bytes have gone from client to server in all, cut everything and
    /// stop listening: the registry is gone.
    Die {
        /// Bytes before it dies.
        after: u64,
    },
    /// Bytes trickle both ways at this many bytes per second.
    Trickle {
        /// The rate.
        bytes_per_sec: u64,
    },
    /// The first `count` connections get `503 Service Unavailable` to their first
    /// request and are closed (counted in [`Proxy::cuts`]); later ones pass untouched.
    ServerErrors {
        /// Connections answered with 503.
        count: usize,
    },
}

/// Reads one request head from `client`, answers 503 and closes.
fn answer_503(mut client: TcpStream) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let body = r#"{"errors":[{"code":"UNAVAILABLE","message":"the registry is restarting"}]}"#;
    let _ = write!(
        client,
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.shutdown(Shutdown::Both);
}

/// A TCP proxy in front of a registry that breaks connections on purpose.
pub struct Proxy {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Connections cut so far.
    pub cuts: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts a proxy to `upstream` with `fault`.
    pub fn start(upstream: &str, fault: Fault) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let cuts = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let total = Arc::new(AtomicU64::new(0));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c2, s2, up) = (cuts.clone(), stop.clone(), upstream.to_owned());
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut listener = Some(listener);
            while !s2.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(900) {
                let Some(l) = &listener else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                if matches!(fault, Fault::Die { after } if total.load(Ordering::Relaxed) >= after) {
                    listener = None;
                    for s in open.lock().unwrap().drain(..) {
                        let _ = s.shutdown(Shutdown::Both);
                    }
                    continue;
                }
                let Ok((client, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                let _ = client.set_nonblocking(false);
                if let Fault::ServerErrors { count } = fault {
                    if c2.load(Ordering::Relaxed) < count {
                        c2.fetch_add(1, Ordering::Relaxed);
                        std::thread::spawn(move || answer_503(client));
                        continue;
                    }
                }
                let Ok(server) = TcpStream::connect(&up) else {
                    continue;
                };
                open.lock().unwrap().push(client.try_clone().unwrap());
                open.lock().unwrap().push(server.try_clone().unwrap());
                let (cl2, sv2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                // server -> client: plain copy, or trickled.
                std::thread::spawn(move || {
                    let (mut from, mut to) = (sv2, cl2);
                    if let Fault::Trickle { bytes_per_sec } = fault {
                        let mut buf = [0u8; 4096];
                        let pause = Duration::from_secs_f64(4096.0 / bytes_per_sec.max(1) as f64);
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            std::thread::sleep(pause);
                        }
                    } else {
                        let _ = std::io::copy(&mut from, &mut to);
                    }
                    let _ = to.shutdown(Shutdown::Both);
                });
                // client -> server: counted, cut per the fault.
                let (cuts, total) = (c2.clone(), total.clone());
                std::thread::spawn(move || {
                    let (mut from, mut to) = (client, server);
                    let mut buf = [0u8; 16 * 1024];
                    let mut mine = 0u64;
                    loop {
                        let n = match from.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        mine += n as u64;
                        let all = total.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
                        let cut = match fault {
                            Fault::CutOnce { after } => {
                                mine >= after && cuts.load(Ordering::Relaxed) == 0
                            }
                            Fault::Die { after } => all >= after,
                            Fault::Trickle { .. } | Fault::ServerErrors { .. } => false,
                        };
                        if cut {
                            cuts.fetch_add(1, Ordering::Relaxed);
                            let _ = from.shutdown(Shutdown::Both);
                            let _ = to.shutdown(Shutdown::Both);
                            return;
                        }
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        if let Fault::Trickle { bytes_per_sec } = fault {
                            std::thread::sleep(Duration::from_secs_f64(
                                n as f64 / bytes_per_sec.max(1) as f64,
                            ));
                        }
                    }
                    let _ = to.shutdown(Shutdown::Write);
                });
            }
        });
        Proxy { host, cuts, stop }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
