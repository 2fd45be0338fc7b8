//! The layers over the SQL stores: the conformance suite through each layer on SQLite,
//! the `secret_access_log` sink on SQLite and Postgres, cross-instance cache
//! invalidation over Postgres notifications, and key rotation of 10,000 secrets.
#![cfg(all(feature = "sqlite", feature = "postgres"))]

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use coffer_envelope::{Keyring, MasterKey};
use coffer_sql::{AuditDurability, AuditQuery, PgOptions, SqlAuditSink, SqlStore, SqliteStore};
use coffer_store::layer::*;
use coffer_store::{DynSecretStore, Error, PutOptions, SecretStore, SecretStoreExt as _};
use coffer_testkit::postgres::TestDatabase;
use coffer_testkit::{name as n, scope as s};
use secrecy::{ExposeSecret as _, SecretString};

fn value(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

async fn sqlite() -> SqliteStore {
    let dir = tempfile::tempdir().unwrap();
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    let store = SqliteStore::open(&dir.path().join("secrets.db"), keyring)
        .await
        .unwrap();
    // The folder lives as long as the test process.
    std::mem::forget(dir);
    store
}

coffer_testkit::layer_conformance_tests!(sqlite(), |store: &SqliteStore| {
    vec![Arc::new(SqlAuditSink::sqlite(store)) as Arc<dyn AuditSink>]
});

async fn audit_trail(store: Arc<DynSecretStore>, sink: SqlAuditSink) {
    let audited = AuditStore::new(Arc::clone(&store), vec![Arc::new(sink.clone())]);
    let (t, k) = (s("tenant-a"), n("openai_api_key"));
    let canary = "sk-audit-canary-5521907";
    let ctx = CallerContext::new()
        .actor("user:7")
        .workflow_id("wf-1")
        .node_id("llm")
        .ip("::1".parse().unwrap())
        .user_agent("test/1");
    ctx.clone()
        .scope(async {
            audited
                .put(&t, &k, &value(canary), &PutOptions::new())
                .await
                .unwrap();
            audited.get(&t, &k, None).await.unwrap();
            audited.get(&t, &n("other"), None).await.unwrap_err();
        })
        .await;
    audited
        .put(&s("tenant-b"), &k, &value("x"), &PutOptions::new())
        .await
        .unwrap();

    let events = sink
        .query(&AuditQuery::new().scope(t.clone()).name(k.clone()))
        .await
        .unwrap();
    let ops: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.operation.as_str(), e.outcome.as_str()))
        .collect();
    assert_eq!(
        ops,
        [("get", "ok"), ("put", "ok"), ("put", "attempt")],
        "newest first"
    );
    assert_eq!(events[0].context, ctx);
    assert_eq!(events[0].version, Some(1));
    let missing = sink
        .query(&AuditQuery::new().scope(t.clone()).name(n("other")))
        .await
        .unwrap();
    assert_eq!(missing[0].error_kind.as_deref(), Some("not_found"));
    assert_eq!(sink.query(&AuditQuery::new()).await.unwrap().len(), 6);
    assert_eq!(
        sink.query(&AuditQuery::new().limit(2)).await.unwrap().len(),
        2
    );
    assert_eq!(
        sink.query(&AuditQuery::new().scope(s("tenant-b")))
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        sink.prune(chrono::Utc::now() + chrono::Duration::seconds(1))
            .await
            .unwrap(),
        6
    );
}

#[tokio::test]
async fn the_access_log_on_sqlite() {
    let store = sqlite().await;
    let sink = SqlAuditSink::sqlite(&store);
    let pool = store.pool().clone();
    audit_trail(Arc::new(store.clone()), sink.clone()).await;

    // Fail-closed: without its table nothing is returned.
    let audited = AuditStore::new(store.clone(), vec![Arc::new(sink)]);
    store
        .put(
            &s("t"),
            &n("k"),
            &value("still-secret-99"),
            &PutOptions::new(),
        )
        .await
        .unwrap();
    sqlx::query("DROP TABLE secret_access_log")
        .execute(&pool)
        .await
        .unwrap();
    let err = audited.get(&s("t"), &n("k"), None).await.unwrap_err();
    assert!(matches!(err, Error::Audit { .. }), "{err}");
    assert!(!err.to_string().contains("still-secret-99"));
}

#[tokio::test]
async fn the_access_log_on_postgres_holds_no_value() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = db.store(PgOptions::new()).await;
    let sink = SqlAuditSink::postgres(&store);
    audit_trail(Arc::new(store.clone()), sink.clone()).await;
    let audited = AuditStore::new(store.clone(), vec![Arc::new(sink)]);
    audited
        .put(
            &s("t"),
            &n("k"),
            &value("pg-canary-771"),
            &PutOptions::new(),
        )
        .await
        .unwrap();
    let dump: Vec<(String,)> =
        sqlx::query_as("SELECT row_to_json(l)::text FROM secret_access_log l")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(dump.len(), 2);
    assert!(dump.iter().all(|(row,)| !row.contains("pg-canary-771")));
}

#[tokio::test]
async fn usage_lands_in_the_sql_stores() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    let stores: Vec<Arc<DynSecretStore>> = vec![
        Arc::new(sqlite().await),
        Arc::new(db.store_with(Arc::clone(&keyring), PgOptions::new()).await),
        Arc::new(
            db.store_with(keyring, PgOptions::new().row_level_security(true))
                .await,
        ),
    ];
    for (i, store) in stores.into_iter().enumerate() {
        let t = s(&format!("usage-{i}"));
        store
            .put(&t, &n("k"), &value("v"), &PutOptions::new())
            .await
            .unwrap();
        let layer = UsageStore::new(
            Arc::clone(&store),
            UsageOptions::new().interval(Duration::from_secs(3600)),
        );
        for _ in 0..7 {
            layer.get(&t, &n("k"), None).await.unwrap();
        }
        layer.flush().await.unwrap();
        let meta = store.metadata(&t, &n("k")).await.unwrap();
        assert_eq!((meta.usage_count, meta.version), (7, 1), "store {i}");
        assert!(meta.last_used_at.is_some());
    }
}

#[tokio::test]
async fn a_write_on_one_instance_drops_the_cached_entry_on_the_other() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    let pg_a = db.store_with(Arc::clone(&keyring), PgOptions::new()).await;
    let pg_b = db.store_with(Arc::clone(&keyring), PgOptions::new()).await;
    let a = CacheStore::new(pg_a.clone(), CacheOptions::new());
    let b = CacheStore::new(pg_b.clone(), CacheOptions::new());
    a.follow(pg_a.watch().await.unwrap());
    b.follow(pg_b.watch().await.unwrap());
    let (t, k) = (s("t"), n("shared"));

    for round in 0..20 {
        let v = format!("v{round}");
        a.put(&t, &k, &value(&v), &PutOptions::new()).await.unwrap();
        // B's entry (TTL five minutes) goes within a second of the commit.
        within_a_second(&b, &t, &k, &v).await;
        assert_eq!(b.get(&t, &k, None).await.unwrap().value.expose_secret(), v);
    }
    let hits = b.stats().hits;
    b.get(&t, &k, None).await.unwrap();
    assert_eq!(b.stats().hits, hits + 1, "B still caches between writes");

    // Break B's notification connection: the cache stops trusting itself, then resumes.
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(pg_a.pool())
    .await
    .unwrap();
    assert!(!killed.is_empty());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(b.is_following() && a.is_following()) || b.stats().invalidations == 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.put(&t, &k, &value("after-reconnect"), &PutOptions::new())
        .await
        .unwrap();
    within_a_second(&b, &t, &k, "after-reconnect").await;
}

async fn within_a_second(
    cache: &CacheStore<coffer_sql::PgStore>,
    t: &coffer_store::Scope,
    k: &coffer_store::SecretName,
    expected: &str,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        if cache.get(t, k, None).await.unwrap().value.expose_secret() == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other instance still serves the old value after a second"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ------------------------------------------------------------------ rotation at scale

const SECRETS: usize = 10_000;
/// What a rotation moves: each secret's envelope and its head's MAC.
const ITEMS: i64 = 2 * SECRETS as i64;

struct Rotation {
    /// Sealed under key 1.
    before: Arc<DynSecretStore>,
    /// Keys 1 and 2, primary 2.
    after: Arc<DynSecretStore>,
    /// Key 2 alone.
    only_new: Arc<DynSecretStore>,
    /// Envelopes and head MACs not under key 2.
    remaining: Box<dyn Fn() -> futures::future::BoxFuture<'static, i64>>,
}

fn keyrings() -> (Arc<Keyring>, Arc<Keyring>, Arc<Keyring>) {
    let (k1, k2) = (MasterKey::generate(), MasterKey::generate());
    let before = Keyring::from_keys([(1, k1.clone())], 1).unwrap();
    let after = Keyring::from_keys([(1, k1), (2, k2.clone())], 2).unwrap();
    let only_new = Keyring::from_keys([(2, k2)], 2).unwrap();
    (Arc::new(before), Arc::new(after), Arc::new(only_new))
}

async fn rotate_at_scale(r: Rotation) {
    let t = s("rotation");
    // 10,000 secrets under key 1.
    let names: Vec<String> = (0..SECRETS).map(|i| format!("s{i:05}")).collect();
    futures::stream::iter(names.iter().enumerate())
        .for_each_concurrent(8, |(i, name)| {
            let (store, t) = (Arc::clone(&r.before), t.clone());
            async move {
                store
                    .put(
                        &t,
                        &n(name),
                        &value(&format!("value-{i}")),
                        &PutOptions::new(),
                    )
                    .await
                    .unwrap();
            }
        })
        .await;
    assert_eq!((r.remaining)().await, ITEMS);

    // Rewrap, with writers busy, and kill it half-way.
    let (half_tx, half_rx) = tokio::sync::oneshot::channel();
    let mut half_tx = Some(half_tx);
    let rewrap = {
        let after = Arc::clone(&r.after);
        tokio::spawn(async move {
            after
                .rewrap_all(200, &mut |done, _total| {
                    if done >= (ITEMS / 2) as u64
                        && let Some(tx) = half_tx.take()
                    {
                        let _ = tx.send(());
                    }
                })
                .await
        })
    };
    let writer = {
        let (after, t) = (Arc::clone(&r.after), t.clone());
        tokio::spawn(async move {
            let mut written = BTreeMap::new();
            for i in (0..SECRETS).step_by(37) {
                let name = format!("s{i:05}");
                let v = format!("updated-{i}");
                // Check-and-set on version 1: each lands exactly once.
                after
                    .put(&t, &n(&name), &value(&v), &PutOptions::if_version(1))
                    .await
                    .unwrap();
                written.insert(name, v);
            }
            written
        })
    };
    half_rx.await.unwrap();
    rewrap.abort();
    assert!(rewrap.await.unwrap_err().is_cancelled());
    let left = (r.remaining)().await;
    assert!(left > 0 && left < ITEMS, "killed half-way: {left} left");
    let written = writer.await.unwrap();

    // Run again: it picks up where it stopped.
    let mut last = (0, 0);
    let again = r
        .after
        .rewrap_all(500, &mut |done, total| last = (done, total))
        .await
        .unwrap()
        .moved();
    assert!(again > 0 && again <= left as u64);
    assert_eq!(last.0, last.1);
    assert_eq!((r.remaining)().await, 0);

    // Every secret, every version, opens under key 2 alone; none lost, none overwritten.
    let all = r.only_new.list_all(&t, None).await.unwrap();
    assert_eq!(all.len(), SECRETS);
    futures::stream::iter(all)
        .for_each_concurrent(8, |meta| {
            let (store, t, written) = (Arc::clone(&r.only_new), t.clone(), &written);
            async move {
                let i: usize = meta.name.as_str()[1..].parse().unwrap();
                let got = store.get(&t, &meta.name, None).await.unwrap();
                assert_eq!(got.meta.key_id, Some(2));
                match written.get(meta.name.as_str()) {
                    Some(v) => {
                        assert_eq!(got.value.expose_secret(), v);
                        let first = store.get(&t, &meta.name, Some(1)).await.unwrap();
                        assert_eq!(first.value.expose_secret(), format!("value-{i}"));
                    }
                    None => assert_eq!(got.value.expose_secret(), format!("value-{i}")),
                }
            }
        })
        .await;
}

use futures::StreamExt as _;

/// [`rotate_at_scale`] on three instances of one SQL store.
async fn rotate_sql_at_scale<D: coffer_sql::Dialect>(
    before: SqlStore<D>,
    after: SqlStore<D>,
    only_new: SqlStore<D>,
) {
    let counter = after.clone();
    rotate_at_scale(Rotation {
        before: Arc::new(before),
        after: Arc::new(after),
        only_new: Arc::new(only_new),
        remaining: Box::new(move || {
            let counter = counter.clone();
            Box::pin(async move { counter.pending_rewrap().await.unwrap() as i64 })
        }),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrap_all_of_10k_secrets_on_sqlite_survives_a_kill_and_concurrent_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.db");
    let (before, after, only_new) = keyrings();
    rotate_sql_at_scale(
        SqliteStore::open(&path, before).await.unwrap(),
        SqliteStore::open(&path, after).await.unwrap(),
        SqliteStore::open(&path, only_new).await.unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrap_all_of_10k_secrets_on_postgres_survives_a_kill_and_concurrent_writes() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let (before, after, only_new) = keyrings();
    rotate_sql_at_scale(
        db.store_with(before, PgOptions::new()).await,
        db.store_with(after, PgOptions::new()).await,
        db.store_with(only_new, PgOptions::new()).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_stacks_over_a_failing_sqlite_store_answer_acknowledged_values() {
    use coffer_testkit::FaultyStore;
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let faulty = |store: SqliteStore| FaultyStore::new(store).with_failure_rate(0.2);
    let store = sqlite().await;
    let sink = SqlAuditSink::sqlite(&store);
    let full = RateLimitStore::per_second(
        AuditStore::new(
            UsageStore::new(
                CacheStore::new(faulty(store), CacheOptions::new()),
                UsageOptions::new().max_pending(3),
            ),
            vec![Arc::new(sink)],
        ),
        NonZeroU32::new(1_000_000).unwrap(),
    );
    coffer_testkit::acknowledged_values("sqlite full stack", &full, seed, 10_000).await;
    let stale = CacheStore::new(
        faulty(sqlite().await),
        CacheOptions::new()
            .ttl(Duration::from_millis(1))
            .stale_if_error(Duration::from_secs(60)),
    );
    coffer_testkit::acknowledged_values("sqlite stale cache", &stale, seed, 10_000).await;
}

/// 64 audited reads at once: each returns only after its event is committed, every
/// event is in the log once with its caller, and the events share commits (one writer
/// per sink). Then the writer's own connection is ended by the server: the next read
/// is still audited (the batch is written again on a new connection).
async fn concurrent_events(store: Arc<DynSecretStore>, sink: SqlAuditSink) {
    let audited = Arc::new(AuditStore::new(
        Arc::clone(&store),
        vec![Arc::new(sink.clone())],
    ));
    let t = s("group");
    store
        .put(&t, &n("k"), &value("v-group"), &PutOptions::new())
        .await
        .unwrap();
    let reads = (0..64).map(|i| {
        let audited = Arc::clone(&audited);
        tokio::spawn(
            CallerContext::new()
                .actor(format!("caller-{i:02}"))
                .scope(async move {
                    let got = audited.get(&s("group"), &n("k"), None).await.unwrap();
                    assert_eq!(got.value.expose_secret(), "v-group");
                }),
        )
    });
    for read in futures::future::join_all(reads).await {
        read.unwrap();
    }
    let events = sink
        .query(&AuditQuery::new().scope(t.clone()).limit(1000))
        .await
        .unwrap();
    let mut actors: Vec<String> = events
        .iter()
        .filter(|e| e.operation == Operation::Get)
        .map(|e| e.context.actor.clone().unwrap())
        .collect();
    actors.sort();
    let expected: Vec<String> = (0..64).map(|i| format!("caller-{i:02}")).collect();
    assert_eq!(actors, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_audited_reads_on_sqlite_are_each_committed() {
    let store = sqlite().await;
    let sink = SqlAuditSink::sqlite(&store);
    concurrent_events(Arc::new(store), sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_audited_reads_on_postgres_are_each_committed() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = db.store(PgOptions::new()).await;
    let sink = SqlAuditSink::postgres(&store);
    concurrent_events(Arc::new(store.clone()), sink.clone()).await;

    // One session writes the events.
    let (writers,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND query LIKE 'INSERT INTO secret_access_log%'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(writers, 1, "one writer connection");

    // End every session, the writer's too: the next audited read still lands.
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(store.pool())
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let audited = AuditStore::new(store.clone(), vec![Arc::new(sink.clone())]);
    CallerContext::new()
        .actor("after-terminate")
        .scope(async {
            audited.get(&s("group"), &n("k"), None).await.unwrap();
        })
        .await;
    let events = sink
        .query(&AuditQuery::new().scope(s("group")).limit(1))
        .await
        .unwrap();
    assert_eq!(events[0].context.actor.as_deref(), Some("after-terminate"));

    // Flushed durability writes the same rows, each caller waiting for the flush.
    let flushed = SqlAuditSink::postgres(&store).durability(AuditDurability::Flushed);
    let audited = AuditStore::new(store.clone(), vec![Arc::new(flushed.clone())]);
    audited.get(&s("group"), &n("k"), None).await.unwrap();
    assert_eq!(
        flushed
            .query(&AuditQuery::new().scope(s("group")).limit(1000))
            .await
            .unwrap()
            .len(),
        66
    );
}

/// A sink outlives the runtime its writer ran on: the next event, on another runtime,
/// starts a writer there.
#[test]
fn the_audit_writer_follows_the_runtime() {
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let (store, sink) = rt().block_on(async {
        let store = sqlite().await;
        let sink = SqlAuditSink::sqlite(&store);
        let audited = AuditStore::new(store.clone(), vec![Arc::new(sink.clone())]);
        audited
            .put(&s("t"), &n("k"), &value("v"), &PutOptions::new())
            .await
            .unwrap();
        (store, sink)
    });
    rt().block_on(async {
        let audited = AuditStore::new(store, vec![Arc::new(sink.clone())]);
        audited.get(&s("t"), &n("k"), None).await.unwrap();
        let events = sink.query(&AuditQuery::new()).await.unwrap();
        assert_eq!(events.len(), 3, "put attempt and outcome, get");
    });
}
