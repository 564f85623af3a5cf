//! Sigstore's trust root through TUF: `trusted_root.json` (and the signing config) are
//! targets of a TUF repository (`https://tuf-repo-cdn.sigstore.dev` for the public-good
//! instance), fetched and checked with [`tough`] starting from a TUF root that ships
//! with wpkg (or one the operator gives for a private instance): every role's
//! signatures up to its threshold, versions that never go back (the last seen are kept
//! in a datastore), expiry, and each target's length and hashes.
//!
//! Why tough: it is the maintained Rust TUF client (awslabs; Bottlerocket updates through
//! it). Release 0.18 is used because it verifies with `ring`, already wpkg's; later
//! releases moved to aws-lc-rs, a C build.
//!
//! The verified targets are cached under the cache directory, one sub-directory per
//! repository URL; what verification reads is the cached `trusted_root.json`, so a run
//! needs the network only when the cache is refreshed.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tough::{IntoVec, RepositoryLoader, TargetName, TransportError, TransportErrorKind};

/// The public-good instance's TUF repository.
pub const SIGSTORE_TUF_URL: &str = "https://tuf-repo-cdn.sigstore.dev";

/// The public-good TUF root wpkg starts from (see `oci/signing/testdata/README.md`).
pub const SIGSTORE_TUF_ROOT: &[u8] = include_bytes!("sigstore-tuf-root.json");

/// The trust root target.
pub const TRUSTED_ROOT: &str = "trusted_root.json";

/// The signing config target (Fulcio, Rekor, TSA URLs).
pub const SIGNING_CONFIG: &str = "signing_config.v0.2.json";

/// The largest body a TUF fetch reads (metadata and these targets are kilobytes).
const MAX_FETCH: usize = 16 << 20;

/// Why a TUF refresh failed. Nothing in the cache changes when it does.
#[derive(Debug, thiserror::Error)]
pub enum TufError {
    /// The repository URL is not usable.
    #[error("`{url}` is not a usable TUF repository URL: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// The initial TUF root cannot be read or is not TUF root metadata.
    #[error("the TUF root is not usable: {0}")]
    BadRoot(String),
    /// The repository's metadata does not verify (signatures below threshold, an
    /// expired role, a version that went back, a target whose hash differs) or cannot
    /// be fetched.
    #[error("the TUF repository at {url} does not verify: {detail}")]
    Verify {
        /// The repository.
        url: String,
        /// tough's account, with its causes.
        detail: String,
    },
    /// The repository does not list the trust root.
    #[error("the TUF repository at {url} has no `{TRUSTED_ROOT}` target")]
    NoTrustedRoot {
        /// The repository.
        url: String,
    },
    /// The trust root target is not a Sigstore trust root.
    #[error("the `{TRUSTED_ROOT}` target of {url} is not a usable Sigstore trust root: {detail}")]
    BadTarget {
        /// The repository.
        url: String,
        /// Why.
        detail: String,
    },
    /// The cache cannot be written.
    #[error("cannot write the TUF cache {}: {source}", path.display())]
    Cache {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// HTTPS or the runtime could not be set up.
    #[error("cannot set up the TUF client: {0}")]
    Setup(String),
}

/// What a refresh verified and cached.
#[derive(Clone, Debug)]
pub struct Refreshed {
    /// The cached `trusted_root.json`.
    pub trusted_root: PathBuf,
    /// The cached signing config, when the repository has one.
    pub signing_config: Option<PathBuf>,
    /// The TUF root version now trusted.
    pub root_version: u64,
    /// When the timestamp role expires (Unix seconds): the cache is stale after it.
    pub expires: i64,
}

impl Refreshed {
    /// When the timestamp role expires, RFC 3339 (UTC).
    pub fn expires_rfc3339(&self) -> String {
        time::OffsetDateTime::from_unix_timestamp(self.expires)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| self.expires.to_string())
    }
}

/// The cache directory of the repository at `url` under `cache`.
pub fn repo_dir(cache: &Path, url: &str) -> PathBuf {
    let url = url.trim_end_matches('/');
    let host: String = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let hash = hex::encode(&Sha256::digest(url.as_bytes())[..6]);
    cache.join(format!("{host}-{hash}"))
}

/// The cached trust root of the repository at `url`, with the time its TUF metadata
/// expires, if a refresh has cached one.
pub fn cached(cache: &Path, url: &str) -> Option<(PathBuf, i64)> {
    let dir = repo_dir(cache, url);
    let root = dir.join(TRUSTED_ROOT);
    let expires = std::fs::read_to_string(dir.join("expires"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    root.is_file().then_some((root, expires))
}

fn check_url(url: &str) -> Result<url::Url, TufError> {
    let bad = |reason| TufError::BadUrl {
        url: url.to_owned(),
        reason,
    };
    let u = url::Url::parse(url.trim_end_matches('/')).map_err(|_| bad("not a URL"))?;
    match u.scheme() {
        "https" | "file" => {}
        "http" => {
            let loopback = u
                .host_str()
                .is_some_and(|h| h == "localhost" || h == "[::1]" || h.starts_with("127."));
            if !loopback {
                return Err(bad("plain HTTP is allowed only on loopback"));
            }
        }
        _ => return Err(bad("not an https URL")),
    }
    if u.query().is_some() {
        return Err(bad("a base URL takes no query"));
    }
    Ok(u)
}

/// Refreshes the trust root of the TUF repository at `url`, starting from `tuf_root`
/// (TUF root metadata, JSON), into `cache`. The targets are written only after
/// everything verified; a failure leaves the cache as it was.
pub fn update(
    cache: &Path,
    url: &str,
    tuf_root: &[u8],
    ca_files: &[PathBuf],
) -> Result<Refreshed, TufError> {
    let base = check_url(url)?;
    serde_json::from_slice::<serde_json::Value>(tuf_root)
        .ok()
        .filter(|v| v["signed"]["_type"] == "root")
        .ok_or_else(|| TufError::BadRoot("it is not TUF root metadata (JSON)".into()))?;
    let dir = repo_dir(cache, url);
    let datastore = dir.join("metadata");
    std::fs::create_dir_all(&datastore).map_err(|source| TufError::Cache {
        path: datastore.clone(),
        source,
    })?;
    let tls = wpkg_distribution::registry::tls_config(ca_files)
        .map_err(|e| TufError::Setup(e.to_string()))?;
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .user_agent(concat!("wpkg/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(15))
        .timeout(std::time::Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| TufError::Setup(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TufError::Setup(e.to_string()))?;
    let verify = |e: tough::error::Error| TufError::Verify {
        url: url.to_owned(),
        detail: chain(&e),
    };
    let metadata = join_dir(&base);
    let targets = metadata.join("targets/").map_err(|_| TufError::BadUrl {
        url: url.to_owned(),
        reason: "no targets URL can be made from it",
    })?;
    let (trusted_root, signing_config, root_version, expires) = rt.block_on(async {
        let repo = RepositoryLoader::new(&tuf_root, metadata, targets)
            .transport(Https { client })
            .datastore(&datastore)
            .expiration_enforcement(tough::ExpirationEnforcement::Safe)
            .load()
            .await
            .map_err(verify)?;
        let read = |name: &'static str| {
            let repo = &repo;
            async move {
                let target = TargetName::new(name).map_err(verify)?;
                match repo.read_target(&target).await.map_err(verify)? {
                    Some(stream) => Ok(Some(stream.into_vec().await.map_err(verify)?)),
                    None => Ok(None),
                }
            }
        };
        let trusted_root = read(TRUSTED_ROOT)
            .await?
            .ok_or_else(|| TufError::NoTrustedRoot {
                url: url.to_owned(),
            })?;
        let signing_config = read(SIGNING_CONFIG).await?;
        Ok::<_, TufError>((
            trusted_root,
            signing_config,
            repo.root().signed.version.get(),
            repo.timestamp().signed.expires.timestamp(),
        ))
    })?;
    crate::keyless::TrustedRoot::from_json(&trusted_root).map_err(|detail| {
        TufError::BadTarget {
            url: url.to_owned(),
            detail,
        }
    })?;
    let write = |name: &str, bytes: &[u8]| -> Result<PathBuf, TufError> {
        let path = dir.join(name);
        let cache = |source| TufError::Cache {
            path: path.clone(),
            source,
        };
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(cache)?;
        std::io::Write::write_all(&mut tmp, bytes).map_err(cache)?;
        tmp.as_file().sync_all().map_err(cache)?;
        tmp.persist(&path).map_err(|e| cache(e.error))?;
        Ok(path)
    };
    let signing_config = signing_config
        .map(|b| write(SIGNING_CONFIG, &b))
        .transpose()?;
    let trusted_root = write(TRUSTED_ROOT, &trusted_root)?;
    // Last: the expiry marks the pair as complete.
    write("expires", expires.to_string().as_bytes())?;
    Ok(Refreshed {
        trusted_root,
        signing_config,
        root_version,
        expires,
    })
}

/// `url` as a directory URL (with a trailing slash), so that joins stay under it.
fn join_dir(u: &url::Url) -> url::Url {
    let mut u = u.clone();
    if !u.path().ends_with('/') {
        u.set_path(&format!("{}/", u.path()));
    }
    u
}

/// An error and its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

/// What a transport returns (tough's `TransportStream`, which it does not export).
type Stream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<tough::Bytes, TransportError>> + Send>>;

/// tough's transport over wpkg's HTTPS client (and `file://` for local mirrors).
#[derive(Clone, Debug)]
struct Https {
    client: reqwest::Client,
}

#[tough::async_trait]
impl tough::Transport for Https {
    async fn fetch(&self, url: url::Url) -> Result<Stream, TransportError> {
        if url.scheme() == "file" {
            return tough::FilesystemTransport.fetch(url).await;
        }
        let other = |e: String| TransportError::new_with_cause(TransportErrorKind::Other, &url, e);
        let mut resp = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| other(e.without_url().to_string()))?;
        let status = resp.status();
        // S3-style CDNs answer 403 for a file that is not there.
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::FORBIDDEN {
            return Err(TransportError::new(TransportErrorKind::FileNotFound, &url));
        }
        if !status.is_success() {
            return Err(other(format!("it answered {status}")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| other(e.without_url().to_string()))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_FETCH {
                return Err(other(format!("it sent more than {MAX_FETCH} bytes")));
            }
        }
        let bytes = tough::Bytes::from(body);
        Ok(Box::pin(futures::stream::once(async move { Ok(bytes) })))
    }
}
