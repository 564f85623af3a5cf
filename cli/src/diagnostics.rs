//! The one place errors are rendered: the message and its causes on one `error:` line,
//! then `hint:` lines with the fix. Libraries give typed errors with the facts; the
//! wording of fixes (command and flag names) lives here.

use wpkg_pipeline::{Error as Pipeline, Refusal};
use wpkg_signing::keyless_sign::KeylessError;

/// Renders an error chain: `error: ...` then any `hint: ...` lines (no trailing newline).
pub fn render(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let t = cause.to_string();
        // A few store and registry errors still carry their cause in their own text.
        if t.is_empty() || text.contains(&t) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&t);
    }
    let mut out = format!("error: {text}");
    for h in hints(e) {
        out.push_str("\nhint: ");
        out.push_str(&h);
    }
    out
}

/// The fixes for every link of the chain that has one, in order, without repeats.
pub fn hints(e: &anyhow::Error) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for cause in e.chain() {
        let found = if let Some(p) = cause.downcast_ref::<Pipeline>() {
            pipeline_hint(p)
        } else if let Some(r) = cause.downcast_ref::<Refusal>() {
            refusal_hint(r)
        } else if let Some(k) = cause.downcast_ref::<KeylessError>() {
            keyless_hint(k)
        } else {
            None
        };
        if let Some(h) = found.filter(|h| !out.contains(h)) {
            out.push(h);
        }
    }
    out
}

fn pipeline_hint(e: &Pipeline) -> Option<String> {
    Some(match e {
        Pipeline::ManifestUnreadable { .. } => {
            "give a directory with a wpkg.toml, or its path".into()
        }
        Pipeline::VersionNotATag { .. } => "pass -t NAME:TAG".into(),
        Pipeline::WasmUnreadable {
            has_build_command, ..
        } => {
            if *has_build_command {
                "build it first".into()
            } else {
                "build it first or add `build = \"...\"` to [package]".into()
            }
        }
        Pipeline::LocalOnly {
            reference,
            repository,
        } => format!("give a registry, e.g. `wpkg push {reference} localhost:5000/{repository}`"),
        Pipeline::PushedUnsigned { .. } => "push again to retry".into(),
        Pipeline::HttpTakesNoArgs => "remove the arguments after `--`".into(),
        Pipeline::NotACommand => "serve it with `wpkg run` (it listens on --listen)".into(),
        Pipeline::NotVerified { source, .. } => {
            let mut h = refusal_hint(source)
                .map(|h| format!("{h}; "))
                .unwrap_or_default();
            h.push_str("to run it unverified anyway: --insecure-skip-verify");
            h
        }
        Pipeline::Keyless(k) => return keyless_hint(k),
        _ => return None,
    })
}

/// The fix for a trust refusal.
pub fn refusal_hint(r: &Refusal) -> Option<String> {
    match r {
        Refusal::NoScope {
            suggested_scope, ..
        } => Some(format!(
            "trust its publisher with `wpkg trust add {suggested_scope} --key PUBLISHER.pub` (or --issuer and --subject for keyless signatures)"
        )),
        Refusal::Unsigned { .. } => Some(
            "the publisher signs it with `wpkg sign --key` or `--keyless` (or `cosign sign`)"
                .into(),
        ),
        Refusal::NoneVerifies { .. } => None,
    }
}

/// The fix for a keyless signing failure.
pub fn keyless_hint(e: &KeylessError) -> Option<String> {
    Some(
        match e {
            KeylessError::TokenExpired { .. } => "get a fresh identity token and sign again",
            KeylessError::BadToken { .. } => {
                "give the OIDC token itself (a JWT for audience `sigstore`)"
            }
            KeylessError::NoToken => "pass --identity-token (or set SIGSTORE_ID_TOKEN), or run in GitHub Actions with `permissions: id-token: write`",
            KeylessError::Fulcio { .. } => {
                "check --fulcio-url and that the token's issuer is one Fulcio accepts"
            }
            KeylessError::Rekor { .. } => "check --rekor-url; nothing was stored or pushed",
            KeylessError::SelfCheck { .. } => {
                "nothing was stored or pushed; signing with a private Sigstore instance? give its trusted_root.json with --trusted-root"
            }
            _ => return None,
        }
        .into(),
    )
}
