//! A hostile guest: each mode tries one forbidden thing from inside the sandbox.
//!
//! Output contract, read by the tests in `tests/all/hostile.rs`:
//! - the attempt failed: prints `denied: <error>` and exits 0;
//! - the attempt succeeded: prints `LEAK: <what>` and exits 42.
//!
//! Modes `loop`, `sleep` and `membomb` never finish on their own; `trap` traps.

#[path = "../../probes.rs"]
mod probes;

/// Prints the outcome of a probe: `LEAK` and exit 42 when it worked.
fn report(outcome: Result<String, String>) {
    match outcome {
        Ok(what) => {
            println!("LEAK: {what}");
            std::process::exit(42)
        }
        Err(e) => println!("denied: {e}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("");
    let arg = args.get(2).cloned().unwrap_or_default();
    match mode {
        // Any path: /etc/passwd, /data/../../etc/passwd, /data/link/passwd ...
        "read" => report(probes::read(&arg)),
        "write" => report(probes::write(&arg)),
        "list-root" => report(probes::list_root(&arg)),
        "env" => report(probes::env(&arg)),
        "tcp" => report(probes::tcp(&arg)),
        "tcp-listen" => report(probes::tcp_listen(&arg)),
        "udp" => report(probes::udp(&arg)),
        "dns" => report(probes::dns(&arg)),
        // A trap (a Rust panic aborts: `unreachable` in wasm); wpkg exits 134.
        "trap" => panic!("the guest panics on purpose"),
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
                    report(Ok("allocated 8GiB".into()));
                }
            }
        }
        other => {
            eprintln!("unknown mode `{other}`");
            std::process::exit(2);
        }
    }
}
