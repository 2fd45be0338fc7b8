//! What the store layers cost, side by side in one run (1,000 secrets present):
//!
//! - `layers/get`: a SQLite get plain, through a cache hit, with usage tracking and with
//!   the SQL audit sink; a Postgres get plain and with the SQL audit sink; a memory get
//!   for scale.
//! - `layers/rewrap_all`: secrets rewrapped per second onto a new key, SQLite and
//!   Postgres, 2,000 secrets per run.
//!
//! The Postgres rows need `COFFER_TEST_POSTGRES_URL` (scripts/services.sh sets it).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer::sql::{PgOptions, SqlAuditSink, SqliteStore, testing::TestDatabase};
use coffer::store::layer::{AuditLayer, CacheLayer, CacheOptions, UsageLayer, UsageOptions};
use coffer::{
    DynSecretStore, Keyring, MasterKey, PutOptions, Scope, SecretName, SecretStore,
    SecretStoreExt as _,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt as _;

const PRESENT: usize = 1_000;
const REWRAPPED: usize = 2_000;

fn name_of(i: usize) -> SecretName {
    SecretName::new(format!("key-{i:05}")).unwrap()
}

async fn fill(store: &DynSecretStore, count: usize) {
    let scope = Scope::new("bench").unwrap();
    futures::stream::iter(0..count)
        .for_each_concurrent(16, |i| {
            let scope = scope.clone();
            async move {
                let value = format!("sk-bench-{i:05}-{}", "x".repeat(40)).into();
                store
                    .put(&scope, &name_of(i), &value, &PutOptions::new())
                    .await
                    .unwrap();
            }
        })
        .await;
}

fn gets(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    let mut databases = Vec::new();
    let rows: Vec<(&str, Arc<DynSecretStore>)> = rt.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let sqlite = SqliteStore::connect(&url, Arc::clone(&keyring))
            .await
            .unwrap();
        fill(&sqlite, PRESENT).await;
        let memory = coffer::store::MemoryStore::new();
        fill(&memory, PRESENT).await;
        let mut rows: Vec<(&str, Arc<DynSecretStore>)> = vec![
            ("memory", Arc::new(memory)),
            ("sqlite", Arc::new(sqlite.clone())),
            (
                "sqlite+cache-hit",
                Arc::new(CacheLayer::new(sqlite.clone(), CacheOptions::new())),
            ),
            (
                "sqlite+usage",
                Arc::new(UsageLayer::new(sqlite.clone(), UsageOptions::new())),
            ),
            (
                "sqlite+audit-sql",
                Arc::new(AuditLayer::new(
                    sqlite.clone(),
                    vec![Arc::new(SqlAuditSink::sqlite(&sqlite))],
                )),
            ),
        ];
        if std::env::var_os("COFFER_TEST_POSTGRES_URL").is_some() {
            let db = TestDatabase::create().await.unwrap();
            let pg = db.store_with(Arc::clone(&keyring), PgOptions::new()).await;
            fill(&pg, PRESENT).await;
            rows.push(("postgres", Arc::new(pg.clone())));
            rows.push((
                "postgres+audit-sql",
                Arc::new(AuditLayer::new(
                    pg.clone(),
                    vec![Arc::new(SqlAuditSink::postgres(&pg))],
                )),
            ));
            databases.push(db);
        } else {
            eprintln!("COFFER_TEST_POSTGRES_URL is not set: skipping the Postgres rows");
        }
        rows
    });
    let scope = Scope::new("bench").unwrap();
    let mut group = c.benchmark_group("layers/get");
    for (label, store) in &rows {
        let mut i = 0usize;
        group.bench_function(*label, |b| {
            b.to_async(rt).iter(|| {
                // The cache row reads one hot secret; the others walk all of them.
                i = if label.contains("cache") {
                    0
                } else {
                    (i + 7) % PRESENT
                };
                let (store, scope, name) = (Arc::clone(store), scope.clone(), name_of(i));
                async move { black_box(store.get(&scope, &name, None).await.unwrap()) }
            });
        });
    }
    group.finish();
    drop(rows);
    drop(databases);
}

/// Times `rewrap_all` of every envelope onto a fresh key, `iters` times.
async fn rewrap_runs<F, Fut>(iters: u64, keyring: &mut Keyring, open: F) -> Duration
where
    F: Fn(Arc<Keyring>) -> Fut,
    Fut: std::future::Future<Output = Arc<DynSecretStore>>,
{
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        keyring.rotate();
        let store = open(Arc::new(keyring.clone())).await;
        let start = Instant::now();
        let done = store.rewrap_all(500, &mut |_, _| {}).await.unwrap();
        total += start.elapsed();
        assert_eq!(done, REWRAPPED as u64);
    }
    total
}

fn rewraps(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rewrap.db").display());
    let first = Keyring::new(MasterKey::generate());
    let mut group = c.benchmark_group("layers/rewrap_all");
    group.sample_size(10);
    group.throughput(Throughput::Elements(REWRAPPED as u64));

    let mut keyring = first.clone();
    rt.block_on(async {
        let store = SqliteStore::connect(&url, Arc::new(keyring.clone()))
            .await
            .unwrap();
        fill(&store, REWRAPPED).await;
    });
    group.bench_function("sqlite", |b| {
        b.iter_custom(|iters| {
            rt.block_on(rewrap_runs(iters, &mut keyring, |k| {
                let url = url.clone();
                async move {
                    Arc::new(SqliteStore::connect(&url, k).await.unwrap()) as Arc<DynSecretStore>
                }
            }))
        });
    });

    if std::env::var_os("COFFER_TEST_POSTGRES_URL").is_some() {
        let db = rt.block_on(TestDatabase::create()).unwrap();
        let mut keyring = first;
        rt.block_on(async {
            let store = db
                .store_with(Arc::new(keyring.clone()), PgOptions::new())
                .await;
            fill(&store, REWRAPPED).await;
        });
        group.bench_function("postgres", |b| {
            b.iter_custom(|iters| {
                rt.block_on(rewrap_runs(iters, &mut keyring, |k| {
                    let db = &db;
                    async move {
                        Arc::new(db.store_with(k, PgOptions::new()).await) as Arc<DynSecretStore>
                    }
                }))
            });
        });
        group.finish();
        drop(db);
    } else {
        group.finish();
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    gets(c, &rt);
    rewraps(c, &rt);
}

criterion_group!(benches, bench);
criterion_main!(benches);
