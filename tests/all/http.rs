//! The HTTP trigger and the outbound allow-list, from the guest's side: each denial is
//! a request the http-fetch guest makes and reports, and a test that fails if the
//! request goes through (the upstream counts what reaches it).

use wpkg_tests::serve::{upstream, Server};
use wpkg_tests::{guest, Env};

fn fetch_manifest(outbound: &str, limits: &str) -> String {
    format!(
        "manifest_version = 1\n[package]\nname = \"fetch\"\nversion = \"0.1.0\"\nwasm = \"{{wasm}}\"\n[trigger]\ntype = \"http\"\n[capabilities]\noutbound_http = [{outbound}]\n[limits]\n{limits}\n"
    )
}

fn serve(env: &Env, manifest: &str, extra: &[&str]) -> Server {
    let wasm = guest("example-http-fetch", "wasm32-wasip2");
    let dir = env.project("fetch", &wasm, manifest);
    env.build(&dir, "fetch:test");
    let mut args = vec!["run", "fetch:test", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Server::start(env.cmd(&args)).unwrap()
}

/// Serves `manifest` with a hosts file of `hosts` (`IP NAME` lines).
fn serve_with_hosts(env: &Env, manifest: &str, hosts: &str) -> Server {
    let file = env.path("hosts");
    std::fs::write(&file, hosts).unwrap();
    serve(env, manifest, &["--hosts-file", file.to_str().unwrap()])
}

#[track_caller]
fn assert_denied(server: &Server, url: &str, hint: &str) {
    let (status, body) = server.get(&format!("/fetch?url={url}")).unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("HttpRequestDenied"),
        "the guest did not see the denial: {body}"
    );
    assert!(
        server.wait_stderr(hint),
        "stderr lacks {hint:?}:\n{}",
        server.stderr()
    );
    // The server keeps serving.
    assert_eq!(server.get("/").unwrap().0, 200);
}

#[test]
fn allowed_destination_succeeds_and_others_are_denied() {
    let env = Env::new();
    let (up, hits) = upstream(200, "upstream says hi");
    let (other, other_hits) = upstream(200, "should never be reached");
    let server = serve(&env, &fetch_manifest(&format!("\"http://{up}\""), ""), &[]);
    let (status, body) = server.get(&format!("/fetch?url=http://{up}/x")).unwrap();
    assert_eq!(
        (status, body.contains("answered 200: upstream says hi")),
        (200, true),
        "{body}"
    );
    assert_eq!(*hits.lock().unwrap(), 1);
    // Same host, another port: not on the list.
    assert_denied(
        &server,
        &format!("http://{other}/"),
        &format!("outbound_http = [\"http://{other}\"]"),
    );
    // https to the allowed http entry: scheme mismatch.
    assert_denied(
        &server,
        &format!("https://{up}/"),
        "outbound request denied: GET https://",
    );
    // A name that is not listed.
    assert_denied(
        &server,
        "http://example.com/",
        "outbound_http = [\"http://example.com\"]",
    );
    // Cloud metadata.
    assert_denied(
        &server,
        "http://169.254.169.254/latest/meta-data/",
        "169.254.169.254",
    );
    assert_eq!(
        *other_hits.lock().unwrap(),
        0,
        "a denied request reached the upstream"
    );
    assert!(
        server.stderr().contains("GET /fetch"),
        "no access log:\n{}",
        server.stderr()
    );
}

#[test]
fn allowed_name_resolving_to_loopback_is_refused_unless_listed() {
    let env = Env::new();
    let (up, hits) = upstream(200, "loopback service");
    let port = up.rsplit(':').next().unwrap();
    let manifest = fetch_manifest(&format!("\"http://allowed.test:{port}\""), "");
    let server = serve_with_hosts(&env, &manifest, "127.0.0.1 allowed.test\n");
    assert_denied(
        &server,
        &format!("http://allowed.test:{port}/"),
        "resolves to 127.0.0.1, a loopback",
    );
    // The IP literal of the allowed name is not granted by the name either.
    assert_denied(
        &server,
        &format!("http://127.0.0.1:{port}/"),
        "host name entries never allow IP literals",
    );
    assert_eq!(*hits.lock().unwrap(), 0);
    drop(server);

    // Listing the address explicitly allows the name that resolves there.
    let env = Env::new();
    let manifest = fetch_manifest(
        &format!("\"http://allowed.test:{port}\", \"http://127.0.0.1:{port}\""),
        "",
    );
    let server = serve_with_hosts(&env, &manifest, "127.0.0.1 allowed.test\n");
    let (status, body) = server
        .get(&format!("/fetch?url=http://allowed.test:{port}/"))
        .unwrap();
    assert_eq!(status, 200, "{body}\n{}", server.stderr());
    assert_eq!(*hits.lock().unwrap(), 1);
}

#[test]
fn a_listed_name_resolving_to_the_metadata_address_is_refused() {
    // The name is on the allow-list; it resolves to the cloud metadata address, which
    // is not. Without the private-address rule this request would go out (control:
    // the same name resolving to an ordinary listed address is allowed below).
    let env = Env::new();
    let manifest = fetch_manifest("\"http://meta.test\"", "");
    let server = serve_with_hosts(&env, &manifest, "169.254.169.254 meta.test\n");
    assert_denied(
        &server,
        "http://meta.test/latest/meta-data/",
        "resolves to 169.254.169.254",
    );
    drop(server);
    // Control: the same listed name, resolving to an address that is listed too, goes
    // out (to a loopback upstream, listed explicitly).
    let env = Env::new();
    let (up, hits) = upstream(200, "metadata stand-in");
    let port = up.rsplit(':').next().unwrap();
    let manifest = fetch_manifest(
        &format!("\"http://meta.test:{port}\", \"http://127.0.0.1:{port}\""),
        "",
    );
    let server = serve_with_hosts(&env, &manifest, "127.0.0.1 meta.test\n");
    let (status, body) = server
        .get(&format!(
            "/fetch?url=http://meta.test:{port}/latest/meta-data/"
        ))
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(*hits.lock().unwrap(), 1);
}

#[test]
fn redirects_are_not_followed_by_the_host() {
    let env = Env::new();
    let (target, target_hits) = upstream(200, "forbidden target");
    let redirect: &'static str = Box::leak(format!("redirect:http://{target}/").into_boxed_str());
    let (up, _) = upstream(302, redirect);
    let server = serve(&env, &fetch_manifest(&format!("\"http://{up}\""), ""), &[]);
    let (status, body) = server.get(&format!("/fetch?url=http://{up}/")).unwrap();
    // The guest sees the 302 itself; nothing reached the redirect target.
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("answered 302"), "{body}");
    assert_eq!(*target_hits.lock().unwrap(), 0);
    // If the guest follows it, that hop is a new request and is checked.
    assert_denied(
        &server,
        &format!("http://{target}/"),
        &format!("http://{target}"),
    );
}

#[test]
fn deny_outbound_flag_narrows() {
    let env = Env::new();
    let (up, hits) = upstream(200, "x");
    let server = serve(
        &env,
        &fetch_manifest(&format!("\"http://{up}\""), ""),
        &["--deny-outbound"],
    );
    assert_denied(&server, &format!("http://{up}/"), "not in outbound_http");
    assert_eq!(*hits.lock().unwrap(), 0);
}

#[test]
fn hostile_http_guest_raw_sockets_and_dns_are_denied() {
    // The hostile command guest tries raw TCP and DNS; the same WASI context builder
    // serves HTTP instances, so both triggers share the denial.
    let env = Env::new();
    let wasm = guest("hostile", "wasm32-wasip2");
    let dir = env.project("h", &wasm, &wpkg_tests::command_manifest("h", ""));
    env.build(&dir, "h:1");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    env.wpkg(&["run", "h:1", "--", "tcp", &addr])
        .ok()
        .stdout_has("denied:");
    env.wpkg(&["run", "h:1", "--", "dns", "localhost"])
        .ok()
        .stdout_has("denied:");
    assert!(listener.accept().is_err());
}

#[test]
fn busy_port_timeout_and_graceful_shutdown() {
    let env = Env::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let wasm = guest("example-http-hello", "wasm32-wasip2");
    let dir = env.project(
        "hello",
        &wasm,
        "manifest_version = 1\n[package]\nname = \"hh\"\nversion = \"1\"\nwasm = \"{wasm}\"\n[trigger]\ntype = \"http\"\n",
    );
    env.build(&dir, "hh:1");
    env.wpkg(&["run", "hh:1", "--listen", &addr])
        .code(125)
        .stderr_has("the address is in use");
    let mut server = Server::start(env.cmd(&["run", "hh:1", "--listen", "127.0.0.1:0"])).unwrap();
    let (status, body) = server.get("/some/path?q=1").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("You asked for /some/path?q=1"), "{body}");
    assert_eq!(server.stop(), Some(0));
    assert!(server.stderr().contains("shutting down"));
    // An HTTP handler takes no guest arguments.
    env.wpkg(&["run", "hh:1", "--", "arg"])
        .code(125)
        .stderr_has("takes no arguments");
}

fn hostile_server(env: &Env, extra: &[&str]) -> Server {
    hostile_server_with_timeout(env, "1s", extra)
}

fn hostile_server_with_timeout(env: &Env, timeout: &str, extra: &[&str]) -> Server {
    let wasm = guest("http-hostile", "wasm32-wasip2");
    // Grants one variable and one bundled file, for the control cases.
    let dir = env.project(
        "hh",
        &wasm,
        "manifest_version = 1\n[package]\nname = \"hh\"\nversion = \"1\"\nwasm = \"{wasm}\"\n[trigger]\ntype = \"http\"\n[capabilities]\nenv = { GRANTED = \"yes\" }\nfiles = [{ source = \"static\", guest = \"/static\" }]\n[limits]\nmemory = \"32MiB\"\ntimeout = \"TIMEOUT\"\n"
            .replace("TIMEOUT", timeout)
            .as_str(),
    );
    std::fs::create_dir_all(dir.join("static")).unwrap();
    std::fs::write(dir.join("static/granted.txt"), "bundled").unwrap();
    env.build(&dir, "hh:1");
    let mut args = vec!["run", "hh:1", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Server::start(env.cmd(&args)).unwrap()
}

#[track_caller]
fn guest_denied(server: &Server, path: &str) {
    let (status, body) = server.get(path).unwrap();
    assert!(!body.contains("LEAK"), "the sandbox leaked: {body}");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("denied:"), "{body}");
}

#[test]
fn http_guest_cannot_use_sockets_dns_env_or_files() {
    let env = Env::new();
    let server = hostile_server(&env, &[]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    guest_denied(&server, &format!("/tcp?{addr}"));
    assert!(
        listener.accept().is_err(),
        "the guest reached the host's listener"
    );
    guest_denied(&server, "/dns?localhost");
    guest_denied(&server, &format!("/env?{}", wpkg_tests::HOST_SECRET.0));
    guest_denied(&server, "/read?/etc/passwd");
    // Controls: what is granted is seen, so the probes above would see a leak.
    // (The socket and DNS probes share their code with the command guest, whose
    // native control run is in hostile.rs.)
    for granted in ["/env?GRANTED", "/read?/static/granted.txt"] {
        let (status, body) = server.get(granted).unwrap();
        assert_eq!(
            (status, body.starts_with("LEAK:")),
            (500, true),
            "{granted}: {body}"
        );
    }
}

#[test]
fn trap_timeout_and_memory_answer_errors_and_the_server_keeps_serving() {
    let env = Env::new();
    let server = hostile_server(&env, &[]);
    let (status, _) = server.get("/trap").unwrap();
    assert_eq!(status, 500);
    let start = std::time::Instant::now();
    assert_eq!(server.get("/loop").unwrap().0, 504);
    assert_eq!(server.get("/sleep").unwrap().0, 504);
    assert!(start.elapsed() < std::time::Duration::from_secs(15));
    let (status, body) = server.get("/membomb").unwrap();
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("memory limit"), "{body}");
    // Still serving.
    guest_denied(&server, "/dns?example.com");
    assert!(
        server.stderr().contains("GET /loop 504"),
        "{}",
        server.stderr()
    );
}

#[test]
fn no_state_survives_from_one_request_to_the_next() {
    let env = Env::new();
    let server = hostile_server(&env, &[]);
    // Control: within one request the counter counts.
    assert_eq!(server.get("/count?3").unwrap().1.trim(), "count: 3");
    // Each request gets a fresh instance, sequential or concurrent.
    for _ in 0..5 {
        assert_eq!(server.get("/count").unwrap().1.trim(), "count: 1");
    }
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let addr = server.addr.clone();
            std::thread::spawn(move || wpkg_tests::serve::http_get(&addr, "/count").unwrap().1)
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().trim(), "count: 1");
    }
}

#[test]
fn concurrency_cap_answers_503() {
    let env = Env::new();
    // Two worker processes share the cap: with a count of their own, requests that
    // land on different workers would each be admitted.
    let server = hostile_server(&env, &["--max-concurrent", "1", "--workers", "2"]);
    // Four requests that each take the whole 1s limit, sent together: one is admitted
    // (and stopped at the limit, 504), the others are over the cap (503).
    let spawn = |addr: String| {
        std::thread::spawn(move || wpkg_tests::serve::http_get(&addr, "/sleep").unwrap().0)
    };
    let all: Vec<_> = (0..4).map(|_| spawn(server.addr.clone())).collect();
    let mut codes: Vec<u16> = all.into_iter().map(|h| h.join().unwrap()).collect();
    codes.sort();
    assert_eq!(codes, [503, 503, 503, 504], "{}", server.stderr());
    // The slot is free again.
    assert_eq!(server.get("/dns?x").unwrap().0, 200);
}

#[test]
fn workers_serve_and_one_that_dies_is_replaced() {
    let env = Env::new();
    let mut server = hostile_server(&env, &["--workers", "3"]);
    eventually(|| server.stderr().contains("serving from 3 worker processes"));
    eventually(|| server.children().len() == 3);
    let workers = server.children();
    // Long enough up that its end is not taken for a worker that cannot start.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let victim = workers[1];
    std::process::Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status()
        .unwrap();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let replaced = loop {
        let now = server.children();
        if now.len() == 3 && !now.contains(&victim) {
            break now;
        }
        assert!(
            std::time::Instant::now() < end,
            "not replaced: {now:?}\n{}",
            server.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    eventually(|| {
        server
            .stderr()
            .contains("ended (signal 9); started a new one")
    });
    // Every worker answers, and each request still gets a fresh instance.
    for _ in 0..12 {
        assert_eq!(server.get("/count").unwrap().1.trim(), "count: 1");
    }
    // Stopping the server stops its workers.
    assert_eq!(server.stop(), Some(0));
    std::thread::sleep(std::time::Duration::from_millis(200));
    for pid in replaced {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "worker {pid} outlived the server"
        );
    }
}

/// Waits up to 5 s for `cond` (a server's stderr is read by another thread).
#[track_caller]
fn eventually(cond: impl Fn() -> bool) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !cond() {
        assert!(std::time::Instant::now() < end, "not seen within 5 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_server_with_key_value_stores_stays_in_one_process() {
    let env = Env::new();
    let wasm = guest("example-http-hello", "wasm32-wasip2");
    let dir = env.project(
        "kvh",
        &wasm,
        "manifest_version = 1\n[package]\nname = \"kvh\"\nversion = \"1\"\nwasm = \"{wasm}\"\n[trigger]\ntype = \"http\"\n[capabilities]\nkey_value = [\"default\"]\n",
    );
    env.build(&dir, "kvh:1");
    // Asked for more: refused, with the way out.
    env.wpkg(&["run", "kvh:1", "--listen", "127.0.0.1:0", "--workers", "2"])
        .code(125)
        .stderr_has(
            "cannot serve from 2 worker processes: its key-value stores are opened by one process",
        )
        .stderr_has("hint: leave out --workers");
    // By default: one process, and it serves.
    let server = Server::start(env.cmd(&["run", "kvh:1", "--listen", "127.0.0.1:0"])).unwrap();
    assert_eq!(server.get("/").unwrap().0, 200);
    assert!(server.children().is_empty(), "{:?}", server.children());
}

#[test]
fn shutdown_lets_in_flight_requests_finish() {
    let env = Env::new();
    let mut server = hostile_server_with_timeout(&env, "4s", &[]);
    let addr = server.addr.clone();
    // /sleep is stopped by the 4s limit: an answer (504) instead of a reset connection
    // proves the server waited for it after SIGTERM.
    let in_flight = std::thread::spawn(move || wpkg_tests::serve::http_get(&addr, "/sleep"));
    std::thread::sleep(std::time::Duration::from_millis(1000));
    assert_eq!(server.stop(), Some(0));
    assert_eq!(in_flight.join().unwrap().unwrap().0, 504);
    assert!(server.stderr().contains("waiting for in-flight requests"));
}

#[test]
fn a_malformed_hosts_file_is_a_clear_error() {
    let env = Env::new();
    let hosts = env.path("hosts");
    std::fs::write(&hosts, "not-an-address allowed.test\n").unwrap();
    let wasm = guest("example-http-hello", "wasm32-wasip2");
    let dir = env.project(
        "hello",
        &wasm,
        "manifest_version = 1\n[package]\nname = \"hh\"\nversion = \"1\"\nwasm = \"{wasm}\"\n[trigger]\ntype = \"http\"\n",
    );
    env.build(&dir, "hh:1");
    env.wpkg(&[
        "run",
        "hh:1",
        "--listen",
        "127.0.0.1:0",
        "--hosts-file",
        hosts.to_str().unwrap(),
    ])
    .code(125)
    .stderr_has("hosts file line 1");
    env.wpkg(&[
        "run",
        "hh:1",
        "--listen",
        "127.0.0.1:0",
        "--hosts-file",
        "/nonexistent/hosts",
    ])
    .code(125)
    .stderr_has("cannot read the hosts file /nonexistent/hosts");
}
