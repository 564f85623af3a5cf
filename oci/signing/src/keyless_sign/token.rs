//! OIDC identity tokens: given, or GitHub Actions' ambient token (audience
//! `sigstore`, with retries); the claims wpkg reads, never the token in messages.

use super::*;

/// The audience Sigstore's Fulcio expects in identity tokens.
pub const AUDIENCE: &str = "sigstore";

/// An OIDC identity token, with the claims wpkg reads. `Debug` hides the token.
#[derive(Clone)]
pub struct IdentityToken {
    pub(crate) raw: Secret,
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `email`, when the issuer gives one (GitHub's tokens do not).
    pub email: Option<String>,
    /// `exp`, seconds since the epoch.
    pub expires: i64,
}

impl std::fmt::Debug for IdentityToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityToken")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("token", &"***")
            .finish()
    }
}

#[derive(Deserialize)]
pub(crate) struct Claims {
    pub(crate) iss: Option<String>,
    pub(crate) sub: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) exp: Option<i64>,
    pub(crate) aud: Option<serde_json::Value>,
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl IdentityToken {
    /// Reads a JWT's claims (its signature is Fulcio's to check): it must name an
    /// issuer and a subject, be meant for `sigstore`, and not have expired.
    pub fn parse(raw: &str) -> Result<IdentityToken, KeylessError> {
        let bad = |reason: &str| KeylessError::BadToken {
            reason: reason.to_owned(),
        };
        let raw = raw.trim();
        let parts: Vec<&str> = raw.split('.').collect();
        if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(bad("it is not a JWT (three base64url parts)"));
        }
        let claims = B64URL
            .decode(parts[1].trim_end_matches('='))
            .map_err(|_| bad("its claims are not base64url"))?;
        let c: Claims =
            serde_json::from_slice(&claims).map_err(|_| bad("its claims are not JSON"))?;
        let issuer = c.iss.ok_or_else(|| bad("it names no issuer (`iss`)"))?;
        let subject = c.sub.ok_or_else(|| bad("it names no subject (`sub`)"))?;
        let expires = c.exp.ok_or_else(|| bad("it has no expiry (`exp`)"))?;
        let for_sigstore = match &c.aud {
            Some(serde_json::Value::String(a)) => a == AUDIENCE,
            Some(serde_json::Value::Array(a)) => a.iter().any(|x| x == AUDIENCE),
            _ => false,
        };
        if !for_sigstore {
            return Err(bad("its audience (`aud`) is not `sigstore`"));
        }
        let ago = now().saturating_sub(expires);
        if ago > 0 {
            return Err(KeylessError::TokenExpired { ago });
        }
        Ok(IdentityToken {
            raw: Secret::new(raw),
            issuer,
            subject,
            email: c.email,
            expires,
        })
    }

    /// What Fulcio's proof of possession signs: the e-mail when there is one, else
    /// the subject.
    pub(crate) fn challenge(&self) -> &str {
        self.email.as_deref().unwrap_or(&self.subject)
    }
}

/// Asks GitHub Actions' OIDC endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL` with
/// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`) for a token with audience `sigstore`, retrying
/// transient failures.
pub fn github_actions_token(
    request_url: &str,
    request_token: &Secret,
    ca_files: &[std::path::PathBuf],
) -> Result<IdentityToken, KeylessError> {
    let http = client(ca_files)?;
    let mut url = reqwest::Url::parse(request_url).map_err(|_| KeylessError::AmbientToken {
        detail: "ACTIONS_ID_TOKEN_REQUEST_URL is not a URL".into(),
    })?;
    url.query_pairs_mut().append_pair("audience", AUDIENCE);
    let mut last = String::new();
    for attempt in 0..4u32 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(250 << attempt));
        }
        let resp = http
            .get(url.clone())
            .header(
                "Authorization",
                format!("bearer {}", request_token.expose()),
            )
            .header("Accept", "application/json")
            .send();
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                last = format!("cannot connect ({})", without_url(&e));
                continue;
            }
        };
        let status = resp.status();
        if status.is_server_error() || status.as_u16() == 429 {
            last = format!("it answered {status}");
            continue;
        }
        if !status.is_success() {
            return Err(KeylessError::AmbientToken {
                detail: format!("it answered {status}"),
            });
        }
        #[derive(Deserialize)]
        struct Answer {
            value: String,
        }
        let a: Answer = read_json(resp).map_err(|_| KeylessError::AmbientToken {
            detail: "its answer has no `value`".into(),
        })?;
        return IdentityToken::parse(&a.value);
    }
    Err(KeylessError::AmbientToken { detail: last })
}

/// A reqwest error without the URL (which may carry a token in its query).
pub(crate) fn without_url(e: &reqwest::Error) -> String {
    let mut s = String::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        let t = err.to_string();
        if !s.contains(&t) && !t.contains("http") {
            if !s.is_empty() {
                s.push_str(": ");
            }
            s.push_str(&t);
        }
        cur = err.source();
    }
    if e.is_timeout() {
        "timed out".into()
    } else if s.is_empty() {
        "connection failed".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        format!("e30.{}.c2ln", B64URL.encode(claims))
    }

    #[test]
    fn expiry_at_the_ends_of_the_range_is_read_without_overflow() {
        let claims = |exp: i64| {
            format!(r#"{{"iss":"https://issuer","sub":"me","aud":"sigstore","exp":{exp}}}"#)
        };
        assert!(matches!(
            IdentityToken::parse(&jwt(&claims(i64::MIN))),
            Err(KeylessError::TokenExpired { ago: i64::MAX })
        ));
        // Control: a token valid for a while parses.
        let ok = IdentityToken::parse(&jwt(&claims(now() + 600))).unwrap();
        assert_eq!(ok.subject, "me");
        assert!(IdentityToken::parse(&jwt(&claims(i64::MAX))).is_ok());
    }
}
