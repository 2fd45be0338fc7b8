//! A model checker: every answer of a store checked against the last acknowledged write.

use coffer_store::{DeleteMode, DynSecretStore, Error, PutOptions};
use rand::RngExt as _;
use secrecy::{ExposeSecret as _, SecretString};

use crate::{fresh_scope, name};

/// `operations` random puts, gets, deletes and metadata reads on 8 names, checking each
/// answer against the last acknowledged write: a `get` returns that value, `NotFound`
/// when it was deleted, or a transient error, never anything else. For stores under
/// fault injection ([`FaultyStore`](crate::FaultyStore)): panics, naming `label` and `seed`, on a wrong answer,
/// and also when fewer than 5% or more than half of the calls failed.
pub async fn acknowledged_values(
    label: &str,
    store: &DynSecretStore,
    seed: u64,
    operations: usize,
) {
    use rand::{Rng as _, SeedableRng as _};
    const KEYS: usize = 8;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let s = fresh_scope();
    // The last acknowledged value of each key (None: absent).
    let mut model: std::collections::HashMap<usize, Option<String>> =
        std::collections::HashMap::new();
    let mut failures = 0usize;
    for step in 0..operations {
        let k = rng.random_range(0..KEYS);
        let n = name(&format!("k{k}"));
        let known = model.get(&k).cloned().flatten();
        let ctx = || format!("{label}, seed {seed}, step {step}, key k{k}, model {known:?}");
        match rng.random_range(0..10) {
            0..=3 => {
                let v = format!("v{step}-{}", rng.next_u32());
                match store
                    .put(&s, &n, &SecretString::from(v.clone()), &PutOptions::new())
                    .await
                {
                    Ok(meta) => {
                        assert!(meta.version >= 1, "{}", ctx());
                        model.insert(k, Some(v));
                    }
                    Err(e) if e.is_transient() => failures += 1,
                    Err(e) => panic!("{}: put failed with {e}", ctx()),
                }
            }
            4..=7 => match store.get(&s, &n, None).await {
                Ok(secret) => assert_eq!(
                    Some(secret.value.expose_secret()),
                    known.as_deref(),
                    "{}",
                    ctx()
                ),
                Err(Error::NotFound { .. }) => assert_eq!(known, None, "{}", ctx()),
                Err(e) if e.is_transient() => failures += 1,
                Err(e) => panic!("{}: get failed with {e}", ctx()),
            },
            8 => match store.delete(&s, &n, DeleteMode::Destroy).await {
                Ok(()) => {
                    assert!(known.is_some(), "{}", ctx());
                    model.insert(k, None);
                }
                Err(Error::NotFound { .. }) => assert_eq!(known, None, "{}", ctx()),
                Err(e) if e.is_transient() => failures += 1,
                Err(e) => panic!("{}: delete failed with {e}", ctx()),
            },
            _ => match store.metadata(&s, &n).await {
                Ok(meta) => assert!(known.is_some() && meta.version >= 1, "{}", ctx()),
                Err(Error::NotFound { .. }) => assert_eq!(known, None, "{}", ctx()),
                Err(e) if e.is_transient() => failures += 1,
                Err(e) => panic!("{}: metadata failed with {e}", ctx()),
            },
        }
    }
    // Faults were injected, and most calls still went through.
    assert!(
        failures > operations / 20 && failures < operations / 2,
        "{label}: {failures} failures"
    );
}
