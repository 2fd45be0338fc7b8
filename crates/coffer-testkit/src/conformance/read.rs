//! Reads that must fail: not found, other scopes, expired and inactive secrets.

use chrono::{Duration, Utc};

use coffer_store::{DeleteMode, DynSecretStore, Error, PutOptions, SecretStoreExt as _};

use super::{assert_delete_not_found, assert_not_found, put, value, value_of};
use crate::{fresh_scope, name};

/// Missing secrets, versions and deletes are `NotFound`.
pub async fn not_found(store: &DynSecretStore) {
    let scope = fresh_scope();
    let n = name("nothing-here");
    assert!(matches!(
        store.get(&scope, &n, None).await.unwrap_err(),
        Error::NotFound { version: None, .. }
    ));
    assert!(store.metadata(&scope, &n).await.unwrap_err().is_not_found());
    assert_delete_not_found(store, &scope, &n, DeleteMode::Destroy).await;
    assert!(store.list_all(&scope, None).await.unwrap().is_empty());
}

/// Tenant B never sees tenant A's secret, even under the same name.
pub async fn scope_isolation(store: &DynSecretStore) {
    let a = fresh_scope();
    let b = fresh_scope();
    let n = name("shared/name");
    put(store, &a, &n, "tenant-a-value").await;
    assert_not_found(store, &b, &n, None).await;
    assert!(store.metadata(&b, &n).await.unwrap_err().is_not_found());
    assert!(store.list_all(&b, None).await.unwrap().is_empty());
    assert_delete_not_found(store, &b, &n, DeleteMode::Destroy).await;
    store
        .put(&b, &n, &value("tenant-b-value"), &PutOptions::create_only())
        .await
        .unwrap();
    assert_eq!(value_of(store, &a, &n, None).await, "tenant-a-value");
    assert_eq!(value_of(store, &b, &n, None).await, "tenant-b-value");
    assert_eq!(store.metadata(&a, &n).await.unwrap().version, 1);
}

/// Expired and inactive secrets are errors to `get`, still visible to `metadata`.
pub async fn expired_and_inactive(store: &DynSecretStore) {
    let scope = fresh_scope();
    let expired = name("expired");
    let past = Utc::now() - Duration::seconds(5);
    store
        .put(
            &scope,
            &expired,
            &value("old"),
            &PutOptions::new().expires_at(past),
        )
        .await
        .unwrap();
    let err = store.get(&scope, &expired, None).await.unwrap_err();
    assert!(matches!(err, Error::Expired { .. }), "{err}");
    assert!(!err.to_string().contains("old"));
    assert!(
        store
            .metadata(&scope, &expired)
            .await
            .unwrap()
            .expires_at
            .is_some()
    );

    let inactive = name("inactive");
    store
        .put(
            &scope,
            &inactive,
            &value("v"),
            &PutOptions::new().active(false),
        )
        .await
        .unwrap();
    let err = store.get(&scope, &inactive, None).await.unwrap_err();
    assert!(matches!(err, Error::Inactive { .. }), "{err}");
    assert!(!store.metadata(&scope, &inactive).await.unwrap().active);
    store
        .put(
            &scope,
            &inactive,
            &value("v2"),
            &PutOptions::new().active(true),
        )
        .await
        .unwrap();
    assert_eq!(value_of(store, &scope, &inactive, None).await, "v2");

    let future = name("future");
    store
        .put(
            &scope,
            &future,
            &value("ok"),
            &PutOptions::new().expires_at(Utc::now() + Duration::hours(1)),
        )
        .await
        .unwrap();
    assert_eq!(value_of(store, &scope, &future, None).await, "ok");

    // A put with no expiry renews the expired secret; a later put keeps that.
    let renewed = store
        .put(
            &scope,
            &expired,
            &value("new"),
            &PutOptions::new().no_expiry(),
        )
        .await
        .unwrap();
    assert_eq!(renewed.expires_at, None);
    assert_eq!(value_of(store, &scope, &expired, None).await, "new");
    store
        .put(&scope, &expired, &value("newer"), &PutOptions::new())
        .await
        .unwrap();
    assert_eq!(
        store.metadata(&scope, &expired).await.unwrap().expires_at,
        None
    );
    let both = PutOptions::new()
        .no_expiry()
        .expires_at(Utc::now() + Duration::hours(1));
    let err = store
        .put(&scope, &expired, &value("x"), &both)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
}
