//! The conformance suite: what every [`SecretStore`](crate::SecretStore) — backend or layer — must do.
//!
//! Each check is an async fn over `&dyn SecretStore` that panics on a violation and
//! skips (with a message) what [`SecretStore::capabilities`](crate::SecretStore::capabilities) says the store lacks. Each
//! works in a fresh random scope, so runs against a shared server never collide.
//! [`conformance_tests!`](crate::conformance_tests) turns the list into one `#[test]` per check:
//!
//! ```
//! # mod m {
//! use std::sync::Arc;
//! use coffer_store::{DynSecretStore, MemoryStore};
//! coffer_store::conformance_tests!(async { Some(Arc::new(MemoryStore::new()) as Arc<DynSecretStore>) });
//! # }
//! ```

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use futures::future::join_all;
use rand::RngExt as _;
use secrecy::{ExposeSecret as _, SecretString};

use crate::{
    DeleteMode, DynSecretStore, Error, ListOptions, PutOptions, Scope, SecretKind, SecretName,
    SecretStoreExt as _, WriteCondition,
};

/// Rounds of [`concurrent_check_and_set`] the generated tests run.
pub const CAS_ROUNDS: usize = 200;

/// A fresh scope no other run uses.
pub fn fresh_scope() -> Scope {
    let suffix: u64 = rand::rng().random();
    Scope::new(format!("conformance-{suffix:016x}")).unwrap_or_else(|e| panic!("{e}"))
}

/// A [`SecretName`] from text known to be valid (panics otherwise): for tests.
pub fn name(text: &str) -> SecretName {
    SecretName::new(text).unwrap_or_else(|e| panic!("{e}"))
}

/// A [`Scope`] from text known to be valid (panics otherwise): for tests.
pub fn scope(text: &str) -> Scope {
    Scope::new(text).unwrap_or_else(|e| panic!("{e}"))
}

fn value(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

fn skip(store: &DynSecretStore, what: &str) {
    eprintln!("skipped on {}: the backend lacks {what}", store.backend());
}

/// Put then get returns the value and consistent metadata.
pub async fn put_get_round_trip(store: &DynSecretStore) {
    let scope = fresh_scope();
    let n = name("openai_api_key");
    let before = crate::backend::now();
    let meta = store
        .put(&scope, &n, &value("sk-test-1"), &PutOptions::new())
        .await
        .unwrap();
    assert_eq!(meta.version, 1);
    assert_eq!(
        (meta.scope.clone(), meta.name.clone()),
        (scope.clone(), n.clone())
    );
    assert!(meta.created_at >= before && meta.updated_at >= before);
    assert!(meta.active);
    let got = store.get(&scope, &n, None).await.unwrap();
    assert_eq!(got.value.expose_secret(), "sk-test-1");
    assert_eq!(got.meta.version, 1);
    assert_eq!(store.metadata(&scope, &n).await.unwrap().version, 1);
    assert!(store.exists(&scope, &n).await.unwrap());
    assert!(!store.exists(&scope, &name("missing")).await.unwrap());
}

/// Metadata is stored, returned, and kept when a later write does not set it.
pub async fn metadata_round_trip(store: &DynSecretStore) {
    let scope = fresh_scope();
    let n = name("github/oauth");
    let expires = crate::backend::truncate_millis(Utc::now() + Duration::days(30));
    let options = PutOptions::new()
        .provider("github")
        .kind(SecretKind::OauthToken)
        .description("Deploy bot token\nsecond line")
        .tags(["prod", "ci:deploy"])
        .env_name("GITHUB_TOKEN")
        .expires_at(expires);
    store
        .put(&scope, &n, &value("gho_abc"), &options)
        .await
        .unwrap();
    let meta = store.metadata(&scope, &n).await.unwrap();
    assert_eq!(meta.provider.as_deref(), Some("github"));
    assert_eq!(meta.kind, SecretKind::OauthToken);
    assert_eq!(
        meta.description.as_deref(),
        Some("Deploy bot token\nsecond line")
    );
    assert_eq!(meta.tags, vec!["prod".to_owned(), "ci:deploy".to_owned()]);
    assert_eq!(meta.env_name.as_deref(), Some("GITHUB_TOKEN"));
    assert_eq!(meta.expires_at, Some(expires));

    // A write without metadata keeps it; one with a field changes only that field.
    store
        .put(&scope, &n, &value("gho_def"), &PutOptions::new())
        .await
        .unwrap();
    let kept = store.metadata(&scope, &n).await.unwrap();
    assert_eq!(
        (kept.provider.clone(), kept.kind, kept.tags.clone()),
        (meta.provider.clone(), meta.kind, meta.tags.clone())
    );
    assert_eq!(kept.created_at, meta.created_at);
    store
        .put(
            &scope,
            &n,
            &value("gho_ghi"),
            &PutOptions::new().tags(["staging"]),
        )
        .await
        .unwrap();
    let changed = store.metadata(&scope, &n).await.unwrap();
    assert_eq!(changed.tags, vec!["staging".to_owned()]);
    assert_eq!(changed.env_name.as_deref(), Some("GITHUB_TOKEN"));

    // Invalid metadata is refused, naming the field, and nothing is written.
    let err = store
        .put(&scope, &n, &value("x"), &PutOptions::new().env_name("1BAD"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "env_name",
                ..
            }
        ),
        "{err}"
    );
    let err = store
        .put(
            &scope,
            &n,
            &value("x"),
            &PutOptions::new().tags(["has space"]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { field: "tags", .. }),
        "{err}"
    );
    assert_eq!(
        store
            .get(&scope, &n, None)
            .await
            .unwrap()
            .value
            .expose_secret(),
        "gho_ghi"
    );
}

/// Each write is a new version; old versions stay readable where the backend keeps them.
pub async fn versions(store: &DynSecretStore) {
    let scope = fresh_scope();
    let n = name("rotating");
    for i in 1..=3u64 {
        let meta = store
            .put(
                &scope,
                &n,
                &value(&format!("value-{i}")),
                &PutOptions::new(),
            )
            .await
            .unwrap();
        assert_eq!(meta.version, i);
    }
    let latest = store.get(&scope, &n, None).await.unwrap();
    assert_eq!(
        (latest.value.expose_secret(), latest.meta.version),
        ("value-3", 3)
    );
    if !store.capabilities().versions {
        return skip(store, "readable old versions");
    }
    for i in 1..=3u64 {
        let got = store.get(&scope, &n, Some(i)).await.unwrap();
        assert_eq!(got.value.expose_secret(), format!("value-{i}"));
        assert_eq!(got.meta.version, i);
    }
    let err = store.get(&scope, &n, Some(4)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                version: Some(4),
                ..
            }
        ),
        "{err}"
    );
}

/// Create-only fails on a live secret and changes nothing.
pub async fn create_only(store: &DynSecretStore) {
    let scope = fresh_scope();
    let n = name("webhook");
    store
        .put(&scope, &n, &value("whsec_1"), &PutOptions::create_only())
        .await
        .unwrap();
    let err = store
        .put(&scope, &n, &value("whsec_2"), &PutOptions::create_only())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert_eq!(
        store
            .get(&scope, &n, None)
            .await
            .unwrap()
            .value
            .expose_secret(),
        "whsec_1"
    );
    if store.capabilities().soft_delete {
        store.delete(&scope, &n, DeleteMode::Soft).await.unwrap();
        let meta = store
            .put(&scope, &n, &value("whsec_3"), &PutOptions::create_only())
            .await
            .unwrap();
        assert_eq!(meta.version, 2, "versions continue across a soft delete");
    }
}

/// Check-and-set succeeds only on the expected version.
pub async fn check_and_set(store: &DynSecretStore) {
    if !store.capabilities().check_and_set {
        return skip(store, "check-and-set");
    }
    let scope = fresh_scope();
    let n = name("cas");
    let err = store
        .put(&scope, &n, &value("a"), &PutOptions::if_version(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                expected: 1,
                actual: None,
                ..
            }
        ),
        "{err}"
    );
    store
        .put(&scope, &n, &value("v1"), &PutOptions::new())
        .await
        .unwrap();
    let meta = store
        .put(&scope, &n, &value("v2"), &PutOptions::if_version(1))
        .await
        .unwrap();
    assert_eq!(meta.version, 2);
    let err = store
        .put(&scope, &n, &value("v3"), &PutOptions::if_version(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                expected: 1,
                actual: Some(2),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        store
            .get(&scope, &n, None)
            .await
            .unwrap()
            .value
            .expose_secret(),
        "v2"
    );
}

/// Listing filters by prefix, pages in name order, and never shows values.
pub async fn list_prefix_and_paging(store: &DynSecretStore) {
    let scope = fresh_scope();
    let mut expected = BTreeSet::new();
    for i in 0..23 {
        let n = format!("llm/key-{i:02}");
        store
            .put(&scope, &name(&n), &value("v"), &PutOptions::new())
            .await
            .unwrap();
        expected.insert(n);
    }
    for other in ["db/main", "db/replica", "llm-not-a-dir"] {
        store
            .put(&scope, &name(other), &value("v"), &PutOptions::new())
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut options = ListOptions::new().prefix("llm/").limit(5);
    let mut pages = 0;
    loop {
        let page = store.list(&scope, &options).await.unwrap();
        assert!(page.items.len() <= 5);
        seen.extend(page.items.iter().map(|m| m.name.to_string()));
        pages += 1;
        match page.next_cursor {
            Some(c) => options.cursor = Some(c),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 5);
    assert_eq!(
        seen,
        expected.iter().cloned().collect::<Vec<_>>(),
        "ordered, complete, no duplicates"
    );
    let all = store.list_all(&scope, None).await.unwrap();
    assert_eq!(all.len(), 26);
    let db = store.list_all(&scope, Some("db/")).await.unwrap();
    assert_eq!(
        db.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["db/main", "db/replica"]
    );
    assert!(
        store
            .list_all(&scope, Some("zzz"))
            .await
            .unwrap()
            .is_empty()
    );

    let err = store
        .list(&scope, &ListOptions::new().prefix("bad prefix"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidName { what: "prefix", .. }),
        "{err}"
    );
    let err = store
        .list(&scope, &ListOptions::new().limit(0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { field: "limit", .. }),
        "{err}"
    );
}

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
        skip(store, "soft delete");
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
    assert_eq!(
        store
            .get(&scope, &inactive, None)
            .await
            .unwrap()
            .value
            .expose_secret(),
        "v2"
    );

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
    assert_eq!(
        store
            .get(&scope, &future, None)
            .await
            .unwrap()
            .value
            .expose_secret(),
        "ok"
    );
}

/// Missing secrets, versions and deletes are `NotFound`.
pub async fn not_found(store: &DynSecretStore) {
    let scope = fresh_scope();
    let n = name("nothing-here");
    assert!(matches!(
        store.get(&scope, &n, None).await.unwrap_err(),
        Error::NotFound { version: None, .. }
    ));
    assert!(store.metadata(&scope, &n).await.unwrap_err().is_not_found());
    assert!(
        store
            .delete(&scope, &n, DeleteMode::Destroy)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(store.list_all(&scope, None).await.unwrap().is_empty());
}

/// Each bad scope and name form is `InvalidName` naming the rule (checked when the
/// typed name is built, so no store ever sees one).
pub async fn invalid_names(store: &DynSecretStore) {
    let _ = store;
    let names = [
        ("", "must not be empty"),
        ("/abs", "must not start with '/'"),
        ("dir/", "must not end with '/'"),
        ("a//b", "must not contain '//'"),
        ("a/../b", "must not contain a '..' segment"),
        ("./a", "must not contain a '.' segment"),
        ("sp ace", "may contain only letters, digits and _ . - /"),
        ("nul\0", "may contain only letters, digits and _ . - /"),
    ];
    for (bad, rule) in names {
        match SecretName::new(bad) {
            Err(Error::InvalidName {
                what: "secret name",
                rule: r,
                ..
            }) => assert_eq!(r, rule, "{bad:?}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let long = "x".repeat(256);
    assert!(matches!(
        SecretName::new(long),
        Err(Error::InvalidName {
            rule: "must be at most 255 characters",
            ..
        })
    ));
    for (bad, rule) in [
        ("", "must not be empty"),
        ("a/b", "may contain only letters, digits and _ . @ -"),
        (".x", "must not start with '.'"),
    ] {
        match Scope::new(bad) {
            Err(Error::InvalidName {
                what: "scope",
                rule: r,
                ..
            }) => assert_eq!(r, rule, "{bad:?}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

/// Tenant B never sees tenant A's secret, even under the same name.
pub async fn scope_isolation(store: &DynSecretStore) {
    let a = fresh_scope();
    let b = fresh_scope();
    let n = name("shared/name");
    store
        .put(&a, &n, &value("tenant-a-value"), &PutOptions::new())
        .await
        .unwrap();
    assert!(store.get(&b, &n, None).await.unwrap_err().is_not_found());
    assert!(store.metadata(&b, &n).await.unwrap_err().is_not_found());
    assert!(store.list_all(&b, None).await.unwrap().is_empty());
    assert!(
        store
            .delete(&b, &n, DeleteMode::Destroy)
            .await
            .unwrap_err()
            .is_not_found()
    );
    store
        .put(&b, &n, &value("tenant-b-value"), &PutOptions::create_only())
        .await
        .unwrap();
    assert_eq!(
        store.get(&a, &n, None).await.unwrap().value.expose_secret(),
        "tenant-a-value"
    );
    assert_eq!(
        store.get(&b, &n, None).await.unwrap().value.expose_secret(),
        "tenant-b-value"
    );
    assert_eq!(store.metadata(&a, &n).await.unwrap().version, 1);
}

/// 64 KiB, empty and multi-byte UTF-8 values round-trip exactly; over-size ones are refused.
pub async fn large_and_unicode_values(store: &DynSecretStore) {
    let scope = fresh_scope();
    let big: String = (0..65536)
        .map(|i| char::from(b'!' + (i % 90) as u8))
        .collect();
    let unicode = "pässwörd ✓ 秘密 🔑 \u{202e} \"quotes\" 'single' $HOME `tick` \\ \n\t end ";
    for (n, v) in [("big", big.as_str()), ("unicode", unicode), ("empty", "")] {
        store
            .put(&scope, &name(n), &value(v), &PutOptions::new())
            .await
            .unwrap();
        assert_eq!(
            store
                .get(&scope, &name(n), None)
                .await
                .unwrap()
                .value
                .expose_secret(),
            v,
            "{n}"
        );
    }
    let too_big = "x".repeat(crate::MAX_VALUE_LEN + 1);
    let err = store
        .put(
            &scope,
            &name("too-big"),
            &value(&too_big),
            &PutOptions::new(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { field: "value", .. }),
        "{err}"
    );
    assert!(
        store
            .metadata(&scope, &name("too-big"))
            .await
            .unwrap_err()
            .is_not_found()
    );
}

/// 8 concurrent writers with the same expected version: exactly one wins, every round.
pub async fn concurrent_check_and_set(store: &DynSecretStore, rounds: usize) {
    if !store.capabilities().check_and_set {
        return skip(store, "check-and-set");
    }
    let scope = fresh_scope();
    let n = name("contended");
    store
        .put(&scope, &n, &value("start"), &PutOptions::new())
        .await
        .unwrap();
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

/// Blind writes never fail under contention and every one gets its own version
/// (where writes are atomic, i.e. the backend has check-and-set).
pub async fn concurrent_blind_writes(store: &DynSecretStore) {
    if !store.capabilities().check_and_set {
        return skip(store, "atomic writes");
    }
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

/// Usage records add to `usage_count`, move `last_used_at` only forward, skip unknown
/// secrets, and change neither versions nor `updated_at`.
pub async fn usage_records(store: &DynSecretStore) {
    let scope = fresh_scope();
    let (a, b) = (name("used-a"), name("used-b"));
    let written = store
        .put(&scope, &a, &value("va"), &PutOptions::new())
        .await
        .unwrap();
    store
        .put(&scope, &b, &value("vb"), &PutOptions::new())
        .await
        .unwrap();
    let t1 = crate::backend::now();
    let t0 = t1 - Duration::minutes(5);
    let first = [
        crate::Usage::new(scope.clone(), a.clone(), 3, t1),
        crate::Usage::new(scope.clone(), b.clone(), 1, t0),
        crate::Usage::new(scope.clone(), name("never-written"), 5, t1),
    ];
    match store.record_usage(&first).await {
        Err(Error::Unsupported { .. }) => return skip(store, "usage tracking"),
        other => other.unwrap(),
    }
    store
        .record_usage(&[crate::Usage::new(scope.clone(), a.clone(), 2, t0)])
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
    assert_eq!(
        store
            .get(&scope, &a, None)
            .await
            .unwrap()
            .value
            .expose_secret(),
        "va"
    );
}

/// `expiring_within` lists what expires inside the window, expired ones included,
/// soonest first.
pub async fn expiring_soon(store: &DynSecretStore) {
    let scope = fresh_scope();
    let now = Utc::now();
    for (n, at) in [
        ("in-30-days", Some(now + Duration::days(30))),
        ("in-1-day", Some(now + Duration::days(1))),
        ("expired", Some(now - Duration::hours(1))),
        ("never", None),
    ] {
        let mut options = PutOptions::new();
        if let Some(at) = at {
            options = options.expires_at(at);
        }
        store
            .put(&scope, &name(n), &value("v"), &options)
            .await
            .unwrap();
    }
    let soon = store
        .expiring_within(&scope, std::time::Duration::from_secs(7 * 86_400))
        .await
        .unwrap();
    let names: Vec<&str> = soon.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["expired", "in-1-day"]);
}

/// Runs every check in order (for stores tested outside the generated tests).
pub async fn run_all(store: &DynSecretStore) {
    put_get_round_trip(store).await;
    metadata_round_trip(store).await;
    versions(store).await;
    create_only(store).await;
    check_and_set(store).await;
    list_prefix_and_paging(store).await;
    soft_delete_and_destroy(store).await;
    expired_and_inactive(store).await;
    not_found(store).await;
    invalid_names(store).await;
    scope_isolation(store).await;
    large_and_unicode_values(store).await;
    concurrent_check_and_set(store, CAS_ROUNDS).await;
    concurrent_blind_writes(store).await;
    usage_records(store).await;
    expiring_soon(store).await;
}

/// Generates one `#[tokio::test]` per conformance check.
///
/// The argument is an expression of type `impl Future<Output = Option<Arc<DynSecretStore>>>`,
/// evaluated once per test; `None` means the backend's server is not configured (the
/// factory says why, and fails when `COFFER_REQUIRE_SERVICES=1`). An optional second
/// argument sets the rounds of the concurrent check-and-set check. The calling crate
/// needs `tokio` (with `macros` and `rt-multi-thread`) as a dev-dependency.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!($make, $crate::testing::CAS_ROUNDS);
    };
    ($make:expr, $rounds:expr) => {
        $crate::conformance_tests!(@each $make;
            put_get_round_trip, metadata_round_trip, versions, create_only, check_and_set,
            list_prefix_and_paging, soft_delete_and_destroy, expired_and_inactive, not_found,
            invalid_names, scope_isolation, large_and_unicode_values, concurrent_blind_writes,
            usage_records, expiring_soon);
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_check_and_set() {
            if let Some(store) = $make.await {
                $crate::testing::concurrent_check_and_set(&*store, $rounds).await;
            }
        }
    };
    (@each $make:expr; $($check:ident),*) => {$(
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            if let Some(store) = $make.await {
                $crate::testing::$check(&*store).await;
            }
        }
    )*};
}

/// Log output kept in memory, for tests that check what a flow logs: hand
/// `move || capture.clone()` to a `tracing_subscriber::fmt()` builder's `with_writer`,
/// run the flow, then read [`LogCapture::text`].
///
/// ```
/// use std::io::Write as _;
/// let capture = coffer_store::testing::LogCapture::default();
/// let mut writer = capture.clone();
/// writer.write_all(b"TRACE something happened").unwrap();
/// assert!(capture.text().contains("TRACE"));
/// ```
#[derive(Clone, Default)]
pub struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    /// Everything written so far, as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::fmt::Debug for LogCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // What a test captured may be exactly what must not leak: only its size.
        let len = self.0.lock().map_or(0, |b| b.len());
        f.debug_struct("LogCapture").field("bytes", &len).finish()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether `COFFER_REQUIRE_SERVICES=1` is set: then a missing test server is a failure.
pub fn services_required() -> bool {
    std::env::var("COFFER_REQUIRE_SERVICES")
        .is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Reads a `COFFER_TEST_*` address; when unset, prints why the test skips, or panics
/// when [`services_required`].
pub fn service_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                !services_required(),
                "{var} is not set and COFFER_REQUIRE_SERVICES=1: start the test services (scripts/services.sh)"
            );
            eprintln!("skipped: {var} is not set (scripts/services.sh starts the test services)");
            None
        }
    }
}

/// `operations` random puts, gets, deletes and metadata reads on 8 names, checking each
/// answer against the last acknowledged write: a `get` returns that value, `NotFound`
/// when it was deleted, or a transient error, never anything else. For stores under
/// fault injection ([`FaultyStore`]): panics, naming `label` and `seed`, on a wrong answer,
/// and also when fewer than 5% or more than half of the calls failed.
pub async fn acknowledged_values(
    label: &str,
    store: &DynSecretStore,
    seed: u64,
    operations: usize,
) {
    use rand::{Rng as _, SeedableRng as _};
    const KEYS: usize = 8;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let s = fresh_scope();
    // The last acknowledged value of each key (None: absent).
    let mut model: std::collections::HashMap<usize, Option<String>> =
        std::collections::HashMap::new();
    let mut failures = 0usize;
    for step in 0..operations {
        let k = rng.random_range(0..KEYS);
        let n = name(&format!("k{k}"));
        let known = model.get(&k).cloned().flatten();
        let ctx = || format!("{label}, seed {seed}, step {step}, key k{k}, model {known:?}");
        match rng.random_range(0..10) {
            0..=3 => {
                let v = format!("v{step}-{}", rng.next_u32());
                match store
                    .put(&s, &n, &SecretString::from(v.clone()), &PutOptions::new())
                    .await
                {
                    Ok(meta) => {
                        assert!(meta.version >= 1, "{}", ctx());
                        model.insert(k, Some(v));
                    }
                    Err(e) if e.is_transient() => failures += 1,
                    Err(e) => panic!("{}: put failed with {e}", ctx()),
                }
            }
            4..=7 => match store.get(&s, &n, None).await {
                Ok(secret) => assert_eq!(
                    Some(secret.value.expose_secret()),
                    known.as_deref(),
                    "{}",
                    ctx()
                ),
                Err(Error::NotFound { .. }) => assert_eq!(known, None, "{}", ctx()),
                Err(e) if e.is_transient() => failures += 1,
                Err(e) => panic!("{}: get failed with {e}", ctx()),
            },
            8 => match store.delete(&s, &n, DeleteMode::Destroy).await {
                Ok(()) => {
                    assert!(known.is_some(), "{}", ctx());
                    model.insert(k, None);
                }
                Err(Error::NotFound { .. }) => assert_eq!(known, None, "{}", ctx()),
                Err(e) if e.is_transient() => failures += 1,
                Err(e) => panic!("{}: delete failed with {e}", ctx()),
            },
            _ => match store.metadata(&s, &n).await {
                Ok(meta) => assert!(known.is_some() && meta.version >= 1, "{}", ctx()),
                Err(Error::NotFound { .. }) => assert_eq!(known, None, "{}", ctx()),
                Err(e) if e.is_transient() => failures += 1,
                Err(e) => panic!("{}: metadata failed with {e}", ctx()),
            },
        }
    }
    // Faults were injected, and most calls still went through.
    assert!(
        failures > operations / 20 && failures < operations / 2,
        "{label}: {failures} failures"
    );
}

/// A store that fails on demand, for testing what sits on top of a store: while
/// [`set_down`](Self::set_down) is on every call answers [`Error::Unavailable`]
/// without reaching the wrapped store, and with a [failure rate](Self::with_failure_rate)
/// that share of calls does (chosen at random, before the call).
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: S,
    down: std::sync::atomic::AtomicBool,
    failure_rate: f64,
    calls: std::sync::atomic::AtomicU64,
}

impl<S: crate::SecretStore> FaultyStore<S> {
    /// Wraps `inner`, up and never failing.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            down: std::sync::atomic::AtomicBool::new(false),
            failure_rate: 0.0,
            calls: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Fails this share (0.0–1.0) of calls.
    #[must_use]
    pub fn with_failure_rate(mut self, rate: f64) -> Self {
        self.failure_rate = rate.clamp(0.0, 1.0);
        self
    }

    /// Takes the store down (every call `Unavailable`) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    /// Calls that reached the wrapped store.
    pub fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn gate(&self) -> crate::Result<()> {
        let fail = self.down.load(std::sync::atomic::Ordering::SeqCst)
            || (self.failure_rate > 0.0 && rand::rng().random::<f64>() < self.failure_rate);
        if fail {
            return Err(Error::Unavailable {
                backend: "faulty",
                message: "injected failure".to_owned(),
                source: None,
            });
        }
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: crate::SecretStore> crate::SecretStore for FaultyStore<S> {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn capabilities(&self) -> crate::Capabilities {
        self.inner.capabilities()
    }

    async fn put(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &SecretString,
        options: &PutOptions,
    ) -> crate::Result<crate::SecretMeta> {
        self.gate()?;
        self.inner.put(scope, name, value, options).await
    }

    async fn get(
        &self,
        scope: &Scope,
        name: &SecretName,
        version: Option<u64>,
    ) -> crate::Result<crate::Secret> {
        self.gate()?;
        self.inner.get(scope, name, version).await
    }

    async fn metadata(&self, scope: &Scope, name: &SecretName) -> crate::Result<crate::SecretMeta> {
        self.gate()?;
        self.inner.metadata(scope, name).await
    }

    async fn list(&self, scope: &Scope, options: &ListOptions) -> crate::Result<crate::ListPage> {
        self.gate()?;
        self.inner.list(scope, options).await
    }

    async fn delete(
        &self,
        scope: &Scope,
        name: &SecretName,
        mode: DeleteMode,
    ) -> crate::Result<()> {
        self.gate()?;
        self.inner.delete(scope, name, mode).await
    }

    async fn rewrap_batch(&self, limit: usize) -> crate::Result<crate::RewrapBatch> {
        self.gate()?;
        self.inner.rewrap_batch(limit).await
    }

    async fn record_usage(&self, usage: &[crate::Usage]) -> crate::Result<()> {
        self.gate()?;
        self.inner.record_usage(usage).await
    }
}

/// Feeds every file of a fuzz corpus folder to `target` (the body of a fuzz target) and
/// returns how many there were: fuzz findings replayed as stable tests.
pub fn replay_corpus(dir: &std::path::Path, target: impl Fn(&[u8])) -> usize {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        target(&data);
        n += 1;
    }
    n
}
