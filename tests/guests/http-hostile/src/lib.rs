//! A hostile `wasi:http/proxy` guest. Paths:
//! `/trap` panics; `/loop` spins forever; `/sleep` blocks for an hour; `/membomb`
//! allocates without end; `/tcp?ADDR` opens a raw TCP connection; `/dns?NAME` resolves
//! a name; `/env?NAME` reads a variable; `/read?PATH` reads a file; `/count?N` bumps an
//! instance-global counter N times and answers its value. Attempts answer
//! `denied: ...` (status 200) when refused and `LEAK: ...` (status 500) when they work.

#[path = "../../probes.rs"]
#[allow(dead_code)] // the HTTP guest uses some of the probes
mod probes;

use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Handler;

/// Lives as long as the instance: more than 1 after a second request would mean an
/// instance was reused.
static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn respond(out: ResponseOutparam, status: u16, text: &str) {
    let response = OutgoingResponse::new(Fields::new());
    response.set_status_code(status).unwrap();
    let body = response.body().unwrap();
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().unwrap();
    stream.blocking_write_and_flush(text.as_bytes()).unwrap();
    drop(stream);
    OutgoingBody::finish(body, None).unwrap();
}

fn attempt(r: Result<String, String>) -> (u16, String) {
    match r {
        Ok(what) => (500, format!("LEAK: {what}\n")),
        Err(e) => (200, format!("denied: {e}\n")),
    }
}

impl wasi::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let full = request.path_with_query().unwrap_or_default();
        let (path, arg) = full.split_once('?').unwrap_or((&full, ""));
        let arg = arg.to_owned();
        let (status, text) = match path {
            "/trap" => panic!("the guest panics on purpose"),
            "/loop" => {
                let mut x = 0u64;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "/sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                (200, "woke\n".into())
            }
            "/membomb" => {
                let mut hoard = Vec::new();
                loop {
                    hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
                }
            }
            "/tcp" => attempt(probes::tcp(&arg)),
            "/dns" => attempt(probes::dns(&arg)),
            "/env" => attempt(probes::env(&arg)),
            "/read" => attempt(probes::read(&arg)),
            // Instance state: a fresh instance per request always answers 1 (`?N` counts
            // N times in this request, the control that the counter counts).
            "/count" => {
                let n: u32 = arg.parse().unwrap_or(1);
                let mut last = 0;
                for _ in 0..n {
                    last = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                }
                (200, format!("count: {last}\n"))
            }
            _ => (404, "unknown path\n".into()),
        };
        respond(out, status, &text)
    }
}

wasi::http::proxy::export!(Handler);
