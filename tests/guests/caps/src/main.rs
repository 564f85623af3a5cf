//! Reads config and key-value stores as its arguments say, and prints what it saw:
//!
//! - `config-get KEY`: `config KEY=VALUE`, `config KEY unset` or `config error: ...`
//! - `config-all`: `config-all N` then `KEY=VALUE` lines
//! - `kv-open STORE`: `opened STORE` or `denied: ...`
//! - `kv-set STORE KEY VALUE`, `kv-get STORE KEY`, `kv-del STORE KEY`
//! - `kv-big STORE KEY BYTES`: sets a value of BYTES bytes
//! - `kv-incr STORE KEY DELTA`: `value N`
//! - `kv-batch STORE`: sets, reads and deletes three keys at once
//! - `kv-list STORE`: `keys a,b,c`
//! - `kv-loop STORE KEY`: increments forever, printing each value once it is stored
//!
//! Exits 0 when the operation worked, 3 when the host refused it.

use std::io::Write;

wit_bindgen::generate!({
    path: "wit",
    world: "probe",
    generate_all,
});

use wasi::config::store as config;
use wasi::keyvalue::{atomics, batch, store};

fn open(name: &str) -> store::Bucket {
    match store::open(name) {
        Ok(b) => b,
        Err(e) => refused(&format!("open {name}: {e:?}")),
    }
}

fn refused(what: &str) -> ! {
    println!("denied: {what}");
    std::process::exit(3)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["config-get", key] => match config::get(key) {
            Ok(Some(v)) => println!("config {key}={v}"),
            Ok(None) => println!("config {key} unset"),
            Err(e) => refused(&format!("config: {e:?}")),
        },
        ["config-all"] => match config::get_all() {
            Ok(all) => {
                println!("config-all {}", all.len());
                for (k, v) in all {
                    println!("{k}={v}");
                }
            }
            Err(e) => refused(&format!("config: {e:?}")),
        },
        ["kv-open", s] => {
            open(s);
            println!("opened {s}");
        }
        ["kv-set", s, k, v] => match open(s).set(k, v.as_bytes()) {
            Ok(()) => println!("set {k}"),
            Err(e) => refused(&format!("set: {e:?}")),
        },
        ["kv-big", s, k, n] => {
            let value = vec![b'x'; n.parse().expect("a size")];
            match open(s).set(k, &value) {
                Ok(()) => println!("set {k} ({n} bytes)"),
                Err(e) => refused(&format!("set: {e:?}")),
            }
        }
        ["kv-get", s, k] => match open(s).get(k) {
            Ok(Some(v)) => println!("value {}", String::from_utf8_lossy(&v)),
            Ok(None) => println!("absent {k}"),
            Err(e) => refused(&format!("get: {e:?}")),
        },
        ["kv-del", s, k] => match open(s).delete(k) {
            Ok(()) => println!("deleted {k}"),
            Err(e) => refused(&format!("delete: {e:?}")),
        },
        ["kv-incr", s, k, d] => match atomics::increment(&open(s), k, d.parse().expect("a number"))
        {
            Ok(v) => println!("value {v}"),
            Err(e) => refused(&format!("increment: {e:?}")),
        },
        ["kv-batch", s] => {
            let b = open(s);
            let pairs: Vec<(String, Vec<u8>)> = ["a", "b", "c"]
                .iter()
                .map(|k| (format!("batch-{k}"), k.as_bytes().to_vec()))
                .collect();
            batch::set_many(&b, &pairs).unwrap_or_else(|e| refused(&format!("set-many: {e:?}")));
            let keys: Vec<String> = pairs.iter().map(|(k, _)| k.clone()).collect();
            let got =
                batch::get_many(&b, &keys).unwrap_or_else(|e| refused(&format!("get-many: {e:?}")));
            println!("batch got {}", got.iter().flatten().count());
            batch::delete_many(&b, &keys)
                .unwrap_or_else(|e| refused(&format!("delete-many: {e:?}")));
            println!(
                "batch left {}",
                b.exists("batch-a").map(|x| x as u8).unwrap_or(9)
            );
        }
        ["kv-list", s] => {
            let b = open(s);
            let mut all = Vec::new();
            let mut cursor = None;
            loop {
                let page = b
                    .list_keys(cursor)
                    .unwrap_or_else(|e| refused(&format!("list: {e:?}")));
                all.extend(page.keys);
                match page.cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            all.sort();
            println!("keys {}", all.join(","));
        }
        ["kv-loop", s, k] => {
            let b = open(s);
            let mut out = std::io::stdout();
            loop {
                match atomics::increment(&b, k, 1) {
                    Ok(v) => {
                        let _ = writeln!(out, "stored {v}");
                        let _ = out.flush();
                    }
                    Err(e) => refused(&format!("increment: {e:?}")),
                }
            }
        }
        _ => {
            eprintln!("usage: see the source");
            std::process::exit(2)
        }
    }
}
