//! Opening a store with its keyring, from a keyring file and from the keyring kept in the
//! store (under a local KEK and under Vault Transit), and what a reload costs when an
//! instance meets a key id it does not hold (another instance rotated).

use std::hint::black_box;
use std::sync::Arc;

use coffer_envelope::{Kek, Keyring, KeyringKek, MasterKey};
use coffer_sql::SqliteStore;
use coffer_store::keys::SharedKeyring;
use coffer_store::{PutOptions, SecretStore as _};
use criterion::Criterion;

use crate::report::Report;
use crate::store::{VaultMount, name_of, scope, value_of};

const FILE: &str = "SQLite, keyring file";

pub(crate) fn bench(c: &mut Criterion, report: &mut Report, rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("open.db");
    let url = format!("sqlite://{}", db.display());
    let file = dir.path().join("keyring.json");
    let mut keyring = Keyring::new(MasterKey::generate());
    keyring.rotate();
    keyring.rotate();
    keyring.save(&file).expect("save the keyring file");
    let kek: Arc<dyn KeyringKek> = Arc::new(Kek::from_key(MasterKey::generate()));
    let transit = rt.block_on(transit_kek());

    // A store with a few secrets and two kept keyrings' worth of setup: the local-KEK one
    // in this file, the Transit one in a second file.
    let transit_db = dir.path().join("transit.db");
    let transit_url = format!("sqlite://{}", transit_db.display());
    rt.block_on(async {
        for (path, kek) in [
            (&db, Some(kek.clone())),
            (&transit_db, transit.as_ref().map(|(k, _)| k.clone())),
        ] {
            let Some(kek) = kek else { continue };
            let store = SqliteStore::open(path, keyring.clone())
                .await
                .expect("open");
            for i in 0..10 {
                store
                    .put(
                        &scope(),
                        &name_of(i),
                        &value_of(i).into(),
                        &PutOptions::new(),
                    )
                    .await
                    .expect("put");
            }
            SharedKeyring::create(Arc::new(store.keyring_storage()), kek, keyring.clone())
                .await
                .expect("keep the keyring in the store");
        }
    });

    let mut group = report.group(
        c,
        "store open",
        "Opening a SQLite store (migrations checked, keyring checked against the store's \
         key checks) with a keyring of three keys: read from a keyring file, or read from \
         the store's own coffer_keyring table and opened with a 32-byte KEK or with Vault \
         Transit (one decrypt request to OpenBao on this machine).",
    );
    group.sample_size(20);
    group.row(FILE, None, |b| {
        b.to_async(rt).iter(|| async {
            let keyring = Keyring::load(&file, None).expect("load");
            black_box(SqliteStore::connect(&url, keyring).await.expect("open"))
        });
    });
    group.row("SQLite, keyring in the store (KEK)", Some(FILE), |b| {
        b.to_async(rt).iter(|| async {
            black_box(
                SqliteStore::connect_shared(&url, kek.clone())
                    .await
                    .expect("open"),
            )
        });
    });
    if let Some((transit, _)) = &transit {
        group.row("SQLite, keyring in the store (Transit)", Some(FILE), |b| {
            b.to_async(rt).iter(|| async {
                black_box(
                    SqliteStore::connect_shared(&transit_url, transit.clone())
                        .await
                        .expect("open"),
                )
            });
        });
    } else {
        eprintln!("COFFER_TEST_VAULT_ADDR is not set: skipping the Transit row");
    }
    group.finish();

    // The reload an unknown key id causes: read the kept document and open it, beside the
    // get that the call then retries.
    let (a, b_store) = rt.block_on(async {
        let a = SqliteStore::connect_shared(&url, kek.clone())
            .await
            .expect("a");
        let b = SqliteStore::connect_shared(&url, kek.clone())
            .await
            .expect("b");
        (a, b)
    });
    let mut group = report.group(
        c,
        "keyring reload",
        "What an instance pays when it meets a key id it does not hold (another instance \
         rotated): one read of the kept keyring and its opening under the KEK, beside the \
         SQLite get that is then retried. Between iterations the other instance writes \
         the keyring again (not timed).",
    );
    group.sample_size(20);
    const GET: &str = "SQLite get";
    group.row(GET, None, |b| {
        b.to_async(rt).iter(|| async {
            black_box(b_store.get(&scope(), &name_of(3), None).await.expect("get"))
        });
    });
    group.row("reload the kept keyring (KEK)", Some(GET), |b| {
        b.to_async(rt).iter_custom(|iters| {
            let (a, b_store) = (&a, &b_store);
            async move {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    a.keys()
                        .update(|_| Ok(()))
                        .await
                        .expect("write the keyring");
                    let start = std::time::Instant::now();
                    assert!(b_store.keys().reload_now().await.expect("reload"));
                    total += start.elapsed();
                }
                total
            }
        });
    });
    group.finish();
    if let Some((_, cleanup)) = transit {
        rt.block_on(cleanup.disable());
    }
}

/// A Transit KEK on a fresh mount of the test OpenBao, if one is configured.
async fn transit_kek() -> Option<(Arc<dyn KeyringKek>, VaultMount)> {
    let addr = coffer_testkit::service_env("COFFER_TEST_VAULT_ADDR")?;
    let token = coffer_testkit::service_env("COFFER_TEST_VAULT_TOKEN")?;
    let mount = VaultMount::enable_engine(
        addr.clone(),
        token.clone(),
        "bench-transit",
        serde_json::json!({ "type": "transit" }),
    )
    .await;
    mount
        .post(
            &format!("{}/keys/coffer", mount.mount),
            serde_json::json!({}),
        )
        .await;
    let config = coffer_vault::VaultConfig::new(&addr, coffer_vault::Auth::Token(token.into()));
    let kek = coffer_vault::TransitKek::connect(config, &mount.mount, "coffer")
        .await
        .expect("the Transit KEK");
    Some((Arc::new(kek), mount))
}
