//! `[nn]`: the machine-learning models a guest may load through `wasi-nn`. Each model is
//! a file of the project, packed into the artifact's files layer (so a signature covers
//! it like any file), and named after its file (`models/classify.onnx` is `classify`).
//! The guest can load only these, by name; it cannot hand the host a model of its own.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::ManifestError;

/// Where the models travel inside the files layer (not visible to the guest as files).
pub const MODELS_DIR: &str = ".wpkg/nn";

/// The `[nn]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nn {
    /// ONNX model files, relative to `wpkg.toml`; each is loaded by its file name
    /// without `.onnx`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
}

impl Nn {
    /// Whether nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// The models as (graph name, path in the project).
    pub fn named(&self) -> Vec<(String, &str)> {
        self.models
            .iter()
            .map(|m| (model_name(m).unwrap_or_default(), m.as_str()))
            .collect()
    }

    /// Checks every path and that names are unique.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let mut seen = std::collections::BTreeSet::new();
        for m in &self.models {
            let name = model_name(m).map_err(ManifestError::plain)?;
            if !seen.insert(name.clone()) {
                return Err(ManifestError::plain(format!(
                    "two models in `nn.models` are named `{name}`: give each file its own name"
                )));
            }
        }
        Ok(())
    }

    /// The models in plain words.
    pub fn describe(&self) -> Vec<String> {
        if self.models.is_empty() {
            return vec!["machine-learning models (wasi-nn): none".into()];
        }
        self.named()
            .into_iter()
            .map(|(name, path)| {
                format!("machine-learning model (wasi-nn, ONNX): the guest may load `{name}` (bundled from {path})")
            })
            .collect()
    }
}

/// The graph name of a model path: its file name without `.onnx`.
pub fn model_name(path: &str) -> Result<String, String> {
    if path.is_empty()
        || path.starts_with('/')
        || path
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(format!(
            "model `{path}` must be a relative path inside the project, without `.` or `..`"
        ));
    }
    let name = path
        .rsplit('/')
        .next()
        .and_then(|f| f.strip_suffix(".onnx"))
        .ok_or_else(|| format!("model `{path}` must be an ONNX file ending in `.onnx`"))?;
    let mut chars = name.chars();
    let ok = name.len() <= 64
        && matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        return Err(format!(
            "model `{path}`: its name `{name}` must be lowercase letters, digits, `-` and `_`, at most 64 characters"
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert_eq!(model_name("models/classify.onnx").unwrap(), "classify");
        for bad in [
            "/abs.onnx",
            "../x.onnx",
            "m/./x.onnx",
            "x.pt",
            "Big.onnx",
            "",
        ] {
            assert!(model_name(bad).is_err(), "{bad}");
        }
        let twice = Nn {
            models: vec!["a/x.onnx".into(), "b/x.onnx".into()],
        };
        assert!(twice.validate().is_err());
    }
}
