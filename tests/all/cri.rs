//! wpkg images in Kubernetes pods, the way the kubelet drives a node: containerd's CRI
//! plugin (Debian's containerd 1.6.20, started privately), a CRI client that fills
//! every request as the kubelet does (`tests/harness/cri.rs`), the runtime handler
//! `wpkg` (a RuntimeClass), a real pause container, images pulled over CRI from a
//! loopback registry. What a pod gets is checked from the guest's side, each denial
//! with a control in which the image's capabilities grant the same thing.

use std::time::{Duration, Instant};

use wpkg_tests::cri::{api, kv, mount, Node, Pod};
use wpkg_tests::registry::{free_port, Registry, Setup};
use wpkg_tests::serve::{http_get, upstream};
use wpkg_tests::{command_manifest, guest, shim_dir, Env};

const LIMIT: Duration = Duration::from_secs(60);

fn http_manifest(name: &str, capabilities: &str) -> String {
    format!(
        "manifest_version = 1\n[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nwasm = \"{{wasm}}\"\n[trigger]\ntype = \"http\"\n[capabilities]\n{capabilities}\n[limits]\ntimeout = \"10s\"\n"
    )
}

/// Polls `GET path` on `addr` until it answers 200, as a readiness probe does
/// (`httpGet`, period 100 ms); returns how long it took.
fn ready(node: &Node, addr: &str, path: &str) -> Duration {
    let start = Instant::now();
    loop {
        if let Ok((200, _)) = http_get(addr, path) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < LIMIT,
            "the pod never became ready on {addr}{path}; containerd log:\n{}",
            node.ctd.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A container config for `image_ref` serving on `port`, with `envs` added.
fn serving(node: &Node, pod: &Pod, name: &str, image_ref: &str, port: u16) -> api::ContainerConfig {
    let mut c = node.container_config(pod, name, image_ref, 0);
    c.envs.push(kv("WPKG_LISTEN", &format!("127.0.0.1:{port}")));
    c
}

#[test]
fn a_pod_serves_http_and_its_outbound_call_is_denied_until_the_image_allows_it() {
    let env = Env::new();
    let reg = Registry::start(Setup::Plain);
    let node = Node::start(&shim_dir(), &reg.host);
    let (up, hits) = upstream(200, "upstream says hi");
    let wasm = guest("example-http-fetch", "wasm32-wasip2");

    // The image allows nothing outbound.
    let dir = env.project(
        "fetch",
        &wasm,
        &http_manifest("fetch", "outbound_http = []"),
    );
    let denied_ref = format!("{}/k8s/fetch:1", reg.host);
    env.publish_image(&dir, &denied_ref);
    let image = node.pull(&denied_ref).expect("PullImage");
    let pod = node
        .run_pod(node.pod_config("fetch-1"))
        .expect("RunPodSandbox");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let id = node
        .create_and_start(&pod, serving(&node, &pod, "fetch", &image, port))
        .expect("CreateContainer/StartContainer");
    ready(&node, &addr, "/");
    let (status, body) = http_get(&addr, &format!("/fetch?url=http://{up}/x")).unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");
    assert_eq!(
        *hits.lock().unwrap(),
        0,
        "the undeclared upstream was reached"
    );
    // Logs: the CRI file, one entry per line with an RFC 3339 time (nanoseconds).
    let lines = node.wait_log(&pod, "fetch", 0, "serving on");
    let serving_line = lines
        .iter()
        .find(|l| l.text.contains("serving on"))
        .unwrap();
    assert_eq!(serving_line.stream, "stderr", "{lines:#?}");
    assert_eq!(serving_line.tag, "F", "{lines:#?}");
    assert!(
        serving_line.time.len() >= 20
            && serving_line.time.as_bytes()[10] == b'T'
            && serving_line.time.ends_with('Z'),
        "not an RFC 3339 time: {serving_line:?}"
    );
    // A graceful stop: SIGTERM, the guest drains and exits 0 well within the grace period.
    let t = Instant::now();
    node.stop_container(&id, 30).expect("StopContainer");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        t.elapsed()
    );
    let s = node.wait_exited(&id, LIMIT);
    assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"), "{s:?}");
    node.remove_pod(&pod.id).expect("RemovePodSandbox");

    // One line in wpkg.toml, a new image, a new pod: the same call succeeds.
    let allowed = http_manifest("fetch", &format!("outbound_http = [\"http://{up}\"]"));
    let dir = env.project("fetch2", &wasm, &allowed);
    let allowed_ref = format!("{}/k8s/fetch:2", reg.host);
    env.publish_image(&dir, &allowed_ref);
    let image = node.pull(&allowed_ref).expect("PullImage");
    let pod = node
        .run_pod(node.pod_config("fetch-2"))
        .expect("RunPodSandbox");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    node.create_and_start(&pod, serving(&node, &pod, "fetch", &image, port))
        .expect("CreateContainer/StartContainer");
    ready(&node, &addr, "/");
    let (status, body) = http_get(&addr, &format!("/fetch?url=http://{up}/x")).unwrap();
    assert_eq!(
        (status, body.contains("upstream says hi")),
        (200, true),
        "{body}"
    );
    assert_eq!(*hits.lock().unwrap(), 1);
    node.remove_pod(&pod.id).expect("RemovePodSandbox");
}

/// The hostile HTTP guest's image: a required variable, a fixed one, a bundled
/// directory and a read-only volume, pushed to `reg`; returns the image reference.
fn hostile_http_image(env: &Env, reg: &Registry, timeout: &str) -> String {
    let wasm = guest("http-hostile", "wasm32-wasip2");
    let manifest = format!(
        "manifest_version = 1\n[package]\nname = \"hostile\"\nversion = \"0.1.0\"\nwasm = \"{{wasm}}\"\n[trigger]\ntype = \"http\"\n[capabilities]\nenv = {{ FIXED = \"from-image\" }}\nenv_required = [\"NEEDED\"]\nfiles = [{{ source = \"static\", guest = \"/static\" }}]\nmounts = [{{ guest = \"/data\" }}]\n[limits]\ntimeout = \"{timeout}\"\n"
    );
    let dir = env.project("hostile-http", &wasm, &manifest);
    std::fs::create_dir_all(dir.join("static")).unwrap();
    std::fs::write(dir.join("static/message.txt"), "bundled").unwrap();
    let reference = format!(
        "{}/k8s/hostile-http:{}",
        reg.host,
        timeout.replace(['s', '.'], "")
    );
    env.publish_image(&dir, &reference);
    reference
}

#[test]
fn a_pod_finds_exactly_what_wpkg_run_finds() {
    let env = Env::new();
    let reg = Registry::start(Setup::Plain);
    let node = Node::start(&shim_dir(), &reg.host);
    let reference = hostile_http_image(&env, &reg, "10s");
    let image = node.pull(&reference).expect("PullImage");
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("ok.txt"), "fine").unwrap();
    let pod = node
        .run_pod(node.pod_config("hostile"))
        .expect("RunPodSandbox");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut c = serving(&node, &pod, "hostile", &image, port);
    c.envs.push(kv("NEEDED", "given"));
    c.mounts.push(mount(&data, "/data", true));
    let id = node
        .create_and_start(&pod, c)
        .expect("CreateContainer/StartContainer");
    ready(&node, &addr, "/count");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open_port = listener.local_addr().unwrap().to_string();
    let probe = |path: &str| http_get(&addr, path).unwrap();
    // Controls: what the capabilities grant, the guest gets in the pod.
    for (path, needle) in [
        ("/read?/data/ok.txt", "LEAK: read /data/ok.txt"),
        (
            "/read?/static/message.txt",
            "LEAK: read /static/message.txt",
        ),
        ("/env?NEEDED", "NEEDED=given"),
        ("/env?FIXED", "FIXED=from-image"),
    ] {
        let (status, body) = probe(path);
        assert_eq!(status, 500, "{path}: {body}");
        assert!(body.contains(needle), "{path}: {body}");
    }
    // Denials: the image's own files, what the kubelet mounts and sets, the node's
    // network (the pod has hostNetwork), name lookup.
    let denied = [
        "/read?/.wpkg/capabilities.json".to_owned(),
        "/read?/app.wasm".into(),
        "/read?/etc/hosts".into(),
        "/read?/var/run/secrets/kubernetes.io/serviceaccount/token".into(),
        "/read?/dev/termination-log".into(),
        "/read?/proc/self/environ".into(),
        "/read?/data/../.wpkg/capabilities.json".into(),
        "/env?PATH".into(),
        "/env?HOSTNAME".into(),
        "/env?KUBERNETES_SERVICE_HOST".into(),
        "/env?WPKG_LISTEN".into(),
        format!("/tcp?{open_port}"),
        "/dns?localhost".into(),
    ];
    let mut in_pod = Vec::new();
    for path in &denied {
        let (status, body) = probe(path);
        assert_eq!(status, 200, "{path} leaked in the pod: {body}");
        assert!(body.starts_with("denied:"), "{path}: {body}");
        in_pod.push(body);
    }
    // The same probes under `wpkg run` of the same image find the same: nothing.
    let data_arg = format!("{}:/data", data.display());
    let mut cmd = env.cmd(&[
        "run",
        &reference,
        "--listen",
        "127.0.0.1:0",
        "--env",
        "NEEDED=given",
        "--mount",
        &data_arg,
    ]);
    cmd.env("WPKG_LISTEN", "leak");
    let mut server = wpkg_tests::serve::Server::start(cmd).expect("wpkg run");
    for (path, pod_body) in denied.iter().zip(&in_pod) {
        let (status, body) = server.get(path).unwrap();
        assert_eq!(status, 200, "{path} leaked under wpkg run: {body}");
        // Error texts may name the path differently; the verdict is the same.
        assert!(
            body.starts_with("denied:") && pod_body.starts_with("denied:"),
            "{path}"
        );
    }
    server.stop();
    // No exec into a wpkg container (exec probes, `kubectl exec`).
    let err = node.exec_sync(&id, &["/bin/sh", "-c", "id"]).unwrap_err();
    assert!(!err.message().is_empty(), "{err:?}");
    node.remove_pod(&pod.id).expect("RemovePodSandbox");
}

/// The hostile command guest's image (exit 42 on a leak): a required variable, a
/// fixed one, `/data` read-only and `/out` read-write, 32 MiB, 2 s.
fn hostile_command_image(env: &Env, reg: &Registry) -> String {
    let wasm = guest("hostile", "wasm32-wasip1");
    let manifest = command_manifest(
        "hostile",
        r#"[capabilities]
env = { FIXED = "from-image" }
env_required = ["NEEDED"]
mounts = [{ guest = "/data" }, { guest = "/out", access = "read-write" }]
[limits]
memory = "32MiB"
timeout = "2s"
"#,
    );
    let dir = env.project("hostile-cmd", &wasm, &manifest);
    let reference = format!("{}/k8s/hostile-cmd:1", reg.host);
    env.publish_image(&dir, &reference);
    reference
}

#[test]
fn a_crashing_guest_gives_the_kubelet_its_exit_and_a_restart_runs() {
    let env = Env::new();
    let reg = Registry::start(Setup::Plain);
    let node = Node::start(&shim_dir(), &reg.host);
    let image = node
        .pull(&hostile_command_image(&env, &reg))
        .expect("PullImage");
    let (data, out) = (env.path("data"), env.path("out"));
    for d in [&data, &out] {
        std::fs::create_dir_all(d).unwrap();
    }
    let pod = node.run_pod(node.pod_config("job")).expect("RunPodSandbox");
    let container = |attempt: u32, args: &[&str], memory: i64| {
        let mut c = node.container_config(&pod, "job", &image, attempt);
        c.args = args.iter().map(|a| a.to_string()).collect();
        c.envs.push(kv("NEEDED", "given"));
        c.mounts.push(mount(&data, "/data", true));
        c.mounts.push(mount(&out, "/out", false));
        c.linux
            .as_mut()
            .unwrap()
            .resources
            .as_mut()
            .unwrap()
            .memory_limit_in_bytes = memory;
        c
    };
    // A trap: exit 134, reason Error, the guest's message in the log.
    let id = node
        .create_and_start(&pod, container(0, &["trap"], 0))
        .expect("start");
    let s = node.wait_exited(&id, LIMIT);
    assert_eq!(
        (s.exit_code, s.reason.as_str()),
        (134, "Error"),
        "{s:?}\n{:#?}",
        node.log(&pod, "job", 0)
    );
    node.wait_log(&pod, "job", 0, "wpkg: error: the guest trapped");
    // The kubelet restarts it: a new attempt in the same pod runs.
    node.remove_container(&id).expect("RemoveContainer");
    let id = node
        .create_and_start(&pod, container(1, &["write", "/out/new.txt"], 0))
        .expect("restart");
    let s = node.wait_exited(&id, LIMIT);
    assert_eq!((s.exit_code, s.reason.as_str()), (42, "Error"), "{s:?}");
    assert!(
        out.join("new.txt").exists(),
        "the write did not reach the volume"
    );
    // A read-only volume stays read-only.
    let id = node
        .create_and_start(&pod, container(2, &["write", "/data/new.txt"], 0))
        .expect("start");
    assert_eq!(node.wait_exited(&id, LIMIT).exit_code, 0);
    assert!(!data.join("new.txt").exists());
    // The pod's memory limit (40 MiB) narrows the declared 32 MiB to 20 MiB (less the
    // runtime's 24 MiB, at least half); wpkg's limit is hit before the kernel's.
    let id = node
        .create_and_start(&pod, container(3, &["membomb"], 40 << 20))
        .expect("start");
    let s = node.wait_exited(&id, LIMIT);
    assert_eq!(s.exit_code, 137, "{s:?}");
    node.wait_log(&pod, "job", 3, "memory limit of 20MiB");
    // The time limit.
    let id = node
        .create_and_start(&pod, container(4, &["loop"], 0))
        .expect("start");
    assert_eq!(node.wait_exited(&id, LIMIT).exit_code, 124);
    // The guest's own output in the log with stdout's stream (the probe reports a
    // granted variable as a leak: 42, Error).
    let id = node
        .create_and_start(&pod, container(5, &["env", "FIXED"], 0))
        .expect("start");
    let s = node.wait_exited(&id, LIMIT);
    assert_eq!((s.exit_code, s.reason.as_str()), (42, "Error"), "{s:?}");
    let lines = node.wait_log(&pod, "job", 5, "FIXED=from-image");
    let line = lines
        .iter()
        .find(|l| l.text.contains("FIXED=from-image"))
        .unwrap();
    assert_eq!((line.stream.as_str(), line.tag.as_str()), ("stdout", "F"));
    node.remove_pod(&pod.id).expect("RemovePodSandbox");
}

#[test]
fn stop_container_kills_a_guest_that_outlives_its_grace_period() {
    let env = Env::new();
    let reg = Registry::start(Setup::Plain);
    let node = Node::start(&shim_dir(), &reg.host);
    let image = node
        .pull(&hostile_http_image(&env, &reg, "60s"))
        .expect("PullImage");
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    let pod = node
        .run_pod(node.pod_config("slow"))
        .expect("RunPodSandbox");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut c = serving(&node, &pod, "slow", &image, port);
    c.envs.push(kv("NEEDED", "given"));
    let id = node.create_and_start(&pod, c).expect("start");
    ready(&node, &addr, "/count");
    // A request in flight that will not finish: the guest drains on SIGTERM and is
    // killed when the grace period (2 s) is over.
    let a = addr.clone();
    std::thread::spawn(move || http_get(&a, "/sleep"));
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    node.stop_container(&id, 2).expect("StopContainer");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(15),
        "StopContainer with a 2 s grace period took {took:?}"
    );
    let s = node.wait_exited(&id, LIMIT);
    assert_eq!(s.exit_code, 137, "{s:?}");
    // Control: without a request in flight the same stop is immediate and clean.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut c = serving(&node, &pod, "slow", &image, port);
    c.metadata.as_mut().unwrap().attempt = 1;
    c.log_path = "slow/1.log".into();
    c.envs.push(kv("NEEDED", "given"));
    let id = node.create_and_start(&pod, c).expect("start");
    ready(&node, &addr, "/count");
    let t = Instant::now();
    node.stop_container(&id, 2).expect("StopContainer");
    assert!(
        t.elapsed() < Duration::from_millis(1900),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(node.wait_exited(&id, LIMIT).exit_code, 0);
    node.remove_pod(&pod.id).expect("RemovePodSandbox");
}

#[test]
fn what_a_pod_asks_beyond_the_image_is_refused_when_the_container_is_started() {
    let env = Env::new();
    let reg = Registry::start(Setup::Plain);
    let node = Node::start(&shim_dir(), &reg.host);
    let image = node
        .pull(&hostile_http_image(&env, &reg, "10s"))
        .expect("PullImage");
    let secret = env.path("secret");
    std::fs::create_dir_all(&secret).unwrap();
    type Tweak = Box<dyn Fn(&mut api::PodSandboxConfig, &mut api::ContainerConfig)>;
    let cases: Vec<(&str, Tweak, &str)> = vec![
        (
            "undeclared-env",
            Box::new(|_, c| c.envs.push(kv("API_KEY", "x"))),
            "the pod sets API_KEY, which the image does not declare",
        ),
        (
            "fixed-env",
            Box::new(|_, c| c.envs.push(kv("FIXED", "from-pod"))),
            "the pod sets FIXED, which the image fixes",
        ),
        (
            "undeclared-volume",
            Box::new({
                let secret = secret.clone();
                move |_, c| c.mounts.push(mount(&secret, "/secret", true))
            }),
            "a volume is mounted at /secret, which the image does not declare",
        ),
        (
            "other-program",
            Box::new(|_, c| c.command = vec!["/static/message.txt".into()]),
            "the capabilities are for `/app.wasm`",
        ),
        (
            "privileged",
            Box::new(|p, c| {
                let psc = p.linux.as_mut().unwrap().security_context.as_mut().unwrap();
                psc.privileged = true;
                let sc = c.linux.as_mut().unwrap().security_context.as_mut().unwrap();
                sc.privileged = true;
            }),
            "the container holds capabilities beyond containerd's default set (CAP_DAC_READ_SEARCH, ",
        ),
        (
            "added-capability",
            Box::new(|_, c| {
                let sc = c.linux.as_mut().unwrap().security_context.as_mut().unwrap();
                sc.capabilities = Some(api::Capability {
                    add_capabilities: vec!["DAC_READ_SEARCH".into()],
                    ..Default::default()
                });
            }),
            "beyond containerd's default set (CAP_DAC_READ_SEARCH)",
        ),
        (
            "host-pid",
            Box::new(|p, c| {
                let psc = p.linux.as_mut().unwrap().security_context.as_mut().unwrap();
                psc.namespace_options.as_mut().unwrap().pid = api::NamespaceMode::Node as i32;
                let sc = c.linux.as_mut().unwrap().security_context.as_mut().unwrap();
                sc.namespace_options.as_mut().unwrap().pid = api::NamespaceMode::Node as i32;
            }),
            "the container has no process namespace of its own (hostPID",
        ),
        ("control", Box::new(|_, _| {}), ""),
    ];
    for (name, tweak, reason) in cases {
        let mut p = node.pod_config(name);
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let pod = node.run_pod(p.clone()).expect("RunPodSandbox");
        let mut c = serving(&node, &pod, "app", &image, port);
        c.envs.push(kv("NEEDED", "given"));
        tweak(&mut p, &mut c);
        let pod = if p.linux != pod.config.linux {
            node.remove_pod(&pod.id).unwrap();
            node.run_pod(p).expect("RunPodSandbox")
        } else {
            pod
        };
        let id = node.create(&pod, c).expect("CreateContainer");
        let started = node.start_container(&id);
        if name == "control" {
            started.expect("control: the same pod without the excess starts");
            ready(&node, &addr, "/count");
        } else {
            let err = started.expect_err(name);
            let text = err.message();
            assert!(
                text.contains("wpkg refused the container: ") && text.contains(reason),
                "{name}: the CRI error does not say why: {text}"
            );
            // Nothing started: the container is not running, nothing serves.
            let s = node.status(&id);
            assert_ne!(
                s.state,
                api::ContainerState::ContainerRunning as i32,
                "{name}: {s:?}"
            );
            assert!(
                http_get(&addr, "/count").is_err(),
                "{name}: something serves"
            );
        }
        node.remove_pod(&pod.id).expect("RemovePodSandbox");
    }
    // An image that declares the kubelet's token directory as a mount: refused, so the
    // token is never given (the unit tests cover /proc, /dev/shm, /run and the rest).
    let wasm = guest("http-hostile", "wasm32-wasip2");
    let dir = env.project(
        "token-grab",
        &wasm,
        &http_manifest(
            "grab",
            "mounts = [{ guest = \"/var/run/secrets/kubernetes.io/serviceaccount\" }]",
        ),
    );
    let reference = format!("{}/k8s/token-grab:1", reg.host);
    env.publish_image(&dir, &reference);
    let grab = node.pull(&reference).expect("PullImage");
    let pod = node
        .run_pod(node.pod_config("grab"))
        .expect("RunPodSandbox");
    let port = free_port();
    let id = node
        .create(&pod, serving(&node, &pod, "app", &grab, port))
        .expect("CreateContainer");
    let err = node
        .start_container(&id)
        .expect_err("an image declaring the token dir started");
    assert!(
        err.message().contains(
            "the image declares a mount at /var/run/secrets/kubernetes.io/serviceaccount"
        ),
        "{}",
        err.message()
    );
    assert!(http_get(&format!("127.0.0.1:{port}"), "/count").is_err());
    node.remove_pod(&pod.id).expect("RemovePodSandbox");
}
