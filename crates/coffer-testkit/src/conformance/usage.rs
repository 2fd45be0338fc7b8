//! Usage records.

use chrono::Duration;

use coffer_store::{DynSecretStore, Error};

use super::{put, value_of};
use crate::{fresh_scope, name};

/// Usage records add to `usage_count`, move `last_used_at` only forward, skip unknown
/// secrets, and change neither versions nor `updated_at`.
pub async fn usage_records(store: &DynSecretStore) {
    let scope = fresh_scope();
    let (a, b) = (name("used-a"), name("used-b"));
    let written = put(store, &scope, &a, "va").await;
    put(store, &scope, &b, "vb").await;
    let t1 = coffer_store::backend::now();
    let t0 = t1 - Duration::minutes(5);
    let first = [
        coffer_store::Usage::new(scope.clone(), a.clone(), 3, t1),
        coffer_store::Usage::new(scope.clone(), b.clone(), 1, t0),
        coffer_store::Usage::new(scope.clone(), name("never-written"), 5, t1),
    ];
    match store.record_usage(&first).await {
        // A store that keeps no usage says so, and its metadata shows none.
        Err(Error::Unsupported { .. }) => {
            let meta = store.metadata(&scope, &a).await.unwrap();
            assert_eq!((meta.usage_count, meta.last_used_at), (0, None));
            return;
        }
        other => other.unwrap(),
    }
    store
        .record_usage(&[coffer_store::Usage::new(scope.clone(), a.clone(), 2, t0)])
        .await
        .unwrap();
    let meta = store.metadata(&scope, &a).await.unwrap();
    assert_eq!(meta.usage_count, 5);
    assert_eq!(meta.last_used_at, Some(t1));
    assert_eq!(meta.version, 1);
    assert_eq!(meta.updated_at, written.updated_at);
    assert_eq!(store.metadata(&scope, &b).await.unwrap().usage_count, 1);
    assert!(
        store
            .metadata(&scope, &name("never-written"))
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(value_of(store, &scope, &a, None).await, "va");
}
