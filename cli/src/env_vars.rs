//! Every environment variable wpkg reads, in one place.

/// The wpkg home: the local store (`store/`) and caches (`cache/`) live here.
/// Default: `$XDG_DATA_HOME/wpkg`, else `~/.local/share/wpkg`.
pub const WPKG_HOME: &str = "WPKG_HOME";
/// Seconds since the Unix epoch used as the artifact's creation time, for
/// reproducible builds (default: 0, so builds are reproducible anyway).
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";
/// Used to find the default home.
pub const XDG_DATA_HOME: &str = "XDG_DATA_HOME";
/// Used to find the default home.
pub const HOME: &str = "HOME";
/// Docker's configuration directory (credentials in `config.json`); default `~/.docker`.
pub const DOCKER_CONFIG: &str = "DOCKER_CONFIG";
/// A containers `auth.json` (podman, skopeo) read for registry credentials after
/// Docker's `config.json`.
pub const REGISTRY_AUTH_FILE: &str = "REGISTRY_AUTH_FILE";
/// For CI: the registry that `WPKG_REGISTRY_USERNAME`/`WPKG_REGISTRY_PASSWORD` are for.
pub const WPKG_REGISTRY: &str = "WPKG_REGISTRY";
/// For CI: a user name for `WPKG_REGISTRY` (overrides `config.json` for that registry).
pub const WPKG_REGISTRY_USERNAME: &str = "WPKG_REGISTRY_USERNAME";
/// For CI: the password or token for `WPKG_REGISTRY`.
pub const WPKG_REGISTRY_PASSWORD: &str = "WPKG_REGISTRY_PASSWORD";
/// A PEM file of extra CA certificates to trust for registries (like `--ca-file`).
pub const WPKG_CA_FILE: &str = "WPKG_CA_FILE";
/// Comma-separated registries allowed over plain HTTP (like `--insecure`).
pub const WPKG_INSECURE_REGISTRIES: &str = "WPKG_INSECURE_REGISTRIES";
/// Seconds a registry request may take (like `--registry-timeout`).
pub const WPKG_REGISTRY_TIMEOUT: &str = "WPKG_REGISTRY_TIMEOUT";
/// The password of a cosign private key (as cosign reads it; set, even empty, means use it).
pub const COSIGN_PASSWORD: &str = "COSIGN_PASSWORD";
/// The same as `COSIGN_PASSWORD`, when that is not set.
pub const WPKG_PASSWORD: &str = "WPKG_PASSWORD";
/// The trust policy file (default `$WPKG_HOME/trust.toml`).
pub const WPKG_TRUST_POLICY: &str = "WPKG_TRUST_POLICY";
/// A Sigstore `trusted_root.json` for keyless verification.
pub const WPKG_TRUSTED_ROOT: &str = "WPKG_TRUSTED_ROOT";
/// An OIDC identity token for keyless signing (as cosign reads it).
pub const SIGSTORE_ID_TOKEN: &str = "SIGSTORE_ID_TOKEN";
/// Set by GitHub Actions when the job has `id-token: write`: where to ask for a token.
pub const ACTIONS_ID_TOKEN_REQUEST_URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
/// Set by GitHub Actions with the URL above: the bearer token for that request.
pub const ACTIONS_ID_TOKEN_REQUEST_TOKEN: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";
/// Fulcio's URL for keyless signing (default Sigstore's public-good instance).
pub const WPKG_FULCIO_URL: &str = "WPKG_FULCIO_URL";
/// Rekor's URL for keyless signing (default Sigstore's public-good instance).
pub const WPKG_REKOR_URL: &str = "WPKG_REKOR_URL";
/// A private Sigstore's TUF repository for the default trust root (with WPKG_TUF_ROOT).
pub const WPKG_TUF_URL: &str = "WPKG_TUF_URL";
/// The TUF root.json to start from for WPKG_TUF_URL.
pub const WPKG_TUF_ROOT: &str = "WPKG_TUF_ROOT";
/// An RFC 3161 timestamp authority's URL for keyless signing (default: none).
pub const WPKG_TSA_URL: &str = "WPKG_TSA_URL";
/// Most bytes one image layer may unpack to (default 1GiB; `wpkg run`, `wpkg inspect`).
pub const WPKG_MAX_LAYER_SIZE: &str = "WPKG_MAX_LAYER_SIZE";
/// Most bytes one file in an image layer may have (default 512MiB).
pub const WPKG_MAX_FILE_SIZE: &str = "WPKG_MAX_FILE_SIZE";
/// Set (non-empty): print how long each phase of the command took, on stderr.
pub const WPKG_TIMINGS: &str = "WPKG_TIMINGS";
