//! Store get and put with 10,000 secrets present, at 1, 4 and 16 concurrent callers.
//! Each coffer store sits beside the raw path a user would otherwise take to the same
//! server, and beside the driver's floor where there is one:
//!
//! - SQLite: raw sqlx on a plain `(name, value)` table in the same file through a pool of
//!   its own with the same settings, and rusqlite on that table (one connection per
//!   caller, WAL, `synchronous = FULL`): the driver floor;
//! - Postgres: raw sqlx on a plain table in the same database through a default
//!   `PgPool` (which pings before each acquire), and a prepared select or upsert on one
//!   dedicated connection per caller: the driver floor;
//! - Supabase Vault: raw SQL on `vault.decrypted_secrets` and `vault.update_secret`;
//! - OpenBao: raw HTTP GET/POST of the same KV v2 paths with a keep-alive client (the
//!   same client crate, so client cost is equal on both sides).
//!
//! The ratio is what coffer adds: versions and metadata, the envelope, name checks.

use std::hint::black_box;
use std::sync::{Arc, Mutex};

use coffer_envelope::{Keyring, MasterKey};
use coffer_sql::{PgOptions, SqliteStore};
use coffer_store::{DynSecretStore, PutOptions, Scope, SecretName};
use coffer_testkit::postgres::{SupabaseProject, TestDatabase};
use criterion::{Criterion, Throughput};
use futures::{FutureExt as _, StreamExt as _};
use sqlx::Connection as _;

use crate::report::{Op, Report};

/// The concurrent callers of each row.
pub(crate) const CALLERS: [usize; 3] = [1, 4, 16];

/// Secrets present in every store.
pub(crate) const PRESENT: usize = 10_000;
const PLAIN_TABLE: &str =
    "CREATE TABLE bench_plain_kv (name TEXT PRIMARY KEY, value TEXT NOT NULL)";
const PLAIN_GET: &str = "SELECT value FROM bench_plain_kv WHERE name = $1";
const PLAIN_PUT: &str = "INSERT INTO bench_plain_kv (name, value) VALUES ($1, $2) \
     ON CONFLICT (name) DO UPDATE SET value = excluded.value";
const PLAIN_GET_SQLITE: &str = "SELECT value FROM bench_plain_kv WHERE name = ?1";
const PLAIN_PUT_SQLITE: &str = "INSERT INTO bench_plain_kv (name, value) VALUES (?1, ?2) \
     ON CONFLICT (name) DO UPDATE SET value = excluded.value";
const SUPABASE_GET: &str = "SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = $1";
const SUPABASE_PUT: &str = "SELECT vault.update_secret(id, $2) FROM vault.secrets WHERE name = $1";
const NEW_VALUE: &str = "sk-bench-new-value-0123456789abcdef0123456789abcdef";

pub(crate) fn name_of(i: usize) -> SecretName {
    SecretName::new(format!("key-{i:05}")).expect("a valid name")
}

pub(crate) fn value_of(i: usize) -> String {
    format!("sk-bench-{i:05}-{}", "x".repeat(40))
}

pub(crate) fn scope() -> Scope {
    Scope::new("bench").expect("a valid scope")
}

/// Walks the `count` secrets in a fixed order that defeats any locality.
pub(crate) fn next(i: &mut usize, count: usize) -> usize {
    *i = (*i + 7919) % count;
    *i
}

/// Puts `count` secrets, 16 at a time.
pub(crate) async fn fill(store: &DynSecretStore, count: usize) {
    let scope = scope();
    futures::stream::iter(0..count)
        .for_each_concurrent(16, |i| {
            let scope = scope.clone();
            async move {
                store
                    .put(&scope, &name_of(i), &value_of(i).into(), &PutOptions::new())
                    .await
                    .expect("fill the store");
            }
        })
        .await;
}

/// The raw path beside a coffer store.
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
    Supabase(sqlx::PgPool),
    Http(RawHttp),
}

/// Runs one statement with string binds on either SQL pool, fetching one column if asked.
macro_rules! raw_sql {
    ($pool:expr, fetch $sql:expr, $($bind:expr),+) => {{
        let (v,): (String,) = sqlx::query_as($sql)$(.bind($bind))+
            .fetch_one($pool).await.expect("raw fetch");
        v.len()
    }};
    ($pool:expr, execute $sql:expr, $($bind:expr),+) => {{
        sqlx::query($sql)$(.bind($bind))+.execute($pool).await.expect("raw execute");
    }};
}

/// The driver's floor: one connection per caller, the statement prepared once.
enum Floor {
    /// rusqlite connections on the SQLite file.
    Sqlite(Vec<Mutex<rusqlite::Connection>>),
    /// sqlx connections on the Postgres database, outside any pool.
    Postgres(Vec<tokio::sync::Mutex<sqlx::PgConnection>>),
}

impl Floor {
    async fn sqlite(path: &std::path::Path) -> Self {
        let conns = (0..16)
            .map(|_| {
                let c = rusqlite::Connection::open(path).expect("open with rusqlite");
                c.execute_batch(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                     PRAGMA busy_timeout = 10000;",
                )
                .expect("pragmas");
                Mutex::new(c)
            })
            .collect();
        Floor::Sqlite(conns)
    }

    async fn postgres(url: &str) -> Self {
        let mut conns = Vec::new();
        for _ in 0..16 {
            let c = sqlx::PgConnection::connect(url).await.expect("connect");
            conns.push(tokio::sync::Mutex::new(c));
        }
        Floor::Postgres(conns)
    }

    /// A free connection of the floor's, starting at `i`'s.
    fn sqlite_conn(
        conns: &[Mutex<rusqlite::Connection>],
        i: usize,
    ) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        (0..conns.len())
            .find_map(|k| conns[(i + k) % conns.len()].try_lock().ok())
            .unwrap_or_else(|| conns[i % conns.len()].lock().expect("not poisoned"))
    }

    async fn pg_conn(
        conns: &[tokio::sync::Mutex<sqlx::PgConnection>],
        i: usize,
    ) -> tokio::sync::MutexGuard<'_, sqlx::PgConnection> {
        match (0..conns.len()).find_map(|k| conns[(i + k) % conns.len()].try_lock().ok()) {
            Some(c) => c,
            None => conns[i % conns.len()].lock().await,
        }
    }

    async fn get(&self, i: usize, name: &SecretName) -> usize {
        match self {
            Floor::Sqlite(conns) => {
                let c = Self::sqlite_conn(conns, i);
                let mut stmt = c.prepare_cached(PLAIN_GET_SQLITE).expect("prepare");
                let v: String = stmt
                    .query_row([name.as_str()], |r| r.get(0))
                    .expect("rusqlite get");
                v.len()
            }
            Floor::Postgres(conns) => {
                let mut c = Self::pg_conn(conns, i).await;
                raw_sql!(&mut *c, fetch PLAIN_GET, name.as_str())
            }
        }
    }

    async fn put(&self, i: usize, name: &SecretName) {
        match self {
            Floor::Sqlite(conns) => {
                let c = Self::sqlite_conn(conns, i);
                let mut stmt = c.prepare_cached(PLAIN_PUT_SQLITE).expect("prepare");
                stmt.execute([name.as_str(), NEW_VALUE])
                    .expect("rusqlite put");
            }
            Floor::Postgres(conns) => {
                let mut c = Self::pg_conn(conns, i).await;
                raw_sql!(&mut *c, execute PLAIN_PUT, name.as_str(), NEW_VALUE);
            }
        }
    }
}

/// A keep-alive HTTP client on the same KV v2 paths `VaultStore` uses.
struct RawHttp {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Raw {
    /// Creates and fills the plain table where the raw path needs one of its own.
    async fn prepare(&self) {
        for i in 0..PRESENT {
            let (name, value) = (name_of(i).to_string(), value_of(i));
            match self {
                Raw::Sqlite(pool) => {
                    if i == 0 {
                        sqlx::query(PLAIN_TABLE).execute(pool).await.expect("table");
                    }
                    raw_sql!(pool, execute PLAIN_PUT, name, value);
                }
                Raw::Postgres(pool) => {
                    if i == 0 {
                        sqlx::query(PLAIN_TABLE).execute(pool).await.expect("table");
                    }
                    raw_sql!(pool, execute PLAIN_PUT, name, value);
                }
                // coffer's fill wrote the same secrets where the raw path reads them.
                Raw::Supabase(_) | Raw::Http(_) => return,
            }
        }
    }

    async fn get(&self, name: &SecretName) -> usize {
        match self {
            Raw::Sqlite(pool) => raw_sql!(pool, fetch PLAIN_GET, name.as_str()),
            Raw::Postgres(pool) => raw_sql!(pool, fetch PLAIN_GET, name.as_str()),
            Raw::Supabase(pool) => raw_sql!(pool, fetch SUPABASE_GET, format!("bench/{name}")),
            Raw::Http(h) => {
                let body: serde_json::Value = h
                    .client
                    .get(format!("{}/data/coffer/bench/{name}", h.base))
                    .header("X-Vault-Token", &h.token)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .expect("raw GET")
                    .json()
                    .await
                    .expect("a JSON body");
                body["data"]["data"]["value"]
                    .as_str()
                    .expect("the value field")
                    .len()
            }
        }
    }

    async fn put(&self, name: &SecretName) {
        match self {
            Raw::Sqlite(pool) => raw_sql!(pool, execute PLAIN_PUT, name.as_str(), NEW_VALUE),
            Raw::Postgres(pool) => raw_sql!(pool, execute PLAIN_PUT, name.as_str(), NEW_VALUE),
            Raw::Supabase(pool) => {
                raw_sql!(pool, execute SUPABASE_PUT, format!("bench/{name}"), NEW_VALUE);
            }
            Raw::Http(h) => {
                h.client
                    .post(format!("{}/data/coffer/bench/{name}", h.base))
                    .header("X-Vault-Token", &h.token)
                    .json(&serde_json::json!({ "data": { "value": NEW_VALUE } }))
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .expect("raw POST");
            }
        }
    }
}

struct Backend {
    /// The coffer row's label.
    label: &'static str,
    store: Arc<DynSecretStore>,
    /// The raw row's label and path.
    raw: Option<(&'static str, Arc<Raw>)>,
    /// The driver floor's label and connections.
    floor: Option<(&'static str, Arc<Floor>)>,
}

/// A KV v2 mount of its own on the test OpenBao, disabled again at the end.
pub(crate) struct VaultMount {
    client: reqwest::Client,
    addr: String,
    token: String,
    pub(crate) mount: String,
}

impl VaultMount {
    async fn enable(addr: String, token: String) -> Self {
        Self::enable_engine(
            addr,
            token,
            "bench",
            serde_json::json!({ "type": "kv", "options": { "version": "2" } }),
        )
        .await
    }

    /// A fresh mount `{prefix}-…` of the engine `config` describes (`{"type": …}`).
    pub(crate) async fn enable_engine(
        addr: String,
        token: String,
        prefix: &str,
        config: serde_json::Value,
    ) -> Self {
        let client = reqwest::Client::new();
        let mount = format!("{prefix}-{:08x}", rand::random::<u32>());
        client
            .post(format!("{addr}/v1/sys/mounts/{mount}"))
            .header("X-Vault-Token", &token)
            .json(&config)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("enable the bench mount");
        Self {
            client,
            addr,
            token,
            mount,
        }
    }

    /// POSTs `body` to `{addr}/v1/{path}` with the token.
    pub(crate) async fn post(&self, path: &str, body: serde_json::Value) {
        self.client
            .post(format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", &self.token)
            .json(&body)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    }

    pub(crate) async fn disable(&self) {
        let _ = self
            .client
            .delete(format!("{}/v1/sys/mounts/{}", self.addr, self.mount))
            .header("X-Vault-Token", &self.token)
            .send()
            .await;
    }
}

async fn backends(
    dir: &std::path::Path,
    databases: &mut Vec<TestDatabase>,
    projects: &mut Vec<SupabaseProject>,
    mounts: &mut Vec<VaultMount>,
) -> Vec<Backend> {
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    let mut backends = vec![Backend {
        label: "memory",
        store: Arc::new(coffer_store::MemoryStore::new()),
        raw: None,
        floor: None,
    }];

    let file = dir.join("store.db");
    let url = format!("sqlite://{}", file.display());
    let sqlite = SqliteStore::connect(&url, Arc::clone(&keyring))
        .await
        .expect("open SQLite");
    // The raw pool has the store pool's settings (WAL, synchronous = FULL, no ping).
    let raw_pool = sqlx::sqlite::SqlitePoolOptions::new()
        .test_before_acquire(false)
        .connect_with((*sqlite.pool().connect_options()).clone())
        .await
        .expect("open SQLite for the raw path");
    backends.push(Backend {
        label: "SQLite: coffer",
        store: Arc::new(sqlite),
        raw: Some((
            "SQLite: raw sqlx, plain table",
            Arc::new(Raw::Sqlite(raw_pool)),
        )),
        floor: Some((
            "SQLite: rusqlite floor",
            Arc::new(Floor::sqlite(&file).await),
        )),
    });

    if let Some(db) = TestDatabase::create().await {
        let pg = db.store_with(Arc::clone(&keyring), PgOptions::new()).await;
        let raw_pool = sqlx::PgPool::connect(db.url()).await.expect("connect");
        backends.push(Backend {
            label: "Postgres: coffer",
            store: Arc::new(pg),
            raw: Some((
                "Postgres: raw sqlx, plain table",
                Arc::new(Raw::Postgres(raw_pool)),
            )),
            floor: Some((
                "Postgres: prepared select, one connection per caller",
                Arc::new(Floor::postgres(db.url()).await),
            )),
        });
        databases.push(db);
    } else {
        eprintln!("COFFER_TEST_POSTGRES_URL is not set: skipping the Postgres rows");
    }
    // The real extension, over verified TLS as the application role.
    if let Some(project) = SupabaseProject::create().await {
        let pool = sqlx::PgPool::connect(project.url()).await.expect("connect");
        let vault =
            coffer_supabase::SupabaseVaultStore::from_pool(pool.clone(), Default::default())
                .await
                .expect("open the Supabase store");
        backends.push(Backend {
            label: "Supabase Vault: coffer",
            store: Arc::new(vault),
            raw: Some(("Supabase Vault: raw SQL", Arc::new(Raw::Supabase(pool)))),
            floor: None,
        });
        projects.push(project);
    } else {
        eprintln!("COFFER_TEST_SUPABASE_URL is not set: skipping the Supabase rows");
    }

    if let (Some(addr), Some(token)) = (
        coffer_testkit::service_env("COFFER_TEST_VAULT_ADDR"),
        coffer_testkit::service_env("COFFER_TEST_VAULT_TOKEN"),
    ) {
        let mount = VaultMount::enable(addr.clone(), token.clone()).await;
        let config = coffer_vault::VaultConfig::new(&addr, coffer_vault::Auth::Token(token.into()))
            .mount(&mount.mount, coffer_vault::KvVersion::V2);
        let vault = coffer_vault::VaultStore::connect(config)
            .await
            .expect("open the Vault store");
        let raw = Raw::Http(RawHttp {
            client: mount.client.clone(),
            base: format!("{addr}/v1/{}", mount.mount),
            token: mount.token.clone(),
        });
        backends.push(Backend {
            label: "OpenBao KV v2: coffer",
            store: Arc::new(vault),
            raw: Some(("OpenBao KV v2: raw HTTP", Arc::new(raw))),
            floor: None,
        });
        mounts.push(mount);
    } else {
        eprintln!("COFFER_TEST_VAULT_ADDR is not set: skipping the OpenBao rows");
    }

    for backend in &backends {
        fill(&*backend.store, PRESENT).await;
        if let Some((_, raw)) = &backend.raw {
            raw.prepare().await;
        }
    }
    backends
}

pub(crate) fn bench(c: &mut Criterion, report: &mut Report, rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut databases = Vec::new();
    let mut projects = Vec::new();
    let mut mounts = Vec::new();
    let backends = rt.block_on(backends(
        dir.path(),
        &mut databases,
        &mut projects,
        &mut mounts,
    ));
    let mut get = report.group(
        c,
        "store get",
        "Reading one secret of 10,000 by name at 1, 4 and 16 concurrent callers: each coffer \
         store beside the raw path to the same server and the driver's floor. Each figure \
         is the wall time per read of all callers together (its inverse is the throughput); \
         p50 and p99 are each read's own latency. A ratio of 1.25× is 0.8× the throughput. \
         The client runs on the server's machine (2 vCPUs), so at 16 callers both compete \
         for the same cores; client cost is the same crate on both sides of each row.",
    );
    get.brief().throughput(Throughput::Elements(1));
    rows(&mut get, &backends, Kind::Get, rt);
    get.finish();

    let mut put = report.group(
        c,
        "store put",
        "Writing a new value of an existing secret (a new version in coffer, an overwrite \
         in the raw path) at 1, 4 and 16 concurrent callers, durable on return (SQLite \
         `synchronous = FULL` on every side). coffer reads the head first (for \
         check-and-set and the metadata it returns) and keeps every version, so its tables \
         grow where the raw path overwrites a row in place. Figures as for store get.",
    );
    put.brief().throughput(Throughput::Elements(1));
    rows(&mut put, &backends, Kind::Put, rt);
    put.finish();

    drop(backends);
    rt.block_on(async {
        for mount in &mounts {
            mount.disable().await;
        }
    });
    drop(databases);
    drop(projects);
}

/// The secret call `i` reads or writes: a fixed order that defeats any locality.
fn spread(i: usize) -> usize {
    i.wrapping_mul(7919) % PRESENT
}

/// What a row of [`rows`] does.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Get,
    Put,
}

/// For every backend and number of callers: the driver floor's row, the raw path's row
/// and coffer's row compared with it.
fn rows(
    group: &mut crate::report::Group<'_>,
    backends: &[Backend],
    kind: Kind,
    rt: &tokio::runtime::Runtime,
) {
    for backend in backends {
        for callers in CALLERS {
            if let Some((label, floor)) = &backend.floor {
                let floor = Arc::clone(floor);
                let op: Op = Arc::new(move |i| {
                    let floor = Arc::clone(&floor);
                    async move {
                        let name = name_of(spread(i));
                        match kind {
                            Kind::Get => drop(black_box(floor.get(i, &name).await)),
                            Kind::Put => floor.put(i, &name).await,
                        }
                    }
                    .boxed()
                });
                group.row_concurrent(label, callers, None, rt, op);
            }
            let baseline = backend.raw.as_ref().map(|(label, raw)| {
                let raw = Arc::clone(raw);
                let op: Op = Arc::new(move |i| {
                    let raw = Arc::clone(&raw);
                    async move {
                        let name = name_of(spread(i));
                        match kind {
                            Kind::Get => drop(black_box(raw.get(&name).await)),
                            Kind::Put => raw.put(&name).await,
                        }
                    }
                    .boxed()
                });
                group.row_concurrent(label, callers, None, rt, op);
                *label
            });
            let store = Arc::clone(&backend.store);
            let op: Op = Arc::new(move |i| {
                let store = Arc::clone(&store);
                async move {
                    let (scope, name) = (scope(), name_of(spread(i)));
                    match kind {
                        Kind::Get => drop(black_box(
                            store.get(&scope, &name, None).await.expect("get"),
                        )),
                        Kind::Put => drop(black_box(
                            store
                                .put(&scope, &name, &NEW_VALUE.into(), &PutOptions::new())
                                .await
                                .expect("put"),
                        )),
                    }
                }
                .boxed()
            });
            group.row_concurrent(backend.label, callers, baseline, rt, op);
        }
    }
}
