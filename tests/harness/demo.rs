//! The canonical demo, shared by `cargo run -p wpkg-tests --bin demo` (the README's
//! main command) and the end-to-end test: an HTTP handler answers; its outbound call
//! to a host the manifest does not allow fails with a clear error; one line is added
//! to wpkg.toml; the same call succeeds.

use crate::serve::{upstream, Server};
use crate::{guest, root, Env};

fn check(ok: bool, what: &str, detail: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("step failed: {what}\n{detail}"))
    }
}

/// Runs the demo, narrating each step through `say`. Returns an error describing the
/// first step that did not behave as described.
pub fn run(say: &mut dyn FnMut(&str)) -> Result<(), String> {
    say("1. building the http-fetch guest (cargo, wasm32-wasip2)");
    let wasm = guest("example-http-fetch", "wasm32-wasip2");
    let env = Env::new();
    let manifest = std::fs::read_to_string(root().join("examples/http-fetch/wpkg.toml"))
        .map_err(|e| e.to_string())?;
    let manifest = manifest.replace(
        "../../target/wasm32-wasip2/release/example_http_fetch.wasm",
        &wasm.display().to_string(),
    );
    let dir = env.path("http-fetch");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("wpkg.toml"), &manifest).map_err(|e| e.to_string())?;

    let (up, _hits) = upstream(200, "hello from the upstream service");
    say(&format!("2. started an upstream service on http://{up}"));

    say("3. wpkg build  (manifest allows no outbound HTTP)");
    let d = dir.to_str().unwrap();
    let b = env.wpkg(&["build", "-q", "--no-build-command", d]);
    check(b.code == Some(0), "wpkg build", &b.stderr)?;
    say(&format!("   built http-fetch:0.1.0 {}", b.stdout.trim()));

    let mut server =
        Server::start(env.cmd(&["run", "http-fetch:0.1.0", "--listen", "127.0.0.1:0"]))?;
    say(&format!("4. wpkg run: serving on http://{}", server.addr));
    let (status, body) = server.get("/")?;
    say(&format!("   GET /  -> {status}: {}", body.trim()));
    check(
        status == 200 && body.contains("is up"),
        "GET / answers 200",
        &body,
    )?;

    let fetch = format!("/fetch?url=http://{up}/");
    let (status, body) = server.get(&fetch)?;
    say(&format!("5. GET {fetch}  -> {status}: {}", body.trim()));
    let line = format!("outbound_http = [\"http://{up}\"]");
    check(
        status == 502 && body.contains("HttpRequestDenied"),
        "the outbound call is denied",
        &body,
    )?;
    check(
        server.wait_stderr(&line),
        "wpkg names the line to add",
        &server.stderr(),
    )?;
    let denial = server
        .stderr()
        .lines()
        .find(|l| l.contains("denied"))
        .unwrap_or("")
        .to_owned();
    say(&format!("   wpkg says: {denial}"));
    server.stop();

    say(&format!("6. adding one line to wpkg.toml: {line}"));
    let allowed = manifest.replace("[capabilities]\n", &format!("[capabilities]\n{line}\n"));
    check(
        allowed != manifest,
        "the manifest has a [capabilities] table",
        &manifest,
    )?;
    std::fs::write(dir.join("wpkg.toml"), allowed).map_err(|e| e.to_string())?;
    let b = env.wpkg(&["build", "-q", "--no-build-command", d]);
    check(b.code == Some(0), "wpkg build (allowed)", &b.stderr)?;
    say(&format!("   rebuilt http-fetch:0.1.0 {}", b.stdout.trim()));

    let mut server =
        Server::start(env.cmd(&["run", "http-fetch:0.1.0", "--listen", "127.0.0.1:0"]))?;
    let (status, body) = server.get(&fetch)?;
    say(&format!("7. GET {fetch}  -> {status}: {}", body.trim()));
    check(
        status == 200 && body.contains("answered 200: hello from the upstream service"),
        "the same call now succeeds",
        &format!("{body}\n{}", server.stderr()),
    )?;
    let code = server.stop();
    check(
        code == Some(0),
        "the server stops cleanly on SIGTERM",
        &format!("exit {code:?}\n{}", server.stderr()),
    )?;
    say("demo passed: denied by default, allowed by one line of wpkg.toml");
    Ok(())
}
