//! `bash scripts/try-kubernetes.sh` (`cargo run --release -p wpkg-tests --bin
//! try-kubernetes`, as root): a wpkg image in Kubernetes pods the way the kubelet
//! drives a node, end to end, narrated, then timed.
//!
//! 1. A loopback registry and a node: Debian's containerd with its CRI plugin, the
//!    runtime handler `wpkg`, a pause image built here (tests/harness/cri.rs).
//! 2. examples/http-fetch, built with `wpkg build --format image` allowing nothing
//!    outbound, pushed, pulled over CRI, run in a pod: it answers, its outbound call is
//!    denied. One line added to wpkg.toml, a new image, a new pod: the same call works.
//! 3. A pod that sets a variable the image does not declare: refused at
//!    `StartContainer` with the reason in the CRI error (what the kubelet shows).
//! 4. Pod start to first answered request (RunPodSandbox, CreateContainer,
//!    StartContainer, then GET until it answers), N rounds (default 7, `N=`): the wpkg
//!    image under the `wpkg` handler, and a static C hello server under `runc`.

use std::time::{Duration, Instant};

use wpkg_tests::cri::{kv, Node};
use wpkg_tests::registry::{free_port, Registry, Setup};
use wpkg_tests::serve::{http_get, upstream};
use wpkg_tests::{guest, shim_dir, Env};

fn main() {
    let rounds: usize = std::env::var("N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(7)
        .max(2);
    println!("== 1. a loopback registry and a node (containerd + CRI, handler `wpkg`)");
    let env = Env::new();
    let reg = Registry::start(Setup::Plain);
    let node = Node::start(&shim_dir(), &reg.host);
    println!(
        "   registry http://{}, containerd in {}",
        reg.host,
        node.ctd.dir().display()
    );

    println!("\n== 2. examples/http-fetch in a pod");
    let (up, _) = upstream(200, "hello from the upstream");
    let wasm = guest("example-http-fetch", "wasm32-wasip2");
    let manifest = |outbound: &str| {
        format!(
            "manifest_version = 1\n[package]\nname = \"http-fetch\"\nversion = \"0.1.0\"\nwasm = \"{{wasm}}\"\n[trigger]\ntype = \"http\"\n[capabilities]\n{outbound}\n[limits]\ntimeout = \"10s\"\n"
        )
    };
    let denied_ref = format!("{}/demo/http-fetch:1", reg.host);
    let allowed_line = format!("outbound_http = [\"http://{up}\"]");
    let allowed_ref = format!("{}/demo/http-fetch:2", reg.host);
    for (n, step, outbound, reference) in [
        (
            1,
            "allows nothing outbound",
            "outbound_http = []",
            &denied_ref,
        ),
        (2, "one line added", allowed_line.as_str(), &allowed_ref),
    ] {
        println!("   wpkg.toml ({step}): {outbound}");
        let dir = env.project(&format!("fetch-{n}"), &wasm, &manifest(outbound));
        env.publish_image(&dir, reference);
        let image = node.pull(reference).expect("PullImage");
        let (pod, port) = start_pod(&node, "http-fetch", &image);
        let addr = format!("127.0.0.1:{port}");
        wait_ready(&addr);
        let (status, body) = http_get(&addr, &format!("/fetch?url=http://{up}/")).unwrap();
        println!(
            "   GET /fetch?url=http://{up}/ -> {status} {}",
            body.lines().next().unwrap_or("")
        );
        let log = node.log(&pod, "app", 0);
        if let Some(l) = log.iter().find(|l| l.text.contains("serving on")) {
            println!("   pod log: {} {} {} {}", l.time, l.stream, l.tag, l.text);
        }
        node.remove_pod(&pod.id).expect("RemovePodSandbox");
    }

    println!("\n== 3. a pod that sets a variable the image does not declare");
    let image = node.pull(&allowed_ref).expect("PullImage");
    let pod = node
        .run_pod(node.pod_config("refused"))
        .expect("RunPodSandbox");
    let mut c = node.container_config(&pod, "app", &image, 0);
    c.envs
        .push(kv("WPKG_LISTEN", &format!("127.0.0.1:{}", free_port())));
    c.envs.push(kv("API_KEY", "x"));
    let id = node.create(&pod, c).expect("CreateContainer");
    match node.start_container(&id) {
        Ok(()) => panic!("a container with an undeclared variable started"),
        Err(e) => println!("   StartContainer: {}", e.message()),
    }
    node.remove_pod(&pod.id).expect("RemovePodSandbox");

    println!("\n== 4. pod start to first answered request, {rounds} rounds");
    node.import_native("hello-server", "wpkg.test/hello-server:1");
    let wpkg_times = time_pods(&node, rounds, "wpkg", &image);
    let runc_times = time_pods(&node, rounds, "runc", "wpkg.test/hello-server:1");
    report("wpkg image, handler wpkg", &wpkg_times);
    report("static C server, handler runc", &runc_times);
    let ratio = median(&wpkg_times[1..]).as_secs_f64() / median(&runc_times[1..]).as_secs_f64();
    println!("   ratio wpkg / runc (second pod on): {ratio:.2}x");
    println!("\ntry-kubernetes: OK");
}

fn start_pod(node: &Node, name: &str, image: &str) -> (wpkg_tests::cri::Pod, u16) {
    let pod = node.run_pod(node.pod_config(name)).expect("RunPodSandbox");
    let port = free_port();
    let mut c = node.container_config(&pod, "app", image, 0);
    c.envs.push(kv("WPKG_LISTEN", &format!("127.0.0.1:{port}")));
    node.create_and_start(&pod, c)
        .expect("CreateContainer/StartContainer");
    (pod, port)
}

fn wait_ready(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(http_get(addr, "/"), Ok((200, _))) {
        assert!(Instant::now() < deadline, "nothing answered on {addr}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Times `rounds` pods of `image` under `handler`: RunPodSandbox to the first 200.
fn time_pods(node: &Node, rounds: usize, handler: &str, image: &str) -> Vec<Duration> {
    let mut times = Vec::new();
    for i in 0..rounds {
        let port = free_port();
        let t = Instant::now();
        let pod = node
            .run_pod_with(node.pod_config(&format!("{handler}-{i}")), handler)
            .expect("RunPodSandbox");
        let mut c = node.container_config(&pod, "app", image, 0);
        if handler == "runc" {
            c.args = vec![port.to_string()];
        } else {
            c.envs.push(kv("WPKG_LISTEN", &format!("127.0.0.1:{port}")));
        }
        node.create_and_start(&pod, c)
            .expect("CreateContainer/StartContainer");
        wait_ready(&format!("127.0.0.1:{port}"));
        times.push(t.elapsed());
        node.remove_pod(&pod.id).expect("RemovePodSandbox");
    }
    times
}

fn median(times: &[Duration]) -> Duration {
    let mut t = times.to_vec();
    t.sort();
    t[t.len() / 2]
}

fn report(label: &str, times: &[Duration]) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "   {label:<32} first pod {:7.1} ms   next pods median {:7.1} ms (min {:.1}, max {:.1})",
        ms(times[0]),
        ms(median(&times[1..])),
        ms(*times[1..].iter().min().unwrap()),
        ms(*times[1..].iter().max().unwrap()),
    );
}
