//! The layers over the memory store: the whole conformance suite through each, and
//! what each layer promises on its own.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use coffer_store::layer::*;
use coffer_store::{
    BoxError, DeleteMode, DynSecretStore, Error, ListOptions, MemoryStore, PutOptions, SecretStore,
    SecretStoreExt as _,
};
use coffer_testkit::{FaultyStore, name, scope};
use secrecy::{ExposeSecret as _, SecretString};

fn value(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

coffer_testkit::layer_conformance_tests!(async { MemoryStore::new() }, |_: &MemoryStore| {
    let dir = tempfile::tempdir().unwrap();
    let sink = JsonLinesSink::open(dir.path().join("audit.jsonl")).unwrap();
    // The file stays open after the directory handle goes; the OS removes it later.
    std::mem::forget(dir);
    vec![Arc::new(sink) as Arc<dyn AuditSink>, Arc::new(TracingSink)]
});

// ---------------------------------------------------------------------------- cache

/// A store whose next `get` reads its value, then waits to be released before answering:
/// a read racing a write.
#[derive(Debug, Default)]
struct PausingStore {
    inner: MemoryStore,
    pause: std::sync::Mutex<
        Option<(
            tokio::sync::oneshot::Sender<()>,
            tokio::sync::oneshot::Receiver<()>,
        )>,
    >,
}

#[async_trait]
impl SecretStore for PausingStore {
    fn backend(&self) -> &'static str {
        "pausing"
    }
    fn capabilities(&self) -> coffer_store::Capabilities {
        self.inner.capabilities()
    }
    async fn put(
        &self,
        scope: &coffer_store::Scope,
        name: &coffer_store::SecretName,
        value: &SecretString,
        options: &PutOptions,
    ) -> coffer_store::Result<coffer_store::SecretMeta> {
        self.inner.put(scope, name, value, options).await
    }
    async fn get(
        &self,
        scope: &coffer_store::Scope,
        name: &coffer_store::SecretName,
        version: Option<u64>,
    ) -> coffer_store::Result<coffer_store::Secret> {
        let read = self.inner.get(scope, name, version).await;
        let pause = self.pause.lock().unwrap().take();
        if let Some((reached, release)) = pause {
            reached.send(()).unwrap();
            release.await.unwrap();
        }
        read
    }
    async fn metadata(
        &self,
        scope: &coffer_store::Scope,
        name: &coffer_store::SecretName,
    ) -> coffer_store::Result<coffer_store::SecretMeta> {
        self.inner.metadata(scope, name).await
    }
    async fn list(
        &self,
        scope: &coffer_store::Scope,
        options: &ListOptions,
    ) -> coffer_store::Result<coffer_store::ListPage> {
        self.inner.list(scope, options).await
    }
    async fn delete(
        &self,
        scope: &coffer_store::Scope,
        name: &coffer_store::SecretName,
        mode: DeleteMode,
    ) -> coffer_store::Result<()> {
        self.inner.delete(scope, name, mode).await
    }
}

#[tokio::test]
async fn cache_answers_repeated_reads_and_its_own_writes_invalidate() {
    let cache = CacheStore::new(FaultyStore::new(MemoryStore::new()), CacheOptions::new());
    let (s, n) = (scope("t1"), name("openai_api_key"));
    cache
        .put(&s, &n, &value("v1"), &PutOptions::new())
        .await
        .unwrap();
    for _ in 0..5 {
        assert_eq!(
            cache.get(&s, &n, None).await.unwrap().value.expose_secret(),
            "v1"
        );
    }
    assert_eq!((cache.stats().hits, cache.stats().misses), (4, 1));
    let reads_before = cache.inner().calls();
    cache.get(&s, &n, None).await.unwrap();
    assert_eq!(
        cache.inner().calls(),
        reads_before,
        "a hit does not reach the store"
    );

    cache
        .put(&s, &n, &value("v2"), &PutOptions::new())
        .await
        .unwrap();
    assert_eq!(
        cache.get(&s, &n, None).await.unwrap().value.expose_secret(),
        "v2"
    );
    // Numbered versions are cached apart and dropped with the name.
    assert_eq!(
        cache
            .get(&s, &n, Some(1))
            .await
            .unwrap()
            .value
            .expose_secret(),
        "v1"
    );
    cache.delete(&s, &n, DeleteMode::Soft).await.unwrap();
    assert!(cache.get(&s, &n, None).await.unwrap_err().is_not_found());
    assert!(cache.get(&s, &n, Some(1)).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn cache_invalidate_clear_and_ttl() {
    let inner = Arc::new(MemoryStore::new());
    let cache = CacheStore::new(
        Arc::clone(&inner),
        CacheOptions::new().ttl(Duration::from_millis(200)),
    );
    let (s, n) = (scope("t1"), name("k"));
    inner
        .put(&s, &n, &value("old"), &PutOptions::new())
        .await
        .unwrap();
    assert_eq!(
        cache.get(&s, &n, None).await.unwrap().value.expose_secret(),
        "old"
    );
    // Written behind the cache's back: still the cached value...
    inner
        .put(&s, &n, &value("new"), &PutOptions::new())
        .await
        .unwrap();
    assert_eq!(
        cache.get(&s, &n, None).await.unwrap().value.expose_secret(),
        "old"
    );
    // ...until invalidated,
    cache.invalidate(&s, &n);
    assert_eq!(
        cache.get(&s, &n, None).await.unwrap().value.expose_secret(),
        "new"
    );
    // cleared,
    inner
        .put(&s, &n, &value("newer"), &PutOptions::new())
        .await
        .unwrap();
    cache.clear();
    assert_eq!(
        cache.get(&s, &n, None).await.unwrap().value.expose_secret(),
        "newer"
    );
    // or past its TTL.
    inner
        .put(&s, &n, &value("newest"), &PutOptions::new())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        cache.get(&s, &n, None).await.unwrap().value.expose_secret(),
        "newest"
    );
}

#[tokio::test]
async fn a_read_racing_an_invalidation_cannot_put_the_old_value_back() {
    let cache = Arc::new(CacheStore::new(
        PausingStore::default(),
        CacheOptions::new(),
    ));
    let (s, n) = (scope("t1"), name("k"));
    cache
        .put(&s, &n, &value("old"), &PutOptions::new())
        .await
        .unwrap();
    let (reached_tx, reached) = tokio::sync::oneshot::channel();
    let (release, release_rx) = tokio::sync::oneshot::channel();
    *cache.inner().pause.lock().unwrap() = Some((reached_tx, release_rx));
    let reader = {
        let (cache, s, n) = (Arc::clone(&cache), s.clone(), n.clone());
        tokio::spawn(async move { cache.get(&s, &n, None).await })
    };
    reached.await.unwrap(); // the reader holds "old", read before the write
    cache
        .put(&s, &n, &value("new"), &PutOptions::new())
        .await
        .unwrap();
    release.send(()).unwrap();
    let raced = reader.await.unwrap().unwrap();
    assert_eq!(raced.value.expose_secret(), "old");
    for _ in 0..3 {
        assert_eq!(
            cache.get(&s, &n, None).await.unwrap().value.expose_secret(),
            "new"
        );
    }
}

#[tokio::test]
async fn stale_if_error_serves_an_old_entry_only_while_the_store_is_unavailable() {
    let (s, n) = (scope("t1"), name("k"));
    for stale in [true, false] {
        let mut options = CacheOptions::new().ttl(Duration::from_millis(50));
        if stale {
            options = options.stale_if_error(Duration::from_secs(30));
        }
        let cache = CacheStore::new(FaultyStore::new(MemoryStore::new()), options);
        cache
            .put(&s, &n, &value("v"), &PutOptions::new())
            .await
            .unwrap();
        cache.get(&s, &n, None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
        cache.inner().set_down(true);
        let got = cache.get(&s, &n, None).await;
        if stale {
            assert_eq!(got.unwrap().value.expose_secret(), "v");
            assert_eq!(cache.stats().stale_served, 1);
        } else {
            assert!(got.unwrap_err().is_transient());
        }
        // Other errors are never papered over, and writes are not cached.
        cache.inner().set_down(false);
        cache.delete(&s, &n, DeleteMode::Destroy).await.unwrap();
        cache.inner().set_down(true);
        assert!(cache.get(&s, &n, None).await.unwrap_err().is_transient());
    }
}

#[tokio::test]
async fn a_cached_secret_past_its_expiry_is_an_error() {
    let cache = CacheStore::new(MemoryStore::new(), CacheOptions::new());
    let (s, n) = (scope("t1"), name("short-lived"));
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(300);
    cache
        .put(&s, &n, &value("v"), &PutOptions::new().expires_at(at))
        .await
        .unwrap();
    cache.get(&s, &n, None).await.unwrap();
    cache.get(&s, &n, None).await.unwrap();
    assert_eq!(cache.stats().hits, 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let err = cache.get(&s, &n, None).await.unwrap_err();
    assert!(matches!(err, Error::Expired { .. }), "{err}");
}

#[tokio::test]
async fn a_change_stream_invalidates_and_a_broken_one_clears() {
    let inner = Arc::new(MemoryStore::new());
    let cache = CacheStore::new(Arc::clone(&inner), CacheOptions::new());
    let (tx, rx) = futures::channel::mpsc::unbounded();
    cache.follow(rx);
    assert!(cache.is_following());
    let (s, n) = (scope("t1"), name("k"));
    inner
        .put(&s, &n, &value("a"), &PutOptions::new())
        .await
        .unwrap();
    cache.get(&s, &n, None).await.unwrap();
    inner
        .put(&s, &n, &value("b"), &PutOptions::new())
        .await
        .unwrap();
    tx.unbounded_send(coffer_store::WatchEvent::Changed(coffer_store::Change {
        scope: s.clone(),
        name: n.clone(),
        version: 2,
        op: coffer_store::ChangeOp::Put,
    }))
    .unwrap();
    wait_for(|| async { cache.get(&s, &n, None).await.unwrap().value.expose_secret() == "b" })
        .await;

    inner
        .put(&s, &n, &value("c"), &PutOptions::new())
        .await
        .unwrap();
    tx.unbounded_send(coffer_store::WatchEvent::Disconnected)
        .unwrap();
    wait_for(|| async { !cache.is_following() }).await;
    assert_eq!(
        cache.get(&s, &n, None).await.unwrap().value.expose_secret(),
        "c"
    );
    tx.unbounded_send(coffer_store::WatchEvent::Reconnected)
        .unwrap();
    wait_for(|| async { cache.is_following() }).await;
    drop(tx);
    wait_for(|| async { !cache.is_following() }).await;
}

async fn wait_for<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------- audit

#[derive(Debug)]
struct BrokenSink;

#[async_trait]
impl AuditSink for BrokenSink {
    fn name(&self) -> &'static str {
        "broken"
    }
    async fn record(&self, _event: &AuditEvent) -> Result<(), BoxError> {
        Err("disk full".into())
    }
}

fn read_events(path: &std::path::Path) -> Vec<AuditEvent> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The builder stacks outermost first: an audit named before the cache sees every read,
/// one named after it only the misses.
#[tokio::test]
async fn the_builder_stacks_layers_outermost_first() {
    let dir = tempfile::tempdir().unwrap();
    let (s, n) = (scope("t1"), name("k"));
    let mut gets_seen = Vec::new();
    for audit_first in [true, false] {
        let path = dir.path().join(format!("audit-{audit_first}.jsonl"));
        let sink: Arc<dyn AuditSink> = Arc::new(JsonLinesSink::open(&path).unwrap());
        let backend = MemoryStore::new();
        backend
            .put(&s, &n, &value("value-123456"), &PutOptions::new())
            .await
            .unwrap();
        let builder = if audit_first {
            StoreBuilder::new()
                .audit(vec![sink])
                .cache(CacheOptions::new())
        } else {
            StoreBuilder::new()
                .cache(CacheOptions::new())
                .audit(vec![sink])
        };
        let store = builder.build(backend);
        for _ in 0..3 {
            store.get(&s, &n, None).await.unwrap();
        }
        let gets = read_events(&path)
            .iter()
            .filter(|e| e.operation.as_str() == "get")
            .count();
        gets_seen.push(gets);
    }
    assert!(gets_seen[1] > 0, "{gets_seen:?}");
    assert_eq!(gets_seen[0], 3 * gets_seen[1], "{gets_seen:?}");
}

#[tokio::test]
async fn audit_records_every_operation_with_its_caller_and_never_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let store = AuditStore::new(
        MemoryStore::new(),
        vec![
            Arc::new(JsonLinesSink::open(&path).unwrap()),
            Arc::new(BrokenSink),
        ],
    )
    .with_default_context(CallerContext::new().actor("service:default"));
    let (s, n) = (scope("t1"), name("stripe_key"));
    let secret = "sk_live_audit_canary_81723";
    let ctx = CallerContext::new()
        .actor("user:42")
        .workflow_id("wf-9")
        .node_id("charge")
        .ip("127.0.0.1".parse().unwrap())
        .user_agent("agent/1.0");
    ctx.clone()
        .scope(async {
            store
                .put(&s, &n, &value(secret), &PutOptions::new())
                .await
                .unwrap();
            store.get(&s, &n, None).await.unwrap();
            assert!(
                store
                    .get(&s, &name("missing"), None)
                    .await
                    .unwrap_err()
                    .is_not_found()
            );
            store.list(&s, &ListOptions::new()).await.unwrap();
        })
        .await;
    store.delete(&s, &n, DeleteMode::Destroy).await.unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(secret));
    let events = read_events(&path);
    let summary: Vec<(&str, &str, Option<&str>, Option<&str>)> = events
        .iter()
        .map(|e| {
            (
                e.operation.as_str(),
                e.outcome.as_str(),
                e.name.as_ref().map(|n| n.as_str()),
                e.error_kind.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("put", "attempt", Some("stripe_key"), None),
            ("put", "ok", Some("stripe_key"), None),
            ("get", "ok", Some("stripe_key"), None),
            ("get", "error", Some("missing"), Some("not_found")),
            ("list", "ok", None, None),
            ("destroy", "attempt", Some("stripe_key"), None),
            ("destroy", "ok", Some("stripe_key"), None),
        ]
    );
    assert_eq!(events[1].version, Some(1));
    assert_eq!(events[2].context, ctx);
    assert_eq!(events[5].context.actor.as_deref(), Some("service:default"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[tokio::test]
async fn audit_is_fail_closed_no_value_without_a_record_and_no_unrecorded_write() {
    let inner = Arc::new(MemoryStore::new());
    let (s, n) = (scope("t1"), name("k"));
    inner
        .put(&s, &n, &value("hidden-value-123"), &PutOptions::new())
        .await
        .unwrap();
    let store = AuditStore::new(Arc::clone(&inner), vec![Arc::new(BrokenSink)]);

    let err = store.get(&s, &n, None).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Audit {
                operation: "get",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("disk full"), "{err}");
    assert!(!format!("{err} {err:?}").contains("hidden-value-123"));

    let err = store
        .put(&s, &name("new"), &value("x"), &PutOptions::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Audit {
                operation: "put",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        inner
            .metadata(&s, &name("new"))
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(store.delete(&s, &n, DeleteMode::Destroy).await.is_err());
    assert!(inner.exists(&s, &n).await.unwrap());

    let none = AuditStore::new(Arc::clone(&inner), Vec::new());
    assert!(matches!(
        none.get(&s, &n, None).await.unwrap_err(),
        Error::Audit { .. }
    ));

    let open = AuditStore::new(Arc::clone(&inner), vec![Arc::new(BrokenSink)]).fail_open();
    assert_eq!(
        open.get(&s, &n, None).await.unwrap().value.expose_secret(),
        "hidden-value-123"
    );
}

// ---------------------------------------------------------------------------- fallback

#[tokio::test]
async fn fallback_says_which_store_answered_and_moves_on_only_when_it_should() {
    let primary = Arc::new(FaultyStore::new(MemoryStore::new()));
    let env = EnvStore::from_vars([
        ("OPENAI_API_KEY", "sk-env"),
        ("ONLY_IN_ENV", "e"),
        ("EXPIRED_IN_PRIMARY", "env-copy"),
    ])
    .for_all_scopes();
    let chain = FallbackStore::new(Arc::clone(&primary)).or(env);
    let s = scope("t1");
    primary
        .put(
            &s,
            &name("openai_api_key"),
            &value("sk-vault"),
            &PutOptions::new(),
        )
        .await
        .unwrap();
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    primary
        .put(
            &s,
            &name("expired_in_primary"),
            &value("v"),
            &PutOptions::new().expires_at(past),
        )
        .await
        .unwrap();

    let (secret, answered) = chain
        .get_answered(&s, &name("openai_api_key"), None)
        .await
        .unwrap();
    assert_eq!(
        (
            secret.value.expose_secret(),
            answered.index,
            answered.backend
        ),
        ("sk-vault", 0, "memory")
    );
    let (secret, answered) = chain
        .get_answered(&s, &name("only_in_env"), None)
        .await
        .unwrap();
    assert_eq!(
        (
            secret.value.expose_secret(),
            answered.index,
            answered.backend
        ),
        ("e", 1, "env")
    );
    // Expired is an answer, not a miss.
    assert!(matches!(
        chain
            .get(&s, &name("expired_in_primary"), None)
            .await
            .unwrap_err(),
        Error::Expired { .. }
    ));
    // Unavailable moves on...
    primary.set_down(true);
    let (secret, answered) = chain
        .get_answered(&s, &name("openai_api_key"), None)
        .await
        .unwrap();
    assert_eq!(
        (secret.value.expose_secret(), answered.backend),
        ("sk-env", "env")
    );
    // ...and when nobody has it, the caller hears Unavailable (worth a retry), not NotFound.
    assert!(
        chain
            .get(&s, &name("nowhere"), None)
            .await
            .unwrap_err()
            .is_transient()
    );
    primary.set_down(false);
    assert!(
        chain
            .get(&s, &name("nowhere"), None)
            .await
            .unwrap_err()
            .is_not_found()
    );
    // Writes go to the first store.
    chain
        .put(
            &s,
            &name("only_in_env"),
            &value("now-primary"),
            &PutOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        primary
            .inner()
            .get(&s, &name("only_in_env"), None)
            .await
            .unwrap()
            .value
            .expose_secret(),
        "now-primary"
    );
}

#[tokio::test]
async fn fallback_lists_merge_by_name_with_the_first_store_winning() {
    let (a, b) = (MemoryStore::new(), MemoryStore::new());
    let s = scope("t1");
    for n in ["a1", "c3", "e5", "shared"] {
        a.put(
            &s,
            &name(n),
            &value("v"),
            &PutOptions::new().provider("first"),
        )
        .await
        .unwrap();
    }
    for n in ["b2", "d4", "f6", "shared"] {
        b.put(
            &s,
            &name(n),
            &value("v"),
            &PutOptions::new().provider("second"),
        )
        .await
        .unwrap();
    }
    let chain = FallbackStore::new(a).or(b);
    let all = chain.list_all(&s, None).await.unwrap();
    let names: Vec<&str> = all.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a1", "b2", "c3", "d4", "e5", "f6", "shared"]);
    assert_eq!(all.last().unwrap().provider.as_deref(), Some("first"));
    // Paging two at a time sees each name once, in order.
    let mut paged = Vec::new();
    let mut options = ListOptions::new().limit(2);
    loop {
        let page = chain.list(&s, &options).await.unwrap();
        assert!(page.items.len() <= 2);
        paged.extend(page.items.into_iter().map(|m| m.name.to_string()));
        match page.next_cursor {
            Some(c) => options = options.cursor(c),
            None => break,
        }
    }
    assert_eq!(paged, names);
}

#[tokio::test]
async fn the_environment_source_maps_names_limits_scopes_and_is_read_only() {
    let vars = [
        ("APP_OPENAI_API_KEY", "sk-1"),
        ("APP_GITHUB_TOKEN_V2", "gh-2"),
        ("APP_lower", "ignored: does not map back"),
        ("PATH", "/usr/bin"),
    ];
    let t1 = scope("t1");
    let store = EnvStore::from_vars(vars)
        .prefix("APP_")
        .for_scope(t1.clone());
    let got = store.get(&t1, &name("openai_api_key"), None).await.unwrap();
    assert_eq!(got.value.expose_secret(), "sk-1");
    assert_eq!(got.meta.env_name.as_deref(), Some("APP_OPENAI_API_KEY"));
    assert_eq!(got.meta.version, 1);
    // Characters outside [A-Z0-9_] map to _, as coffer-env injects them.
    assert_eq!(
        store
            .get(&t1, &name("github/token.v2"), None)
            .await
            .unwrap()
            .value
            .expose_secret(),
        "gh-2"
    );
    assert!(
        store
            .get(&t1, &name("openai_api_key"), Some(2))
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        store
            .get(&scope("t2"), &name("openai_api_key"), None)
            .await
            .unwrap_err()
            .is_not_found()
    );
    let listed: Vec<String> = store
        .list_all(&t1, None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name.to_string())
        .collect();
    assert_eq!(listed, ["github_token_v2", "openai_api_key"]);
    assert!(matches!(
        store
            .put(&t1, &name("x"), &value("y"), &PutOptions::new())
            .await
            .unwrap_err(),
        Error::PermissionDenied { .. }
    ));
    assert!(
        store
            .delete(&t1, &name("openai_api_key"), DeleteMode::Destroy)
            .await
            .is_err()
    );
    assert!(!format!("{store:?}").contains("sk-1"));

    // Without a prefix it reads but does not list; without a scope choice it serves none.
    let bare = EnvStore::from_vars(vars).for_all_scopes();
    assert!(bare.list_all(&t1, None).await.unwrap().is_empty());
    assert!(bare.get(&scope("any"), &name("path"), None).await.is_ok());
    let unscoped = EnvStore::from_vars(vars);
    assert!(
        unscoped
            .get(&t1, &name("path"), None)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

// ---------------------------------------------------------------------------- rate limit

#[tokio::test]
async fn over_the_limit_is_rate_limited_per_scope_before_reaching_the_store() {
    let store = RateLimitStore::per_second(
        FaultyStore::new(MemoryStore::new()),
        NonZeroU32::new(5).unwrap(),
    );
    let (busy, quiet, n) = (scope("busy"), scope("quiet"), name("k"));
    for _ in 0..5 {
        assert!(store.metadata(&busy, &n).await.unwrap_err().is_not_found());
    }
    let err = store.get(&busy, &n, None).await.unwrap_err();
    let Error::RateLimited { scope, retry_after } = &err else {
        panic!("{err}");
    };
    assert_eq!(scope, "busy");
    assert!(
        *retry_after > Duration::ZERO && *retry_after <= Duration::from_secs(1),
        "{retry_after:?}"
    );
    assert!(err.is_transient());
    assert_eq!(
        store.inner().calls(),
        5,
        "refused calls never reach the store"
    );
    assert!(store.metadata(&quiet, &n).await.unwrap_err().is_not_found());
    tokio::time::sleep(*retry_after + Duration::from_millis(20)).await;
    assert!(store.metadata(&busy, &n).await.unwrap_err().is_not_found());
}

// ---------------------------------------------------------------------------- usage

async fn usage_of(store: &DynSecretStore, n: &str) -> u64 {
    store
        .metadata(&scope("t1"), &name(n))
        .await
        .unwrap()
        .usage_count
}

#[tokio::test]
async fn usage_is_counted_without_waiting_and_flushed_by_count_and_by_time() {
    let inner = Arc::new(MemoryStore::new());
    let s = scope("t1");
    for n in ["a", "b", "c"] {
        inner
            .put(&s, &name(n), &value("v"), &PutOptions::new())
            .await
            .unwrap();
    }
    // By count: the third distinct secret triggers a flush.
    let by_count = UsageStore::new(
        Arc::clone(&inner),
        UsageOptions::new()
            .interval(Duration::from_secs(3600))
            .max_pending(3),
    );
    for n in ["a", "a", "b"] {
        by_count.get(&s, &name(n), None).await.unwrap();
    }
    assert_eq!(usage_of(&*inner, "a").await, 0, "nothing written yet");
    assert_eq!(
        by_count.metadata(&s, &name("a")).await.unwrap().usage_count,
        2,
        "pending counts show at once"
    );
    assert!(
        by_count
            .metadata(&s, &name("a"))
            .await
            .unwrap()
            .last_used_at
            .is_some()
    );
    by_count.get(&s, &name("c"), None).await.unwrap();
    wait_for(|| async { usage_of(&*inner, "a").await == 2 && usage_of(&*inner, "c").await == 1 })
        .await;
    assert_eq!(by_count.pending(), 0);

    // By time.
    let by_time = UsageStore::new(
        Arc::clone(&inner),
        UsageOptions::new().interval(Duration::from_millis(50)),
    );
    by_time.get(&s, &name("b"), None).await.unwrap();
    wait_for(|| async { usage_of(&*inner, "b").await == 2 }).await;

    // Dropping the layer hands the rest to its task.
    let dropped = UsageStore::new(
        Arc::clone(&inner),
        UsageOptions::new().interval(Duration::from_secs(3600)),
    );
    dropped.get(&s, &name("c"), None).await.unwrap();
    drop(dropped);
    wait_for(|| async { usage_of(&*inner, "c").await == 2 }).await;
}

#[tokio::test]
async fn a_failed_flush_loses_no_count_and_a_store_without_usage_turns_tracking_off() {
    let inner = Arc::new(FaultyStore::new(MemoryStore::new()));
    let s = scope("t1");
    inner
        .put(&s, &name("a"), &value("v"), &PutOptions::new())
        .await
        .unwrap();
    let layer = UsageStore::new(
        Arc::clone(&inner),
        UsageOptions::new().interval(Duration::from_secs(3600)),
    );
    for _ in 0..3 {
        layer.get(&s, &name("a"), None).await.unwrap();
    }
    inner.set_down(true);
    assert!(layer.flush().await.unwrap_err().is_transient());
    inner.set_down(false);
    layer.get(&s, &name("a"), None).await.unwrap();
    layer.flush().await.unwrap();
    assert_eq!(
        inner
            .inner()
            .metadata(&s, &name("a"))
            .await
            .unwrap()
            .usage_count,
        4
    );

    let env = UsageStore::new(
        EnvStore::from_vars([("K", "v")]).for_all_scopes(),
        UsageOptions::new(),
    );
    env.get(&s, &name("k"), None).await.unwrap();
    env.flush().await.unwrap();
    env.get(&s, &name("k"), None).await.unwrap();
    assert_eq!(
        env.pending(),
        0,
        "tracking is off after the store said it keeps no usage"
    );
}
