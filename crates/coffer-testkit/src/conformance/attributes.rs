//! Metadata without values: list filters, `find`, attribute edits, scope listing.

use chrono::{Duration, Utc};

use coffer_store::{
    AttributeUpdate, DeleteMode, DynSecretStore, Error, ListOptions, PutOptions, SecretKind,
    SecretStoreExt as _,
};
use secrecy::ExposeSecret as _;

use super::{put, value, value_of};
use crate::{fresh_scope, name};

/// Listing filters by provider, kind, tag and active, across pages; `find` returns the
/// one active secret of a provider and kind, and names the candidates when there are several.
pub async fn list_filters_and_find(store: &DynSecretStore) {
    let scope = fresh_scope();
    let secrets = [
        (
            "a_openai",
            "openai",
            SecretKind::ApiKey,
            &["prod"][..],
            true,
        ),
        (
            "b_openai_old",
            "openai",
            SecretKind::ApiKey,
            &["prod", "old"][..],
            false,
        ),
        (
            "c_anthropic",
            "anthropic",
            SecretKind::ApiKey,
            &[][..],
            true,
        ),
        (
            "d_github",
            "github",
            SecretKind::OauthToken,
            &["prod"][..],
            true,
        ),
        (
            "e_github_hook",
            "github",
            SecretKind::WebhookSecret,
            &[][..],
            true,
        ),
        (
            "f_openai_admin",
            "openai",
            SecretKind::Password,
            &["prod"][..],
            true,
        ),
    ];
    for (n, provider, kind, tags, active) in secrets {
        let options = PutOptions::new()
            .provider(provider)
            .kind(kind)
            .tags(tags.iter().copied())
            .active(active);
        store
            .put(&scope, &name(n), &value(&format!("v-{n}")), &options)
            .await
            .unwrap();
    }
    let names = |options| filtered_names(store, &scope, options);
    assert_eq!(
        names(ListOptions::new().provider("openai")).await,
        ["a_openai", "b_openai_old", "f_openai_admin"]
    );
    assert_eq!(
        names(
            ListOptions::new()
                .provider("openai")
                .kind(SecretKind::ApiKey)
                .active(true)
        )
        .await,
        ["a_openai"]
    );
    assert_eq!(
        names(ListOptions::new().tag("prod")).await,
        ["a_openai", "b_openai_old", "d_github", "f_openai_admin"]
    );
    assert_eq!(
        names(ListOptions::new().active(false)).await,
        ["b_openai_old"]
    );
    assert_eq!(
        names(ListOptions::new().kind(SecretKind::WebhookSecret)).await,
        ["e_github_hook"]
    );
    assert!(
        names(ListOptions::new().provider("nobody"))
            .await
            .is_empty()
    );

    let key = store
        .find(&scope, "openai", Some(SecretKind::ApiKey))
        .await
        .unwrap();
    assert_eq!(
        (key.meta.name.as_str(), key.value.expose_secret()),
        ("a_openai", "v-a_openai")
    );
    let err = store.find(&scope, "openai", None).await.unwrap_err();
    assert!(
        matches!(&err, Error::Ambiguous { names, .. } if names == &["a_openai", "f_openai_admin"]),
        "{err}"
    );
    assert!(!err.to_string().contains("v-a_openai"), "{err}");
    let err = store.find(&scope, "mistral", None).await.unwrap_err();
    assert!(
        matches!(err, Error::NoMatch { .. }) && err.is_not_found(),
        "{err}"
    );
}

/// Every name a filtered listing returns, read in pages of 2 (each page must be refilled
/// past what the filters skip).
async fn filtered_names(
    store: &DynSecretStore,
    scope: &coffer_store::Scope,
    options: ListOptions,
) -> Vec<String> {
    let mut options = options.limit(2);
    let mut seen = Vec::new();
    loop {
        let page = store.list(scope, &options).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|m| m.name.to_string()));
        match page.next_cursor {
            Some(c) => options.cursor = Some(c),
            None => return seen,
        }
    }
}

/// An attribute edit changes the metadata and not the version or the value; it renews an
/// expired secret, reactivates an inactive one, clears what it is told to, refuses an
/// expiry in the past, an empty edit and a missing secret, and two edits at once both
/// land.
pub async fn update_attributes(store: &DynSecretStore) {
    let scope = fresh_scope();
    let k = name("renewable");
    let soon = Utc::now() + Duration::milliseconds(300);
    let options = PutOptions::new()
        .provider("openai")
        .kind(SecretKind::ApiKey)
        .description("old key")
        .env_name("OPENAI_API_KEY")
        .tags(["a", "b"])
        .expires_at(soon);
    store
        .put(&scope, &k, &value("first"), &options)
        .await
        .unwrap();
    put(store, &scope, &k, "second").await;
    let before = store.metadata(&scope, &k).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(matches!(
        store.get(&scope, &k, None).await,
        Err(Error::Expired { .. })
    ));

    let edit = AttributeUpdate::new()
        .no_expiry()
        .clear_description()
        .clear_env_name()
        .remove_tag("a")
        .add_tag("c")
        .kind(SecretKind::OauthToken);
    let after = store.update_attributes(&scope, &k, &edit).await.unwrap();
    assert_eq!(after.version, before.version, "no new version");
    assert!(after.updated_at > before.updated_at);
    assert_eq!(after.created_at, before.created_at);
    assert_eq!(after.expires_at, None);
    assert_eq!(after.description, None);
    assert_eq!(after.env_name, None);
    assert_eq!(after.tags, ["b", "c"]);
    assert_eq!(after.kind, SecretKind::OauthToken);
    assert_eq!(after.provider.as_deref(), Some("openai"), "kept");
    assert_eq!(store.metadata(&scope, &k).await.unwrap(), after);
    assert_eq!(value_of(store, &scope, &k, None).await, "second");
    if store.capabilities().versions {
        assert_eq!(value_of(store, &scope, &k, Some(1)).await, "first");
    }

    let off = store
        .update_attributes(&scope, &k, &AttributeUpdate::new().active(false))
        .await
        .unwrap();
    assert!(!off.active);
    assert!(matches!(
        store.get(&scope, &k, None).await,
        Err(Error::Inactive { .. })
    ));
    let later = Utc::now() + Duration::days(30);
    let on = store
        .update_attributes(
            &scope,
            &k,
            &AttributeUpdate::new()
                .active(true)
                .expires_at(later)
                .clear_provider()
                .description("renewed"),
        )
        .await
        .unwrap();
    assert!(on.active && on.provider.is_none());
    assert_eq!(
        on.expires_at.map(|t| t.timestamp_millis()),
        Some(later.timestamp_millis())
    );
    assert_eq!(value_of(store, &scope, &k, None).await, "second");
    // A put afterwards continues the versions and keeps the edited metadata.
    let next = put(store, &scope, &k, "third").await;
    assert_eq!(next.version, before.version + 1);
    assert_eq!(next.description.as_deref(), Some("renewed"));

    let past = AttributeUpdate::new().expires_at(Utc::now() - Duration::hours(1));
    let err = store
        .update_attributes(&scope, &k, &past)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "expires_at",
                ..
            }
        ),
        "{err}"
    );
    let err = store
        .update_attributes(&scope, &k, &AttributeUpdate::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    let err = store
        .update_attributes(
            &scope,
            &name("missing"),
            &AttributeUpdate::new().active(false),
        )
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");

    // Two edits at once, of different fields: neither undoes the other.
    for round in 0..5 {
        let (x, y) = (format!("x{round}"), format!("y{round}"));
        let (ex, ey) = (
            AttributeUpdate::new().add_tag(&x),
            AttributeUpdate::new().add_tag(&y),
        );
        let (a, b) = futures::join!(
            store.update_attributes(&scope, &k, &ex),
            store.update_attributes(&scope, &k, &ey)
        );
        a.unwrap();
        b.unwrap();
        let tags = store.metadata(&scope, &k).await.unwrap().tags;
        assert!(
            tags.contains(&x) && tags.contains(&y),
            "round {round}: {tags:?}"
        );
    }
    assert_eq!(
        store.metadata(&scope, &k).await.unwrap().version,
        next.version
    );
}

/// A store without attribute edits refuses them as unsupported and changes nothing.
pub async fn update_attributes_refused(store: &DynSecretStore) {
    let scope = fresh_scope();
    let k = name("fixed");
    put(store, &scope, &k, "v").await;
    let before = store.metadata(&scope, &k).await.unwrap();
    let err = store
        .update_attributes(&scope, &k, &AttributeUpdate::new().active(false))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert_eq!(store.metadata(&scope, &k).await.unwrap(), before);
}

/// `list_scopes` names every scope with a live secret, once, in order, and not a scope
/// whose secrets are all gone.
pub async fn list_scopes(store: &DynSecretStore) {
    let (a, b, gone) = (fresh_scope(), fresh_scope(), fresh_scope());
    for scope in [&a, &a, &b, &gone] {
        put(store, scope, &name("k"), "v").await;
    }
    put(store, &a, &name("other"), "v").await;
    store
        .delete(&gone, &name("k"), DeleteMode::Destroy)
        .await
        .unwrap();
    let scopes = store.list_scopes().await.unwrap();
    let mut sorted = scopes.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(scopes, sorted, "in order, each once");
    assert!(scopes.contains(&a) && scopes.contains(&b), "{scopes:?}");
    assert!(!scopes.contains(&gone), "{scopes:?}");
}

/// A store that cannot list scopes says so.
pub async fn list_scopes_refused(store: &DynSecretStore) {
    let err = store.list_scopes().await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
}
