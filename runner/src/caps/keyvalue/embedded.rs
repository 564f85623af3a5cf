//! The embedded backend: one redb database file per image and store. redb is pure Rust
//! (no C to build), maintained, and every write transaction is atomic and durable: a
//! commit is fsynced and a crash at any point leaves the last committed state (its
//! pages are copy-on-write with checksummed roots). Writes go through the blocking
//! pool; the store's size is kept in the same transaction as the data, so the limit
//! holds across processes and crashes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Entries, KvError, Limits};

const DATA: TableDefinition<&str, &[u8]> = TableDefinition::new("data");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const BYTES: &str = "bytes";

/// One open store.
pub struct Embedded {
    db: Database,
    path: PathBuf,
    limits: Limits,
}

/// Why a store file cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process has it open.
    #[error("another wpkg process has it open")]
    InUse,
    /// Its directory cannot be made or the file is not a store.
    #[error("{0}")]
    Other(String),
}

impl Embedded {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path, limits: Limits) -> Result<Embedded, OpenError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                OpenError::Other(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => OpenError::InUse,
            e => OpenError::Other(e.to_string()),
        })?;
        let txn = db
            .begin_write()
            .map_err(|e| OpenError::Other(e.to_string()))?;
        {
            txn.open_table(DATA)
                .map_err(|e| OpenError::Other(e.to_string()))?;
            txn.open_table(META)
                .map_err(|e| OpenError::Other(e.to_string()))?;
        }
        txn.commit().map_err(|e| OpenError::Other(e.to_string()))?;
        Ok(Embedded {
            db,
            path: path.to_owned(),
            limits,
        })
    }

    /// Where it lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadOnlyTable<&'static str, &'static [u8]>) -> Result<T, redb::Error>,
    ) -> Result<T, KvError> {
        let txn = self.db.begin_read().map_err(other)?;
        let table = txn.open_table(DATA).map_err(other)?;
        f(&table).map_err(other)
    }

    /// Runs `f` in one write transaction and commits it; `f` returns the change in the
    /// store's size, which must stay within the limit or nothing is written.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut redb::Table<&'static str, &'static [u8]>) -> Result<(T, i64), KvError>,
    ) -> Result<T, KvError> {
        let txn = self.db.begin_write().map_err(other)?;
        let out = {
            let mut data = txn.open_table(DATA).map_err(other)?;
            let mut meta = txn.open_table(META).map_err(other)?;
            let before = meta
                .get(BYTES)
                .map_err(other)?
                .map(|g| g.value())
                .unwrap_or(0);
            let (out, delta) = f(&mut data)?;
            let after = (before as i64).saturating_add(delta).max(0) as u64;
            if delta > 0 && after > self.limits.store {
                return Err(KvError::Other(format!(
                    "the store is full: {after} bytes would pass its limit of {} bytes",
                    self.limits.store
                )));
            }
            meta.insert(BYTES, after).map_err(other)?;
            out
        };
        txn.commit().map_err(other)?;
        Ok(out)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.read(|t| Ok(t.get(key)?.map(|g| g.value().to_vec())))
    }

    /// Whether `key` has a value.
    pub fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.read(|t| Ok(t.get(key)?.is_some()))
    }

    /// The values of `keys`.
    pub fn get_many(&self, keys: Vec<String>) -> Result<Entries, KvError> {
        self.read(|t| {
            let mut out = Vec::with_capacity(keys.len());
            for k in keys {
                let v = t.get(k.as_str())?.map(|g| g.value().to_vec());
                out.push(v.map(|v| (k, v)));
            }
            Ok(out)
        })
    }

    /// Up to `page` keys after the first `cursor`, in order, and the next cursor.
    pub fn list(&self, cursor: u64, page: usize) -> Result<(Vec<String>, Option<u64>), KvError> {
        self.read(|t| {
            let skip = usize::try_from(cursor).unwrap_or(usize::MAX);
            let mut keys = Vec::new();
            let mut more = false;
            for item in t.iter()?.skip(skip) {
                if keys.len() == page {
                    more = true;
                    break;
                }
                keys.push(item?.0.value().to_owned());
            }
            let next = more.then(|| cursor + keys.len() as u64);
            Ok((keys, next))
        })
    }

    /// Sets every pair, all or none.
    pub fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        for (k, v) in &pairs {
            self.limits.check(k, v.len())?;
        }
        self.write(|t| {
            let mut delta = 0i64;
            for (k, v) in &pairs {
                let old = t.insert(k.as_str(), v.as_slice()).map_err(other)?;
                delta += entry_size(k, v.len());
                if let Some(old) = old {
                    delta -= entry_size(k, old.value().len());
                }
            }
            Ok(((), delta))
        })
    }

    /// Removes every key, all or none.
    pub fn delete_many(&self, keys: Vec<String>) -> Result<(), KvError> {
        self.write(|t| {
            let mut delta = 0i64;
            for k in &keys {
                if let Some(old) = t.remove(k.as_str()).map_err(other)? {
                    delta -= entry_size(k, old.value().len());
                }
            }
            Ok(((), delta))
        })
    }

    /// Adds `delta` to the decimal number at `key` (0 when absent), atomically.
    pub fn increment(&self, key: &str, delta: u64) -> Result<u64, KvError> {
        self.limits.check(key, 20)?;
        self.write(|t| {
            let old = match t.get(key).map_err(other)? {
                Some(g) => Some((super::parse_counter(g.value())?, g.value().len())),
                None => None,
            };
            let current = old.map_or(0, |(c, _)| c);
            let new = current
                .checked_add(delta)
                .ok_or_else(|| KvError::Other(format!("incrementing `{key}` overflows a u64")))?;
            let text = new.to_string();
            t.insert(key, text.as_bytes()).map_err(other)?;
            let size = entry_size(key, text.len()) - old.map_or(0, |(_, len)| entry_size(key, len));
            Ok((new, size))
        })
    }
}

fn entry_size(key: &str, value: usize) -> i64 {
    (key.len() + value) as i64
}

fn other(e: impl Into<redb::Error>) -> KvError {
    KvError::Other(format!("the embedded store failed: {}", e.into()))
}

/// Opened stores are shared by every instance of one run or server.
pub type Shared = Arc<Embedded>;
