//! Store get over TLS beside plaintext, on the same private Postgres cluster
//! (`scripts/services.sh`'s TLS cluster): the same store, database size and query; one
//! connection user over `verify-full` (SCRAM at connect), one over `sslmode=disable`
//! (trust, no password, so no cleartext guard), and one over `sslmode=disable` with a
//! password (SCRAM), which goes through the cleartext guard's relay. 1 and 4 concurrent
//! callers; with 4, one iteration is 4 gets (throughput per get).

use std::hint::black_box;
use std::sync::Arc;

use coffer_envelope::{Keyring, MasterKey};
use coffer_sql::PgStore;
use coffer_store::{DynSecretStore, SecretStore};
use coffer_testkit::postgres::{TestDatabase, TlsServers};
use criterion::{Criterion, Throughput};

use crate::report::Report;
use crate::store::{PRESENT, fill, name_of, next, scope};

pub(crate) fn bench(c: &mut Criterion, report: &mut Report, rt: &tokio::runtime::Runtime) {
    let Some(tls) = TlsServers::from_env() else {
        eprintln!("COFFER_TEST_TLS_* are not set: skipping the TLS rows");
        return;
    };
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    let (stores, _databases) = rt.block_on(async {
        let plain = TestDatabase::create_on(format!(
            "postgres://coffer_plain@127.0.0.1:{}/postgres?sslmode=disable",
            tls.pg_port
        ))
        .await;
        let verified = TestDatabase::create_on(tls.pg_verified_url("postgres")).await;
        let guarded = TestDatabase::create_on(format!(
            "postgres://coffer_scram:{}@127.0.0.1:{}/postgres?sslmode=disable",
            tls.pg_password, tls.pg_port
        ))
        .await;
        let mut stores: Vec<(&str, Arc<DynSecretStore>)> = Vec::new();
        for (label, db) in [
            ("plaintext", &plain),
            ("verify-full", &verified),
            ("plaintext through the cleartext guard", &guarded),
        ] {
            let store = PgStore::connect(db.url(), Arc::clone(&keyring))
                .await
                .expect("connect to the TLS cluster");
            fill(&store, PRESENT).await;
            stores.push((label, Arc::new(store)));
        }
        (stores, [plain, verified, guarded])
    });
    let scope = scope();
    let mut group = report.group(
        c,
        "store get over TLS",
        "Postgres store get of one secret of 10,000 on the private TLS cluster: \
         verify-full, and plaintext through the cleartext guard, beside plaintext on the \
         same server, at 1 and 4 concurrent callers.",
    );
    for callers in [1usize, 4] {
        group.throughput(Throughput::Elements(callers as u64));
        let parameter = format!("{callers} callers");
        for (label, store) in &stores {
            let baseline = (*label != "plaintext").then_some("plaintext");
            let mut i = 0;
            group.row_with(label, &parameter, baseline, |b| {
                b.to_async(rt).iter(|| {
                    let names: Vec<_> = (0..callers)
                        .map(|_| name_of(next(&mut i, PRESENT)))
                        .collect();
                    let (store, scope) = (store, &scope);
                    async move {
                        let gets = names.iter().map(|name| store.get(scope, name, None));
                        for got in futures::future::join_all(gets).await {
                            black_box(got.expect("get"));
                        }
                    }
                });
            });
        }
    }
    group.finish();
}
