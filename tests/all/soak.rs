//! Soak: mixed HTTP load on two `wpkg run` servers for a while (20 s here,
//! `WPKG_SOAK_SECS` to change it; `bench/soak.sh` runs 10 minutes on a release build):
//! answers, outbound calls that are allowed and denied, guests that trap, run out of
//! memory, exceed their time limit, and count their own state. Every answer must be
//! the expected one, and the servers' open file descriptors and resident memory must
//! stay flat from after a warm-up to the end.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wpkg_tests::serve::{http_get, upstream, Server};
use wpkg_tests::{guest, Env};

/// One kind of request: which server, the path, and what a correct answer is.
struct Probe {
    name: &'static str,
    server: usize,
    path: String,
    status: u16,
    body: &'static str,
}

/// Resident memory (KiB) and open file descriptors of a server: its process and its
/// worker processes, summed (pages the workers share with it count in each).
fn usage(pid: u32) -> (u64, usize) {
    let mut pids = wpkg_tests::serve::children_of(pid);
    pids.push(pid);
    pids.iter().fold((0, 0), |(rss, fds), pid| {
        let (r, f) = usage_of(*pid);
        (rss + r, fds + f)
    })
}

fn usage_of(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss, fds)
}

fn servers(env: &Env, allowed: &str) -> (Server, Server) {
    let fetch = guest("example-http-fetch", "wasm32-wasip2");
    let dir = env.project(
        "fetch",
        &fetch,
        &format!(
            "manifest_version = 1\n[package]\nname = \"fetch\"\nversion = \"1\"\nwasm = \"{{wasm}}\"\n[trigger]\ntype = \"http\"\n[capabilities]\noutbound_http = [\"http://{allowed}\"]\n[limits]\nmemory = \"32MiB\"\ntimeout = \"10s\"\n"
        ),
    );
    env.build(&dir, "fetch:soak");
    let hostile = guest("http-hostile", "wasm32-wasip2");
    let dir = env.project(
        "hh",
        &hostile,
        "manifest_version = 1\n[package]\nname = \"hh\"\nversion = \"1\"\nwasm = \"{wasm}\"\n[trigger]\ntype = \"http\"\n[limits]\nmemory = \"32MiB\"\ntimeout = \"300ms\"\n",
    );
    env.build(&dir, "hh:soak");
    let start =
        |tag: &str| Server::start(env.cmd(&["run", tag, "--listen", "127.0.0.1:0"])).unwrap();
    (start("fetch:soak"), start("hh:soak"))
}

#[test]
fn mixed_load_keeps_every_answer_right_and_memory_and_descriptors_flat() {
    let secs: u64 = std::env::var("WPKG_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let env = Env::new();
    let (allowed, allowed_hits) = upstream(200, "allowed upstream");
    let (denied, denied_hits) = upstream(200, "must never be reached");
    let (fetch, hostile) = servers(&env, &allowed);
    let addrs = [fetch.addr.clone(), hostile.addr.clone()];
    let pids = [fetch.pid(), hostile.pid()];
    let probe = |name, server, path: String, status, body| Probe {
        name,
        server,
        path,
        status,
        body,
    };
    // Weighted by repetition: mostly cheap answers, some of every failure mode.
    let mut probes = Vec::new();
    for _ in 0..4 {
        probes.push(probe("hello", 0, "/".into(), 200, "/fetch?url="));
        probes.push(probe(
            "allowed",
            0,
            format!("/fetch?url=http://{allowed}/x"),
            200,
            "allowed upstream",
        ));
        probes.push(probe(
            "denied",
            0,
            format!("/fetch?url=http://{denied}/x"),
            502,
            "HttpRequestDenied",
        ));
        probes.push(probe("count", 1, "/count".into(), 200, "count: 1"));
        probes.push(probe("trap", 1, "/trap".into(), 500, ""));
    }
    probes.push(probe("membomb", 1, "/membomb".into(), 500, "memory limit"));
    probes.push(probe("timeout", 1, "/sleep".into(), 504, ""));
    let probes = Arc::new(probes);

    let warmup = Duration::from_secs((secs / 5).clamp(2, 30));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let unexpected = Arc::new(Mutex::new(Vec::<String>::new()));
    let per_kind = Arc::new(Mutex::new(std::collections::BTreeMap::<&str, usize>::new()));
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let (probes, stop, done, unexpected, per_kind, addrs) = (
                probes.clone(),
                stop.clone(),
                done.clone(),
                unexpected.clone(),
                per_kind.clone(),
                addrs.clone(),
            );
            std::thread::spawn(move || {
                let mut i = w * 7;
                while !stop.load(Ordering::Relaxed) {
                    let p = &probes[i % probes.len()];
                    i += 1;
                    let ok = match http_get(&addrs[p.server], &p.path) {
                        Ok((status, body)) if status == p.status && body.contains(p.body) => true,
                        Ok((status, body)) => {
                            let mut u = unexpected.lock().unwrap();
                            if u.len() < 20 {
                                u.push(format!("{}: {status} {body:?}", p.name));
                            }
                            false
                        }
                        Err(e) => {
                            let mut u = unexpected.lock().unwrap();
                            if u.len() < 20 {
                                u.push(format!("{}: {e}", p.name));
                            }
                            false
                        }
                    };
                    if ok {
                        *per_kind.lock().unwrap().entry(p.name).or_default() += 1;
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    std::thread::sleep(warmup);
    let start = pids.map(usage);
    while Instant::now() < deadline && unexpected.lock().unwrap().is_empty() {
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    // Let connections closed by the clients be reaped.
    std::thread::sleep(Duration::from_millis(500));
    let end = pids.map(usage);

    let total = done.load(Ordering::Relaxed);
    eprintln!(
        "soak: {secs} s, {total} requests, by kind {:?}",
        per_kind.lock().unwrap()
    );
    for (i, name) in ["fetch server", "hostile server"].iter().enumerate() {
        eprintln!(
            "soak: {name}: RSS {} KiB -> {} KiB, open fds {} -> {}",
            start[i].0, end[i].0, start[i].1, end[i].1
        );
    }
    let unexpected = unexpected.lock().unwrap();
    assert!(
        unexpected.is_empty(),
        "unexpected answers:\n{}\nfetch stderr:\n{}\nhostile stderr:\n{}",
        unexpected.join("\n"),
        fetch.stderr(),
        hostile.stderr()
    );
    // Control: the load really exercised every kind, and the upstreams saw exactly
    // the allowed calls.
    let per_kind = per_kind.lock().unwrap();
    for p in probes.iter() {
        assert!(
            per_kind.get(p.name).copied().unwrap_or(0) > 0,
            "no {}",
            p.name
        );
    }
    assert_eq!(*allowed_hits.lock().unwrap(), per_kind["allowed"]);
    assert_eq!(*denied_hits.lock().unwrap(), 0, "a denied call got through");
    for i in 0..2 {
        let (rss0, fd0) = start[i];
        let (rss1, fd1) = end[i];
        assert!(fd1 <= fd0 + 8, "server {i}: open fds grew {fd0} -> {fd1}");
        assert!(
            rss1 <= rss0 + rss0 / 4 + 16 * 1024,
            "server {i}: RSS grew {rss0} KiB -> {rss1} KiB"
        );
    }
}
