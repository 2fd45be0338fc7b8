//! Retired keys, enforced by the database: an instance whose keyring is out of date (it
//! still writes with a key another instance retired) has its writes refused instead of
//! sealing values no current keyring opens; a key still in use cannot be retired; a
//! retired key cannot be brought back, not even with plain SQL.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use coffer_envelope::{Keyring, MasterKey};
use coffer_sql::{Dialect, PgOptions, SqlStore, SqliteStore};
use coffer_store::{DeleteMode, Error, PutOptions, SecretStore, SecretStoreExt as _};
use coffer_testkit::postgres::TestDatabase;
use coffer_testkit::{fresh_scope, name as n};
use secrecy::ExposeSecret as _;

/// Runs one SQL statement as the table owner; `Err` holds the database's message.
type PlainSql<'a> =
    Box<dyn Fn(&'static str) -> Pin<Box<dyn Future<Output = Result<(), String>> + 'a>> + 'a>;

fn config_error<T: std::fmt::Debug>(result: coffer_store::Result<T>, needle: &str) {
    let err = result.expect_err("refused");
    // A write under a retired key is its own kind, which `KeyringReload` reloads on.
    if needle.contains("out of date") {
        assert!(matches!(err, Error::KeyringOutOfDate { .. }), "{err}");
    } else {
        assert!(matches!(err, Error::Config { .. }), "{err}");
    }
    assert!(err.to_string().contains(needle), "{err}");
}

async fn retirement<D, F, Fut>(open: F, plain_sql: PlainSql<'_>)
where
    D: Dialect,
    F: Fn(Arc<Keyring>) -> Fut,
    Fut: Future<Output = coffer_store::Result<SqlStore<D>>>,
{
    let (k1, k2, k3) = (
        MasterKey::generate(),
        MasterKey::generate(),
        MasterKey::generate(),
    );
    let old = Arc::new(Keyring::from_keys([(1, k1.clone())], 1).unwrap());
    let both = Arc::new(Keyring::from_keys([(1, k1.clone()), (2, k2.clone())], 2).unwrap());
    let scope = fresh_scope();

    // Instance A still has the old keyring; instance B rotates.
    let a = open(old.clone()).await.unwrap();
    a.put(&scope, &n("one"), &"value-1".into(), &PutOptions::new())
        .await
        .unwrap();
    let b = open(both.clone()).await.unwrap();
    config_error(b.retire_key(1).await, "key 1 still protects");
    config_error(b.retire_key(2).await, "primary");
    let moved = b.rewrap_all(100, &mut |_, _| {}).await.unwrap();
    assert_eq!(
        (moved.rewrapped, moved.retagged, moved.remaining),
        (1, 1, 0)
    );
    b.retire_key(1).await.unwrap();
    b.retire_key(1).await.unwrap();

    // A's writes under key 1 are refused by the database, and nothing is left behind.
    config_error(
        a.put(&scope, &n("two"), &"value-2".into(), &PutOptions::new())
            .await,
        "this keyring is out of date",
    );
    // Over a head B moved to key 2, A cannot even check the head: refused as well.
    for refused in [
        a.put(&scope, &n("one"), &"value-1b".into(), &PutOptions::new())
            .await
            .map(drop),
        a.delete(&scope, &n("one"), DeleteMode::Soft).await,
    ] {
        let err = refused.unwrap_err();
        assert!(
            err.to_string().contains("names key 2, which is not in"),
            "{err}"
        );
    }
    assert!(
        b.get(&scope, &n("two"), None)
            .await
            .unwrap_err()
            .is_not_found()
    );
    let one = b.get(&scope, &n("one"), None).await.unwrap();
    assert_eq!(
        (one.meta.version, one.value.expose_secret()),
        (1, "value-1")
    );
    // Nor can A come back with its old keyring.
    drop(a);
    config_error(open(old).await, "primary key 1 was retired");

    // A key no envelope uses, never recorded here, can be retired ahead of time.
    let three = Arc::new(Keyring::from_keys([(2, k2.clone()), (3, k3.clone())], 2).unwrap());
    let c = open(three).await.unwrap();
    c.retire_key(3).await.unwrap();
    let later = Arc::new(Keyring::from_keys([(2, k2), (3, k3)], 3).unwrap());
    config_error(open(later).await, "primary key 3 was retired");

    // Plain SQL cannot bring a retired key back or drop its record.
    let err = plain_sql("UPDATE coffer_key_checks SET retired_at = NULL WHERE key_id = 1")
        .await
        .unwrap_err();
    assert!(err.contains("a retired key cannot come back"), "{err}");
    let err = plain_sql("DELETE FROM coffer_key_checks WHERE key_id = 1")
        .await
        .unwrap_err();
    assert!(err.contains("key checks are kept"), "{err}");
    // Nor retire a key that is in use.
    let err = plain_sql("UPDATE coffer_key_checks SET retired_at = 1 WHERE key_id = 2")
        .await
        .unwrap_err();
    assert!(err.contains("key still in use"), "{err}");
    assert_eq!(
        b.get(&scope, &n("one"), None)
            .await
            .unwrap()
            .value
            .expose_secret(),
        "value-1"
    );
}

fn db_message(e: sqlx::Error) -> String {
    e.as_database_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
}

#[tokio::test]
async fn sqlite_refuses_writes_under_a_retired_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.db");
    let owner = {
        let path = path.clone();
        move || {
            let path = path.clone();
            async move {
                use sqlx::ConnectOptions as _;
                sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(&path)
                    .busy_timeout(std::time::Duration::from_secs(10))
                    .connect()
                    .await
                    .unwrap()
            }
        }
    };
    let plain_sql: PlainSql<'_> = Box::new(move |sql| {
        let owner = owner.clone();
        Box::pin(async move {
            let mut conn = owner().await;
            sqlx::query(sql)
                .execute(&mut conn)
                .await
                .map(drop)
                .map_err(db_message)
        })
    });
    retirement(|k| SqliteStore::open(&path, k), plain_sql).await;
}

#[tokio::test]
async fn postgres_refuses_writes_under_a_retired_key() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    let plain_sql: PlainSql<'_> = Box::new(|sql| {
        let pool = pool.clone();
        Box::pin(async move {
            sqlx::query(sql)
                .execute(&pool)
                .await
                .map(drop)
                .map_err(db_message)
        })
    });
    let url = db.url().to_owned();
    retirement(
        |k| {
            let url = url.clone();
            async move {
                let connect = url.parse().expect("test database URL");
                coffer_sql::PgStore::connect_with(connect, k, PgOptions::new()).await
            }
        },
        plain_sql,
    )
    .await;
}
