//! The probes both hostile guests run: each tries one forbidden thing and says whether
//! it worked (`Ok(what)`) or was refused (`Err(why)`). Shared source, so the control
//! test that runs the command guest natively (where every probe succeeds) also proves
//! the HTTP guest's probes would see a leak.

use std::io::{Read, Write};

/// Reads a file.
pub fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| format!("read {path}: {} bytes", s.len()))
        .map_err(|e| format!("read {path}: {e}"))
}

/// Creates or truncates a file and writes to it.
pub fn write(path: &str) -> Result<String, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(b"pwned"))
        .map(|()| format!("wrote {path}"))
        .map_err(|e| format!("write {path}: {e}"))
}

/// Lists `/`; anything but the `allowed` (comma-separated) names is a leak.
pub fn list_root(allowed: &str) -> Result<String, String> {
    let entries = std::fs::read_dir("/").map_err(|e| format!("read_dir /: {e}"))?;
    let names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let allowed: Vec<&str> = allowed.split(',').filter(|s| !s.is_empty()).collect();
    match names.iter().find(|n| !allowed.contains(&n.as_str())) {
        Some(extra) => Ok(format!("listed / and saw {extra}")),
        None => Err(format!("/ shows only {names:?}")),
    }
}

/// Reads an environment variable.
pub fn env(name: &str) -> Result<String, String> {
    std::env::var(name)
        .map(|v| format!("{name}={v}"))
        .map_err(|_| {
            let n = std::env::vars().count();
            format!("{name} is not set ({n} variables visible)")
        })
}

/// Opens a TCP connection and exchanges a byte.
pub fn tcp(addr: &str) -> Result<String, String> {
    std::net::TcpStream::connect(addr)
        .map(|mut s| {
            let _ = s.write_all(b"hello from the sandbox\n");
            let _ = s.read(&mut [0u8; 1]);
            format!("connected to {addr}")
        })
        .map_err(|e| format!("connect {addr}: {e}"))
}

/// Listens on a TCP address.
pub fn tcp_listen(addr: &str) -> Result<String, String> {
    std::net::TcpListener::bind(addr)
        .map(|_| format!("listening on {addr}"))
        .map_err(|e| format!("bind {addr}: {e}"))
}

/// Sends a UDP datagram.
pub fn udp(addr: &str) -> Result<String, String> {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.send_to(b"x", addr))
        .map(|_| format!("sent UDP to {addr}"))
        .map_err(|e| format!("udp {addr}: {e}"))
}

/// Resolves a name.
pub fn dns(name: &str) -> Result<String, String> {
    use std::net::ToSocketAddrs;
    match (name, 80).to_socket_addrs() {
        Ok(addrs) => {
            let v: Vec<_> = addrs.collect();
            if v.is_empty() {
                Err(format!("resolve {name}: no addresses"))
            } else {
                Ok(format!("resolved {name} to {v:?}"))
            }
        }
        Err(e) => Err(format!("resolve {name}: {e}")),
    }
}
