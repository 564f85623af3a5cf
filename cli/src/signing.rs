//! Signing shared by `wpkg sign` and `wpkg push --sign`: with a key file, or keyless
//! (an OIDC identity, a Fulcio certificate, a Rekor entry, a cosign v3 bundle attached
//! to the image as an OCI referrer).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use wpkg_distribution::credentials::Secret;
use wpkg_pipeline::publish::{self, Made};
use wpkg_signing::keyless_sign::{self, IdentityToken, KeylessError};
use wpkg_signing::keys::PrivateKey;
use wpkg_spec::media::Descriptor;
use wpkg_spec::Reference;

use crate::env_vars;

/// How to sign: `--key FILE`, or keyless.
#[derive(Args, Clone, Debug, Default)]
pub struct SignWith {
    /// The private key (cosign format; password from COSIGN_PASSWORD or a prompt).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Sign keylessly: a short-lived Fulcio certificate for your OIDC identity, the
    /// signature logged in Rekor, stored as a cosign v3 bundle. The default when no
    /// --key is given and an identity token is at hand (SIGSTORE_ID_TOKEN, GitHub Actions).
    #[arg(long, conflicts_with = "key")]
    pub keyless: bool,
    /// The OIDC identity token for --keyless, or a file holding it (default:
    /// SIGSTORE_ID_TOKEN, then GitHub Actions' ambient token).
    #[arg(long, value_name = "TOKEN|FILE")]
    pub identity_token: Option<String>,
    /// Fulcio (certificate authority) for --keyless.
    #[arg(long, value_name = "URL", env = env_vars::WPKG_FULCIO_URL,
          default_value = keyless_sign::PUBLIC_FULCIO)]
    pub fulcio_url: String,
    /// Rekor (transparency log, v1 API) for --keyless.
    #[arg(long, value_name = "URL", env = env_vars::WPKG_REKOR_URL,
          default_value = keyless_sign::PUBLIC_REKOR)]
    pub rekor_url: String,
    /// An RFC 3161 timestamp authority for --keyless (cosign's flag): the bundle also
    /// carries a signed timestamp of the signature.
    #[arg(long, value_name = "URL", env = env_vars::WPKG_TSA_URL)]
    pub timestamp_server_url: Option<String>,
    /// A Sigstore SigningConfig (v0.2) that chooses Fulcio, Rekor and the timestamp
    /// authority for --keyless (instead of the three URL flags).
    #[arg(long, value_name = "FILE")]
    pub signing_config: Option<PathBuf>,
    /// The Sigstore trusted_root.json the keyless signature is checked against before
    /// it is stored (default: Sigstore's public-good root, shipped with wpkg).
    #[arg(long, value_name = "FILE", env = env_vars::WPKG_TRUSTED_ROOT)]
    pub trusted_root: Option<PathBuf>,
    /// Write the sigstore bundle (JSON) to this file (images: keyless only; sign-blob:
    /// required).
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
}

impl SignWith {
    /// Whether an identity token is at hand without asking.
    fn ambient() -> bool {
        std::env::var_os(env_vars::SIGSTORE_ID_TOKEN).is_some_and(|v| !v.is_empty())
            || std::env::var_os(env_vars::ACTIONS_ID_TOKEN_REQUEST_URL).is_some()
    }

    /// Signs the local image `desc` as `name`: a classic `.sig` with a key, or a keyless
    /// bundle attached as a referrer. Nothing is stored unless signing succeeded.
    pub fn sign(
        &self,
        store: &wpkg_store::Store,
        desc: &Descriptor,
        name: &Reference,
        ca_files: &[PathBuf],
    ) -> Result<Made> {
        if let Some(key) = &self.key {
            if self.bundle.is_some() {
                bail!("--bundle writes a keyless bundle; with --key the signature is a classic `.sig` (drop --bundle, or sign with --keyless)");
            }
            let key = load_private_key(key)?;
            return Ok(publish::sign_with_key(store, &key, desc, name)?);
        }
        let (token, instance) = self.keyless_setup(ca_files)?;
        let made = publish::sign_keyless(store, &instance, &token, desc, name, ca_files)?;
        if let (Some(path), Made::Keyless { bundle, .. }) = (&self.bundle, &made) {
            write_replace(path, bundle)
                .with_context(|| format!("cannot write the bundle to {}", path.display()))?;
        }
        Ok(made)
    }

    /// The token and the Sigstore instance for a keyless signature.
    fn keyless_setup(
        &self,
        ca_files: &[PathBuf],
    ) -> Result<(IdentityToken, keyless_sign::Instance)> {
        if !self.keyless && !Self::ambient() {
            bail!("nothing to sign with: give --key FILE (a cosign key) or --keyless (an OIDC identity: --identity-token, SIGSTORE_ID_TOKEN, or GitHub Actions with `permissions: id-token: write`)");
        }
        let token = self.token(ca_files)?;
        let file = wpkg_pipeline::verify::trusted_root_file(
            self.trusted_root.as_deref(),
            Some(&crate::policy::tuf_source()?),
        );
        let root = wpkg_pipeline::verify::load_trusted_root(file.as_deref())?;
        let (fulcio, rekor, rekor_version, tsa) = match &self.signing_config {
            Some(path) => {
                let json = std::fs::read(path).with_context(|| {
                    format!("cannot read the signing config {}", path.display())
                })?;
                let s = keyless_sign::services(&json)
                    .with_context(|| format!("--signing-config {}", path.display()))?;
                (s.fulcio, s.rekor, s.rekor_version, s.tsa)
            }
            None => (
                self.fulcio_url.clone(),
                self.rekor_url.clone(),
                1,
                self.timestamp_server_url.clone(),
            ),
        };
        Ok((
            token,
            keyless_sign::Instance {
                fulcio,
                rekor,
                rekor_version,
                tsa,
                root,
            },
        ))
    }

    /// Signs a file by its SHA-256 and writes the sigstore bundle to `--bundle`: a
    /// message signature with the key, or keyless (Fulcio, Rekor `hashedrekord`).
    /// Returns who signed, for the message. Nothing is written unless signing succeeded.
    pub fn sign_blob(&self, sha256: &[u8; 32], ca_files: &[PathBuf]) -> Result<String> {
        let Some(out) = &self.bundle else {
            bail!("give --bundle FILE: where to write the signature bundle");
        };
        let (bundle, who) = match &self.key {
            Some(key) => {
                let key = load_private_key(key)?;
                let who = format!("key sha256:{}", key.public().fingerprint());
                (wpkg_signing::bundle::make_blob_bundle(&key, sha256), who)
            }
            None => {
                let (token, instance) = self.keyless_setup(ca_files)?;
                let signed = keyless_sign::sign_subject(
                    &instance,
                    &token,
                    &keyless_sign::Subject::Blob { sha256: *sha256 },
                    ca_files,
                )?;
                let who = format!("{} (Rekor log index {})", signed.identity, signed.log_index);
                (signed.bundle, who)
            }
        };
        write_replace(out, &bundle)
            .with_context(|| format!("cannot write the bundle to {}", out.display()))?;
        Ok(who)
    }

    /// The identity token: `--identity-token` (a token or a file), SIGSTORE_ID_TOKEN, or
    /// GitHub Actions' ambient token.
    fn token(&self, ca_files: &[PathBuf]) -> Result<IdentityToken> {
        if let Some(t) = &self.identity_token {
            let path = std::path::Path::new(t);
            let raw = if path.is_file() {
                std::fs::read_to_string(path)
                    .with_context(|| format!("--identity-token: cannot read the token file {t}"))?
            } else {
                t.clone()
            };
            return IdentityToken::parse(&raw).context("--identity-token");
        }
        if let Some(t) = std::env::var_os(env_vars::SIGSTORE_ID_TOKEN).filter(|v| !v.is_empty()) {
            return IdentityToken::parse(&t.to_string_lossy()).context(env_vars::SIGSTORE_ID_TOKEN);
        }
        match (
            std::env::var(env_vars::ACTIONS_ID_TOKEN_REQUEST_URL),
            std::env::var(env_vars::ACTIONS_ID_TOKEN_REQUEST_TOKEN),
        ) {
            (Ok(url), Ok(bearer)) => {
                keyless_sign::github_actions_token(&url, &Secret::new(bearer), ca_files)
                    .context("GitHub Actions identity token")
            }
            (Ok(_), Err(_)) => bail!(
                "ACTIONS_ID_TOKEN_REQUEST_URL is set but ACTIONS_ID_TOKEN_REQUEST_TOKEN is not; give the job `permissions: id-token: write`"
            ),
            _ => Err(anyhow::Error::new(KeylessError::NoToken)
                .context("keyless signing needs an OIDC identity token")),
        }
    }
}

/// The key password: `COSIGN_PASSWORD` (or `WPKG_PASSWORD`) when set, even empty;
/// else a prompt on a terminal. Never a flag.
pub fn password(confirm: bool) -> Result<Vec<u8>> {
    for var in [env_vars::COSIGN_PASSWORD, env_vars::WPKG_PASSWORD] {
        if let Some(v) = std::env::var_os(var) {
            return Ok(v.into_encoded_bytes());
        }
    }
    if !std::io::stdin().is_terminal() {
        bail!("no key password: set COSIGN_PASSWORD (it may be empty) or run on a terminal to be asked");
    }
    let p = rpassword::prompt_password("Enter password for private key: ")?;
    if confirm {
        let again = rpassword::prompt_password("Enter password for private key again: ")?;
        if again != p {
            bail!("the passwords do not match");
        }
    }
    Ok(p.into_bytes())
}

/// Creates a file that must not exist, with `mode`, written in full or not at all.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {}", path.display(), e.error))?;
    Ok(())
}

/// Loads a private key file with the password from the environment or a prompt.
pub fn load_private_key(path: &Path) -> Result<PrivateKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key {}", path.display()))?;
    let pw = password(false)?;
    PrivateKey::from_encrypted_pem(&text, &pw)
        .with_context(|| format!("cannot open the key {}", path.display()))
}

/// Writes a file in full or not at all (replacing one that exists).
pub fn write_replace(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", path.display(), e.error))?;
    Ok(())
}
