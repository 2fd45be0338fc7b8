//! Soft delete and destroy.

use secrecy::ExposeSecret as _;

use coffer_store::{DeleteMode, DynSecretStore, Error, PutOptions, SecretStoreExt as _};

use super::value;
use crate::{fresh_scope, name};

/// Soft delete hides a secret; destroy removes it and its history.
pub async fn soft_delete_and_destroy(store: &DynSecretStore) {
    let scope = fresh_scope();
    let n = name("to-delete");
    store
        .put(&scope, &n, &value("one"), &PutOptions::new())
        .await
        .unwrap();
    store
        .put(&scope, &n, &value("two"), &PutOptions::new())
        .await
        .unwrap();
    if store.capabilities().soft_delete {
        store.delete(&scope, &n, DeleteMode::Soft).await.unwrap();
        assert!(
            store
                .get(&scope, &n, None)
                .await
                .unwrap_err()
                .is_not_found()
        );
        assert!(
            store
                .get(&scope, &n, Some(1))
                .await
                .unwrap_err()
                .is_not_found()
        );
        assert!(store.metadata(&scope, &n).await.unwrap_err().is_not_found());
        assert!(store.list_all(&scope, None).await.unwrap().is_empty());
        assert!(
            store
                .delete(&scope, &n, DeleteMode::Soft)
                .await
                .unwrap_err()
                .is_not_found()
        );
        let meta = store
            .put(&scope, &n, &value("three"), &PutOptions::new())
            .await
            .unwrap();
        assert_eq!(meta.version, 3);
        if store.capabilities().versions {
            assert_eq!(
                store
                    .get(&scope, &n, Some(1))
                    .await
                    .unwrap()
                    .value
                    .expose_secret(),
                "one"
            );
        }
    } else {
        let err = store
            .delete(&scope, &n, DeleteMode::Soft)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    }
    store.delete(&scope, &n, DeleteMode::Destroy).await.unwrap();
    assert!(
        store
            .get(&scope, &n, None)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        store
            .delete(&scope, &n, DeleteMode::Destroy)
            .await
            .unwrap_err()
            .is_not_found()
    );
    let meta = store
        .put(&scope, &n, &value("again"), &PutOptions::create_only())
        .await
        .unwrap();
    assert_eq!(meta.version, 1, "destroy forgets the history");
    if store.capabilities().versions {
        assert!(
            store
                .get(&scope, &n, Some(2))
                .await
                .unwrap_err()
                .is_not_found()
        );
    }
}
