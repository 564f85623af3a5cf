//! wpkg images in Kubernetes pods, the way the kubelet drives a node: containerd's CRI
//! plugin (Debian's containerd 1.6.20, started privately), a CRI client that fills
//! every request as the kubelet does (`tests/harness/cri.rs`), the runtime handler
//! `wpkg` (a RuntimeClass), a real pause container, images pulled over CRI from a
//! loopback registry. What a pod gets is checked from the guest's side, each denial
//! with a control in which the image's capabilities grant the same thing.

use std::path::Path;
use std::time::{Duration, Instant};

use wpkg_tests::cri::{api, kv, mount, Node, Pod};
use wpkg_tests::registry::{free_port, Registry, Setup};
use wpkg_tests::serve::{http_get, upstream};
use wpkg_tests::{command_manifest, guest, shim_dir, Env};

const LIMIT: Duration = Duration::from_secs(60);

/// Builds `dir` as a container image and pushes it to `reference`.
fn publish(env: &Env, dir: &Path, reference: &str) {
    env.wpkg(&[
        "build",
        "-q",
        "--no-build-command",
        "--format",
        "image",
        dir.to_str().unwrap(),
        "-t",
        reference,
    ])
    .ok();
    env.wpkg(&["push", "-q", reference]).ok();
}

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
    publish(&env, &dir, &denied_ref);
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
    // Logs: the CRI file, one entry per line with an RFC 3339 nanosecond time.
    let lines = node.wait_log(&pod, "fetch", 0, "serving on");
    let serving_line = lines
        .iter()
        .find(|l| l.text.contains("serving on"))
        .unwrap();
    assert_eq!(serving_line.stream, "stderr", "{lines:#?}");
    assert_eq!(serving_line.tag, "F", "{lines:#?}");
    assert!(
        serving_line.time.len() >= 30
            && serving_line.time.ends_with('Z')
            && serving_line.time.contains('T'),
        "not an RFC 3339 nanosecond time: {serving_line:?}"
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
    publish(&env, &dir, &allowed_ref);
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
    let _ = (mount, command_manifest);
}
