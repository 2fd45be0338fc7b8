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

/// A store with history lists a live secret's versions (never a value); a store with
/// soft delete lists deleted secrets and restores one as it was; rollback writes an old
/// value as a new version. Stores without them say so.
pub async fn history_and_restore(store: &DynSecretStore) {
    let scope = fresh_scope();
    let (kept, gone) = (name("kept"), name("gone"));
    let options = PutOptions::new().provider("openai").tags(["llm"]);
    for text in ["first-value", "second-value"] {
        store
            .put(&scope, &gone, &value(text), &options)
            .await
            .unwrap();
    }
    put(store, &scope, &kept, "kept").await;
    let caps = store.capabilities();

    if caps.versions {
        let versions = store.versions(&scope, &gone).await.unwrap();
        let numbers: Vec<u64> = versions.iter().map(|v| v.version).collect();
        assert_eq!(numbers, [1, 2]);
        assert!(
            versions
                .iter()
                .all(|v| v.state == coffer_store::VersionState::Kept),
            "{versions:?}"
        );
        assert!(versions[0].created_at <= versions[1].created_at);
        let debug = format!("{versions:?}");
        assert!(
            !debug.contains("first-value") && !debug.contains("second-value"),
            "{debug}"
        );
        // An inactive secret's history is still listed; a missing one is not found.
        store
            .update_attributes(
                &scope,
                &kept,
                &coffer_store::AttributeUpdate::new().active(false),
            )
            .await
            .ok();
        if store.metadata(&scope, &kept).await.is_ok_and(|m| !m.active) {
            assert_eq!(store.versions(&scope, &kept).await.unwrap().len(), 1);
            store
                .update_attributes(
                    &scope,
                    &kept,
                    &coffer_store::AttributeUpdate::new().active(true),
                )
                .await
                .unwrap();
        }
        let err = store.versions(&scope, &name("nobody")).await.unwrap_err();
        assert!(err.is_not_found(), "{err}");

        // Rollback: version 1's value as version 3, the metadata kept.
        let meta = store.rollback(&scope, &gone, 1).await.unwrap();
        assert_eq!(meta.version, 3);
        assert_eq!(meta.provider.as_deref(), Some("openai"));
        assert_eq!(value_of(store, &scope, &gone, None).await, "first-value");
        assert_eq!(
            value_of(store, &scope, &gone, Some(2)).await,
            "second-value"
        );
        let err = store.rollback(&scope, &gone, 9).await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
    } else {
        let err = store.versions(&scope, &gone).await.unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    }
    let latest = store.metadata(&scope, &gone).await.unwrap().version;

    if !caps.soft_delete {
        let err = store
            .list_deleted(&scope, &coffer_store::ListOptions::new())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        let err = store.restore(&scope, &gone).await.unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        return;
    }
    let no_filter = coffer_store::ListOptions::new();
    assert!(
        store
            .list_deleted_all(&scope, &no_filter)
            .await
            .unwrap()
            .is_empty()
    );
    store.delete(&scope, &gone, DeleteMode::Soft).await.unwrap();
    let deleted = store.list_deleted_all(&scope, &no_filter).await.unwrap();
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0].name, gone);
    assert_eq!(deleted[0].version, latest);
    assert_eq!(deleted[0].provider.as_deref(), Some("openai"));
    let live = store.list_all(&scope, None).await.unwrap();
    assert_eq!(live.iter().map(|m| &m.name).collect::<Vec<_>>(), [&kept]);
    // Filters apply to the deleted listing as to the live one.
    let mut other = coffer_store::ListOptions::new();
    other.provider = Some("github".into());
    assert!(
        store
            .list_deleted_all(&scope, &other)
            .await
            .unwrap()
            .is_empty()
    );
    if caps.versions {
        let err = store.versions(&scope, &gone).await.unwrap_err();
        assert!(
            err.is_not_found(),
            "a deleted secret's history is hidden: {err}"
        );
    }

    // Restore: as it was, every version back; again changes nothing.
    let meta = store.restore(&scope, &gone).await.unwrap();
    assert_eq!(meta.version, latest);
    assert_eq!(meta.tags, ["llm"]);
    assert_eq!(value_of(store, &scope, &gone, None).await, "first-value");
    if caps.versions {
        assert_eq!(
            value_of(store, &scope, &gone, Some(2)).await,
            "second-value"
        );
    }
    assert!(
        store
            .list_deleted_all(&scope, &no_filter)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.list_all(&scope, None).await.unwrap().len(), 2);
    let again = store.restore(&scope, &gone).await.unwrap();
    assert_eq!(again.version, latest);
    // The next write continues the numbering.
    assert_eq!(put(store, &scope, &gone, "next").await.version, latest + 1);

    // Nothing to restore: no such name, or destroyed.
    let err = store.restore(&scope, &name("nobody")).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    store
        .delete(&scope, &gone, DeleteMode::Destroy)
        .await
        .unwrap();
    let err = store.restore(&scope, &gone).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}
