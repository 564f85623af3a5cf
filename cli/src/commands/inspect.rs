//! `wpkg inspect REF`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use wpkg_spec::image::{EmbeddedCapabilities, CAPABILITIES_FILE};
use wpkg_spec::manifest::ArtifactCapabilities;
use wpkg_store::image::ImageFile;

/// Show an image's manifest, config and permissions in plain words
#[derive(Args)]
pub struct InspectArgs {
    /// The image: NAME[:TAG] or NAME@sha256:...
    reference: String,
    /// Print JSON for scripts: {reference, digest, manifest, config}.
    #[arg(long)]
    json: bool,
    /// Read the image from its registry, not the local store. Nothing is kept; every
    /// digest is checked as on a pull.
    #[arg(long)]
    remote: bool,
    #[command(flatten)]
    remote_args: crate::remote::RemoteArgs,
}

impl InspectArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let r = super::parse_ref(&self.reference)?;
        // A remote image goes into a scratch store that is removed when this returns.
        let scratch;
        let (store, desc) = if self.remote {
            wpkg_pipeline::resolve::check_remote(&r)?;
            scratch = tempfile::tempdir().context("creating a scratch directory")?;
            let store = crate::settings::scratch_store(scratch.path())?;
            let client = self.remote_args.client()?;
            let desc = crate::remote::pull(&client, &store, &r, false)?;
            (store, desc)
        } else {
            let store = crate::settings::open_store()?;
            let desc = store.resolve(&r)?;
            (store, desc)
        };
        let art = match wpkg_store::image::load_any(&store, &desc)? {
            wpkg_store::image::Content::Artifact(a) => *a,
            wpkg_store::image::Content::Image(img) => return self.image(&store, &r, &desc, &img),
        };
        let caps = art.capabilities()?;
        if self.json {
            return json(&r, &desc, &art.manifest, &art.config, &caps.describe());
        }
        let kind = format!(
            "{} ({})",
            if art.config.os == "wasip2" {
                "component"
            } else {
                "core module"
            },
            art.config.os
        );
        let mut t = header(&r, &desc, &kind, art.config.created.as_deref());
        for (k, v) in &art.manifest.annotations {
            t.push_str(&format!("Annotation: {k}={v}\n"));
        }
        t.push_str(&layers(&art.manifest.layers));
        if let Some(c) = &art.config.component {
            if !c.exports.is_empty() {
                t.push_str(&format!("Exports:   {}\n", c.exports.join(", ")));
            }
            if !c.imports.is_empty() {
                t.push_str(&format!("Imports:   {}\n", c.imports.join(", ")));
            }
        }
        t.push_str("Permissions:\n");
        if art.config.capabilities.is_none() {
            t.push_str("  (no wpkg capabilities in this artifact: everything is denied)\n");
        }
        t.push_str(&permission_lines(&caps));
        super::out(&t)?;
        super::ok()
    }

    /// A Docker+Wasm image: what it holds and what a run would get.
    fn image(
        &self,
        store: &wpkg_store::Store,
        r: &wpkg_spec::Reference,
        desc: &wpkg_spec::media::Descriptor,
        img: &wpkg_store::image::LoadedImage,
    ) -> Result<ExitCode> {
        let rc = img.config.config.clone().unwrap_or_default();
        // As a run reads them: from the image's files unpacked under the store (links
        // in the image resolve inside it), so inspect and run never disagree.
        let limit = store.unpack_limits().file_bytes;
        let read = || -> Result<ImageFile, wpkg_store::Error> {
            wpkg_store::image::unpack(store, img)?.read_file(CAPABILITIES_FILE, limit)
        };
        let file = match read() {
            Err(wpkg_store::Error::DerivedChanged { .. }) => {
                wpkg_store::unpack::discard(&wpkg_store::image::rootfs_dir(store, img)?)?;
                read()?
            }
            r => r?,
        };
        let embedded = match file {
            ImageFile::Absent => None,
            ImageFile::Regular(bytes) => Some(EmbeddedCapabilities::parse(&bytes)),
            ImageFile::Other => Some(Err("it is not a regular file".to_owned())),
        };
        let env_names: Vec<String> = rc
            .env
            .iter()
            .flatten()
            .map(|kv| kv.split('=').next().unwrap_or(kv).to_owned())
            .collect();
        let permissions = match &embedded {
            Some(Ok(e)) => e.capabilities.describe(),
            Some(Err(reason)) => vec![format!(
                "none: its wpkg capabilities ({CAPABILITIES_FILE}) are not usable ({reason}), \
                 so wpkg run and the containerd shim refuse it"
            )],
            None => unmanifested(&env_names),
        };
        if self.json {
            return json(r, desc, &img.manifest, &img.config, &permissions);
        }
        let kind = format!(
            "container image ({}/{}, {})",
            img.config.os,
            img.config.architecture,
            if embedded.is_some() {
                "wpkg build --format image"
            } else {
                "Docker+Wasm"
            }
        );
        let mut t = header(r, desc, &kind, img.config.created.as_deref());
        let list = |v: &Option<Vec<String>>| {
            v.as_ref()
                .map(|v| format!("{v:?}"))
                .unwrap_or_else(|| "-".into())
        };
        t.push_str(&format!("Entrypoint: {}\n", list(&rc.entrypoint)));
        t.push_str(&format!("Cmd:        {}\n", list(&rc.cmd)));
        if let Some(w) = &rc.working_dir {
            t.push_str(&format!(
                "WorkingDir: {w} (not applied: WASI has no working directory)\n"
            ));
        }
        t.push_str(&layers(&img.manifest.layers));
        match &embedded {
            Some(Ok(e)) => {
                t.push_str(&format!(
                    "Capabilities: {CAPABILITIES_FILE}, for {} ({})\n",
                    e.wasm, e.wasm_digest
                ));
                t.push_str("Permissions:\n");
                t.push_str(&permission_lines(&e.capabilities));
            }
            _ => {
                t.push_str("Permissions:\n");
                for p in &permissions {
                    t.push_str(&format!("  {p}\n"));
                }
            }
        }
        super::out(&t)?;
        super::ok()
    }
}

/// What an image without wpkg capabilities gets by default, and how to grant more.
fn unmanifested(env_names: &[String]) -> Vec<String> {
    vec![
        "no wpkg manifest: everything is denied unless granted at run".to_owned(),
        "files: none (--rootfs ro offers the image's files read-only at /)".to_owned(),
        format!(
            "environment: none (--image-env gives its Env: {})",
            if env_names.is_empty() {
                "none".to_owned()
            } else {
                env_names.join(", ")
            }
        ),
        "outbound HTTP: none (--allow-outbound URL)".to_owned(),
        "network sockets and DNS: none".to_owned(),
        format!("memory: at most {}", wpkg_spec::manifest::DEFAULT_MEMORY),
    ]
}

/// The `Permissions:` lines and, when the run must supply something, `At run`.
fn permission_lines(caps: &ArtifactCapabilities) -> String {
    let mut t = String::new();
    for line in caps.describe() {
        t.push_str(&format!("  {line}\n"));
    }
    let c = &caps.capabilities;
    if !c.env_required.is_empty() || !c.mounts.is_empty() {
        t.push_str("At run (wpkg run):\n");
        for k in &c.env_required {
            t.push_str(&format!("  --env {k}=VALUE\n"));
        }
        for m in &c.mounts {
            t.push_str(&format!("  --mount DIR:{}\n", m.guest));
        }
    }
    t
}

/// `--json`: the reference, digest, manifest, config and permissions.
fn json(
    r: &wpkg_spec::Reference,
    desc: &wpkg_spec::media::Descriptor,
    manifest: &impl serde::Serialize,
    config: &impl serde::Serialize,
    permissions: &[String],
) -> Result<ExitCode> {
    let v = serde_json::json!({
        "reference": r.to_string(),
        "digest": desc.digest,
        "manifest": manifest,
        "config": config,
        "permissions": permissions,
    });
    super::out(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
    super::ok()
}

/// The first lines: reference, digest, kind, creation time.
fn header(
    r: &wpkg_spec::Reference,
    desc: &wpkg_spec::media::Descriptor,
    kind: &str,
    created: Option<&str>,
) -> String {
    let mut t = format!(
        "Reference: {}\nDigest:    {}\nKind:      {kind}\n",
        r.familiar(),
        desc.digest
    );
    if let Some(c) = created {
        t.push_str(&format!("Created:   {c}\n"));
    }
    t
}

/// The `Layers:` block.
fn layers(layers: &[wpkg_spec::media::Descriptor]) -> String {
    let mut t = String::from("Layers:\n");
    for l in layers {
        t.push_str(&format!(
            "  {}  {}  {}\n",
            l.digest,
            l.media_type,
            super::human_size(l.size)
        ));
    }
    t
}
