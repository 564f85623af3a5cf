//! Signing an image in the local store (with a key, or keyless) and pushing it with
//! its signatures.

use std::sync::Arc;

use wpkg_distribution::registry::Registry;
use wpkg_distribution::transfer::{Progress, PushReport};
use wpkg_signing::keyless_sign::{IdentityToken, Instance};
use wpkg_signing::keys::PrivateKey;
use wpkg_spec::media::Descriptor;
use wpkg_spec::Reference;
use wpkg_store::Store;

use crate::resolve::check_remote;
use crate::Error;

/// What signing made.
#[derive(Clone, Debug)]
pub enum Made {
    /// A classic signature with this key (fingerprint).
    Key(String),
    /// A keyless bundle.
    Keyless {
        /// The certificate's identity.
        identity: wpkg_signing::keyless::CertIdentity,
        /// The Rekor log index.
        log_index: i64,
        /// The bundle (JSON), as attached.
        bundle: Vec<u8>,
    },
}

impl std::fmt::Display for Made {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Made::Key(fp) => write!(f, "with key sha256:{fp}"),
            Made::Keyless {
                identity,
                log_index,
                ..
            } => write!(f, "keylessly as {identity} (Rekor log index {log_index})"),
        }
    }
}

/// The `docker-reference` cosign writes: registry/repository, Docker Hub as
/// `index.docker.io`.
pub fn docker_reference(r: &Reference) -> String {
    if r.registry == wpkg_spec::reference::DEFAULT_REGISTRY {
        format!("index.docker.io/{}", r.repository)
    } else {
        r.name()
    }
}

/// Signs the local image `desc` as `name` with `key` and records the classic signature
/// in the store under `name`'s `sha256-<hex>.sig` tag (added to any there).
pub fn sign_with_key(
    store: &Store,
    key: &PrivateKey,
    desc: &Descriptor,
    name: &Reference,
) -> Result<Made, Error> {
    let payload =
        wpkg_signing::classic::simple_signing_payload(&docker_reference(name), &desc.digest);
    let sig = key.sign(&payload);
    let tag = name.with_tag(&wpkg_store::associated::signature_tag(&desc.digest));
    let lock = store.lock()?;
    let existing = match store.resolve(&tag) {
        Ok(d) => {
            let bytes = store.read_descriptor(&d)?;
            let manifest =
                serde_json::from_slice(&bytes).map_err(|e| wpkg_store::Error::BadManifest {
                    digest: d.digest.clone(),
                    reason: e.to_string(),
                })?;
            Some((manifest, bytes))
        }
        Err(wpkg_store::Error::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let (manifest, blobs) = wpkg_store::associated::add_classic_signature(
        existing.as_ref().map(|(m, b)| (m, b.clone())),
        &payload,
        &sig,
    );
    for b in &blobs {
        store.put_blob(b)?;
    }
    store.put_and_tag_locked(&lock, &tag, wpkg_spec::media::OCI_MANIFEST, &manifest)?;
    Ok(Made::Key(key.public().fingerprint()))
}

/// Signs the local image `desc` as `name` keylessly (Fulcio certificate, Rekor entry,
/// cosign v3 bundle checked against `instance.root`) and attaches the bundle to it as
/// an OCI referrer. Nothing is stored unless every step succeeded.
pub fn sign_keyless(
    store: &Store,
    instance: &Instance,
    token: &IdentityToken,
    desc: &Descriptor,
    name: &Reference,
    ca_files: &[std::path::PathBuf],
) -> Result<Made, Error> {
    let signed = wpkg_signing::keyless_sign::sign(
        instance,
        token,
        &docker_reference(name),
        &desc.digest,
        ca_files,
    )
    .map_err(|e| Error::Keyless(Box::new(e)))?;
    let created = wpkg_signing::keyless_sign::now_rfc3339();
    let referrer = wpkg_signing::bundle::bundle_referrer(&signed.bundle, desc, &created);
    store.attach_referrer(name, &desc.digest, &referrer)?;
    Ok(Made::Keyless {
        identity: signed.identity,
        log_index: signed.log_index,
        bundle: signed.bundle,
    })
}

/// What a push with signatures did.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// The image's transfer.
    pub report: PushReport,
    /// Signature manifests pushed (classic and referrers).
    pub signatures: usize,
}

/// Pushes the local image `desc` to `remote`, then its classic signatures and
/// referrers. A failure after the image is up says the image is there unsigned.
pub fn push(
    client: &Registry,
    store: &Store,
    desc: &Descriptor,
    remote: &Reference,
    progress: &Arc<dyn Progress>,
) -> Result<Pushed, Error> {
    check_remote(remote)?;
    let report = wpkg_distribution::transfer::push(client, store, desc, remote, progress).map_err(
        |source| Error::Push {
            reference: remote.familiar(),
            source: Box::new(source),
        },
    )?;
    let unsigned = |source| Error::PushedUnsigned {
        reference: remote.familiar(),
        digest: report.digest.clone(),
        source: Box::new(source),
    };
    let mut signatures =
        wpkg_distribution::transfer::push_signatures(client, store, &desc.digest, remote)
            .map_err(unsigned)?;
    signatures += wpkg_distribution::transfer::push_referrers(client, store, &desc.digest, remote)
        .map_err(unsigned)?;
    Ok(Pushed { report, signatures })
}

/// Reads the signatures of `remote` from its registry: the manifest digest and the
/// material found (classic `.sig` and bundle referrers).
pub fn remote_signatures(
    client: &Registry,
    remote: &Reference,
) -> Result<(String, wpkg_store::associated::Material), Error> {
    check_remote(remote)?;
    let m = client
        .get_manifest(remote)
        .map_err(|source| Error::RemoteManifest {
            reference: remote.familiar(),
            source: Box::new(source),
        })?;
    let sigs = wpkg_distribution::transfer::fetch_signatures(client, remote, &m.digest).map_err(
        |source| Error::Signatures {
            reference: remote.familiar(),
            source: Box::new(source),
        },
    )?;
    Ok((m.digest, sigs.material()))
}
