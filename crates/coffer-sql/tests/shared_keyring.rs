//! The keyring kept in the store (table `coffer_keyring`), shared by every instance that
//! holds the KEK: a rotation on instance A is used by instance B on its next call without
//! a restart; two instances rotating at once: exactly one wins and the other reloads; an
//! instance whose keyring is older than a retirement has its write refused by the
//! database, reloads and succeeds; on Postgres a rotation is announced and followed with
//! no call at all. The attacks on the table itself are done with the `sqlite3` and `psql`
//! clients, as someone with write access to the database but no KEK would.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use coffer_envelope::{Kek, Keyring, KeyringKek, MasterKey};
use coffer_sql::{Dialect, PgStore, SqlStore, SqliteStore};
use coffer_store::keys::{KeyringReload, SharedKeyring};
use coffer_store::{Error, PutOptions, SecretStore, SecretStoreExt as _};
use coffer_testkit::postgres::TestDatabase;
use coffer_testkit::{fresh_scope, name as n, value_of};

/// Attacker SQL run with a command-line client; `Err` holds what the client printed.
type Attack = Box<dyn Fn(&str) -> Result<(), String>>;

fn sqlite3(path: std::path::PathBuf) -> Attack {
    Box::new(move |sql| coffer_testkit::clients::sqlite3(&path, sql))
}

fn psql(url: String) -> Attack {
    Box::new(move |sql| coffer_testkit::clients::psql(&url, sql))
}

/// Every behaviour on one database; `seed` opens a plain store there (it migrates and
/// records key 1), `open` opens another instance with the keyring the store keeps.
async fn shared<D, S, SF, O, OF>(seed: S, open: O, attack: Attack)
where
    D: Dialect,
    S: Fn(Keyring) -> SF,
    SF: Future<Output = coffer_store::Result<SqlStore<D>>>,
    O: Fn(Arc<dyn KeyringKek>) -> OF,
    OF: Future<Output = coffer_store::Result<KeyringReload<SqlStore<D>>>>,
{
    let kek: Arc<dyn KeyringKek> = Arc::new(Kek::from_key(MasterKey::generate()));
    let keyring = Keyring::new(MasterKey::generate());
    let scope = fresh_scope();

    // Before a keyring is kept there, opening shared says how to put one there.
    let plain = seed(keyring.clone()).await.unwrap();
    let err = open(kek.clone()).await.unwrap_err();
    assert!(err.to_string().contains("keeps no keyring"), "{err}");
    plain
        .put(&scope, &n("one"), &"value-1".into(), &PutOptions::new())
        .await
        .unwrap();
    SharedKeyring::create(Arc::new(plain.keyring_storage()), kek.clone(), keyring)
        .await
        .unwrap();
    drop(plain);

    // A wrong KEK is a clear error naming where it came from.
    let wrong: Arc<dyn KeyringKek> = Arc::new(Kek::from_key(MasterKey::generate()));
    let err = open(wrong).await.unwrap_err().to_string();
    assert!(err.contains("does not open with"), "{err}");
    assert!(err.contains("wrong key"), "{err}");
    let wrong: Arc<dyn KeyringKek> = Arc::new(Kek::from_passphrase("not it".into()));
    let err = open(wrong).await.unwrap_err().to_string();
    assert!(err.contains("sealed with a key"), "{err}");

    let a = open(kek.clone()).await.unwrap();
    let b = open(kek.clone()).await.unwrap();
    assert_eq!(value_of(&b, &scope, "one").await, "value-1");

    // A rotates and writes under the new key; B reads it on its next call.
    a.keys().update(|ring| Ok(ring.rotate())).await.unwrap();
    a.put(&scope, &n("two"), &"value-2".into(), &PutOptions::new())
        .await
        .unwrap();
    assert_eq!(b.keys().handle().current().primary_id(), 1);
    assert_eq!(value_of(&b, &scope, "two").await, "value-2");
    assert_eq!(b.keys().generation(), 2);
    assert_eq!(b.keys().handle().current().primary_id(), 2);

    // Two instances rotate at once: exactly one wins; the other has reloaded the winner.
    let lost = coffer_testkit::keys::race_rotations(a.keys(), b.keys()).await;
    assert!(
        matches!(lost, Error::KeyringConflict { found: Some(3), .. }),
        "{lost}"
    );
    for instance in [&a, &b] {
        assert_eq!(instance.keys().generation(), 3);
        assert_eq!(instance.keys().handle().current().primary_id(), 3);
    }

    // C opens now (primary 3) and then sleeps through a rotation and a retirement.
    let c = open(kek.clone()).await.unwrap();
    c.put(&scope, &n("three"), &"value-3".into(), &PutOptions::new())
        .await
        .unwrap();
    a.keys().update(|ring| Ok(ring.rotate())).await.unwrap();
    let moved = a.rewrap_all(100, &mut |_, _| {}).await.unwrap();
    assert_eq!(moved.remaining, 0);
    for old in [1, 2, 3] {
        a.retire_key(old).await.unwrap();
    }
    a.keys()
        .update(|ring| {
            for old in [1, 2, 3] {
                ring.remove(old)?;
            }
            Ok(())
        })
        .await
        .unwrap();
    // C's write under key 3 is refused by the database; C reloads and writes under 4.
    let meta = c
        .put(&scope, &n("three"), &"value-3b".into(), &PutOptions::new())
        .await
        .unwrap();
    assert_eq!((meta.version, meta.key_id), (2, Some(4)));
    assert_eq!(
        c.keys().handle().current().key_ids().collect::<Vec<_>>(),
        [4]
    );
    for instance in [&a, &b, &c] {
        assert_eq!(value_of(instance, &scope, "one").await, "value-1");
        assert_eq!(value_of(instance, &scope, "three").await, "value-3b");
    }

    // The database keeps the keyring's rules against someone with plain SQL.
    let err = attack("DELETE FROM coffer_keyring").unwrap_err();
    assert!(err.contains("the keyring is never deleted"), "{err}");
    let err = attack("UPDATE coffer_keyring SET generation = generation + 5").unwrap_err();
    assert!(err.contains("must grow by one"), "{err}");
    let err = attack("UPDATE coffer_keyring SET generation = 1").unwrap_err();
    assert!(err.contains("must grow by one"), "{err}");
    let err = attack(
        "INSERT INTO coffer_keyring (id, generation, document, updated_at) \
         SELECT 2, 1, document, 0 FROM coffer_keyring",
    )
    .unwrap_err();
    assert!(err.to_lowercase().contains("check"), "{err}");
    // A keyring sealed under the attacker's own KEK does not open: no key substitution.
    let theirs = Kek::from_key(MasterKey::generate())
        .seal_keyring(&Keyring::new(MasterKey::generate()))
        .unwrap();
    let hex: String = theirs.iter().map(|b| format!("{b:02x}")).collect();
    let swap = attack_hex(&hex);
    attack(&swap).unwrap();
    let err = open(kek.clone()).await.unwrap_err().to_string();
    assert!(err.contains("does not open with"), "{err}");
    // A running instance keeps its keyring (a reload that fails changes nothing).
    assert!(b.keys().reload_now().await.is_err());
    assert_eq!(value_of(&b, &scope, "one").await, "value-1");
}

fn attack_hex(hex: &str) -> String {
    format!(
        "UPDATE coffer_keyring SET document = decode('{hex}', 'hex'), generation = generation + 1"
    )
}

#[tokio::test]
async fn sqlite_instances_share_the_keyring_kept_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.db");
    let url = format!("sqlite://{}", path.display());
    let seed = |k: Keyring| SqliteStore::open(&path, k);
    let open = |kek: Arc<dyn KeyringKek>| {
        let url = url.clone();
        async move { SqliteStore::connect_shared(&url, kek).await }
    };
    // sqlite3 has no decode(); the attack writes the document as a blob literal.
    let sqlite = sqlite3(path.clone());
    let attack: Attack = Box::new(move |sql: &str| {
        let sql = match sql.strip_prefix("UPDATE coffer_keyring SET document = decode('") {
            Some(rest) => {
                let hex = rest.split('\'').next().unwrap_or_default();
                format!(
                    "UPDATE coffer_keyring SET document = X'{hex}', generation = generation + 1"
                )
            }
            None => sql.to_owned(),
        };
        sqlite(&sql)
    });
    shared(seed, open, attack).await;
}

#[tokio::test]
async fn postgres_instances_share_the_keyring_kept_in_the_database() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let url = db.url().to_owned();
    let seed = |k: Keyring| {
        let url = url.clone();
        async move { PgStore::connect(&url, k).await }
    };
    let open = |kek: Arc<dyn KeyringKek>| {
        let url = url.clone();
        async move { PgStore::connect_shared(&url, kek).await }
    };
    shared(seed, open, psql(url.clone())).await;
}

#[tokio::test]
async fn postgres_announces_a_rotation_and_the_other_instance_follows_without_a_call() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let kek: Arc<dyn KeyringKek> = Arc::new(Kek::from_key(MasterKey::generate()));
    let seed = PgStore::connect(db.url(), Keyring::new(MasterKey::generate()))
        .await
        .unwrap();
    SharedKeyring::create(
        Arc::new(seed.keyring_storage()),
        kek.clone(),
        (*seed.keyring()).clone(),
    )
    .await
    .unwrap();
    let a = PgStore::connect_shared(db.url(), kek.clone())
        .await
        .unwrap();
    let b = PgStore::connect_shared(db.url(), kek.clone())
        .await
        .unwrap();
    let follower = b.inner().follow_keyring(b.keys().clone()).await.unwrap();
    a.keys().update(|ring| Ok(ring.rotate())).await.unwrap();
    let mut waited = Duration::ZERO;
    while b.keys().generation() < 2 {
        assert!(waited < Duration::from_secs(10), "the notice never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    assert_eq!(b.keys().handle().current().primary_id(), 2);
    // The same notice is sent for a write by any other tool, since a trigger sends it.
    follower.abort();
}
