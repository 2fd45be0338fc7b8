//! Conditional and concurrent writes.

use std::collections::BTreeSet;

use futures::future::join_all;
use secrecy::ExposeSecret as _;

use coffer_store::{DynSecretStore, Error, PutOptions, WriteCondition};

use super::{assert_conflict, put, value, value_of};
use crate::{fresh_scope, name};

/// Check-and-set succeeds only on the expected version (one writer at a time: every store
/// checks the version; [`concurrent_check_and_set`] checks that it is atomic).
pub async fn check_and_set(store: &DynSecretStore) {
    let scope = fresh_scope();
    let n = name("cas");
    let err = store
        .put(&scope, &n, &value("a"), &PutOptions::if_version(1))
        .await
        .unwrap_err();
    assert_conflict(&err, 1, None);
    put(store, &scope, &n, "v1").await;
    let meta = store
        .put(&scope, &n, &value("v2"), &PutOptions::if_version(1))
        .await
        .unwrap();
    assert_eq!(meta.version, 2);
    let err = store
        .put(&scope, &n, &value("v3"), &PutOptions::if_version(1))
        .await
        .unwrap_err();
    assert_conflict(&err, 1, Some(2));
    assert_eq!(value_of(store, &scope, &n, None).await, "v2");
}

/// 8 concurrent writers with the same expected version: exactly one wins, every round.
pub async fn concurrent_check_and_set(store: &DynSecretStore, rounds: usize) {
    let scope = fresh_scope();
    let n = name("contended");
    put(store, &scope, &n, "start").await;
    for round in 0..rounds {
        let expected = round as u64 + 1;
        let writers = (0..8).map(|w| {
            let (scope, n) = (scope.clone(), n.clone());
            async move {
                let v = value(&format!("round-{round}-writer-{w}"));
                (
                    w,
                    store
                        .put(&scope, &n, &v, &PutOptions::if_version(expected))
                        .await,
                )
            }
        });
        let results = join_all(writers).await;
        let mut winners = Vec::new();
        for (w, result) in results {
            match result {
                Ok(meta) => {
                    assert_eq!(meta.version, expected + 1);
                    winners.push(w);
                }
                Err(Error::Conflict { .. }) => {}
                Err(other) => panic!("round {round}: writer {w}: {other}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let got = store.get(&scope, &n, None).await.unwrap();
        assert_eq!(got.meta.version, expected + 1);
        assert_eq!(
            got.value.expose_secret(),
            format!("round-{round}-writer-{}", winners[0])
        );
    }
}

/// Blind writes never fail under contention and every one gets its own version (where
/// writes are atomic, i.e. the backend has check-and-set).
pub async fn concurrent_blind_writes(store: &DynSecretStore) {
    let scope = fresh_scope();
    let n = name("blind");
    let writers = (0..16).map(|w| {
        let (scope, n) = (scope.clone(), n.clone());
        async move {
            store
                .put(
                    &scope,
                    &n,
                    &value(&format!("w{w}")),
                    &PutOptions::new().condition(WriteCondition::Blind),
                )
                .await
        }
    });
    let mut versions: Vec<u64> = join_all(writers)
        .await
        .into_iter()
        .map(|r| r.unwrap().version)
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=16).collect::<Vec<_>>());
}

/// Without atomic writes (no check-and-set): 16 concurrent blind writers all succeed, and
/// the secret then holds one of the values written, never a mix or an error.
pub async fn contended_writes_leave_a_written_value(store: &DynSecretStore) {
    let scope = fresh_scope();
    let n = name("contended-blind");
    let written: BTreeSet<String> = (0..16).map(|w| format!("w{w}")).collect();
    let writers = written.iter().map(|v| {
        let (scope, n) = (scope.clone(), n.clone());
        async move { store.put(&scope, &n, &value(v), &PutOptions::new()).await }
    });
    for result in join_all(writers).await {
        result.unwrap();
    }
    let got = store.get(&scope, &n, None).await.unwrap();
    assert!(written.contains(got.value.expose_secret()));
}
