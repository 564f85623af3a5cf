//! A hostile guest: each mode tries one forbidden thing from inside the sandbox.
//!
//! Output contract, read by the tests in `tests/all/hostile.rs`:
//! - the attempt failed: prints `denied: <error>` and exits 0;
//! - the attempt succeeded: prints `LEAK: <what>` and exits 42.
//!
//! Modes `loop` and `membomb` never finish on their own.

use std::io::{Read, Write};

fn leak(what: impl std::fmt::Display) -> ! {
    println!("LEAK: {what}");
    std::process::exit(42)
}

fn denied(e: impl std::fmt::Display) {
    println!("denied: {e}");
}

fn read(path: &str) {
    match std::fs::read_to_string(path) {
        Ok(s) => leak(format!("read {path}: {} bytes", s.len())),
        Err(e) => denied(format!("read {path}: {e}")),
    }
}

fn write(path: &str) {
    match std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(b"pwned"))
    {
        Ok(()) => leak(format!("wrote {path}")),
        Err(e) => denied(format!("write {path}: {e}")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("");
    let arg = args.get(2).cloned().unwrap_or_default();
    match mode {
        // Any path: /etc/passwd, /data/../../etc/passwd, /data/link/passwd ...
        "read" => read(&arg),
        "write" => write(&arg),
        "list-root" => match std::fs::read_dir("/") {
            Ok(entries) => {
                let names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                // Only preopens may be visible; anything else is a leak.
                let allowed: Vec<&str> = arg.split(',').filter(|s| !s.is_empty()).collect();
                if let Some(extra) = names.iter().find(|n| !allowed.contains(&n.as_str())) {
                    leak(format!("listed / and saw {extra}"));
                }
                denied(format!("/ shows only {names:?}"));
            }
            Err(e) => denied(format!("read_dir /: {e}")),
        },
        "env" => match std::env::var(&arg) {
            Ok(v) => leak(format!("{arg}={v}")),
            Err(_) => {
                let n = std::env::vars().count();
                denied(format!("{arg} is not set ({n} variables visible)"));
            }
        },
        "tcp" => match std::net::TcpStream::connect(arg.as_str()) {
            Ok(mut s) => {
                let _ = s.write_all(b"hello from the sandbox\n");
                let mut buf = [0u8; 1];
                let _ = s.read(&mut buf);
                leak(format!("connected to {arg}"))
            }
            Err(e) => denied(format!("connect {arg}: {e}")),
        },
        "tcp-listen" => match std::net::TcpListener::bind(arg.as_str()) {
            Ok(_) => leak(format!("listening on {arg}")),
            Err(e) => denied(format!("bind {arg}: {e}")),
        },
        "udp" => match std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.send_to(b"x", arg.as_str()))
        {
            Ok(_) => leak(format!("sent UDP to {arg}")),
            Err(e) => denied(format!("udp {arg}: {e}")),
        },
        "dns" => {
            use std::net::ToSocketAddrs;
            match (arg.as_str(), 80).to_socket_addrs() {
                Ok(addrs) => {
                    let v: Vec<_> = addrs.collect();
                    if v.is_empty() {
                        denied(format!("resolve {arg}: no addresses"));
                    } else {
                        leak(format!("resolved {arg} to {v:?}"))
                    }
                }
                Err(e) => denied(format!("resolve {arg}: {e}")),
            }
        }
        "loop" => {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "sleep" => std::thread::sleep(std::time::Duration::from_secs(3600)),
        "membomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                let mut chunk = vec![0u8; 1 << 20];
                chunk[0] = 1;
                hoard.push(std::hint::black_box(chunk));
                if hoard.len() > 8192 {
                    leak("allocated 8GiB");
                }
            }
        }
        other => {
            eprintln!("unknown mode `{other}`");
            std::process::exit(2);
        }
    }
}
