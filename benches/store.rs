//! Store get and put with 10,000 secrets present: memory and SQLite side by side, one
//! run, beside a raw sqlx `SELECT` of the same row by primary key on the same pool (the
//! ratio shows what coffer adds: the head row join, metadata decoding and the envelope).

use std::hint::black_box;
use std::sync::Arc;

use coffer::{DynSecretStore, Keyring, MasterKey, OpenOptions, PutOptions, Scope, SecretName};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const PRESENT: usize = 10_000;

async fn filled(url: &str, keyring: Arc<Keyring>) -> Arc<DynSecretStore> {
    let store = coffer::open(url, &OpenOptions::new().keyring(keyring))
        .await
        .unwrap();
    let scope = Scope::new("bench").unwrap();
    for i in 0..PRESENT {
        let name = SecretName::new(format!("key-{i:05}")).unwrap();
        store
            .put(
                &scope,
                &name,
                &format!("sk-bench-{i:05}-{}", "x".repeat(40)).into(),
                &PutOptions::new(),
            )
            .await
            .unwrap();
    }
    store
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    let sqlite_url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let stores: Vec<(&str, Arc<DynSecretStore>)> = rt.block_on(async {
        vec![
            ("memory", filled("memory://", keyring.clone()).await),
            ("sqlite", filled(&sqlite_url, keyring.clone()).await),
        ]
    });
    // A second handle on the same file for the raw query.
    let raw_pool = rt.block_on(async {
        coffer::sql::SqliteStore::connect(&sqlite_url, keyring.clone())
            .await
            .unwrap()
            .pool()
            .clone()
    });
    let scope = Scope::new("bench").unwrap();
    let value = "sk-bench-new-value-0123456789abcdef".into();

    let mut get = c.benchmark_group("store-get");
    for (backend, store) in &stores {
        let mut i = 0usize;
        get.bench_function(BenchmarkId::new(*backend, "10k-present"), |b| {
            b.to_async(&rt).iter(|| {
                i = (i + 7919) % PRESENT;
                let name = SecretName::new(format!("key-{i:05}")).unwrap();
                let store = store.clone();
                let scope = scope.clone();
                async move { black_box(store.get(&scope, &name, None).await.unwrap()) }
            });
        });
    }
    let mut i = 0usize;
    get.bench_function(BenchmarkId::new("sqlite-raw-select", "10k-present"), |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 7919) % PRESENT;
            let name = format!("key-{i:05}");
            let pool = raw_pool.clone();
            async move {
                let row: (Vec<u8>,) = sqlx::query_as(
                    "SELECT ciphertext FROM coffer_secret_versions WHERE scope = $1 AND name = $2 AND version = 1",
                )
                .bind("bench")
                .bind(name)
                .fetch_one(&pool)
                .await
                .unwrap();
                black_box(row)
            }
        });
    });
    get.finish();

    let mut put = c.benchmark_group("store-put");
    put.sample_size(30);
    for (backend, store) in &stores {
        let mut i = 0usize;
        put.bench_function(BenchmarkId::new(*backend, "10k-present"), |b| {
            b.to_async(&rt).iter(|| {
                i = (i + 7919) % PRESENT;
                let name = SecretName::new(format!("key-{i:05}")).unwrap();
                let store = store.clone();
                let scope = scope.clone();
                let value = &value;
                async move {
                    black_box(
                        store
                            .put(&scope, &name, value, &PutOptions::new())
                            .await
                            .unwrap(),
                    )
                }
            });
        });
    }
    put.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
