//! Layers: stores that wrap a store, each behind a feature of this crate, each passing
//! the whole conformance suite (`coffer-testkit`).
//!
//! | layer | feature | what it does |
//! |---|---|---|
//! | [`CacheStore`] | `cache` | moka read cache; TTL, size bound, invalidation (own writes, by hand, other instances' change streams), stale-if-error |
//! | [`AuditStore`] | `audit` | an [`AuditEvent`] per operation into [`AuditSink`]s, fail-closed |
//! | [`FallbackStore`] | `fallback` | reads from a chain of stores, saying which answered |
//! | [`EnvStore`] | `env` | a read-only store over environment variables |
//! | [`RateLimitStore`] | `rate-limit` | calls per second per scope (governor) |
//! | [`UsageStore`] | `usage` | `usage_count` / `last_used_at`, written in batches |
//!
//! Each is a store that wraps a store, named `*Store` as object_store names its
//! wrappers (`FallbackStore` wraps several, `EnvStore` none). They compose like tower's
//! middleware and the order matters; [`StoreBuilder`] names them outermost first, the
//! order a call meets them. A typical stack: rate limit → audit → usage → cache → the
//! backend (every read is limited and audited, counted even when the cache answers, and
//! the backend sees only misses):
//!
//! ```
//! # #[cfg(all(feature = "cache", feature = "audit", feature = "usage", feature = "rate-limit"))]
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer_store::Result<()> {
//! use std::num::NonZeroU32;
//! use std::sync::Arc;
//! use coffer_store::layer::*;
//! use coffer_store::{MemoryStore, SecretStore};
//!
//! let store = StoreBuilder::new()
//!     .rate_limit(NonZeroU32::new(1000).unwrap())
//!     .audit(vec![Arc::new(TracingSink)])
//!     .usage(UsageOptions::new())
//!     .cache(CacheOptions::new())
//!     .build(MemoryStore::new());
//!
//! // The same by hand, innermost first.
//! let by_hand: Arc<dyn SecretStore> = Arc::new(RateLimitStore::per_second(
//!     AuditStore::new(
//!         UsageStore::new(CacheStore::new(MemoryStore::new(), CacheOptions::new()), UsageOptions::new()),
//!         vec![Arc::new(TracingSink)],
//!     ),
//!     NonZeroU32::new(1000).unwrap(),
//! ));
//! # let _ = (store, by_hand);
//! # Ok(()) }
//! # #[cfg(not(all(feature = "cache", feature = "audit", feature = "usage", feature = "rate-limit")))]
//! # fn main() {}
//! ```

#[cfg(feature = "audit")]
mod audit;
mod builder;
#[cfg(feature = "cache")]
mod cache;
#[cfg(feature = "env")]
mod env;
#[cfg(feature = "fallback")]
mod fallback;
#[cfg(feature = "rate-limit")]
mod rate_limit;
#[cfg(feature = "usage")]
mod usage;

#[cfg(feature = "audit")]
pub use audit::{
    AuditEvent, AuditSink, AuditStore, CallerContext, JsonLinesSink, Operation, Outcome,
    TracingSink, printable,
};
pub use builder::StoreBuilder;
#[cfg(feature = "cache")]
pub use cache::{CacheOptions, CacheStats, CacheStore, DEFAULT_MAX_ENTRIES, DEFAULT_TTL};
#[cfg(feature = "env")]
pub use env::EnvStore;
#[cfg(feature = "fallback")]
pub use fallback::{Answered, FallbackStore};
#[cfg(feature = "rate-limit")]
pub use governor::Quota;
#[cfg(feature = "rate-limit")]
pub use rate_limit::RateLimitStore;
#[cfg(feature = "usage")]
pub use usage::{UsageOptions, UsageStore};
