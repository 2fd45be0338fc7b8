//! Store get and put with 10,000 secrets present, side by side in one run: memory,
//! SQLite, Postgres and Supabase Vault (compatibility schema), each SQL store beside a raw
//! sqlx `SELECT` by key on the same table, so the ratio shows what coffer adds (head row
//! join, metadata decoding, the envelope), and coffer's Vault store beside raw HTTP
//! GET/POST of the same KV v2 paths with a keep-alive client. The Postgres rows need
//! `COFFER_TEST_POSTGRES_URL`, the Vault rows `COFFER_TEST_VAULT_ADDR` and
//! `COFFER_TEST_VAULT_TOKEN` (scripts/services.sh sets them); without them they are skipped.

use std::hint::black_box;
use std::sync::Arc;

use coffer::{DynSecretStore, Keyring, MasterKey, OpenOptions, PutOptions, Scope, SecretName};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use futures::StreamExt as _;

const PRESENT: usize = 10_000;
/// The same row a store get reads, by primary key, on both SQL dialects.
const RAW_SELECT: &str =
    "SELECT ciphertext FROM coffer_secret_versions WHERE scope = $1 AND name = $2 AND version = 1";
const VAULT_FIXTURE: &str =
    include_str!("../crates/coffer-supabase/tests/fixtures/vault_compat.sql");

fn name_of(i: usize) -> String {
    format!("key-{i:05}")
}

async fn fill(store: &DynSecretStore) {
    let scope = Scope::new("bench").unwrap();
    futures::stream::iter(0..PRESENT)
        .map(|i| {
            let scope = scope.clone();
            async move {
                let name = SecretName::new(name_of(i)).unwrap();
                let value = format!("sk-bench-{i:05}-{}", "x".repeat(40)).into();
                store
                    .put(&scope, &name, &value, &PutOptions::new())
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
}

/// A raw query to compare with: the same row fetched with plain sqlx.
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
    Vault(sqlx::PgPool),
    Http(RawHttp),
}

/// A keep-alive HTTP client on the same KV v2 paths VaultStore uses.
struct RawHttp {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Raw {
    async fn fetch(&self, name: String) -> usize {
        match self {
            Raw::Sqlite(pool) => {
                let (ct,): (Vec<u8>,) = sqlx::query_as(RAW_SELECT)
                    .bind("bench")
                    .bind(name)
                    .fetch_one(pool)
                    .await
                    .unwrap();
                ct.len()
            }
            Raw::Postgres(pool) => {
                let (ct,): (Vec<u8>,) = sqlx::query_as(RAW_SELECT)
                    .bind("bench")
                    .bind(name)
                    .fetch_one(pool)
                    .await
                    .unwrap();
                ct.len()
            }
            Raw::Http(h) => {
                let body: serde_json::Value = h
                    .client
                    .get(format!("{}/coffer/bench/{name}", h.base))
                    .header("X-Vault-Token", &h.token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                body["data"]["data"]["value"].as_str().unwrap().len()
            }
            Raw::Vault(pool) => {
                let (v,): (String,) = sqlx::query_as(
                    "SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = $1",
                )
                .bind(format!("bench/{name}"))
                .fetch_one(pool)
                .await
                .unwrap();
                v.len()
            }
        }
    }
}

struct Backend {
    label: &'static str,
    store: Arc<DynSecretStore>,
    raw: Option<(&'static str, Raw)>,
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    // Throwaway databases, dropped at the end of the run.
    let mut databases = Vec::new();
    let backends: Vec<Backend> = rt.block_on(async {
        let mut backends = Vec::new();
        let memory = coffer::open("memory://", &OpenOptions::new())
            .await
            .unwrap();
        backends.push(Backend {
            label: "memory",
            store: memory,
            raw: None,
        });

        let sqlite_url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let sqlite = coffer::sql::SqliteStore::connect(&sqlite_url, keyring.clone())
            .await
            .unwrap();
        let raw = Raw::Sqlite(sqlite.pool().clone());
        backends.push(Backend {
            label: "sqlite",
            store: Arc::new(sqlite),
            raw: Some(("sqlite-raw-select", raw)),
        });

        if std::env::var_os("COFFER_TEST_POSTGRES_URL").is_some() {
            let db = coffer::sql::testing::TestDatabase::create().await.unwrap();
            let pg = db
                .store_with(keyring.clone(), coffer::sql::PgOptions::new())
                .await;
            let raw = Raw::Postgres(pg.pool().clone());
            backends.push(Backend {
                label: "postgres",
                store: Arc::new(pg),
                raw: Some(("postgres-raw-select", raw)),
            });
            databases.push(db);

            let db = coffer::sql::testing::TestDatabase::create().await.unwrap();
            let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
            sqlx::raw_sql(VAULT_FIXTURE).execute(&pool).await.unwrap();
            let vault =
                coffer::supabase::SupabaseVaultStore::from_pool(pool.clone(), Default::default())
                    .await
                    .unwrap();
            backends.push(Backend {
                label: "supabase",
                store: Arc::new(vault),
                raw: Some(("supabase-raw-select", Raw::Vault(pool))),
            });
            databases.push(db);
        } else {
            eprintln!(
                "COFFER_TEST_POSTGRES_URL is not set: skipping the Postgres and Supabase rows"
            );
        }
        if let (Ok(addr), Ok(token)) = (
            std::env::var("COFFER_TEST_VAULT_ADDR"),
            std::env::var("COFFER_TEST_VAULT_TOKEN"),
        ) {
            let client = reqwest::Client::new();
            let mount = format!("bench-{}", std::process::id());
            let enabled = client
                .post(format!("{addr}/v1/sys/mounts/{mount}"))
                .header("X-Vault-Token", &token)
                .json(&serde_json::json!({"type": "kv", "options": {"version": "2"}}))
                .send()
                .await
                .unwrap();
            assert!(
                enabled.status().is_success(),
                "enable the bench mount: {}",
                enabled.status()
            );
            let config = coffer::vault::VaultConfig::new(
                &addr,
                coffer::vault::Auth::Token(token.clone().into()),
            )
            .mount(&mount, coffer::vault::KvVersion::V2);
            let vault = coffer::vault::VaultStore::connect(config).await.unwrap();
            let raw = Raw::Http(RawHttp {
                client,
                base: format!("{addr}/v1/{mount}/data"),
                token,
            });
            backends.push(Backend {
                label: "vault",
                store: Arc::new(vault),
                raw: Some(("vault-raw-http-get", raw)),
            });
        } else {
            eprintln!("COFFER_TEST_VAULT_ADDR is not set: skipping the Vault rows");
        }
        for b in &backends {
            fill(&*b.store).await;
        }
        backends
    });
    let scope = Scope::new("bench").unwrap();
    let value = "sk-bench-new-value-0123456789abcdef".into();

    let mut get = c.benchmark_group("store-get");
    for backend in &backends {
        let mut i = 0usize;
        get.bench_function(BenchmarkId::new(backend.label, "10k-present"), |b| {
            b.to_async(&rt).iter(|| {
                i = (i + 7919) % PRESENT;
                let name = SecretName::new(name_of(i)).unwrap();
                let (store, scope) = (backend.store.clone(), scope.clone());
                async move { black_box(store.get(&scope, &name, None).await.unwrap()) }
            });
        });
        if let Some((label, raw)) = &backend.raw {
            let mut i = 0usize;
            get.bench_function(BenchmarkId::new(*label, "10k-present"), |b| {
                b.to_async(&rt).iter(|| {
                    i = (i + 7919) % PRESENT;
                    let name = name_of(i);
                    async move { black_box(raw.fetch(name).await) }
                });
            });
        }
    }
    get.finish();

    let mut put = c.benchmark_group("store-put");
    put.sample_size(20);
    for backend in &backends {
        let mut i = 0usize;
        put.bench_function(BenchmarkId::new(backend.label, "10k-present"), |b| {
            b.to_async(&rt).iter(|| {
                i = (i + 7919) % PRESENT;
                let name = SecretName::new(name_of(i)).unwrap();
                let (store, scope, value) = (backend.store.clone(), scope.clone(), &value);
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
        if let Some((_, Raw::Http(h))) = &backend.raw {
            let mut i = 0usize;
            put.bench_function(BenchmarkId::new("vault-raw-http-post", "10k-present"), |b| {
                b.to_async(&rt).iter(|| {
                    i = (i + 7919) % PRESENT;
                    let url = format!("{}/coffer/bench/{}", h.base, name_of(i));
                    async move {
                        let res = h
                            .client
                            .post(url)
                            .header("X-Vault-Token", &h.token)
                            .json(&serde_json::json!({"data": {"value": "sk-bench-new-value-0123456789abcdef"}}))
                            .send()
                            .await
                            .unwrap();
                        black_box(res.status())
                    }
                });
            });
        }
    }
    put.finish();
    drop(backends);
    drop(databases);
}

criterion_group!(benches, bench);
criterion_main!(benches);
