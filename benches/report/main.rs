//! The benchmark report: one criterion harness whose groups put each coffer path beside
//! what a user would otherwise pick, measured in the same run on the same machine.
//!
//! - `envelope seal` / `envelope open`: coffer's envelope beside raw AES-256-GCM (the
//!   same `aes-gcm` crate) at 32 B, 1 KiB and 64 KiB.
//! - `store get` / `store put`, 10,000 secrets present: memory, SQLite, Postgres and
//!   Supabase Vault (the real extension, over TLS), each beside raw sqlx on the same database,
//!   and coffer's Vault store beside raw HTTP to the same OpenBao KV v2 paths.
//! - `store open` / `keyring reload`: a SQLite store opened with a keyring file beside
//!   the keyring kept in the store (under a KEK, under Vault Transit), and what a reload
//!   costs an instance that meets a key id it does not hold.
//! - `cache hit`: a `CacheStore` hit beside the store it caches.
//! - `layers`: usage tracking and the SQL audit sink beside the plain store.
//! - `rewrap_all`: secrets rewrapped per second onto a new key.
//! - `broker point select`: a point `SELECT` through the broker beside a plain sqlx pool,
//!   on SQLite, Postgres and MariaDB.
//! - `store get over TLS`: the Postgres store over `verify-full` beside plaintext on the
//!   same private cluster, at 1 and 4 concurrent callers.
//!
//! The servers come from `scripts/services.sh`, as for the tests; a group whose server is
//! not configured is skipped (with `COFFER_REQUIRE_SERVICES=1` the run fails instead).
//! `scripts/bench-report` runs this harness and turns the results into `BENCHMARKS.md`,
//! using the manifest this harness writes to `$COFFER_BENCH_MANIFEST`: every row with the
//! row it is compared against.
//!
//! ```text
//! source scripts/services.sh && services_start
//! cargo bench -p coffer-benches --bench report    # or: … --bench report -- 'store get'
//! ```

mod broker;
mod envelope;
mod keys;
mod layers;
mod report;
mod store;
mod tls;

use criterion::Criterion;

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut report = report::Report::from_env();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    envelope::bench(&mut c, &mut report);
    store::bench(&mut c, &mut report, &rt);
    keys::bench(&mut c, &mut report, &rt);
    layers::bench(&mut c, &mut report, &rt);
    broker::bench(&mut c, &mut report, &rt);
    tls::bench(&mut c, &mut report, &rt);
    report.write();
    c.final_summary();
}
