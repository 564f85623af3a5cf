//! Content: manifests (by tag or digest), referrers, blobs (exists, download, upload
//! with retries and origin checks).

use super::*;

impl Registry {
    /// Fetches a manifest by the reference's digest (if any) or tag, checking its
    /// digest against the reference and the `Docker-Content-Digest` header.
    pub fn get_manifest(&self, r: &Reference) -> Result<FetchedManifest, RegistryError> {
        let target = r
            .digest
            .clone()
            .or_else(|| r.tag.clone())
            .unwrap_or_else(|| wpkg_spec::reference::DEFAULT_TAG.to_owned());
        self.get_manifest_at(r, &target)
    }

    /// Fetches the manifest at `target` (a tag or digest) in `r`'s repository.
    pub fn get_manifest_at(
        &self,
        r: &Reference,
        target: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let url = format!("/v2/{}/manifests/{target}", r.repository);
        let resp = self.send(r, Access::Pull, Method::GET, &url, true, &mut |b| {
            Ok(b.header(ACCEPT, MANIFEST_ACCEPT))
        })?;
        let what = format!("manifest `{}:{target}`", r.name());
        if !resp.status().is_success() {
            return Err(self.status_error(r, what, resp));
        }
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let mut bytes = Vec::new();
        resp.take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| RegistryError::Transport {
                registry: r.registry.clone(),
                detail: format!("reading {what}: {e}"),
            })?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(RegistryError::Protocol {
                registry: r.registry.clone(),
                detail: format!("{what} is larger than {MAX_MANIFEST_BYTES} bytes"),
            });
        }
        let digest = wpkg_store::sha256_digest(&bytes);
        let expected = if wpkg_spec::reference::is_valid_digest(target) {
            Some(target.to_owned())
        } else {
            header_digest.filter(|d| wpkg_spec::Digest::parse(d).is_ok())
        };
        if let Some(exp) = expected {
            if exp != digest {
                return Err(RegistryError::Integrity {
                    registry: r.registry.clone(),
                    what,
                    detail: format!("expected {exp}, the bytes hash to {digest}"),
                });
            }
        }
        #[derive(serde::Deserialize)]
        struct Probe {
            #[serde(rename = "mediaType", default)]
            media_type: Option<String>,
        }
        let probe: Probe = serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
            registry: r.registry.clone(),
            detail: format!("{what} is not JSON: {e}"),
        })?;
        let media_type = probe
            .media_type
            .or(content_type)
            .unwrap_or_else(|| media::OCI_MANIFEST.to_owned());
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Like [`Registry::get_manifest_at`], but a missing manifest is `None`.
    pub fn find_manifest(
        &self,
        r: &Reference,
        target: &str,
    ) -> Result<Option<FetchedManifest>, RegistryError> {
        match self.get_manifest_at(r, target) {
            Ok(m) => Ok(Some(m)),
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The referrers of `digest` from the referrers API, or `None` when the registry
    /// does not offer it (callers also read the `sha256-<hex>` fallback tag).
    pub fn referrers(
        &self,
        r: &Reference,
        digest: &str,
    ) -> Result<Option<wpkg_spec::media::ImageIndex>, RegistryError> {
        let url = format!("/v2/{}/referrers/{digest}", r.repository);
        let resp = self.send(r, Access::Pull, Method::GET, &url, true, &mut |b| {
            Ok(b.header(ACCEPT, media::OCI_INDEX))
        })?;
        let is_index = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(media::OCI_INDEX));
        if !resp.status().is_success() || !is_index {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        resp.take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| RegistryError::Transport {
                registry: r.registry.clone(),
                detail: format!("reading the referrers of {digest}: {e}"),
            })?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RegistryError::Protocol {
                registry: r.registry.clone(),
                detail: format!("the referrers of {digest} are not an OCI index: {e}"),
            })
    }

    /// Downloads a small blob (at most `max` bytes) into memory, checking its size and
    /// digest.
    pub fn get_small_blob(
        &self,
        r: &Reference,
        desc: &wpkg_spec::media::Descriptor,
        max: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let what = format!("blob {}", desc.digest);
        if desc.size > max {
            return Err(RegistryError::Protocol {
                registry: r.registry.clone(),
                detail: format!(
                    "{what} is {} bytes, more than the {max} allowed here",
                    desc.size
                ),
            });
        }
        let resp = self.get_blob(r, &desc.digest, desc.size)?;
        let mut bytes = Vec::new();
        resp.take(desc.size + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| RegistryError::Transport {
                registry: r.registry.clone(),
                detail: format!("reading {what}: {e}"),
            })?;
        let actual = wpkg_store::sha256_digest(&bytes);
        if bytes.len() as u64 != desc.size || actual != desc.digest {
            return Err(RegistryError::Integrity {
                registry: r.registry.clone(),
                what,
                detail: format!("{} bytes hashing to {actual}", bytes.len()),
            });
        }
        Ok(bytes)
    }

    /// Whether the repository already has the blob (HEAD).
    pub fn blob_exists(
        &self,
        r: &Reference,
        access: Access,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        let url = format!("/v2/{}/blobs/{digest}", r.repository);
        let resp = self.send(r, access, Method::HEAD, &url, true, &mut |b| Ok(b))?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.status_error(r, format!("blob {digest}"), resp)),
        }
    }

    /// Starts a blob download of `size` bytes; the caller streams and verifies the body.
    pub fn get_blob(
        &self,
        r: &Reference,
        digest: &str,
        size: u64,
    ) -> Result<Response, RegistryError> {
        let url = format!("/v2/{}/blobs/{digest}", r.repository);
        let resp = self.send(r, Access::Pull, Method::GET, &url, true, &mut |b| {
            Ok(b.timeout(transfer_timeout(self.timeout(), size)))
        })?;
        if !resp.status().is_success() {
            return Err(self.status_error(r, format!("blob {digest} of `{}`", r.name()), resp));
        }
        Ok(resp)
    }

    /// Uploads one blob: POST to open an upload session, then one PUT with the
    /// content. `body` is called once per attempt; the whole upload is retried on a
    /// transient failure.
    pub fn upload_blob(
        &self,
        r: &Reference,
        digest: &str,
        size: u64,
        body: &mut dyn FnMut() -> Result<reqwest::blocking::Body, RegistryError>,
    ) -> Result<(), RegistryError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.upload_once(r, digest, size, body) {
                Ok(()) => return Ok(()),
                Err((_, true)) if attempt < self.attempts() => {
                    std::thread::sleep(backoff(attempt));
                }
                Err((RegistryError::Transport { registry, detail }, _))
                    if attempt > 1 && !detail.contains("attempts)") =>
                {
                    return Err(RegistryError::Transport {
                        registry,
                        detail: format!("{detail} (after {attempt} uploads)"),
                    })
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// The error of a failed upload step, and whether starting over may help
    /// (transport failures, 5xx, 429).
    pub(crate) fn upload_failure(
        &self,
        r: &Reference,
        what: String,
        resp: Response,
    ) -> (RegistryError, bool) {
        let retry = retryable_status(resp.status());
        (self.status_error(r, what, resp), retry)
    }

    pub(crate) fn upload_once(
        &self,
        r: &Reference,
        digest: &str,
        size: u64,
        body: &mut dyn FnMut() -> Result<reqwest::blocking::Body, RegistryError>,
    ) -> Result<(), (RegistryError, bool)> {
        let transient = |e: RegistryError| {
            let retry = matches!(e, RegistryError::Transport { .. });
            (e, retry)
        };
        let url = format!("/v2/{}/blobs/uploads/", r.repository);
        let resp = self
            .send(r, Access::Push, Method::POST, &url, true, &mut |b| {
                Ok(b.header(reqwest::header::CONTENT_LENGTH, "0"))
            })
            .map_err(transient)?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.upload_failure(r, format!("starting the upload of {digest}"), resp));
        }
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                (
                    RegistryError::Protocol {
                        registry: r.registry.clone(),
                        detail: "the upload session has no Location header".into(),
                    },
                    false,
                )
            })?
            .to_owned();
        let base = resp.url().clone();
        let mut put = base.join(&location).map_err(|_| {
            (
                RegistryError::Protocol {
                    registry: r.registry.clone(),
                    detail: format!("the upload Location `{location}` is not a URL"),
                },
                false,
            )
        })?;
        // Credentials go with the PUT: only to where the POST went, never downgraded.
        if put.scheme() != base.scheme()
            || put.host_str() != base.host_str()
            || put.port_or_known_default() != base.port_or_known_default()
        {
            return Err((
                RegistryError::Protocol {
                    registry: r.registry.clone(),
                    detail: format!(
                        "the upload Location `{location}` points to another host or scheme than {}; refusing to send credentials there",
                        base.origin().ascii_serialization()
                    ),
                },
                false,
            ));
        }
        put.query_pairs_mut().append_pair("digest", digest);
        let resp = self
            .send(
                r,
                Access::Push,
                Method::PUT,
                put.as_str(),
                false,
                &mut |b| {
                    Ok(b.timeout(transfer_timeout(self.timeout(), size))
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(reqwest::header::CONTENT_LENGTH, size.to_string())
                        .body(body()?))
                },
            )
            .map_err(transient)?;
        if !resp.status().is_success() {
            return Err(self.upload_failure(r, format!("uploading {digest}"), resp));
        }
        if let Some(d) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if d != digest {
                return Err((
                    RegistryError::Integrity {
                        registry: r.registry.clone(),
                        what: format!("the upload of {digest}"),
                        detail: format!("the registry stored it as {d}"),
                    },
                    false,
                ));
            }
        }
        Ok(())
    }

    /// Uploads a manifest under `target` (a tag or its digest). Returns the digest the
    /// registry reports (checked against ours).
    pub fn put_manifest(
        &self,
        r: &Reference,
        target: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, RegistryError> {
        let url = format!("/v2/{}/manifests/{target}", r.repository);
        let ours = wpkg_store::sha256_digest(bytes);
        let body = bytes.to_vec();
        let resp = self.send(r, Access::Push, Method::PUT, &url, true, &mut |b| {
            Ok(b.header(CONTENT_TYPE, media_type).body(body.clone()))
        })?;
        if !resp.status().is_success() {
            return Err(self.status_error(r, format!("manifest `{}:{target}`", r.name()), resp));
        }
        if let Some(d) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if d != ours {
                return Err(RegistryError::Integrity {
                    registry: r.registry.clone(),
                    what: format!("manifest `{}:{target}`", r.name()),
                    detail: format!("we sent {ours}, the registry stored {d}"),
                });
            }
        }
        Ok(ours)
    }
}
