//! The layer × backend matrix: the whole conformance suite through each layer of
//! `coffer_store::layer` over any backend, generated once by
//! [`layer_conformance_tests!`](crate::layer_conformance_tests).

use std::num::NonZeroU32;
use std::sync::Arc;

use coffer_store::layer::{
    AuditSink, CacheOptions, EnvStore, FallbackStore, StoreBuilder, UsageOptions,
};
use coffer_store::{DynSecretStore, SecretStore};

/// One row of the matrix: which layers wrap the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// `CacheStore`.
    Cache,
    /// `AuditStore` with the given sinks.
    Audit,
    /// `FallbackStore` over the backend, then an environment source.
    Fallback,
    /// `RateLimitStore`, with a limit no test reaches.
    RateLimit,
    /// `UsageStore`.
    Usage,
    /// All of them, as a service stacks them: rate limit, audit, usage, cache.
    Full,
}

/// `backend` under the layers of `stack`; `sinks` are the audit layer's.
pub fn stack<S: SecretStore + 'static>(
    stack: Stack,
    backend: S,
    sinks: Vec<Arc<dyn AuditSink>>,
) -> Arc<DynSecretStore> {
    let unreached = NonZeroU32::new(1_000_000).unwrap_or(NonZeroU32::MIN);
    let builder = StoreBuilder::new();
    let builder = match stack {
        Stack::Cache => builder.cache(CacheOptions::new()),
        Stack::Audit => builder.audit(sinks),
        Stack::Fallback => builder.layer(|inner| {
            let env = EnvStore::from_vars([("FALLBACK_ONLY_SECRET", "from-the-environment")]);
            FallbackStore::new(inner).or(env.for_all_scopes())
        }),
        Stack::RateLimit => builder.rate_limit(unreached),
        Stack::Usage => builder.usage(UsageOptions::new()),
        Stack::Full => builder
            .rate_limit(unreached)
            .audit(sinks)
            .usage(UsageOptions::new())
            .cache(CacheOptions::new()),
    };
    builder.build(backend)
}

/// Generates the conformance suite through every [`Stack`] over a backend: a module per
/// row (`cache`, `audit`, `fallback`, `rate_limit`, `usage`, `full_stack`), each with one
/// test per check.
///
/// `$backend` is an async expression of a fresh backend store (a concrete type);
/// `$sinks` a function from a reference to it to the audit sinks to use.
#[macro_export]
macro_rules! layer_conformance_tests {
    ($backend:expr, $sinks:expr) => {
        $crate::layer_conformance_tests!(@each $backend, $sinks;
            cache: Cache, audit: Audit, fallback: Fallback, rate_limit: RateLimit,
            usage: Usage, full_stack: Full);
    };
    (@each $backend:expr, $sinks:expr; $($module:ident: $stack:ident),*) => {$(
        mod $module {
            use super::*;
            $crate::conformance_tests!(async {
                let backend = $backend.await;
                let sinks = ($sinks)(&backend);
                Some($crate::layers::stack($crate::layers::Stack::$stack, backend, sinks))
            });
        }
    )*};
}
