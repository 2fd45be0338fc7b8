//! Every layer stack over a store that fails 20% of its calls, under 10,000 random
//! operations: no panic, and every `get` answers the last acknowledged value or an error.

use std::num::NonZeroU32;
use std::sync::Arc;

use coffer_store::layer::*;
use coffer_store::{DynSecretStore, MemoryStore};
use coffer_testkit::FaultyStore;

const OPERATIONS: usize = 10_000;

type Stack = (&'static str, Arc<DynSecretStore>);

fn faulty() -> FaultyStore<MemoryStore> {
    FaultyStore::new(MemoryStore::new()).with_failure_rate(0.2)
}

fn stacks() -> Vec<Stack> {
    let fast = NonZeroU32::new(1_000_000).unwrap();
    vec![
        ("faulty", Arc::new(faulty())),
        (
            "cache",
            Arc::new(CacheStore::new(faulty(), CacheOptions::new())),
        ),
        (
            "cache+stale-if-error",
            Arc::new(CacheStore::new(
                faulty(),
                CacheOptions::new()
                    .ttl(std::time::Duration::from_millis(1))
                    .stale_if_error(std::time::Duration::from_secs(60)),
            )),
        ),
        (
            "audit",
            Arc::new(AuditStore::new(faulty(), vec![Arc::new(TracingSink)])),
        ),
        (
            "usage",
            Arc::new(UsageStore::new(
                faulty(),
                UsageOptions::new().max_pending(3),
            )),
        ),
        (
            "rate-limit",
            Arc::new(RateLimitStore::per_second(faulty(), fast)),
        ),
        (
            "fallback",
            Arc::new(
                FallbackStore::new(faulty())
                    .or(EnvStore::from_vars([("UNRELATED", "x")]).for_all_scopes()),
            ),
        ),
        (
            "full stack",
            Arc::new(RateLimitStore::per_second(
                AuditStore::new(
                    UsageStore::new(
                        CacheStore::new(faulty(), CacheOptions::new()),
                        UsageOptions::new().max_pending(3),
                    ),
                    vec![Arc::new(TracingSink)],
                ),
                fast,
            )),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_layer_stack_answers_the_last_acknowledged_value_or_an_error() {
    let seed: u64 = std::env::var("COFFER_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed {seed} (COFFER_FAULT_SEED reruns it)");
    for (label, store) in stacks() {
        coffer_testkit::acknowledged_values(label, &*store, seed, OPERATIONS).await;
    }
}
