//! Rewrap: moving every envelope to the keyring's primary key.

use std::future::Future;
use std::sync::Arc;

use coffer_envelope::{Keyring, MasterKey};
use coffer_store::{DeleteMode, DynSecretStore, Error, PutOptions, SecretStoreExt as _};
use secrecy::ExposeSecret as _;

use super::value;
use crate::{fresh_scope, name};

/// Under one key there is nothing to move: a batch rewrites nothing, reports nothing
/// remaining, and every value still reads. A store that cannot rewrap says so
/// ([`Error::Unsupported`]).
pub async fn rewrap_under_one_key(store: &DynSecretStore) {
    if !store.capabilities().rewrap {
        let err = store.rewrap_batch(10).await.unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        return;
    }
    let scope = fresh_scope();
    for i in 0..3 {
        store
            .put(
                &scope,
                &name(&format!("k{i}")),
                &value(&format!("v{i}")),
                &PutOptions::new(),
            )
            .await
            .unwrap();
    }
    let batch = store.rewrap_batch(10).await.unwrap();
    assert_eq!((batch.moved(), batch.remaining), (0, 0));
    for i in 0..3 {
        let got = store
            .get(&scope, &name(&format!("k{i}")), None)
            .await
            .unwrap();
        assert_eq!(got.value.expose_secret(), format!("v{i}"));
    }
}

/// A key rotation on a store's own data: `open` opens the same data with a given keyring
/// (each call a new instance, as a restarted process would). 20 secrets of two versions
/// are written under one key; after a rotation one batch of 15 moves, the process
/// "stops", a new instance finishes the rest, and then every value (and, where the store
/// keeps them, every old version) reads under the new key, with nothing left to move.
///
/// The data must be the store's alone (a fresh database or mount): the counts cover
/// every envelope in it.
pub async fn rewrap_after_rotation<F, Fut>(open: F)
where
    F: Fn(Arc<Keyring>) -> Fut,
    Fut: Future<Output = Arc<DynSecretStore>>,
{
    let mut keyring = Keyring::new(MasterKey::generate());
    let store = open(Arc::new(keyring.clone())).await;
    let caps = store.capabilities();
    assert!(caps.rewrap, "{} cannot rewrap", store.backend());
    let scope = fresh_scope();
    let key = |i: usize| name(&format!("k{i}"));
    for i in 0..20 {
        for v in 0..2 {
            store
                .put(
                    &scope,
                    &key(i),
                    &value(&format!("v{i}-{v}")),
                    &PutOptions::new(),
                )
                .await
                .unwrap();
        }
    }
    if caps.soft_delete {
        store
            .delete(&scope, &key(0), DeleteMode::Soft)
            .await
            .unwrap();
    }
    drop(store);

    let new_id = keyring.rotate();
    let store = open(Arc::new(keyring.clone())).await;
    // One batch, as if the process were killed after it.
    let first = store.rewrap_batch(15).await.unwrap();
    assert_eq!(first.moved(), 15);
    assert!(first.remaining > 0);
    drop(store);

    let store = open(Arc::new(keyring)).await;
    let mut progress = Vec::new();
    let rest = store
        .rewrap_all(10, &mut |done, total| progress.push((done, total)))
        .await
        .unwrap();
    let rest = rest.moved();
    assert_eq!(
        rest, first.remaining,
        "the second run moves what the first left"
    );
    assert_eq!(progress.last(), Some(&(rest, rest)));
    let after = store.rewrap_batch(10).await.unwrap();
    assert_eq!((after.moved(), after.remaining), (0, 0));
    let first_live = usize::from(caps.soft_delete);
    for i in first_live..20 {
        let latest = store.get(&scope, &key(i), None).await.unwrap();
        assert_eq!(latest.value.expose_secret(), format!("v{i}-1"));
        assert_eq!(latest.meta.key_id, Some(new_id));
        if caps.versions {
            let old = store.get(&scope, &key(i), Some(1)).await.unwrap();
            assert_eq!(old.value.expose_secret(), format!("v{i}-0"));
        }
    }
}
