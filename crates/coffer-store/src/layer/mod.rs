//! Layers: stores that wrap a store, each behind a feature of this crate, each passing
//! the whole [conformance suite](crate::testing).
//!
//! | layer | feature | what it does |
//! |---|---|---|
//! | [`CacheLayer`] | `cache` | moka read cache; TTL, size bound, invalidation (own writes, by hand, other instances' change streams), stale-if-error |
//! | [`AuditLayer`] | `audit` | an [`AuditEvent`] per operation into [`AuditSink`]s, fail-closed |
//! | [`FallbackStore`] | `fallback` | reads from a chain of stores, saying which answered |
//! | [`EnvStore`] | `env` | a read-only store over environment variables |
//! | [`RateLimitLayer`] | `rate-limit` | calls per second per scope (governor) |
//! | [`UsageLayer`] | `usage` | `usage_count` / `last_used_at`, written in batches |
//!
//! They compose like tower's middleware; the order matters. A typical stack, outermost
//! first: rate limit → audit → usage → cache → the backend (every read is limited and
//! audited, counted even when the cache answers, and the backend sees only misses):
//!
//! ```
//! # #[cfg(all(feature = "cache", feature = "audit", feature = "usage", feature = "rate-limit"))]
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer_store::Result<()> {
//! use std::num::NonZeroU32;
//! use std::sync::Arc;
//! use coffer_store::layer::*;
//! use coffer_store::{MemoryStore, SecretStore};
//!
//! let backend = MemoryStore::new();
//! let store: Arc<dyn SecretStore> = Arc::new(RateLimitLayer::per_second(
//!     AuditLayer::new(
//!         UsageLayer::new(CacheLayer::new(backend, CacheOptions::new()), UsageOptions::new()),
//!         vec![Arc::new(TracingSink)],
//!     ),
//!     NonZeroU32::new(1000).unwrap(),
//! ));
//! # Ok(()) }
//! # #[cfg(not(all(feature = "cache", feature = "audit", feature = "usage", feature = "rate-limit")))]
//! # fn main() {}
//! ```

#[cfg(feature = "audit")]
mod audit;
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
    AuditEvent, AuditLayer, AuditSink, CallerContext, JsonLinesSink, Operation, Outcome,
    TracingSink, printable,
};
#[cfg(feature = "cache")]
pub use cache::{CacheLayer, CacheOptions, CacheStats, DEFAULT_MAX_ENTRIES, DEFAULT_TTL};
#[cfg(feature = "env")]
pub use env::EnvStore;
#[cfg(feature = "fallback")]
pub use fallback::{Answered, FallbackStore};
#[cfg(feature = "rate-limit")]
pub use governor::Quota;
#[cfg(feature = "rate-limit")]
pub use rate_limit::RateLimitLayer;
#[cfg(feature = "usage")]
pub use usage::{UsageLayer, UsageOptions};
