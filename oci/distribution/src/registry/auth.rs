//! Authentication: the `WWW-Authenticate` challenge, bearer tokens (anonymous or with
//! credentials, reused until they expire), basic auth, login checks.

use super::*;

/// A cached token.
pub(crate) struct Token {
    value: String,
    expires: Instant,
}

/// What a registry asked for in its challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// No challenge seen yet.
    Unknown,
    /// `Basic`.
    Basic,
    /// `Bearer realm=... service=...`.
    Bearer {
        /// Where to ask for a token.
        realm: String,
        /// The service to name, if the challenge gives one.
        service: Option<String>,
    },
}

/// Parses `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
pub fn parse_challenge(headers: &HeaderMap) -> Option<Scheme> {
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

pub(crate) fn parse_params(s: &str) -> HashMap<String, String> {
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

impl Registry {
    pub(crate) fn cached_auth(
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

    pub(crate) fn authenticate(
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

    pub(crate) fn fetch_token(
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
            return Err(RegistryError::InsecureTokenService {
                registry: registry.to_owned(),
                realm: realm.to_owned(),
                host: realm_host,
            });
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
                    return Err(transport(
                        registry,
                        self.timeout(),
                        &e,
                        &format!(" (token service {realm})"),
                    ))
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
            .map_err(|e| transport(registry, self.timeout(), &e, ""))?;
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
    pub(crate) fn get_with_auth(
        &self,
        registry: &str,
        url: &str,
        auth: String,
    ) -> Result<(), RegistryError> {
        let resp = self
            .http
            .get(url)
            .header(AUTHORIZATION, auth)
            .send()
            .map_err(|e| transport(registry, self.timeout(), &e, ""))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(self.refused(registry, resp));
        }
        Ok(())
    }
}
