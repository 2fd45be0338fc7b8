//! What the store layers cost or save, 1,000 secrets present: a `CacheStore` hit beside
//! the store it caches, usage tracking and the SQL audit sink beside the plain store, and
//! `rewrap_all` throughput onto a new key.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_envelope::{Keyring, MasterKey};
use coffer_sql::{AuditDurability, PgOptions, SqlAuditSink, SqliteStore};
use coffer_store::layer::{AuditStore, CacheOptions, CacheStore, UsageOptions, UsageStore};
use coffer_store::{DynSecretStore, SecretStoreExt as _};
use coffer_testkit::postgres::TestDatabase;
use criterion::{Criterion, Throughput};
use futures::FutureExt as _;

use crate::report::Report;
use crate::store::{fill, name_of, next, scope};

const PRESENT: usize = 1_000;
const REWRAPPED: usize = 2_000;

/// One store and the layered stacks over it.
struct Stacks {
    plain: (&'static str, Arc<DynSecretStore>),
    cached: (&'static str, Arc<DynSecretStore>),
    layered: Vec<(&'static str, Arc<DynSecretStore>)>,
}

async fn stacks(dir: &std::path::Path, databases: &mut Vec<TestDatabase>) -> Vec<Stacks> {
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    let url = format!("sqlite://{}", dir.join("layers.db").display());
    let sqlite = SqliteStore::connect(&url, Arc::clone(&keyring))
        .await
        .expect("open SQLite");
    fill(&sqlite, PRESENT).await;
    let mut stacks = vec![Stacks {
        plain: ("SQLite", Arc::new(sqlite.clone())),
        cached: (
            "SQLite + CacheStore, hit",
            Arc::new(CacheStore::new(sqlite.clone(), CacheOptions::new())),
        ),
        layered: vec![
            (
                "SQLite + UsageStore",
                Arc::new(UsageStore::new(sqlite.clone(), UsageOptions::new())),
            ),
            (
                "SQLite + AuditStore, SQL sink",
                Arc::new(AuditStore::new(
                    sqlite.clone(),
                    vec![Arc::new(SqlAuditSink::sqlite(&sqlite))],
                )),
            ),
            (
                "SQLite + AuditStore, SQL sink, flushed",
                Arc::new(AuditStore::new(
                    sqlite.clone(),
                    vec![Arc::new(
                        SqlAuditSink::sqlite(&sqlite).durability(AuditDurability::Flushed),
                    )],
                )),
            ),
        ],
    }];
    if let Some(db) = TestDatabase::create().await {
        let pg = db.store_with(keyring, PgOptions::new()).await;
        fill(&pg, PRESENT).await;
        stacks.push(Stacks {
            plain: ("Postgres", Arc::new(pg.clone())),
            cached: (
                "Postgres + CacheStore, hit",
                Arc::new(CacheStore::new(pg.clone(), CacheOptions::new())),
            ),
            layered: vec![
                (
                    "Postgres + UsageStore",
                    Arc::new(UsageStore::new(pg.clone(), UsageOptions::new())),
                ),
                (
                    "Postgres + AuditStore, SQL sink",
                    Arc::new(AuditStore::new(
                        pg.clone(),
                        vec![Arc::new(SqlAuditSink::postgres(&pg))],
                    )),
                ),
                (
                    "Postgres + AuditStore, SQL sink, flushed",
                    Arc::new(AuditStore::new(
                        pg.clone(),
                        vec![Arc::new(
                            SqlAuditSink::postgres(&pg).durability(AuditDurability::Flushed),
                        )],
                    )),
                ),
            ],
        });
        databases.push(db);
    } else {
        eprintln!("COFFER_TEST_POSTGRES_URL is not set: skipping the Postgres rows");
    }
    stacks
}

/// One row reading the `PRESENT` secrets in turn from `store`.
fn get_row(
    group: &mut crate::report::Group<'_>,
    rt: &tokio::runtime::Runtime,
    (label, store): &(&'static str, Arc<DynSecretStore>),
    baseline: Option<&str>,
) {
    let scope = scope();
    let mut i = 0;
    group.row(label, baseline, |b| {
        b.to_async(rt).iter(|| {
            let (store, scope, name) = (store, &scope, name_of(next(&mut i, PRESENT)));
            async move { black_box(store.get(scope, &name, None).await.expect("get")) }
        });
    });
}

/// One row reading the `PRESENT` secrets from `store` at `callers` concurrent callers.
fn concurrent_get_row(
    group: &mut crate::report::Group<'_>,
    rt: &tokio::runtime::Runtime,
    (label, store): &(&'static str, Arc<DynSecretStore>),
    callers: usize,
    baseline: Option<&str>,
) {
    let store = Arc::clone(store);
    let op: crate::report::Op = Arc::new(move |i| {
        let store = Arc::clone(&store);
        async move {
            let name = name_of(i.wrapping_mul(7919) % PRESENT);
            black_box(store.get(&scope(), &name, None).await.expect("get"));
        }
        .boxed()
    });
    group.row_concurrent(label, callers, baseline, rt, op);
}

fn gets(c: &mut Criterion, report: &mut Report, rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut databases = Vec::new();
    let stacks = rt.block_on(stacks(dir.path(), &mut databases));

    let mut group = report.group(
        c,
        "cache hit",
        "Reading one secret of 1,000, all of them cached: a CacheStore hit (which still \
         checks expiry and the generation stripes) beside a read from the store below it.",
    );
    for stack in &stacks {
        get_row(&mut group, rt, &stack.plain, None);
        // Warm the cache before its row is measured.
        rt.block_on(async {
            for i in 0..PRESENT {
                stack
                    .cached
                    .1
                    .get(&scope(), &name_of(i), None)
                    .await
                    .expect("warm");
            }
        });
        get_row(&mut group, rt, &stack.cached, Some(stack.plain.0));
    }
    group.finish();

    let mut group = report.group(
        c,
        "layers",
        "The same read at 1 and 16 concurrent callers through usage tracking (counts \
         batched in memory) and through the audit layer with its SQL sink, beside the plain \
         store. The sink commits each read's event before the value is returned, sharing \
         one commit among the events that arrive together (group commit); by default a \
         commit is not flushed to disk per event (SQLite `synchronous = NORMAL`, Postgres \
         `synchronous_commit = off` on the writer's connection), `flushed` waits for the \
         flush. Figures as for store get.",
    );
    group.brief().throughput(Throughput::Elements(1));
    for stack in &stacks {
        for callers in [1, 16] {
            concurrent_get_row(&mut group, rt, &stack.plain, callers, None);
            for layered in &stack.layered {
                concurrent_get_row(&mut group, rt, layered, callers, Some(stack.plain.0));
            }
        }
    }
    group.finish();
    drop(stacks);
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
        let done = store
            .rewrap_all(500, &mut |_, _| {})
            .await
            .expect("rewrap")
            .rewrapped;
        total += start.elapsed();
        assert_eq!(done, REWRAPPED as u64, "every envelope rewrapped");
    }
    total
}

fn rewraps(c: &mut Criterion, report: &mut Report, rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("rewrap.db").display());
    let first = Keyring::new(MasterKey::generate());
    let database = rt.block_on(TestDatabase::create());

    let mut group = report.group(
        c,
        "rewrap_all",
        "Key rotation: every envelope of 2,000 secrets opened with the old key and sealed \
         again with a new one, in batches of 500, each batch one transaction.",
    );
    group.sample_size(10);
    group.throughput(Throughput::Elements(REWRAPPED as u64));

    let mut keyring = first.clone();
    rt.block_on(async {
        let store = SqliteStore::connect(&url, Arc::new(keyring.clone()))
            .await
            .expect("open SQLite");
        fill(&store, REWRAPPED).await;
    });
    group.row("SQLite", None, |b| {
        b.iter_custom(|iters| {
            rt.block_on(rewrap_runs(iters, &mut keyring, |k| {
                let url = url.clone();
                async move {
                    Arc::new(SqliteStore::connect(&url, k).await.expect("open SQLite"))
                        as Arc<DynSecretStore>
                }
            }))
        });
    });

    if let Some(db) = &database {
        let mut keyring = first;
        rt.block_on(async {
            let store = db
                .store_with(Arc::new(keyring.clone()), PgOptions::new())
                .await;
            fill(&store, REWRAPPED).await;
        });
        group.row("Postgres", None, |b| {
            b.iter_custom(|iters| {
                rt.block_on(rewrap_runs(iters, &mut keyring, |k| async move {
                    Arc::new(db.store_with(k, PgOptions::new()).await) as Arc<DynSecretStore>
                }))
            });
        });
    }
    group.finish();
    drop(database);
}

pub(crate) fn bench(c: &mut Criterion, report: &mut Report, rt: &tokio::runtime::Runtime) {
    gets(c, report, rt);
    rewraps(c, report, rt);
}
