//! A hostile `wasi:http/proxy` guest. Paths:
//! `/trap` panics; `/loop` spins forever; `/sleep` blocks for an hour; `/membomb`
//! allocates without end; `/tcp?ADDR` opens a raw TCP connection; `/dns?NAME` resolves
//! a name; `/env?NAME` reads a variable; `/read?PATH` reads a file. Attempts answer
//! `denied: ...` (status 200) when refused and `LEAK: ...` (status 500) when they work.

use std::io::{Read, Write};

use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Handler;

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
            "/tcp" => attempt(
                std::net::TcpStream::connect(arg.as_str())
                    .map(|mut s| {
                        let _ = s.write_all(b"x");
                        let _ = s.read(&mut [0u8; 1]);
                        format!("connected to {arg}")
                    })
                    .map_err(|e| format!("connect {arg}: {e}")),
            ),
            "/dns" => {
                use std::net::ToSocketAddrs;
                attempt(match (arg.as_str(), 80).to_socket_addrs() {
                    Ok(a) => {
                        let v: Vec<_> = a.collect();
                        if v.is_empty() {
                            Err("no addresses".into())
                        } else {
                            Ok(format!("resolved {arg}: {v:?}"))
                        }
                    }
                    Err(e) => Err(format!("resolve {arg}: {e}")),
                })
            }
            "/env" => attempt(
                std::env::var(&arg)
                    .map(|v| format!("{arg}={v}"))
                    .map_err(|_| format!("{arg} is not set")),
            ),
            "/read" => attempt(
                std::fs::read_to_string(&arg)
                    .map(|s| format!("read {arg}: {} bytes", s.len()))
                    .map_err(|e| format!("read {arg}: {e}")),
            ),
            _ => (404, "unknown path\n".into()),
        };
        respond(out, status, &text)
    }
}

wasi::http::proxy::export!(Handler);
