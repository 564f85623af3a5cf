//! `wpkg images`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

/// List the images in the local store
#[derive(Args)]
pub struct ImagesArgs {
    /// Print JSON (one array) for scripts.
    #[arg(long)]
    json: bool,
}

impl ImagesArgs {
    /// Runs the command.
    pub fn run(self) -> Result<ExitCode> {
        let store = crate::settings::open_store()?;
        let mut rows = Vec::new();
        // Signature manifests (cosign's `sha256-<hex>.sig` tags) are not images.
        for mut img in store.listing()?.into_iter().filter(|i| {
            !i.reference
                .tag
                .as_deref()
                .is_some_and(wpkg_store::associated::is_signature_tag)
        }) {
            // Recorded on the index entry when it was tagged; read from the blobs for
            // entries an older wpkg wrote.
            let (size, created) = match img
                .summary
                .take()
                .map_or_else(|| store.summary(&img.manifest), Ok)
            {
                Ok(s) => (s.size, s.created),
                Err(_) => (0, "damaged".to_owned()),
            };
            rows.push((img, size, created));
        }
        if self.json {
            let v: Vec<_> = rows
                .iter()
                .map(|(img, size, created)| {
                    serde_json::json!({
                        "reference": img.reference.to_string(),
                        "digest": img.manifest.digest,
                        "size": size,
                        "created": created,
                    })
                })
                .collect();
            super::out(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
            return super::ok();
        }
        use std::fmt::Write;
        // One buffer for the whole table, written into directly.
        let mut text = String::with_capacity(100 * (rows.len() + 1));
        let _ = writeln!(
            text,
            "{:<40} {:<19} {:>9}  CREATED",
            "REFERENCE", "DIGEST", "SIZE"
        );
        for (img, size, created) in rows {
            let short = img
                .manifest
                .digest
                .get(..19)
                .unwrap_or(&img.manifest.digest);
            let _ = writeln!(
                text,
                "{:<40} {:<19} {:>9}  {}",
                img.reference.familiar(),
                short,
                super::human_size(size),
                created
            );
        }
        super::out(&text)?;
        super::ok()
    }
}
