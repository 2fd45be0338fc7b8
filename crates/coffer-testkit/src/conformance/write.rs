//! Writes and reads of one secret: round trips, metadata, versions, create-only, sizes and names.

use chrono::{Duration, Utc};
use secrecy::ExposeSecret as _;

use coffer_store::{
    DeleteMode, DynSecretStore, Error, PutOptions, Scope, SecretKind, SecretName,
    SecretStoreExt as _,
};

use super::{put, value, value_of};
use crate::{fresh_scope, name};

/// Put then get returns the value and consistent metadata.
pub async fn put_get_round_trip(store: &DynSecretStore) {
    let scope = fresh_scope();
    let n = name("openai_api_key");
    let before = coffer_store::backend::now();
    let meta = put(store, &scope, &n, "sk-test-1").await;
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
    let expires = coffer_store::backend::truncate_millis(Utc::now() + Duration::days(30));
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
    put(store, &scope, &n, "gho_def").await;
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
    assert_eq!(value_of(store, &scope, &n, None).await, "gho_ghi");
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
        // Without readable old versions, asking for one is never answered with another
        // version's value.
        for i in 1..=2u64 {
            let err = store.get(&scope, &n, Some(i)).await.unwrap_err();
            assert!(err.is_not_found(), "version {i}: {err}");
        }
        return;
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
    assert_eq!(value_of(store, &scope, &n, None).await, "whsec_1");
    if store.capabilities().soft_delete {
        store.delete(&scope, &n, DeleteMode::Soft).await.unwrap();
        let meta = store
            .put(&scope, &n, &value("whsec_3"), &PutOptions::create_only())
            .await
            .unwrap();
        assert_eq!(meta.version, 2, "versions continue across a soft delete");
    }
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
    let too_big = "x".repeat(coffer_store::MAX_VALUE_LEN + 1);
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
