//! A Redis server of the test's own (Debian's `redis-server`) on a free loopback port,
//! with no persistence; stopped when dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::registry::{free_port, which};

/// A running server.
pub struct Redis {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Redis {
    /// Starts a server with its working directory in `dir`. Fails, naming the set-up
    /// command, when `redis-server` is not installed.
    pub fn start(dir: &Path) -> Redis {
        let bin = which("redis-server").unwrap_or_else(|| {
            panic!("redis-server is not installed: run `bash scripts/setup.sh` (apt-get install redis-server)")
        });
        let port = free_port();
        let child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        let r = Redis { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while r.command(&["PING"]).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    /// `redis://127.0.0.1:PORT/DB`.
    pub fn url(&self, db: u32) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// Sends one command in database 0 and returns the first line of the answer, or a
    /// bulk string's contents.
    pub fn command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(out.as_bytes())?;
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line)?;
        if line.starts_with('$') && !line.starts_with("$-1") {
            let mut body = String::new();
            r.read_line(&mut body)?;
            return Ok(body.trim_end().to_owned());
        }
        Ok(line.trim_end().to_owned())
    }

    /// `GET key` in database `db`.
    pub fn get(&self, db: u32, key: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let db = db.to_string();
        let cmd = format!(
            "*2\r\n$6\r\nSELECT\r\n${}\r\n{db}\r\n*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n",
            db.len(),
            key.len()
        );
        s.write_all(cmd.as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert_eq!(line.trim_end(), "+OK", "SELECT {db}");
        line.clear();
        r.read_line(&mut line).unwrap();
        if line.starts_with("$-1") {
            return String::new();
        }
        let mut body = String::new();
        r.read_line(&mut body).unwrap();
        body.trim_end().to_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
