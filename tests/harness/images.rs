//! Container images laid out as `docker buildx build --platform wasi/wasm` writes them:
//! an OCI image layout directory (blobs, manifests, an index with platform entries and
//! buildx attestation entries), tar and tar+gzip layers, written byte by byte so that
//! hostile layers (`..`, absolute paths, links out) can be made too; pushed to a test
//! registry with skopeo.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// One tar entry: a file, a directory, or a link.
#[derive(Clone, Debug)]
pub enum Item<'a> {
    /// A regular file.
    File(&'a str, &'a [u8]),
    /// An executable regular file (mode 0755).
    Executable(&'a str, &'a [u8]),
    /// A directory.
    Dir(&'a str),
    /// A symbolic link: path, target.
    Symlink(&'a str, &'a str),
}

/// A tar archive of `items`, paths written as given (no checks: hostile layers too).
pub fn tar(items: &[Item<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for item in items {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        let (path, data, link): (&str, &[u8], Option<&str>) = match item {
            Item::File(p, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                (p, d, None)
            }
            Item::Executable(p, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o755);
                (p, d, None)
            }
            Item::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                (p, b"", None)
            }
            Item::Symlink(p, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                (p, b"", Some(t))
            }
        };
        h.set_size(data.len() as u64);
        let old = h.as_old_mut();
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        if let Some(t) = link {
            old.linkname[..t.len()].copy_from_slice(t.as_bytes());
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Gzip of `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An OCI image layout directory being written.
pub struct Layout {
    dir: PathBuf,
    tags: Vec<serde_json::Value>,
}

/// OCI media types used here.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// A gzip layer.
pub const TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// A plain tar layer.
pub const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// A raw Wasm layer (the bytes are the wasm, not a tar).
pub const WASM: &str = "application/wasm";

impl Layout {
    /// A new layout at `dir`.
    pub fn new(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_owned(),
            tags: Vec::new(),
        }
    }

    /// The `oci:DIR:TAG` reference skopeo reads.
    pub fn skopeo_ref(&self, tag: &str) -> String {
        format!("oci:{}:{tag}", self.dir.display())
    }

    /// Stores a blob; returns its descriptor.
    pub fn blob(&self, media_type: &str, bytes: &[u8]) -> serde_json::Value {
        let d = sha(bytes);
        std::fs::write(self.dir.join("blobs/sha256").join(&d[7..]), bytes).unwrap();
        serde_json::json!({"mediaType": media_type, "digest": d, "size": bytes.len()})
    }

    /// An image: `config` (JSON; `rootfs.diff_ids` filled in) and layers given as
    /// (media type, uncompressed tar, or the wasm for [`WASM`]); gzip layers are
    /// compressed here. A [`WASM`] layer is titled `component.wasm`.
    pub fn image(
        &self,
        mut config: serde_json::Value,
        layers: &[(&str, Vec<u8>)],
    ) -> serde_json::Value {
        let mut descs = Vec::new();
        let mut diff_ids = Vec::new();
        for (media_type, tar) in layers {
            diff_ids.push(sha(tar));
            let bytes = if *media_type == TAR || *media_type == WASM {
                tar.clone()
            } else {
                gzip(tar)
            };
            let mut desc = self.blob(media_type, &bytes);
            if *media_type == WASM {
                desc["annotations"] =
                    serde_json::json!({"org.opencontainers.image.title": "component.wasm"});
            }
            descs.push(desc);
        }
        config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": diff_ids});
        let config = self.blob(OCI_CONFIG, config.to_string().as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": descs,
        });
        self.blob(OCI_MANIFEST, manifest.to_string().as_bytes())
    }

    /// An index of `entries`: (manifest descriptor, os, architecture, attestation?).
    pub fn index(&self, entries: &[(serde_json::Value, &str, &str, bool)]) -> serde_json::Value {
        let manifests: Vec<serde_json::Value> = entries
            .iter()
            .map(|(d, os, arch, attestation)| {
                let mut d = d.clone();
                d["platform"] = serde_json::json!({"os": os, "architecture": arch});
                if *attestation {
                    d["annotations"] = serde_json::json!({
                        "vnd.docker.reference.type": "attestation-manifest",
                        "vnd.docker.reference.digest": entries[0].0["digest"],
                    });
                }
                d
            })
            .collect();
        let index =
            serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        self.blob(OCI_INDEX, index.to_string().as_bytes())
    }

    /// The layout as a tar archive at `out` (what `ctr images import` reads).
    pub fn archive(&self, out: &Path) {
        let st = std::process::Command::new("tar")
            .arg("-C")
            .arg(&self.dir)
            .arg("-cf")
            .arg(out)
            .arg(".")
            .status()
            .expect("running tar");
        assert!(st.success(), "tar of the layout failed");
    }

    /// Tags `desc` in the layout's `index.json`.
    pub fn tag(&mut self, tag: &str, desc: &serde_json::Value) {
        let mut d = desc.clone();
        d["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
        self.tags.push(d);
        let index = serde_json::json!({"schemaVersion": 2, "manifests": self.tags});
        std::fs::write(self.dir.join("index.json"), index.to_string()).unwrap();
    }
}

/// Runs `skopeo copy` with `args` (plain HTTP to the loopback test registry).
pub fn skopeo_copy(args: &[&str]) {
    let bin = crate::registry::which("skopeo").unwrap_or_else(|| {
        panic!("`skopeo` is not installed: run `bash scripts/setup.sh` (it runs `apt-get install skopeo`)")
    });
    let out = std::process::Command::new(bin)
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
