//! An HTTP service for wpkg: `/` answers; `/fetch?url=URL` calls URL, which works only
//! when wpkg.toml lists its destination under `outbound_http`.

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

struct Service;

wasi::http::proxy::export!(Service);

impl wasi::exports::http::incoming_handler::Guest for Service {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".into());
        let (route, query) = path.split_once('?').unwrap_or((&path, ""));
        match route {
            "/" => respond(out, 200, "Hello from {{name}}!\n"),
            "/fetch" => match query_param(query, "url") {
                None => respond(out, 400, "give the address: /fetch?url=http://HOST/\n"),
                Some(url) => match fetch(&url) {
                    Ok((status, body)) => {
                        respond(out, 200, &format!("upstream answered {status}: {body}"))
                    }
                    Err(e) => respond(out, 502, &format!("outbound call failed: {e}\n")),
                },
            },
            _ => respond(out, 404, "not found\n"),
        }
    }
}

/// Sends a text response.
fn respond(out: ResponseOutparam, status: u16, text: &str) {
    let headers = Fields::from_list(&[("content-type".into(), b"text/plain".to_vec())])
        .expect("valid header");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("valid status");
    let body = response.body().expect("body taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().expect("stream taken once");
    for chunk in text.as_bytes().chunks(4096) {
        if stream.blocking_write_and_flush(chunk).is_err() {
            return; // the client went away
        }
    }
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}

/// GETs `url`; returns the status and the first KiB of the body.
fn fetch(url: &str) -> Result<(u16, String), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("the url needs a scheme, like http://host/path")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Get).map_err(|_| "bad method")?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.into()),
    };
    request.set_scheme(Some(&scheme)).map_err(|_| "bad scheme")?;
    request.set_authority(Some(authority)).map_err(|_| "bad host")?;
    request.set_path_with_query(Some(path)).map_err(|_| "bad path")?;
    let pending = outgoing_handler::handle(request, None).map_err(describe)?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response")?
        .map_err(|_| "response taken twice")?
        .map_err(describe)?;
    let status = response.status();
    let body = response.consume().map_err(|_| "no body")?;
    let stream = body.stream().map_err(|_| "no body stream")?;
    let mut text = Vec::new();
    while text.len() < 1024 {
        match stream.blocking_read(1024 - text.len() as u64) {
            Ok(chunk) if chunk.is_empty() => break,
            Ok(chunk) => text.extend_from_slice(&chunk),
            Err(_) => break,
        }
    }
    Ok((status, String::from_utf8_lossy(&text).into_owned()))
}

fn describe(e: ErrorCode) -> String {
    match e {
        ErrorCode::HttpRequestDenied => {
            "denied: the destination is not in wpkg.toml's outbound_http".into()
        }
        other => format!("{other:?}"),
    }
}

/// The value of `name` in a query string, percent-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
