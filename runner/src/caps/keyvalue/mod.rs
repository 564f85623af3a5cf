//! Key-value stores (`wasi:keyvalue@0.2.0-draft`: store, atomics, batch): the guest
//! opens only the stores the plan names; each is [`embedded`] (a database file per
//! image and store) or [`redis`]. Keys are at most [`Limits::key`] bytes, values at
//! most [`Limits::value`]; an embedded store holds at most [`Limits::store`] bytes of
//! keys and values.

pub mod embedded;
pub mod redis;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable, ResourceTableError};
use wpkg_spec::keyvalue::Backend as PlannedBackend;
use wpkg_spec::plan::RunPlan;

use crate::host::HostState;
use crate::Error;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/keyvalue",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
        },
        trappable_error_type: {
            "wasi:keyvalue/store.error" => super::KvError,
        },
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store};

/// Size limits of every store.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest key, in bytes.
    pub key: usize,
    /// Longest value, in bytes.
    pub value: usize,
    /// Most bytes of keys and values in one embedded store.
    pub store: u64,
}

/// The limits wpkg applies (docs/manifest.md states them).
pub const LIMITS: Limits = Limits {
    key: 1024,
    value: 1 << 20,
    store: 64 << 20,
};

impl Limits {
    fn check(&self, key: &str, value: usize) -> Result<(), KvError> {
        if key.len() > self.key {
            return Err(KvError::Other(format!(
                "the key is {} bytes, more than the limit of {}",
                key.len(),
                self.key
            )));
        }
        if value > self.value {
            return Err(KvError::Other(format!(
                "the value is {value} bytes, more than the limit of {}",
                self.value
            )));
        }
        Ok(())
    }
}

/// What `get-many` answers: each key with its value, or nothing when absent.
pub type Entries = Vec<Option<(String, Vec<u8>)>>;

/// The error a guest sees.
#[derive(Debug)]
pub enum KvError {
    /// The store is not one the plan names.
    NoSuchStore,
    /// Not allowed.
    AccessDenied,
    /// Anything else, in words.
    Other(String),
}

impl From<ResourceTableError> for KvError {
    fn from(e: ResourceTableError) -> Self {
        KvError::Other(e.to_string())
    }
}

/// A store's backend.
#[derive(Clone)]
pub enum Backend {
    /// A database file.
    Embedded(Arc<embedded::Embedded>),
    /// A Redis server.
    Redis(Arc<redis::Redis>),
}

/// An open store, as a guest's resource.
pub struct Bucket {
    backend: Backend,
}

/// The stores of one run or server, opened once and shared by its instances.
#[derive(Clone, Default)]
pub struct Stores(Arc<BTreeMap<String, Backend>>);

/// Opens every store the plan names: embedded ones under `dir` (`NAME.redb`), Redis
/// ones by connecting. Any failure stops the run before the guest starts.
pub async fn open(plan: &RunPlan, dir: Option<&Path>) -> Result<Stores, Error> {
    let mut map = BTreeMap::new();
    for s in &plan.key_value {
        let backend = match &s.backend {
            PlannedBackend::Embedded => {
                let dir = dir.ok_or_else(|| Error::KeyValue {
                    store: s.name.clone(),
                    reason:
                        "this runtime keeps no embedded stores; bind the store to a Redis server"
                            .into(),
                })?;
                // The name was checked to be `[a-z0-9][a-z0-9_-]*`: a file name, never a path.
                let path = dir.join(format!("{}.redb", s.name));
                let opened =
                    embedded::Embedded::open(&path, LIMITS).map_err(|e| Error::KeyValue {
                        store: s.name.clone(),
                        reason: format!("{} ({e})", path.display()),
                    })?;
                Backend::Embedded(Arc::new(opened))
            }
            PlannedBackend::Redis(url) => {
                let r =
                    redis::Redis::connect(url, LIMITS)
                        .await
                        .map_err(|reason| Error::KeyValue {
                            store: s.name.clone(),
                            reason,
                        })?;
                Backend::Redis(Arc::new(r))
            }
        };
        map.insert(s.name.clone(), backend);
    }
    Ok(Stores(Arc::new(map)))
}

/// A numeric value for `increment`: decimal digits.
fn parse_counter(bytes: &[u8]) -> Result<u64, KvError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| KvError::Other("the value is not a decimal number".into()))
}

/// Runs a blocking embedded-store call off the async executor.
async fn blocking<T: Send + 'static>(
    db: &Arc<embedded::Embedded>,
    f: impl FnOnce(&embedded::Embedded) -> Result<T, KvError> + Send + 'static,
) -> Result<T, KvError> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || f(&db))
        .await
        .map_err(|e| KvError::Other(format!("the store task failed: {e}")))?
}

const PAGE: usize = 1000;

impl Backend {
    async fn get_many(&self, keys: Vec<String>) -> Result<Entries, KvError> {
        match self {
            Backend::Embedded(db) => blocking(db, move |d| d.get_many(keys)).await,
            Backend::Redis(r) => r.get_many(keys).await,
        }
    }
    async fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        match self {
            Backend::Embedded(db) => blocking(db, move |d| d.set_many(pairs)).await,
            Backend::Redis(r) => r.set_many(pairs).await,
        }
    }
    async fn delete_many(&self, keys: Vec<String>) -> Result<(), KvError> {
        match self {
            Backend::Embedded(db) => blocking(db, move |d| d.delete_many(keys)).await,
            Backend::Redis(r) => r.delete_many(keys).await,
        }
    }
    async fn exists(&self, key: String) -> Result<bool, KvError> {
        match self {
            Backend::Embedded(db) => blocking(db, move |d| d.exists(&key)).await,
            Backend::Redis(r) => r.exists(&key).await,
        }
    }
    async fn get(&self, key: String) -> Result<Option<Vec<u8>>, KvError> {
        match self {
            Backend::Embedded(db) => blocking(db, move |d| d.get(&key)).await,
            Backend::Redis(r) => r.get(&key).await,
        }
    }
    async fn list(&self, cursor: u64) -> Result<(Vec<String>, Option<u64>), KvError> {
        match self {
            Backend::Embedded(db) => blocking(db, move |d| d.list(cursor, PAGE)).await,
            Backend::Redis(r) => r.list(cursor, PAGE).await,
        }
    }
    async fn increment(&self, key: String, delta: u64) -> Result<u64, KvError> {
        match self {
            Backend::Embedded(db) => blocking(db, move |d| d.increment(&key, delta)).await,
            Backend::Redis(r) => {
                LIMITS.check(&key, 20)?;
                r.increment(&key, delta).await
            }
        }
    }
}

/// The guest's view: the stores it may open and its resource table.
pub struct KvView<'a> {
    stores: &'a Stores,
    table: &'a mut ResourceTable,
}

impl KvView<'_> {
    fn bucket(&self, b: &Resource<Bucket>) -> Result<Backend, KvError> {
        Ok(self.table.get(b)?.backend.clone())
    }
}

impl store::Host for KvView<'_> {
    async fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, KvError> {
        // The default store is `default`, also when a guest opens "" (as some SDKs do).
        let name = if identifier.is_empty() {
            "default"
        } else {
            identifier.as_str()
        };
        let backend = self
            .stores
            .0
            .get(name)
            .cloned()
            .ok_or(KvError::NoSuchStore)?;
        Ok(self.table.push(Bucket { backend })?)
    }

    fn convert_error(&mut self, err: KvError) -> wasmtime::Result<store::Error> {
        Ok(match err {
            KvError::NoSuchStore => store::Error::NoSuchStore,
            KvError::AccessDenied => store::Error::AccessDenied,
            KvError::Other(m) => store::Error::Other(m),
        })
    }
}

impl store::HostBucket for KvView<'_> {
    async fn get(&mut self, b: Resource<Bucket>, key: String) -> Result<Option<Vec<u8>>, KvError> {
        self.bucket(&b)?.get(key).await
    }
    async fn set(
        &mut self,
        b: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), KvError> {
        self.bucket(&b)?.set_many(vec![(key, value)]).await
    }
    async fn delete(&mut self, b: Resource<Bucket>, key: String) -> Result<(), KvError> {
        self.bucket(&b)?.delete_many(vec![key]).await
    }
    async fn exists(&mut self, b: Resource<Bucket>, key: String) -> Result<bool, KvError> {
        self.bucket(&b)?.exists(key).await
    }
    async fn list_keys(
        &mut self,
        b: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Result<store::KeyResponse, KvError> {
        let (keys, cursor) = self.bucket(&b)?.list(cursor.unwrap_or(0)).await?;
        Ok(store::KeyResponse { keys, cursor })
    }
    async fn drop(&mut self, b: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

impl atomics::Host for KvView<'_> {
    async fn increment(
        &mut self,
        b: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> Result<u64, KvError> {
        self.bucket(&b)?.increment(key, delta).await
    }
}

impl batch::Host for KvView<'_> {
    async fn get_many(
        &mut self,
        b: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Entries, KvError> {
        self.bucket(&b)?.get_many(keys).await
    }
    async fn set_many(
        &mut self,
        b: Resource<Bucket>,
        pairs: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KvError> {
        self.bucket(&b)?.set_many(pairs).await
    }
    async fn delete_many(&mut self, b: Resource<Bucket>, keys: Vec<String>) -> Result<(), KvError> {
        self.bucket(&b)?.delete_many(keys).await
    }
}

struct HasKv;
impl HasData for HasKv {
    type Data<'a> = KvView<'a>;
}

fn view(s: &mut HostState) -> KvView<'_> {
    KvView {
        stores: &s.kv,
        table: &mut s.table,
    }
}

/// The capability: granted when the plan names a store.
pub struct KeyValue;

impl crate::host::Capability for KeyValue {
    fn name(&self) -> &'static str {
        "key-value stores"
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["wasi:keyvalue/"]
    }
    fn granted(&self, plan: &RunPlan) -> bool {
        !plan.key_value.is_empty()
    }
    fn declaration(&self) -> &'static str {
        "key_value = [\"default\"] under [capabilities]"
    }
    fn add_to_linker(&self, linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        store::add_to_linker::<_, HasKv>(linker, view)?;
        atomics::add_to_linker::<_, HasKv>(linker, view)?;
        batch::add_to_linker::<_, HasKv>(linker, view)?;
        Ok(())
    }
}
