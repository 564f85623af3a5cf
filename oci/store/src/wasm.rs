//! Telling a component from a core module, and what a component imports and exports.

use wpkg_spec::media::ComponentInfo;

/// What kind of wasm a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmKind {
    /// A core module (WASIp1).
    Module,
    /// A component (WASIp2).
    Component,
}

impl WasmKind {
    /// The config's `os`: `wasip1` or `wasip2`.
    pub fn os(self) -> &'static str {
        match self {
            WasmKind::Module => "wasip1",
            WasmKind::Component => "wasip2",
        }
    }
}

/// Checks that `bytes` are valid wasm and tells a component from a core module;
/// for a component, lists its top-level imports and exports.
pub fn inspect_wasm(bytes: &[u8]) -> Result<(WasmKind, Option<ComponentInfo>), String> {
    let described = classify_wasm(bytes)?;
    let mut validator = wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all());
    validator
        .validate_all(bytes)
        .map_err(|e| format!("it is not valid WebAssembly: {}", e.message()))?;
    Ok(described)
}

/// Tells a component from a core module and lists a component's top-level imports and
/// exports, without validating the whole binary (the engine validates when it compiles;
/// a run that finds its code in the cache compiled these exact bytes before).
pub fn classify_wasm(bytes: &[u8]) -> Result<(WasmKind, Option<ComponentInfo>), String> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err("it is not a WebAssembly binary (no `\\0asm` header)".into());
    }
    if wasmparser::Parser::is_component(bytes) {
        describe_wasm(WasmKind::Component, bytes)
    } else if wasmparser::Parser::is_core_wasm(bytes) {
        Ok((WasmKind::Module, None))
    } else {
        Err("unknown WebAssembly binary version".into())
    }
}

fn describe_wasm(
    kind: WasmKind,
    bytes: &[u8],
) -> Result<(WasmKind, Option<ComponentInfo>), String> {
    if kind == WasmKind::Module {
        return Ok((kind, None));
    }
    let mut info = ComponentInfo::default();
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let payload =
            payload.map_err(|e| format!("it is not valid WebAssembly: {}", e.message()))?;
        match payload {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => {
                depth += 1;
            }
            wasmparser::Payload::End(_) => {
                depth = depth.saturating_sub(1);
            }
            wasmparser::Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| e.message().to_owned())?;
                    info.imports.push(import.name.0.to_owned());
                }
            }
            wasmparser::Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| e.message().to_owned())?;
                    info.exports.push(export.name.0.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok((kind, Some(info)))
}
