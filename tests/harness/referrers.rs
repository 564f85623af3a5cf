//! A front for Debian's docker-registry (distribution 2.8, which has no referrers API)
//! that adds the OCI referrers API, the way Docker Hub gained it: manifests pushed
//! through the front with a `subject` are listed at `GET /v2/<repo>/referrers/<digest>`;
//! everything else is passed to the registry one request per connection.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

type Entries = Arc<Mutex<HashMap<(String, String), Vec<Value>>>>;

/// The running front. It serves until the test process ends.
pub struct ReferrersFront {
    /// `127.0.0.1:PORT`, to use as the registry in references.
    pub host: String,
    /// How many referrers API requests it answered.
    pub api_requests: Arc<AtomicUsize>,
}

impl ReferrersFront {
    /// Starts a front for the registry at `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> ReferrersFront {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let api_requests = Arc::new(AtomicUsize::new(0));
        let entries: Entries = Arc::default();
        let (up, count) = (upstream.to_owned(), api_requests.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (up, count, entries) = (up.clone(), count.clone(), entries.clone());
                std::thread::spawn(move || {
                    let _ = serve(client, &up, &count, &entries);
                });
            }
        });
        ReferrersFront { host, api_requests }
    }
}

/// One request from `client`, answered and closed.
fn serve(
    client: TcpStream,
    upstream: &str,
    count: &AtomicUsize,
    entries: &Entries,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        headers.push(h.trim_end().to_owned());
    }
    let header = |name: &str| {
        headers.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let body = if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        read_chunked(&mut reader)?
    } else {
        let len: usize = header("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut b = vec![0; len];
        reader.read_exact(&mut b)?;
        b
    };
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut client = client;

    // GET /v2/<repo>/referrers/<digest>
    if let Some((repo, digest)) = path
        .strip_prefix("/v2/")
        .and_then(|p| p.split_once("/referrers/"))
    {
        count.fetch_add(1, Ordering::Relaxed);
        let digest = digest.split('?').next().unwrap_or(digest);
        let listed = entries
            .lock()
            .unwrap()
            .get(&(repo.to_owned(), digest.to_owned()))
            .cloned()
            .unwrap_or_default();
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": listed,
        })
        .to_string();
        write!(
            client,
            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{index}",
            index.len()
        )?;
        return Ok(());
    }

    // Everything else: to the registry, with the body's length and `Connection: close`.
    let mut server = TcpStream::connect(upstream)?;
    let mut head = line.clone();
    for h in &headers {
        let name = h.split(':').next().unwrap_or("").to_ascii_lowercase();
        if !matches!(
            name.as_str(),
            "connection" | "content-length" | "transfer-encoding"
        ) {
            head.push_str(h);
            head.push_str("\r\n");
        }
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    server.write_all(head.as_bytes())?;
    server.write_all(&body)?;
    let mut response = Vec::new();
    server.read_to_end(&mut response)?;
    client.write_all(&response)?;

    // A manifest with a subject, stored: list it as a referrer of its subject.
    let stored = response.starts_with(b"HTTP/1.1 201");
    if method == "PUT" && stored {
        if let Some((repo, _)) = path
            .strip_prefix("/v2/")
            .and_then(|p| p.split_once("/manifests/"))
        {
            if let Ok(m) = serde_json::from_slice::<Value>(&body) {
                if let Some(subject) = m["subject"]["digest"].as_str() {
                    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
                    let artifact_type = m
                        .get("artifactType")
                        .cloned()
                        .unwrap_or_else(|| m["config"]["mediaType"].clone());
                    let mut entry = json!({
                        "mediaType": m["mediaType"],
                        "digest": digest,
                        "size": body.len(),
                        "artifactType": artifact_type,
                    });
                    if let Some(a) = m.get("annotations") {
                        entry["annotations"] = a.clone();
                    }
                    entries
                        .lock()
                        .unwrap()
                        .entry((repo.to_owned(), subject.to_owned()))
                        .or_default()
                        .push(entry);
                }
            }
        }
    }
    Ok(())
}

/// A chunked request body.
fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let n =
            usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        let mut chunk = vec![0; n + 2];
        reader.read_exact(&mut chunk)?;
        if n == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&chunk[..n]);
    }
}
