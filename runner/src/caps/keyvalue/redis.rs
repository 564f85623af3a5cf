//! The Redis/Valkey backend: a small RESP2 client over one connection per store,
//! shared by the instances of a run or server (commands are serialized on it),
//! reconnected once when it breaks. `SELECT`s the URL's database and `AUTH`s with its
//! password. Keys are the guest's keys as given: the operator gives each store its own
//! database (or server).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use wpkg_spec::keyvalue::RedisUrl;

use super::{Entries, KvError, Limits};

const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest reply accepted from the server (a bulk string or an array's length).
const MAX_REPLY: usize = 64 << 20;

/// One store on a Redis server.
pub struct Redis {
    url: RedisUrl,
    conn: tokio::sync::Mutex<Option<BufReader<TcpStream>>>,
    limits: Limits,
}

/// A reply.
#[derive(Debug)]
enum Reply {
    Simple,
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Redis {
    /// Connects and checks the server answers; an error says why, in one line.
    pub async fn connect(url: &RedisUrl, limits: Limits) -> Result<Redis, String> {
        let r = Redis {
            url: url.clone(),
            conn: tokio::sync::Mutex::new(None),
            limits,
        };
        r.command(&[b"PING"]).await.map_err(|e| match e {
            KvError::Other(m) => m,
            other => format!("{other:?}"),
        })?;
        Ok(r)
    }

    async fn open(&self) -> Result<BufReader<TcpStream>, String> {
        let addr = (self.url.host.as_str(), self.url.port);
        let tcp = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("cannot reach Redis at {}: timed out", self.url))?
            .map_err(|e| format!("cannot reach Redis at {}: {e}", self.url))?;
        let _ = tcp.set_nodelay(true);
        let mut conn = BufReader::new(tcp);
        if let Some(pw) = &self.url.password {
            exchange(&mut conn, &[b"AUTH", pw.as_bytes()])
                .await
                .map_err(|e| format!("Redis at {} refused the password: {e}", self.url))?;
        }
        if self.url.db != 0 {
            let db = self.url.db.to_string();
            exchange(&mut conn, &[b"SELECT", db.as_bytes()])
                .await
                .map_err(|e| {
                    format!(
                        "Redis at {} refused database {}: {e}",
                        self.url, self.url.db
                    )
                })?;
        }
        Ok(conn)
    }

    async fn command(&self, args: &[&[u8]]) -> Result<Reply, KvError> {
        let mut slot = self.conn.lock().await;
        for attempt in 0..2 {
            if slot.is_none() {
                *slot = Some(self.open().await.map_err(KvError::Other)?);
            }
            let conn = slot.as_mut().expect("connected above");
            match exchange(conn, args).await {
                Ok(r) => return Ok(r),
                Err(Failure::Server(msg)) => {
                    return Err(KvError::Other(format!("Redis at {}: {msg}", self.url)))
                }
                Err(Failure::Io(msg)) => {
                    *slot = None;
                    if attempt == 1 {
                        return Err(KvError::Other(format!(
                            "lost the connection to Redis at {}: {msg}",
                            self.url
                        )));
                    }
                }
            }
        }
        unreachable!("the loop returns")
    }

    /// The value of `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        match self.command(&[b"GET", key.as_bytes()]).await? {
            Reply::Bulk(v) => Ok(v),
            r => Err(unexpected(&r)),
        }
    }

    /// Whether `key` has a value.
    pub async fn exists(&self, key: &str) -> Result<bool, KvError> {
        match self.command(&[b"EXISTS", key.as_bytes()]).await? {
            Reply::Int(n) => Ok(n > 0),
            r => Err(unexpected(&r)),
        }
    }

    /// The values of `keys`.
    pub async fn get_many(&self, keys: Vec<String>) -> Result<Entries, KvError> {
        if keys.is_empty() {
            return Ok(vec![]);
        }
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(keys.iter().map(|k| k.as_bytes()));
        match self.command(&args).await? {
            Reply::Array(items) if items.len() == keys.len() => keys
                .into_iter()
                .zip(items)
                .map(|(k, r)| match r {
                    Reply::Bulk(v) => Ok(v.map(|v| (k, v))),
                    r => Err(unexpected(&r)),
                })
                .collect(),
            r => Err(unexpected(&r)),
        }
    }

    /// Sets every pair (`MSET`: all at once).
    pub async fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        for (k, v) in &pairs {
            self.limits.check(k, v.len())?;
        }
        if pairs.is_empty() {
            return Ok(());
        }
        let mut args: Vec<&[u8]> = vec![b"MSET"];
        for (k, v) in &pairs {
            args.push(k.as_bytes());
            args.push(v);
        }
        self.command(&args).await.map(drop)
    }

    /// Removes every key.
    pub async fn delete_many(&self, keys: Vec<String>) -> Result<(), KvError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut args: Vec<&[u8]> = vec![b"DEL"];
        args.extend(keys.iter().map(|k| k.as_bytes()));
        self.command(&args).await.map(drop)
    }

    /// `SCAN` from `cursor`.
    pub async fn list(
        &self,
        cursor: u64,
        page: usize,
    ) -> Result<(Vec<String>, Option<u64>), KvError> {
        let c = cursor.to_string();
        let n = page.to_string();
        match self
            .command(&[b"SCAN", c.as_bytes(), b"COUNT", n.as_bytes()])
            .await?
        {
            Reply::Array(mut parts) if parts.len() == 2 => {
                let keys = match parts.pop() {
                    Some(Reply::Array(keys)) => keys,
                    Some(r) => return Err(unexpected(&r)),
                    None => unreachable!("two parts"),
                };
                let next = match parts.pop() {
                    Some(Reply::Bulk(Some(c))) => {
                        String::from_utf8_lossy(&c).parse::<u64>().map_err(|_| {
                            KvError::Other("Redis answered SCAN with a bad cursor".into())
                        })?
                    }
                    Some(r) => return Err(unexpected(&r)),
                    None => unreachable!("two parts"),
                };
                let keys = keys
                    .into_iter()
                    .filter_map(|k| match k {
                        Reply::Bulk(Some(k)) => String::from_utf8(k).ok(),
                        _ => None,
                    })
                    .collect();
                Ok((keys, (next != 0).then_some(next)))
            }
            r => Err(unexpected(&r)),
        }
    }

    /// `INCRBY`.
    pub async fn increment(&self, key: &str, delta: u64) -> Result<u64, KvError> {
        let d = i64::try_from(delta)
            .map_err(|_| KvError::Other("Redis increments by at most 2^63-1".into()))?
            .to_string();
        match self
            .command(&[b"INCRBY", key.as_bytes(), d.as_bytes()])
            .await?
        {
            Reply::Int(n) => u64::try_from(n)
                .map_err(|_| KvError::Other(format!("`{key}` holds a negative number"))),
            r => Err(unexpected(&r)),
        }
    }
}

fn unexpected(r: &Reply) -> KvError {
    KvError::Other(format!("Redis answered unexpectedly: {r:?}"))
}

enum Failure {
    /// The server answered with an error; the connection is fine.
    Server(String),
    /// The connection broke or the answer was not RESP.
    Io(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Server(m) | Failure::Io(m) => f.write_str(m),
        }
    }
}

async fn exchange(conn: &mut BufReader<TcpStream>, args: &[&[u8]]) -> Result<Reply, Failure> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    let io = |e: std::io::Error| Failure::Io(e.to_string());
    tokio::time::timeout(TIMEOUT, async {
        conn.get_mut().write_all(&out).await.map_err(io)?;
        read_reply(conn, 0).await
    })
    .await
    .map_err(|_| Failure::Io("no answer within 10s".into()))?
}

fn read_reply(
    conn: &mut BufReader<TcpStream>,
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, Failure>> + Send + '_>> {
    Box::pin(async move {
        let io = |e: std::io::Error| Failure::Io(e.to_string());
        let bad = || Failure::Io("the server's answer is not RESP".into());
        let mut line = Vec::new();
        (&mut *conn)
            .take(MAX_REPLY as u64)
            .read_until(b'\n', &mut line)
            .await
            .map_err(io)?;
        if !line.ends_with(b"\r\n") {
            return Err(bad());
        }
        let text = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
        let len = || text.parse::<i64>().map_err(|_| bad());
        match line[0] {
            b'+' => Ok(Reply::Simple),
            b'-' => Err(Failure::Server(text)),
            b':' => Ok(Reply::Int(len()?)),
            b'$' => {
                let n = len()?;
                if n < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let n = usize::try_from(n).map_err(|_| bad())?;
                if n > MAX_REPLY {
                    return Err(bad());
                }
                let mut buf = vec![0; n + 2];
                conn.read_exact(&mut buf).await.map_err(io)?;
                buf.truncate(n);
                Ok(Reply::Bulk(Some(buf)))
            }
            b'*' => {
                let n = len()?;
                if n < 0 {
                    return Ok(Reply::Array(vec![]));
                }
                let n = usize::try_from(n).map_err(|_| bad())?;
                if n > MAX_REPLY / 16 || depth > 4 {
                    return Err(bad());
                }
                let mut items = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    items.push(read_reply(conn, depth + 1).await?);
                }
                Ok(Reply::Array(items))
            }
            _ => Err(bad()),
        }
    })
}
