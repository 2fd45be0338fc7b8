//! An attacker who can write the database but holds no key, with the tools such an
//! attacker has: the `sqlite3` and `psql` command-line clients, run against the store's
//! own file or server. Every forgery of the head state that decides what a read returns
//! is refused as `Error::Tampered` naming the secret, never served as a value, and a
//! rotation cannot be made to skip an envelope by editing a column.

use std::sync::Arc;

use chrono::{Duration, Utc};
use coffer_envelope::{Keyring, MasterKey};
use coffer_sql::{Dialect, PgOptions, SqlStore, SqliteStore};
use coffer_store::{DeleteMode, Error, KeyUsage, PutOptions, SecretStore, SecretStoreExt as _};
use coffer_testkit::postgres::TestDatabase;
use coffer_testkit::{fresh_scope, name as n};
use secrecy::ExposeSecret as _;

/// Runs attacker SQL with a command-line client, as someone with write access would.
type Attack = Box<dyn Fn(&str)>;

fn sqlite3(path: std::path::PathBuf) -> Attack {
    Box::new(move |sql| {
        coffer_testkit::clients::sqlite3(&path, sql)
            .unwrap_or_else(|e| panic!("sqlite3 {sql}: {e}"));
    })
}

fn psql(url: String) -> Attack {
    Box::new(move |sql| {
        coffer_testkit::clients::psql(&url, sql).unwrap_or_else(|e| panic!("psql {sql}: {e}"));
    })
}

fn put() -> PutOptions {
    PutOptions::new()
}

/// Asserts `result` is `Tampered` naming `name`, with no value in the message.
fn assert_tampered<T: std::fmt::Debug>(result: coffer_store::Result<T>, name: &str) {
    let err = result.expect_err("a forged head must not be acted on");
    assert!(matches!(err, Error::Tampered { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(name), "{text}");
    assert!(!text.contains("value-"), "{text}");
}

/// Each forgery on one store; `attack` writes the same database.
async fn forgeries<D: Dialect>(store: &SqlStore<D>, attack: &Attack) {
    let scope = fresh_scope();
    let sc = scope.as_str();
    let head = |name: &str, set: &str| {
        format!("UPDATE coffer_secrets SET {set} WHERE scope = '{sc}' AND name = '{name}'")
    };

    // 1. The head pointed at an older version: refused, and a put over it is refused
    //    the same way (not a raw duplicate-key error).
    for v in ["value-old", "value-new"] {
        store
            .put(&scope, &n("rollback"), &v.into(), &put())
            .await
            .unwrap();
    }
    attack(&head("rollback", "version = 1"));
    assert_tampered(store.get(&scope, &n("rollback"), None).await, "rollback");
    assert_tampered(store.metadata(&scope, &n("rollback")).await, "rollback");
    assert_tampered(
        store
            .put(&scope, &n("rollback"), &"value-x".into(), &put())
            .await,
        "rollback",
    );
    // A listing does not serve a forged row either.
    assert_tampered(store.list_all(&scope, None).await, "rollback");
    attack(&head("rollback", "version = 2"));
    let got = store.get(&scope, &n("rollback"), None).await.unwrap();
    assert_eq!(got.value.expose_secret(), "value-new");

    // 2. A soft-deleted secret revived by clearing `deleted`.
    store
        .put(&scope, &n("deleted"), &"value-d".into(), &put())
        .await
        .unwrap();
    store
        .delete(&scope, &n("deleted"), DeleteMode::Soft)
        .await
        .unwrap();
    assert!(matches!(
        store.get(&scope, &n("deleted"), None).await,
        Err(Error::NotFound { .. })
    ));
    attack(&head("deleted", "deleted = FALSE"));
    assert_tampered(store.get(&scope, &n("deleted"), None).await, "deleted");

    // 3. An expired secret revived by clearing `expires_at`.
    let expired = put().expires_at(Utc::now() - Duration::hours(1));
    store
        .put(&scope, &n("expired"), &"value-e".into(), &expired)
        .await
        .unwrap();
    assert!(matches!(
        store.get(&scope, &n("expired"), None).await,
        Err(Error::Expired { .. })
    ));
    attack(&head("expired", "expires_at = NULL"));
    assert_tampered(store.get(&scope, &n("expired"), None).await, "expired");

    // 4. An inactive secret switched back on.
    let inactive = put().active(false);
    store
        .put(&scope, &n("inactive"), &"value-i".into(), &inactive)
        .await
        .unwrap();
    attack(&head("inactive", "active = TRUE"));
    assert_tampered(store.get(&scope, &n("inactive"), None).await, "inactive");

    // 5. Another secret's valid MAC copied over.
    store
        .put(&scope, &n("donor"), &"value-o".into(), &put())
        .await
        .unwrap();
    store
        .put(&scope, &n("copied"), &"value-c".into(), &put())
        .await
        .unwrap();
    attack(&head(
        "copied",
        &format!("mac = (SELECT mac FROM coffer_secrets WHERE scope = '{sc}' AND name = 'donor')"),
    ));
    assert_tampered(store.get(&scope, &n("copied"), None).await, "copied");

    // 6. The MAC removed: refused with the way out, and adopting the state on purpose
    //    (what `coffer keys migrate` does after an upgrade) makes it readable again.
    store
        .put(&scope, &n("untagged"), &"value-u".into(), &put())
        .await
        .unwrap();
    attack(&head("untagged", "mac = NULL"));
    let err = store.get(&scope, &n("untagged"), None).await.unwrap_err();
    assert!(err.to_string().contains("coffer keys migrate"), "{err}");
    assert_eq!(store.adopt_untagged_heads().await.unwrap(), 1);
    let got = store.get(&scope, &n("untagged"), None).await.unwrap();
    assert_eq!(got.value.expose_secret(), "value-u");

    // 7. A whole older head row put back with its own MAC (a kept copy): the MAC cannot
    //    tell (documented), but the next put is a clean Conflict, not a raw driver error.
    store
        .put(&scope, &n("replayed"), &"value-r1".into(), &put())
        .await
        .unwrap();
    attack(&format!(
        "CREATE TABLE \"kept_{sc}\" AS SELECT version, updated_at, mac FROM coffer_secrets \
         WHERE scope = '{sc}' AND name = 'replayed'"
    ));
    store
        .put(&scope, &n("replayed"), &"value-r2".into(), &put())
        .await
        .unwrap();
    attack(&head(
        "replayed",
        &format!(
            "version = (SELECT version FROM \"kept_{sc}\"), \
             updated_at = (SELECT updated_at FROM \"kept_{sc}\"), mac = (SELECT mac FROM \"kept_{sc}\")"
        ),
    ));
    let err = store
        .put(&scope, &n("replayed"), &"value-r3".into(), &put())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    attack(&format!("DROP TABLE \"kept_{sc}\""));
    // Every other secret's reads stay exact; delete the forged ones for the next test.
    for name in ["deleted", "expired", "inactive", "copied", "replayed"] {
        store
            .delete(&scope, &n(name), DeleteMode::Destroy)
            .await
            .unwrap();
    }
}

/// Editing the `key_id` column does not hide an envelope from a rotation: which key
/// sealed it is read from the envelope's header.
async fn key_id_column_edit<D: Dialect, F, Fut>(attack: &Attack, open: F)
where
    F: Fn(Arc<Keyring>) -> Fut,
    Fut: std::future::Future<Output = SqlStore<D>>,
{
    let (k1, k2) = (MasterKey::generate(), MasterKey::generate());
    let old = Arc::new(Keyring::from_keys([(1, k1.clone())], 1).unwrap());
    let both = Arc::new(Keyring::from_keys([(1, k1), (2, k2.clone())], 2).unwrap());
    let new = Arc::new(Keyring::from_keys([(2, k2)], 2).unwrap());
    let scope = fresh_scope();

    let store = open(old).await;
    store
        .put(&scope, &n("hidden"), &"value-h".into(), &put())
        .await
        .unwrap();
    drop(store);
    // Key 2 is recorded as live (opening with it does), so the column may name it.
    drop(open(both.clone()).await);
    attack(&format!(
        "UPDATE coffer_secret_versions SET key_id = 2 WHERE scope = '{}'",
        scope.as_str()
    ));
    let store = open(both).await;
    assert_eq!(
        store.key_usage().await.unwrap(),
        vec![KeyUsage::new(Some(1), 1, 1)]
    );
    assert!(store.pending_rewrap().await.unwrap() >= 1);
    store.rewrap_all(100, &mut |_, _| {}).await.unwrap();
    assert_eq!(store.pending_rewrap().await.unwrap(), 0);
    assert_eq!(
        store.key_usage().await.unwrap(),
        vec![KeyUsage::new(Some(2), 1, 1)]
    );
    // Key 1 is gone: the value reads under key 2 alone.
    let store = open(new).await;
    let got = store.get(&scope, &n("hidden"), None).await.unwrap();
    assert_eq!(got.value.expose_secret(), "value-h");
    assert_eq!(got.meta.key_id, Some(2));
}

#[tokio::test]
async fn sqlite_head_forgeries_with_the_sqlite3_client_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.db");
    let store = SqliteStore::open(&path, Arc::new(Keyring::new(MasterKey::generate())))
        .await
        .unwrap();
    forgeries(&store, &sqlite3(path)).await;
}

#[tokio::test]
async fn sqlite_key_id_column_edit_does_not_hide_an_envelope_from_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.db");
    let attack = sqlite3(path.clone());
    key_id_column_edit(&attack, |k| {
        let path = path.clone();
        async move { SqliteStore::open(&path, k).await.unwrap() }
    })
    .await;
}

#[tokio::test]
async fn postgres_head_forgeries_with_psql_are_refused() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = db
        .store_with(
            Arc::new(Keyring::new(MasterKey::generate())),
            PgOptions::new(),
        )
        .await;
    forgeries(&store, &psql(db.url().to_owned())).await;
}

#[tokio::test]
async fn postgres_key_id_column_edit_does_not_hide_an_envelope_from_rotation() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let attack = psql(db.url().to_owned());
    key_id_column_edit(&attack, |k| db.store_with(k, PgOptions::new())).await;
}
