//! PgStore against the real Postgres (`COFFER_TEST_POSTGRES_URL`), each test in its own
//! throwaway database.

use std::sync::Arc;
use std::time::Duration;

use coffer_envelope::{Keyring, MasterKey};
use coffer_sql::{Change, PgOptions, PgStore, WatchEvent};
use coffer_store::{DeleteMode, Error, PutOptions, SecretStore};
use coffer_testkit::postgres::{PgTestStore, TestDatabase};
use futures::StreamExt as _;
use secrecy::ExposeSecret as _;

mod conformance {
    use super::*;
    coffer_testkit::conformance_tests!(PgTestStore::create(), 1000);
}

mod conformance_with_row_level_security {
    use super::*;
    coffer_testkit::conformance_tests!(
        PgTestStore::with_options(PgOptions::new().row_level_security(true)),
        50
    );
}

use coffer_testkit::{name as n, scope as s};

#[tokio::test]
async fn the_tables_hold_no_plaintext() {
    let Some(t) = PgTestStore::create().await else {
        return;
    };
    let canaries: Vec<String> = (0..20)
        .map(|i| format!("canary-plaintext-{i:03}-pg"))
        .collect();
    for (i, c) in canaries.iter().enumerate() {
        t.put(
            &s("tenant"),
            &n(&format!("k{i}")),
            &c.clone().into(),
            &PutOptions::new().description("d"),
        )
        .await
        .unwrap();
    }
    // Every column of every row, as text, with plain SQL.
    let dump: Vec<(String,)> = sqlx::query_as(
        "SELECT row_to_json(x)::text FROM coffer_secrets x \
         UNION ALL SELECT row_to_json(y)::text FROM coffer_secret_versions y",
    )
    .fetch_all(t.pool())
    .await
    .unwrap();
    assert_eq!(dump.len(), 40);
    let bytes: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT ciphertext FROM coffer_secret_versions")
        .fetch_all(t.pool())
        .await
        .unwrap();
    for c in &canaries {
        assert!(
            !dump.iter().any(|(row,)| row.contains(c.as_str())),
            "{c} in a row"
        );
        assert!(
            !bytes
                .iter()
                .any(|(b,)| b.windows(c.len()).any(|w| w == c.as_bytes())),
            "{c} in a ciphertext"
        );
    }
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_does_not_open() {
    let Some(t) = PgTestStore::create().await else {
        return;
    };
    let (a, b) = (s("tenant-a"), s("tenant-b"));
    t.put(&a, &n("key"), &"value-a1".into(), &PutOptions::new())
        .await
        .unwrap();
    t.put(&a, &n("key"), &"value-a2".into(), &PutOptions::new())
        .await
        .unwrap();
    t.put(&a, &n("other"), &"value-other".into(), &PutOptions::new())
        .await
        .unwrap();
    t.put(&b, &n("key"), &"value-b1".into(), &PutOptions::new())
        .await
        .unwrap();
    let copy = |from: (&'static str, &'static str, i64), to: (&'static str, &'static str, i64)| {
        let pool = t.pool().clone();
        async move {
            sqlx::query(
                "UPDATE coffer_secret_versions SET ciphertext = \
                 (SELECT ciphertext FROM coffer_secret_versions WHERE scope = $1 AND name = $2 AND version = $3) \
                 WHERE scope = $4 AND name = $5 AND version = $6",
            )
            .bind(from.0).bind(from.1).bind(from.2).bind(to.0).bind(to.1).bind(to.2)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    copy(("tenant-a", "key", 1), ("tenant-b", "key", 1)).await;
    assert!(
        matches!(t.get(&b, &n("key"), None).await, Err(Error::Crypto { .. })),
        "other tenant"
    );
    copy(("tenant-a", "key", 2), ("tenant-a", "other", 1)).await;
    assert!(
        matches!(
            t.get(&a, &n("other"), None).await,
            Err(Error::Crypto { .. })
        ),
        "other name"
    );
    copy(("tenant-a", "key", 1), ("tenant-a", "key", 2)).await;
    assert!(
        matches!(t.get(&a, &n("key"), None).await, Err(Error::Crypto { .. })),
        "other version"
    );
    assert_eq!(
        t.get(&a, &n("key"), Some(1))
            .await
            .unwrap()
            .value
            .expose_secret(),
        "value-a1"
    );
}

#[tokio::test]
async fn a_wrong_master_key_is_a_clear_error() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = db.store(PgOptions::new()).await;
    store
        .put(&s("t"), &n("k"), &"v".into(), &PutOptions::new())
        .await
        .unwrap();
    let wrong = Arc::new(Keyring::new(MasterKey::generate()));
    let err = PgStore::connect(db.url(), wrong).await.unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("not the key this store was sealed with"),
        "{err}"
    );
}

#[tokio::test]
async fn migrations_are_safe_from_several_processes_at_once() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    let opens = (0..6).map(|i| {
        let (url, keyring) = (db.url().to_owned(), keyring.clone());
        // Each with its own pool, as separate processes would be; half with RLS on.
        async move {
            let rls = i % 2 == 0;
            let connect = url.parse().unwrap();
            PgStore::connect_with(
                connect,
                keyring,
                PgOptions::new().row_level_security(rls).max_connections(2),
            )
            .await
        }
    });
    for result in futures::future::join_all(opens).await {
        result.unwrap();
    }
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _coffer_sql_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count();
    assert_eq!(applied, i64::try_from(shipped).unwrap());
}

/// Under a role that does not own the tables, with scope A set, a raw SELECT sees none
/// of scope B's rows; the store itself works under that role.
#[tokio::test]
async fn row_level_security_hides_other_scopes_from_a_non_owner_role() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let owner = db.store(PgOptions::new().row_level_security(true)).await;
    owner
        .put(
            &s("scope-a"),
            &n("k"),
            &"value-a".into(),
            &PutOptions::new(),
        )
        .await
        .unwrap();
    owner
        .put(
            &s("scope-b"),
            &n("k"),
            &"value-b".into(),
            &PutOptions::new(),
        )
        .await
        .unwrap();

    let role = format!("{}_app", db.name());
    for stmt in [
        format!("CREATE ROLE {role} LOGIN"),
        format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON coffer_secrets, coffer_secret_versions TO {role}"
        ),
        format!("GRANT SELECT, INSERT ON coffer_key_checks TO {role}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(stmt))
            .execute(owner.pool())
            .await
            .unwrap();
    }
    let mut app_url = url::Url::parse(db.url()).unwrap();
    app_url.set_username(&role).unwrap();
    let app_pool = sqlx::PgPool::connect(app_url.as_str()).await.unwrap();

    let mut tx = app_pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('coffer.scope', 'scope-a', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let scopes: Vec<(String,)> = sqlx::query_as("SELECT scope FROM coffer_secrets")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(scopes, vec![("scope-a".to_owned(),)]);
    let versions: Vec<(String,)> = sqlx::query_as("SELECT scope FROM coffer_secret_versions")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert!(versions.iter().all(|(s,)| s == "scope-a") && !versions.is_empty());
    // Writing into another scope is refused by the policy's check.
    let err = sqlx::query("UPDATE coffer_secrets SET scope = 'scope-b' WHERE scope = 'scope-a'")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    drop(tx);
    // No scope set: nothing at all.
    let none: Vec<(String,)> = sqlx::query_as("SELECT scope FROM coffer_secrets")
        .fetch_all(&app_pool)
        .await
        .unwrap();
    assert!(none.is_empty());

    // The store, connected as the application role, works scope by scope.
    let app = PgStore::from_pool(
        app_pool.clone(),
        owner.keyring().clone(),
        PgOptions::new().row_level_security(true).migrate(false),
    )
    .await
    .unwrap();
    assert_eq!(
        app.get(&s("scope-b"), &n("k"), None)
            .await
            .unwrap()
            .value
            .expose_secret(),
        "value-b"
    );
    app.put(
        &s("scope-c"),
        &n("k"),
        &"value-c".into(),
        &PutOptions::create_only(),
    )
    .await
    .unwrap();
    assert_eq!(
        app.get(&s("scope-c"), &n("k"), None)
            .await
            .unwrap()
            .value
            .expose_secret(),
        "value-c"
    );
    app_pool.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP OWNED BY {role}; DROP ROLE {role}"
    )))
    .execute(owner.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn every_write_is_notified_and_watch_survives_a_dropped_connection() {
    let Some(t) = PgTestStore::create().await else {
        return;
    };
    // A second instance on the same database, as another process would be.
    let other_instance = t.db.store_with(t.keyring().clone(), PgOptions::new()).await;
    let mut changes = Box::pin(other_instance.watch().await.unwrap());
    t.put(&s("t"), &n("k"), &"v1".into(), &PutOptions::new())
        .await
        .unwrap();
    let expected = |version, op: &str| {
        WatchEvent::Changed(Change {
            scope: s("t"),
            name: n("k"),
            version,
            op: serde_json::from_value(op.into()).unwrap(),
        })
    };
    assert_eq!(next(&mut changes).await, expected(1, "put"));
    t.put(&s("t"), &n("k"), &"v2".into(), &PutOptions::new())
        .await
        .unwrap();
    assert_eq!(next(&mut changes).await, expected(2, "put"));
    // A failed conditional write publishes nothing (the notification is transactional).
    t.put(&s("t"), &n("k"), &"v3".into(), &PutOptions::if_version(1))
        .await
        .unwrap_err();
    t.delete(&s("t"), &n("k"), DeleteMode::Soft).await.unwrap();
    assert_eq!(next(&mut changes).await, expected(0, "delete"));

    // Kill the listening connection from the server side.
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(t.pool())
    .await
    .unwrap();
    assert!(!killed.is_empty(), "found the listener");
    assert_eq!(next(&mut changes).await, WatchEvent::Disconnected);
    assert_eq!(next(&mut changes).await, WatchEvent::Reconnected);
    t.put(&s("t"), &n("k"), &"v4".into(), &PutOptions::new())
        .await
        .unwrap();
    assert_eq!(next(&mut changes).await, expected(3, "put"));
    // No payload ever carries a value.
    let payloads: Vec<String> = vec![
        serde_json::to_string(&Change {
            scope: s("t"),
            name: n("k"),
            version: 3,
            op: coffer_store::ChangeOp::Put,
        })
        .unwrap(),
    ];
    assert!(payloads.iter().all(|p| !p.contains("v4")));
}

async fn next(changes: &mut (impl futures::Stream<Item = WatchEvent> + Unpin)) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), changes.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream does not end")
}

#[tokio::test]
async fn opens_from_a_url_with_and_without_row_level_security() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    let options = coffer_store::open::OpenOptions::new().keyring(keyring.clone());
    let registry = coffer_store::open::Registry::new().with(coffer_sql::PgOpener);
    let store = registry.open(db.url(), &options).await.unwrap();
    assert_eq!(store.backend(), "postgres");
    coffer_testkit::put_numbered(&store, &s("t"), 0..3, |i| format!("v{i}")).await;
    let rls_url = format!("{}?row_level_security=true", db.url());
    let rls = registry
        .open(
            &rls_url,
            &coffer_store::open::OpenOptions::new().keyring(keyring),
        )
        .await
        .unwrap();
    assert_eq!(
        rls.get(&s("t"), &n("k1"), None)
            .await
            .unwrap()
            .value
            .expose_secret(),
        "v1"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_without_the_password() {
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    // A loopback port nothing listens on.
    let url = "postgres://coffer:hunter2-secret-pw@127.0.0.1:1/db";
    let connect = url.parse().unwrap();
    let options = PgOptions::new().acquire_timeout(Duration::from_secs(2));
    let err = PgStore::connect_with(connect, keyring, options)
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2-secret-pw"), "{text}");
}

#[tokio::test]
async fn rewrap_after_a_rotation_resumes_and_moves_every_version() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    coffer_testkit::conformance::rewrap_after_rotation(|keyring| async {
        Arc::new(PgStore::connect(db.url(), keyring).await.unwrap())
            as Arc<coffer_store::DynSecretStore>
    })
    .await;
}

/// Ends every other session on the store's database from the server side, as an
/// administrator, a failover or a proxy would, and waits until they are gone.
async fn terminate_sessions(db: &TestDatabase) -> usize {
    use sqlx::Connection as _;
    let mut admin = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (left,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if left == 0 {
            return killed.len();
        }
        assert!(tokio::time::Instant::now() < deadline, "sessions lingered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The pool lends connections without a ping (the call's first statement is the
/// liveness check). Every pooled connection is terminated by the server between calls,
/// and the next calls, one at a time and 8 at once, all succeed: a read that finds its
/// connection gone runs once more, and the connections idle since are pinged first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_terminated_between_calls_cost_no_call() {
    for rls in [false, true] {
        let Some(db) = TestDatabase::create().await else {
            return;
        };
        let store = Arc::new(
            db.store(PgOptions::new().max_connections(4).row_level_security(rls))
                .await,
        );
        let t = s("t");
        for i in 0..8 {
            store
                .put(
                    &t,
                    &n(&format!("k{i}")),
                    &format!("v{i}").into(),
                    &PutOptions::new(),
                )
                .await
                .unwrap();
        }
        let gets = |store: Arc<PgStore>| async move {
            let reads = (0..8).map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let got = store.get(&s("t"), &n(&format!("k{}", i % 4)), None).await;
                    got.map(|g| g.value.expose_secret().to_owned())
                })
            });
            for (i, read) in futures::future::join_all(reads)
                .await
                .into_iter()
                .enumerate()
            {
                assert_eq!(read.unwrap().unwrap(), format!("v{}", i % 4), "rls={rls}");
            }
        };
        // The pool holds several connections; all of them are ended.
        gets(Arc::clone(&store)).await;
        assert!(terminate_sessions(&db).await >= 2, "rls={rls}");
        let got = store.get(&t, &n("k1"), None).await.unwrap();
        assert_eq!(got.value.expose_secret(), "v1");
        store.metadata(&t, &n("k2")).await.unwrap();
        assert_eq!(store.versions(&t, &n("k3")).await.unwrap().len(), 1);
        let page = store.list(&t, &Default::default()).await.unwrap();
        assert_eq!(page.items.len(), 8);
        let meta = store
            .put(&t, &n("k4"), &"v4-2".into(), &PutOptions::new())
            .await
            .unwrap();
        assert_eq!(meta.version, 2);

        gets(Arc::clone(&store)).await;
        terminate_sessions(&db).await;
        gets(Arc::clone(&store)).await;

        // A put right after the break: its head read is retried, and its write meets
        // only connections that answered a ping.
        terminate_sessions(&db).await;
        let meta = store
            .put(&t, &n("k5"), &"v5-2".into(), &PutOptions::if_version(1))
            .await
            .unwrap();
        assert_eq!(meta.version, 2);
        // A statement that fails on its own merits is not run again, and says why.
        let err = store
            .put(&t, &n("k5"), &"v5-3".into(), &PutOptions::if_version(1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err}");
    }
}
