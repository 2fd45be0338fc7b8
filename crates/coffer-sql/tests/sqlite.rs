//! SqliteStore: the conformance suite, and what only a sealing SQL store must show.
#![cfg(feature = "sqlite")]

use std::sync::Arc;

use coffer_envelope::{Keyring, MasterKey};
use coffer_sql::SqliteStore;
use coffer_store::{DynSecretStore, Error, PutOptions, SecretStore, SecretStoreExt as _};
use secrecy::ExposeSecret as _;

async fn fresh() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    let store = SqliteStore::open(&dir.path().join("secrets.db"), keyring)
        .await
        .unwrap();
    (dir, store)
}

mod conformance {
    use super::*;

    /// A store whose temporary folder lives as long as the test process.
    async fn store() -> Option<Arc<DynSecretStore>> {
        let (dir, store) = fresh().await;
        std::mem::forget(dir);
        Some(Arc::new(store))
    }

    coffer_testkit::conformance_tests!(store());
}

use coffer_testkit::{name as n, scope as s};

#[tokio::test]
async fn the_database_file_holds_no_plaintext() {
    let (dir, store) = fresh().await;
    let canaries: Vec<String> = (0..20)
        .map(|i| format!("canary-plaintext-{i:03}-zq"))
        .collect();
    coffer_testkit::put_numbered(&store, &s("tenant"), 0..canaries.len(), |i| {
        canaries[i].clone()
    })
    .await;
    // Checkpoint the WAL so the main file holds everything too, then read every file.
    checkpoint(&store).await;
    let mut raw = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        raw.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(raw.len() > 4096);
    for c in &canaries {
        assert!(
            !raw.windows(c.len()).any(|w| w == c.as_bytes()),
            "plaintext {c} found on disk"
        );
    }
    // And with plain SQL: every ciphertext column is an envelope, never the value.
    let rows: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT ciphertext FROM coffer_secret_versions")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 20);
    for (ct,) in rows {
        assert_eq!(ct[0], 1, "envelope v1");
        assert!(
            !canaries
                .iter()
                .any(|c| ct.windows(c.len()).any(|w| w == c.as_bytes()))
        );
    }
}

/// Copy one row's ciphertext over another's with plain SQL: the target no longer opens.
#[tokio::test]
async fn a_ciphertext_moved_to_another_row_does_not_open() {
    let (_dir, store) = fresh().await;
    let (a, b) = (s("tenant-a"), s("tenant-b"));
    store
        .put(&a, &n("key"), &"value-a1".into(), &PutOptions::new())
        .await
        .unwrap();
    store
        .put(&a, &n("key"), &"value-a2".into(), &PutOptions::new())
        .await
        .unwrap();
    store
        .put(&a, &n("other"), &"value-other".into(), &PutOptions::new())
        .await
        .unwrap();
    store
        .put(&b, &n("key"), &"value-b1".into(), &PutOptions::new())
        .await
        .unwrap();

    let copy = |from: (&'static str, &'static str, i64), to: (&'static str, &'static str, i64)| {
        let pool = store.pool().clone();
        async move {
            sqlx::query(
                "UPDATE coffer_secret_versions SET ciphertext = \
                 (SELECT ciphertext FROM coffer_secret_versions WHERE scope = $1 AND name = $2 AND version = $3) \
                 WHERE scope = $4 AND name = $5 AND version = $6",
            )
            .bind(from.0).bind(from.1).bind(from.2)
            .bind(to.0).bind(to.1).bind(to.2)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    // Other tenant.
    copy(("tenant-a", "key", 1), ("tenant-b", "key", 1)).await;
    assert!(matches!(
        store.get(&b, &n("key"), None).await,
        Err(Error::Crypto { .. })
    ));
    // Other name.
    copy(("tenant-a", "key", 2), ("tenant-a", "other", 1)).await;
    assert!(matches!(
        store.get(&a, &n("other"), None).await,
        Err(Error::Crypto { .. })
    ));
    // Other version of the same secret (a rollback to an older value).
    copy(("tenant-a", "key", 1), ("tenant-a", "key", 2)).await;
    let err = store.get(&a, &n("key"), None).await.unwrap_err();
    assert!(matches!(err, Error::Crypto { .. }), "{err}");
    assert!(!err.to_string().contains("value-a"), "{err}");
    // The untouched version still opens.
    assert_eq!(
        store
            .get(&a, &n("key"), Some(1))
            .await
            .unwrap()
            .value
            .expose_secret(),
        "value-a1"
    );
}

#[tokio::test]
async fn a_wrong_master_key_is_a_clear_error_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.db");
    let right = Arc::new(Keyring::new(MasterKey::generate()));
    let store = SqliteStore::open(&path, right.clone()).await.unwrap();
    store
        .put(&s("t"), &n("k"), &"v".into(), &PutOptions::new())
        .await
        .unwrap();
    store.pool().close().await;

    let wrong = Arc::new(Keyring::new(MasterKey::generate()));
    let err = SqliteStore::open(&path, wrong).await.unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("not the key this store was sealed with"),
        "{err}"
    );

    // Without the check row (an older file, or one edited by hand) the read itself fails,
    // never a wrong value: the head's MAC is checked first and does not match under
    // another key.
    let store = SqliteStore::open(&path, right).await.unwrap();
    // (Key checks are kept by a trigger; someone editing by hand drops it first.)
    sqlx::raw_sql("DROP TRIGGER coffer_key_checks_are_kept; DELETE FROM coffer_key_checks")
        .execute(store.pool())
        .await
        .unwrap();
    store.pool().close().await;
    let store = SqliteStore::open(&path, Arc::new(Keyring::new(MasterKey::generate())))
        .await
        .unwrap();
    assert!(matches!(
        store.get(&s("t"), &n("k"), None).await,
        Err(Error::Tampered { .. })
    ));
}

#[tokio::test]
async fn a_corrupted_file_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.db");
    std::fs::write(
        &path,
        b"this is not a sqlite database, just some bytes ".repeat(200),
    )
    .unwrap();
    let err = SqliteStore::open(&path, Arc::new(Keyring::new(MasterKey::generate())))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("sqlite"), "{text}");
    assert!(
        text.contains("not a database") || text.contains("file is"),
        "{text}"
    );

    // A valid database whose pages are then damaged.
    let path = dir.path().join("damaged.db");
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    let store = SqliteStore::open(&path, keyring.clone()).await.unwrap();
    coffer_testkit::put_numbered(&store, &s("t"), 0..200, |_| "v".repeat(100)).await;
    checkpoint(&store).await;
    store.pool().close().await;
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    for b in &mut bytes[4096..len - 1] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    match SqliteStore::open(&path, keyring).await {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok(store) => {
            let result = store.list_all(&s("t"), None).await;
            assert!(result.is_err() || result.unwrap().len() <= 200);
            for i in 0..200 {
                match store.get(&s("t"), &n(&format!("k{i}")), None).await {
                    Ok(secret) => assert_eq!(secret.value.expose_secret(), "v".repeat(100)),
                    Err(e) => assert!(!e.to_string().is_empty()),
                }
            }
        }
    }
}

#[tokio::test]
async fn rewrap_after_a_rotation_resumes_and_moves_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.db");
    coffer_testkit::conformance::rewrap_after_rotation(|keyring| {
        let path = path.clone();
        async move {
            Arc::new(SqliteStore::open(&path, keyring).await.unwrap()) as Arc<DynSecretStore>
        }
    })
    .await;
}

#[tokio::test]
async fn url_opening_needs_a_keyring() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("u.db").display());
    let registry = coffer_store::open::Registry::new().with(coffer_sql::SqliteOpener);
    let err = registry.open(&url, &Default::default()).await.unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    let options = coffer_store::open::OpenOptions::new()
        .keyring(Arc::new(Keyring::new(MasterKey::generate())));
    let store = registry.open(&url, &options).await.unwrap();
    assert_eq!(store.backend(), "sqlite");
}

/// Puts whose futures are dropped part-way (a caller's timeout) leave nothing behind: no
/// pooled connection stays inside a put's transaction (the next writes would wait out
/// the busy timeout or fail), and every version the head names opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_puts_leave_no_transaction_behind() {
    use std::time::Duration;
    let (_dir, store) = fresh().await;
    let (scope, name) = (s("cancelled"), n("k"));
    store
        .put(&scope, &name, &"v0".into(), &PutOptions::new())
        .await
        .unwrap();
    let mut cancelled = 0;
    for i in 0..300u64 {
        let (value, options) = (format!("v{i}").into(), PutOptions::new());
        let put = store.put(&scope, &name, &value, &options);
        // Drop it anywhere from before its first statement to after its commit.
        if tokio::time::timeout(Duration::from_micros(i % 60 * 10), put)
            .await
            .is_err()
        {
            cancelled += 1;
        }
        // Every connection of the pool still takes a write at once.
        for _ in 0..4 {
            let (other, value, options) = (s("other"), "x".into(), PutOptions::new());
            let put = store.put(&other, &name, &value, &options);
            tokio::time::timeout(Duration::from_secs(5), put)
                .await
                .expect("a write waited on a transaction left open")
                .expect("a write failed after a cancelled put");
        }
    }
    assert!(cancelled > 0, "no put was cancelled");
    let head = store.get(&scope, &name, None).await.unwrap();
    for version in 1..=head.meta.version {
        match store.get(&scope, &name, Some(version)).await {
            Ok(secret) => assert!(secret.value.expose_secret().starts_with('v')),
            // A version number a cancelled put computed but never wrote is simply absent.
            Err(Error::NotFound { .. }) => {}
            Err(e) => panic!("version {version}: {e}"),
        }
    }
}

/// Moves the WAL's pages into the main database file.
async fn checkpoint(store: &SqliteStore) {
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(store.pool())
        .await
        .unwrap();
}
