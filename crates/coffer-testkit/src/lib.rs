#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use coffer_store::{Scope, SecretName};
use rand::RngExt as _;

pub mod clients;
pub mod conformance;
mod corpus;
mod faults;
pub mod keys;
#[cfg(feature = "layers")]
pub mod layers;
mod logs;
mod model;
#[cfg(feature = "postgres")]
pub mod postgres;
mod services;

pub use corpus::replay_corpus;
pub use faults::FaultyStore;
pub use logs::LogCapture;
pub use model::acknowledged_values;
pub use services::{service_env, services_required};

/// A fresh scope no other run uses.
pub fn fresh_scope() -> Scope {
    let suffix: u64 = rand::rng().random();
    Scope::new(format!("conformance-{suffix:016x}")).unwrap_or_else(|e| panic!("{e}"))
}

/// A [`SecretName`] from text known to be valid (panics otherwise): for tests.
pub fn name(text: &str) -> SecretName {
    SecretName::new(text).unwrap_or_else(|e| panic!("{e}"))
}

/// The value of the latest version of `name` (panics, naming it, when the read fails).
pub async fn value_of<S: coffer_store::SecretStore + ?Sized>(
    store: &S,
    scope: &Scope,
    name: &str,
) -> String {
    use secrecy::ExposeSecret as _;
    store
        .get(scope, &self::name(name), None)
        .await
        .unwrap_or_else(|e| panic!("get {name}: {e}"))
        .value
        .expose_secret()
        .to_owned()
}

/// A [`Scope`] from text known to be valid (panics otherwise): for tests.
pub fn scope(text: &str) -> Scope {
    Scope::new(text).unwrap_or_else(|e| panic!("{e}"))
}

/// Puts `value(i)` as the secret `k{i}` of `scope` for each `i` in `range`.
pub async fn put_numbered(
    store: &coffer_store::DynSecretStore,
    scope: &Scope,
    range: std::ops::Range<usize>,
    value: impl Fn(usize) -> String,
) {
    for i in range {
        let text = secrecy::SecretString::from(value(i));
        let options = coffer_store::PutOptions::new();
        store
            .put(scope, &name(&format!("k{i}")), &text, &options)
            .await
            .unwrap();
    }
}
