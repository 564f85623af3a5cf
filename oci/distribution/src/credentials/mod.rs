//! Registry credentials where Docker keeps them: `config.json` in `$DOCKER_CONFIG`
//! (default `~/.docker`) with `auths`, `credsStore` and `credHelpers`, and the
//! `docker-credential-*` helper protocol (`get`, `store`, `erase`). `docker login` and
//! `wpkg login` therefore share credentials. Secrets never appear in `Debug` output.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::Value;

/// The key Docker uses for Docker Hub in `config.json` and with helpers.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A secret string: its `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself; only for putting it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Credentials for one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A user name and a password (or a personal access token).
    Basic {
        /// The user.
        username: String,
        /// The password or token.
        password: Secret,
    },
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the token endpoint.
    IdentityToken(Secret),
    /// A bearer token to send as it is (`registrytoken`).
    RegistryToken(Secret),
}

impl Credential {
    /// The user name, when there is one.
    pub fn username(&self) -> Option<&str> {
        match self {
            Credential::Basic { username, .. } => Some(username),
            _ => None,
        }
    }
}

/// Where a credential came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Environment variables.
    Env,
    /// `config.json` `auths`.
    ConfigFile(PathBuf),
    /// A `docker-credential-NAME` helper.
    Helper(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Env => f.write_str("WPKG_REGISTRY_USERNAME/WPKG_REGISTRY_PASSWORD"),
            Source::ConfigFile(p) => write!(f, "{}", p.display()),
            Source::Helper(h) => write!(f, "docker-credential-{h}"),
        }
    }
}

/// Errors reading or writing credentials.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// `config.json` cannot be read or does not parse.
    #[error("cannot use {}: {reason}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A credential helper failed.
    #[error("credential helper docker-credential-{helper} failed to {action}: {reason}")]
    Helper {
        /// The helper name.
        helper: String,
        /// `get`, `store` or `erase`.
        action: &'static str,
        /// What it said.
        reason: String,
    },
    /// The environment variables are inconsistent.
    #[error("{0}")]
    Env(String),
}

/// Credentials from the environment, for CI: they apply to one registry only.
#[derive(Clone, Debug)]
pub struct EnvCredential {
    /// The registry they are for (`ghcr.io`).
    pub registry: String,
    /// The credential.
    pub credential: Credential,
}

/// Docker's credential configuration plus optional environment credentials.
#[derive(Clone, Debug)]
pub struct Credentials {
    dir: PathBuf,
    env: Option<EnvCredential>,
    auth_file: Option<PathBuf>,
}

/// Normalises a registry name or `auths` key to a host[:port]: no scheme, no path, then
/// the one canonical spelling references use ([`canonical_registry`]: lowercase, no
/// `:443`, Docker Hub's aliases folded into `docker.io`).
///
/// [`canonical_registry`]: wpkg_spec::reference::canonical_registry
pub fn normalize_registry(key: &str) -> String {
    let k = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    wpkg_spec::reference::canonical_registry(k.split('/').next().unwrap_or(k))
}

/// The key (and helper server URL) Docker uses for a registry.
pub fn docker_key(registry: &str) -> String {
    if normalize_registry(registry) == "docker.io" {
        DOCKER_HUB_KEY.to_owned()
    } else {
        normalize_registry(registry)
    }
}

impl Credentials {
    /// Docker's configuration in `dir` (the `$DOCKER_CONFIG` directory).
    pub fn new(dir: impl Into<PathBuf>, env: Option<EnvCredential>) -> Credentials {
        Credentials {
            dir: dir.into(),
            env,
            auth_file: None,
        }
    }

    /// Also reads `auths` from `file`, a containers `auth.json` (podman, skopeo, buildah:
    /// `REGISTRY_AUTH_FILE`), when Docker's configuration has nothing for a registry.
    /// It is only read; `store` and `erase` keep to Docker's configuration.
    pub fn with_auth_file(mut self, file: impl Into<PathBuf>) -> Credentials {
        self.auth_file = Some(file.into());
        self
    }

    /// The `config.json` path.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    fn read_config(&self) -> Result<Value, CredentialError> {
        Self::read_json(self.config_path())
    }

    /// A JSON object from `path`; a missing or blank file is an empty one.
    fn read_json(path: PathBuf) -> Result<Value, CredentialError> {
        match std::fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => {
                Ok(Value::Object(Default::default()))
            }
            Ok(bytes) => {
                let v: Value =
                    serde_json::from_slice(&bytes).map_err(|e| CredentialError::Config {
                        path: path.clone(),
                        reason: format!("it is not valid JSON ({e}); fix it or move it away"),
                    })?;
                if !v.is_object() {
                    return Err(CredentialError::Config {
                        path,
                        reason: "it is not a JSON object; fix it or move it away".into(),
                    });
                }
                Ok(v)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Value::Object(Default::default()))
            }
            Err(e) => Err(CredentialError::Config {
                path,
                reason: e.to_string(),
            }),
        }
    }

    fn helper_for(config: &Value, registry: &str) -> Option<String> {
        let want = normalize_registry(registry);
        if let Some(helpers) = config.get("credHelpers").and_then(Value::as_object) {
            for (k, v) in helpers {
                if normalize_registry(k) == want {
                    if let Some(h) = v.as_str().filter(|h| !h.is_empty()) {
                        return Some(h.to_owned());
                    }
                }
            }
        }
        config
            .get("credsStore")
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
    }

    /// Finds the credential for `registry`: environment (when it names this registry),
    /// then `credHelpers`, then `credsStore`, then `auths`. `Ok(None)` means anonymous.
    pub fn get(&self, registry: &str) -> Result<Option<(Credential, Source)>, CredentialError> {
        let want = normalize_registry(registry);
        if let Some(env) = &self.env {
            if normalize_registry(&env.registry) == want {
                return Ok(Some((env.credential.clone(), Source::Env)));
            }
        }
        let config = self.read_config()?;
        if let Some(helper) = Self::helper_for(&config, registry) {
            if let Some(c) = helper_get(&helper, &docker_key(registry))? {
                return Ok(Some((c, Source::Helper(helper))));
            }
        }
        if let Some(found) = Self::from_auths(&config, self.config_path(), &want)? {
            return Ok(Some(found));
        }
        match &self.auth_file {
            Some(file) => Self::from_auths(&Self::read_json(file.clone())?, file.clone(), &want),
            None => Ok(None),
        }
    }

    /// The credential for registry `want` in `config`'s `auths`, read from `path`. Keys
    /// may carry a scheme or a repository path (`quay.io/org`), as Docker and podman
    /// write them.
    fn from_auths(
        config: &Value,
        path: PathBuf,
        want: &str,
    ) -> Result<Option<(Credential, Source)>, CredentialError> {
        let Some(auths) = config.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        for (k, entry) in auths {
            if normalize_registry(k) != want {
                continue;
            }
            if let Some(c) = parse_auth_entry(entry).map_err(|reason| CredentialError::Config {
                path: path.clone(),
                reason: format!("the entry for `{k}` {reason}; log in to {want} again"),
            })? {
                return Ok(Some((c, Source::ConfigFile(path))));
            }
        }
        Ok(None)
    }

    /// Saves a user name and password for `registry` where Docker would: the helper
    /// configured for it, else `auths` in `config.json` (written atomically, mode 0600).
    /// Returns where it went.
    pub fn store(
        &self,
        registry: &str,
        username: &str,
        password: &Secret,
    ) -> Result<Source, CredentialError> {
        let mut config = self.read_config()?;
        let key = docker_key(registry);
        let helper = Self::helper_for(&config, registry);
        let entry = match &helper {
            Some(h) => {
                helper_store(h, &key, username, password)?;
                serde_json::json!({})
            }
            None => {
                let auth = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()));
                serde_json::json!({ "auth": auth })
            }
        };
        let obj = config.as_object_mut().expect("config is an object");
        let auths = obj
            .entry("auths")
            .or_insert_with(|| Value::Object(Default::default()));
        if !auths.is_object() {
            *auths = Value::Object(Default::default());
        }
        let auths = auths.as_object_mut().expect("auths is an object");
        // One entry per registry: drop aliases written with a scheme or path.
        let want = normalize_registry(registry);
        auths.retain(|k, _| normalize_registry(k) != want);
        auths.insert(key, entry);
        self.write_config(&config)?;
        Ok(match helper {
            Some(h) => Source::Helper(h),
            None => Source::ConfigFile(self.config_path()),
        })
    }

    /// Removes the credentials for `registry`. Returns false when there were none.
    pub fn erase(&self, registry: &str) -> Result<bool, CredentialError> {
        let mut config = self.read_config()?;
        let want = normalize_registry(registry);
        let mut found = false;
        if let Some(h) = Self::helper_for(&config, registry) {
            found |= helper_erase(&h, &docker_key(registry))?;
        }
        if let Some(auths) = config.get_mut("auths").and_then(Value::as_object_mut) {
            let before = auths.len();
            auths.retain(|k, _| normalize_registry(k) != want);
            if auths.len() != before {
                found = true;
                self.write_config(&config)?;
            }
        }
        Ok(found)
    }

    fn write_config(&self, config: &Value) -> Result<(), CredentialError> {
        let path = self.config_path();
        let err = |e: std::io::Error| CredentialError::Config {
            path: path.clone(),
            reason: e.to_string(),
        };
        create_private_dir(&self.dir).map_err(err)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(err)?;
        set_private(tmp.as_file()).map_err(err)?;
        let mut bytes = serde_json::to_vec_pretty(config).expect("JSON serializes");
        bytes.push(b'\n');
        tmp.write_all(&bytes).map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(&path).map_err(|e| err(e.error))?;
        Ok(())
    }
}

#[cfg(unix)]
fn set_private(f: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
}
#[cfg(not(unix))]
fn set_private(_f: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

fn parse_auth_entry(entry: &Value) -> Result<Option<Credential>, String> {
    let s = |k: &str| {
        entry
            .get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    if let Some(t) = s("identitytoken") {
        return Ok(Some(Credential::IdentityToken(Secret::new(t))));
    }
    if let Some(t) = s("registrytoken") {
        return Ok(Some(Credential::RegistryToken(Secret::new(t))));
    }
    if let Some(a) = s("auth") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .map_err(|_| "has an `auth` value that is not base64".to_owned())?;
        let text =
            String::from_utf8(decoded).map_err(|_| "has an `auth` value that is not UTF-8")?;
        let (u, p) = text
            .split_once(':')
            .ok_or("has an `auth` value without `user:password`")?;
        return Ok(Some(Credential::Basic {
            username: u.to_owned(),
            password: Secret::new(p),
        }));
    }
    if let (Some(u), Some(p)) = (s("username"), s("password")) {
        return Ok(Some(Credential::Basic {
            username: u.to_owned(),
            password: Secret::new(p),
        }));
    }
    Ok(None)
}

fn run_helper(
    helper: &str,
    action: &'static str,
    input: &[u8],
) -> Result<(bool, String, String), CredentialError> {
    let program = format!("docker-credential-{helper}");
    let fail = |reason: String| CredentialError::Helper {
        helper: helper.to_owned(),
        action,
        reason,
    };
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(if e.kind() == std::io::ErrorKind::NotFound {
                format!("`{program}` is not on PATH (config.json names it); install it or remove it from config.json")
            } else {
                e.to_string()
            })
        })?;
    {
        let mut stdin = child.stdin.take().expect("piped");
        // A helper may exit before reading everything; its exit status tells.
        let _ = stdin.write_all(input);
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    ))
}

fn is_not_found(text: &str) -> bool {
    text.to_ascii_lowercase().contains("credentials not found")
}

fn helper_get(helper: &str, server: &str) -> Result<Option<Credential>, CredentialError> {
    let (ok, out, err) = run_helper(helper, "get", server.as_bytes())?;
    if !ok {
        if is_not_found(&out) || is_not_found(&err) {
            return Ok(None);
        }
        return Err(CredentialError::Helper {
            helper: helper.to_owned(),
            action: "get",
            reason: if err.is_empty() { out } else { err },
        });
    }
    #[derive(serde::Deserialize)]
    struct Reply {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let reply: Reply = serde_json::from_str(&out).map_err(|e| CredentialError::Helper {
        helper: helper.to_owned(),
        action: "get",
        reason: format!("its answer is not the expected JSON: {e}"),
    })?;
    if reply.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if reply.username == "<token>" {
        Credential::IdentityToken(Secret::new(reply.secret))
    } else {
        Credential::Basic {
            username: reply.username,
            password: Secret::new(reply.secret),
        }
    }))
}

fn helper_store(
    helper: &str,
    server: &str,
    username: &str,
    password: &Secret,
) -> Result<(), CredentialError> {
    let input = serde_json::to_vec(&BTreeMap::from([
        ("ServerURL", server),
        ("Username", username),
        ("Secret", password.expose()),
    ]))
    .expect("JSON serializes");
    let (ok, out, err) = run_helper(helper, "store", &input)?;
    if !ok {
        return Err(CredentialError::Helper {
            helper: helper.to_owned(),
            action: "store",
            reason: if err.is_empty() { out } else { err },
        });
    }
    Ok(())
}

fn helper_erase(helper: &str, server: &str) -> Result<bool, CredentialError> {
    let (ok, out, err) = run_helper(helper, "erase", server.as_bytes())?;
    if ok {
        return Ok(true);
    }
    if is_not_found(&out) || is_not_found(&err) {
        return Ok(false);
    }
    Err(CredentialError::Helper {
        helper: helper.to_owned(),
        action: "erase",
        reason: if err.is_empty() { out } else { err },
    })
}

#[cfg(test)]
mod tests;
