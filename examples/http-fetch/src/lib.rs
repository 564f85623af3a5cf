//! The demo guest: `/` answers; `/fetch?url=URL` calls URL and reports the upstream
//! status, or the denial when wpkg.toml does not allow the destination.

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

struct Handler;

fn respond(out: ResponseOutparam, status: u16, text: &str) {
    let headers = Fields::from_list(&[("content-type".into(), b"text/plain".to_vec())]).unwrap();
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).unwrap();
    let body = response.body().unwrap();
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().unwrap();
    for chunk in text.as_bytes().chunks(4096) {
        stream.blocking_write_and_flush(chunk).unwrap();
    }
    drop(stream);
    OutgoingBody::finish(body, None).unwrap();
}

fn query_param(path: &str, name: &str) -> Option<String> {
    let query = path.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Calls `url` with GET; returns (status, first bytes of body) or the error.
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
    request
        .set_scheme(Some(&match scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => Scheme::Other(other.into()),
        }))
        .map_err(|_| "bad scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|_| "bad authority")?;
    request
        .set_path_with_query(Some(path))
        .map_err(|_| "bad path")?;
    let future = outgoing_handler::handle(request, None).map_err(describe)?;
    future.subscribe().block();
    let response = future
        .get()
        .ok_or("no response")?
        .map_err(|_| "response already taken")?
        .map_err(describe)?;
    let status = response.status();
    let body = response.consume().map_err(|_| "no body")?;
    let stream = body.stream().map_err(|_| "no body stream")?;
    let mut text = Vec::new();
    while text.len() < 1024 {
        match stream.blocking_read(1024) {
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
            "HttpRequestDenied (the destination is not in outbound_http)".into()
        }
        other => format!("{other:?}"),
    }
}

impl wasi::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".into());
        if path == "/" {
            return respond(
                out,
                200,
                "http-fetch is up. Try /fetch?url=http://127.0.0.1:PORT/\n",
            );
        }
        if path.starts_with("/fetch") {
            let Some(url) = query_param(&path, "url") else {
                return respond(out, 400, "missing ?url=\n");
            };
            return match fetch(&url) {
                Ok((status, body)) => respond(
                    out,
                    200,
                    &format!("upstream {url} answered {status}: {body}\n"),
                ),
                Err(e) => respond(out, 502, &format!("outbound call to {url} failed: {e}\n")),
            };
        }
        respond(out, 404, "not found\n")
    }
}

wasi::http::proxy::export!(Handler);
