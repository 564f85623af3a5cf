//! A TUF repository made by the test, served on loopback: Ed25519 keys per role,
//! canonical-JSON metadata signed here (root, targets, snapshot, timestamp; consistent
//! snapshots as Sigstore's repository has them) and one target, `trusted_root.json`.
//! Tests break it on purpose: expired metadata, a version that goes back, too few
//! signatures, a target whose bytes do not match its hash.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// One Ed25519 key and its TUF key id.
pub struct Key {
    pair: Ed25519KeyPair,
    /// sha256 of the canonical key object, hex.
    pub id: String,
}

impl Key {
    fn new() -> Key {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let id = hex::encode(Sha256::digest(canonical(&Self::object(&pair))));
        Key { pair, id }
    }

    fn object(pair: &Ed25519KeyPair) -> Value {
        json!({"keytype": "ed25519", "scheme": "ed25519",
               "keyval": {"public": hex::encode(pair.public_key().as_ref())}})
    }
}

/// Canonical JSON (OLPC), what TUF signs.
pub fn canonical(v: &Value) -> Vec<u8> {
    use serde::Serialize;
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
    v.serialize(&mut ser).unwrap();
    out
}

fn rfc3339(offset_days: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::days(offset_days);
    t.replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A TUF repository on disk and its loopback HTTP server.
pub struct TufRepo {
    /// The repository directory (metadata at the top, `targets/` below).
    pub dir: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    root_key: Key,
    extra_root_key: Key,
    targets_key: Key,
    snapshot_key: Key,
    timestamp_key: Key,
    /// Versions of the last published metadata.
    pub versions: BTreeMap<&'static str, u64>,
    stop: Arc<AtomicBool>,
}

impl TufRepo {
    /// A repository with `trusted_root` as its `trusted_root.json` target, root version 1.
    pub fn new(dir: &Path, trusted_root: &[u8]) -> TufRepo {
        std::fs::create_dir_all(dir.join("targets")).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (dir, stop) = (dir.to_owned(), stop.clone());
            std::thread::spawn(move || {
                for s in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(s) = s {
                        serve_file(s, &dir);
                    }
                }
            });
        }
        let mut repo = TufRepo {
            dir: dir.to_owned(),
            url,
            root_key: Key::new(),
            extra_root_key: Key::new(),
            targets_key: Key::new(),
            snapshot_key: Key::new(),
            timestamp_key: Key::new(),
            versions: BTreeMap::new(),
            stop,
        };
        repo.publish_root(1, 1, 365, false);
        repo.publish_targets(trusted_root, 1, 365);
        repo
    }

    fn signed(&self, signed: Value, keys: &[&Key]) -> Value {
        let bytes = canonical(&signed);
        let signatures: Vec<Value> = keys
            .iter()
            .map(|k| json!({"keyid": k.id, "sig": hex::encode(k.pair.sign(&bytes).as_ref())}))
            .collect();
        json!({"signed": signed, "signatures": signatures})
    }

    fn write(&self, name: &str, v: &Value) {
        std::fs::write(self.dir.join(name), serde_json::to_vec(v).unwrap()).unwrap();
    }

    /// The current root metadata (`N.root.json`), for clients to start from.
    pub fn root_json(&self, version: u64) -> Vec<u8> {
        std::fs::read(self.dir.join(format!("{version}.root.json"))).unwrap()
    }

    /// Publishes root `version`: the root role needs `root_threshold` of the root keys
    /// (the main and the extra one), signed by the main root key and, with
    /// `extra_signs`, the extra one.
    pub fn publish_root(
        &mut self,
        version: u64,
        root_threshold: u64,
        expires_days: i64,
        extra_signs: bool,
    ) {
        let keys: BTreeMap<String, Value> = [
            &self.root_key,
            &self.extra_root_key,
            &self.targets_key,
            &self.snapshot_key,
            &self.timestamp_key,
        ]
        .iter()
        .map(|k| (k.id.clone(), Key::object(&k.pair)))
        .collect();
        let role = |k: &Key| json!({"keyids": [k.id], "threshold": 1});
        let signed = json!({
            "_type": "root", "spec_version": "1.0.0", "consistent_snapshot": true,
            "version": version, "expires": rfc3339(expires_days), "keys": keys,
            "roles": {
                "root": {"keyids": [self.root_key.id, self.extra_root_key.id], "threshold": root_threshold},
                "targets": role(&self.targets_key),
                "snapshot": role(&self.snapshot_key),
                "timestamp": role(&self.timestamp_key),
            },
        });
        let mut signers = vec![&self.root_key];
        if extra_signs {
            signers.push(&self.extra_root_key);
        }
        let doc = self.signed(signed, &signers);
        self.write(&format!("{version}.root.json"), &doc);
        self.versions.insert("root", version);
    }

    /// Publishes `trusted_root.json` as the one target, in targets, snapshot and
    /// timestamp `version`, each expiring in `expires_days`.
    pub fn publish_targets(&mut self, trusted_root: &[u8], version: u64, expires_days: i64) {
        let hash = hex::encode(Sha256::digest(trusted_root));
        std::fs::write(
            self.dir.join(format!("targets/{hash}.trusted_root.json")),
            trusted_root,
        )
        .unwrap();
        let targets = self.signed(
            json!({"_type": "targets", "spec_version": "1.0.0", "version": version,
                   "expires": rfc3339(expires_days),
                   "targets": {"trusted_root.json": {"length": trusted_root.len(), "hashes": {"sha256": hash}}}}),
            &[&self.targets_key],
        );
        self.write(&format!("{version}.targets.json"), &targets);
        let snapshot = self.signed(
            json!({"_type": "snapshot", "spec_version": "1.0.0", "version": version,
                   "expires": rfc3339(expires_days),
                   "meta": {"targets.json": {"version": version}}}),
            &[&self.snapshot_key],
        );
        self.write(&format!("{version}.snapshot.json"), &snapshot);
        self.publish_timestamp(version, version, expires_days);
        self.versions.insert("targets", version);
    }

    /// Publishes `timestamp.json` at `version`, pointing at snapshot `snapshot_version`.
    pub fn publish_timestamp(&mut self, version: u64, snapshot_version: u64, expires_days: i64) {
        let snap =
            std::fs::read(self.dir.join(format!("{snapshot_version}.snapshot.json"))).unwrap();
        let timestamp = self.signed(
            json!({"_type": "timestamp", "spec_version": "1.0.0", "version": version,
                   "expires": rfc3339(expires_days),
                   "meta": {"snapshot.json": {"version": snapshot_version, "length": snap.len(),
                            "hashes": {"sha256": hex::encode(Sha256::digest(&snap))}}}}),
            &[&self.timestamp_key],
        );
        self.write("timestamp.json", &timestamp);
        self.versions.insert("timestamp", version);
    }

    /// Replaces the bytes of the published target without changing its metadata.
    pub fn corrupt_target(&self, trusted_root: &[u8], with: &[u8]) {
        let hash = hex::encode(Sha256::digest(trusted_root));
        std::fs::write(
            self.dir.join(format!("targets/{hash}.trusted_root.json")),
            with,
        )
        .unwrap();
    }

    /// Copies the current timestamp metadata aside, to publish it again later.
    pub fn save_timestamp(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("timestamp.json")).unwrap()
    }

    /// Publishes saved timestamp metadata again (a rollback).
    pub fn restore_timestamp(&self, saved: &[u8]) {
        std::fs::write(self.dir.join("timestamp.json"), saved).unwrap();
    }
}

impl Drop for TufRepo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

fn serve_file(mut s: TcpStream, dir: &Path) {
    let mut line = String::new();
    let mut r = BufReader::new(s.try_clone().unwrap());
    if r.read_line(&mut line).is_err() {
        return;
    }
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let rel = path.trim_start_matches('/');
    let file = (!rel.contains("..")).then(|| dir.join(rel));
    match file.and_then(|f| std::fs::read(f).ok()) {
        Some(body) => {
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(&body);
        }
        None => {
            let _ = s.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    }
}
