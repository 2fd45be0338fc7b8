//! Listing: prefixes, pages, expiring secrets.

use std::collections::BTreeSet;

use chrono::{Duration, Utc};

use coffer_store::{DynSecretStore, Error, ListOptions, PutOptions, SecretStoreExt as _};

use super::value;
use crate::{fresh_scope, name};

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
