//! Soft delete and destroy.

use coffer_store::{DeleteMode, DynSecretStore, Error, PutOptions, SecretStoreExt as _};

use super::{assert_delete_not_found, assert_not_found, put, value, value_of};
use crate::{fresh_scope, name};

/// Soft delete hides a secret; destroy removes it and its history.
pub async fn soft_delete_and_destroy(store: &DynSecretStore) {
    let scope = fresh_scope();
    let n = name("to-delete");
    put(store, &scope, &n, "one").await;
    put(store, &scope, &n, "two").await;
    if store.capabilities().soft_delete {
        store.delete(&scope, &n, DeleteMode::Soft).await.unwrap();
        assert_not_found(store, &scope, &n, None).await;
        assert_not_found(store, &scope, &n, Some(1)).await;
        assert!(store.metadata(&scope, &n).await.unwrap_err().is_not_found());
        assert!(store.list_all(&scope, None).await.unwrap().is_empty());
        assert_delete_not_found(store, &scope, &n, DeleteMode::Soft).await;
        let meta = put(store, &scope, &n, "three").await;
        assert_eq!(meta.version, 3);
        if store.capabilities().versions {
            assert_eq!(value_of(store, &scope, &n, Some(1)).await, "one");
        }
    } else {
        let err = store
            .delete(&scope, &n, DeleteMode::Soft)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    }
    store.delete(&scope, &n, DeleteMode::Destroy).await.unwrap();
    assert_not_found(store, &scope, &n, None).await;
    assert_delete_not_found(store, &scope, &n, DeleteMode::Destroy).await;
    let meta = store
        .put(&scope, &n, &value("again"), &PutOptions::create_only())
        .await
        .unwrap();
    assert_eq!(meta.version, 1, "destroy forgets the history");
    if store.capabilities().versions {
        assert_not_found(store, &scope, &n, Some(2)).await;
    }
}
