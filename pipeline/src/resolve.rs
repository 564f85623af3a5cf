//! Step 1: find the image, in the local store or, per the pull policy, in a registry.
//! Every blob is checked against its digest on the way in and again when read.

use std::sync::Arc;

use wpkg_distribution::registry::Registry;
use wpkg_distribution::transfer::{Progress, PullReport};
use wpkg_spec::media::Descriptor;
use wpkg_spec::Reference;
use wpkg_store::Store;

use crate::Error;

/// When a run pulls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Only when the local store lacks the reference.
    #[default]
    Missing,
    /// Always (gets the newest content of a tag).
    Always,
    /// Never contact a registry.
    Never,
}

/// Where an image was found.
#[derive(Clone, Debug)]
pub enum Resolved {
    /// In the local store.
    Local(Descriptor),
    /// To be pulled: the store lacks it (`missing: true`) or the policy says always.
    Pull {
        /// Whether the store lacks it.
        missing: bool,
    },
}

/// Looks `reference` up in the store under `policy`. Names under `localhost/` are
/// local-only and never pulled.
pub fn resolve(
    store: &Store,
    reference: &Reference,
    policy: PullPolicy,
) -> Result<Resolved, Error> {
    let local_only = reference.registry == "localhost";
    if local_only || policy == PullPolicy::Never {
        return Ok(Resolved::Local(store.resolve(reference)?));
    }
    if policy == PullPolicy::Always {
        return Ok(Resolved::Pull { missing: false });
    }
    match store.resolve(reference) {
        Ok(d) => Ok(Resolved::Local(d)),
        Err(wpkg_store::Error::NotFound(_)) => Ok(Resolved::Pull { missing: true }),
        Err(e) => Err(e.into()),
    }
}

/// Refuses local-only names (`localhost/...` without a port) where a registry is needed.
pub fn check_remote(r: &Reference) -> Result<(), Error> {
    if r.registry == "localhost" {
        return Err(Error::LocalOnly {
            reference: r.familiar(),
            repository: r.repository.clone(),
        });
    }
    Ok(())
}

/// Pulls `remote` into the store, reporting to `progress`.
pub fn pull(
    client: &Registry,
    store: &Store,
    remote: &Reference,
    progress: &Arc<dyn Progress>,
) -> Result<PullReport, Error> {
    check_remote(remote)?;
    wpkg_distribution::transfer::pull(client, store, remote, progress).map_err(|source| {
        Error::Pull {
            reference: remote.familiar(),
            source: Box::new(source),
        }
    })
}
