//! The memory store, the reference implementation, passes the whole conformance suite.

use std::sync::Arc;

use coffer_store::{DynSecretStore, MemoryStore};

coffer_testkit::conformance_tests!(async {
    Some(Arc::new(MemoryStore::new()) as Arc<DynSecretStore>)
});

mod through_arc {
    //! Through the `Arc` forwarding impl, as layers and URL-opened stores are used.
    use super::*;
    coffer_testkit::conformance_tests!(async {
        let inner: Arc<DynSecretStore> = Arc::new(MemoryStore::new());
        Some(Arc::new(inner) as Arc<DynSecretStore>)
    });
}

#[test]
fn secret_debug_is_redacted() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        use coffer_store::{PutOptions, Scope, SecretName, SecretStore};
        let store = MemoryStore::new();
        let (s, n) = (Scope::new("t").unwrap(), SecretName::new("n").unwrap());
        store
            .put(&s, &n, &"canary-value-123".into(), &PutOptions::new())
            .await
            .unwrap();
        let secret = store.get(&s, &n, None).await.unwrap();
        let debug = format!("{secret:?} {store:?}");
        assert!(!debug.contains("canary-value-123"), "{debug}");
        assert!(debug.contains("REDACTED"), "{debug}");
    });
}
