//! The conformance suite: what every [`SecretStore`](coffer_store::SecretStore), backend
//! or layer, must do.
//!
//! [`CHECKS`] is the one list of checks. Each is an async fn over `&dyn SecretStore` that
//! panics on a violation and works in a fresh random scope, so runs against a shared
//! server never collide. A check that needs a [`Capability`] the store does not have
//! runs its `otherwise` check instead, which tests what such a store must do (refuse,
//! or at least never answer wrongly): no check is skipped with a message.
//! [`conformance_tests!`](crate::conformance_tests) makes one `#[test]` per check:
//!
//! ```
//! # mod m {
//! use std::sync::Arc;
//! use coffer_store::{DynSecretStore, MemoryStore};
//! coffer_testkit::conformance_tests!(async { Some(Arc::new(MemoryStore::new()) as Arc<DynSecretStore>) });
//! # }
//! ```

use coffer_store::{
    Capabilities, DeleteMode, DynSecretStore, Error, PutOptions, Scope, SecretMeta, SecretName,
};
use futures::future::BoxFuture;
use secrecy::{ExposeSecret as _, SecretString};

mod attributes;
mod conditions;
mod delete;
mod list;
mod read;
mod rewrap;
mod usage;
mod write;

pub use attributes::{
    list_filters_and_find, list_scopes, list_scopes_refused, update_attributes,
    update_attributes_refused,
};
pub use conditions::{
    check_and_set, concurrent_blind_writes, concurrent_check_and_set,
    contended_writes_leave_a_written_value,
};
pub use delete::{history_and_restore, soft_delete_and_destroy};
pub use list::{expiring_soon, list_prefix_and_paging};
pub use read::{expired_and_inactive, not_found, scope_isolation};
pub use rewrap::{rewrap_after_rotation, rewrap_under_one_key};
pub use usage::usage_records;
pub use write::{
    create_only, invalid_names, large_and_unicode_values, metadata_round_trip, put_get_round_trip,
    versions,
};

/// Rounds of [`concurrent_check_and_set`] the generated tests run by default.
pub const CAS_ROUNDS: usize = 200;

pub(crate) fn value(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

/// The value of `name` (at `version`, or the latest), which must read.
pub(crate) async fn value_of(
    store: &DynSecretStore,
    scope: &Scope,
    name: &SecretName,
    version: Option<u64>,
) -> String {
    let secret = store.get(scope, name, version).await.unwrap();
    secret.value.expose_secret().to_owned()
}

/// Asserts that `name` (at `version`, or the latest) does not read: not found.
pub(crate) async fn assert_not_found(
    store: &DynSecretStore,
    scope: &Scope,
    name: &SecretName,
    version: Option<u64>,
) {
    let err = store.get(scope, name, version).await.unwrap_err();
    assert!(err.is_not_found(), "{name}: {err}");
}

/// Asserts that deleting `name` with `mode` finds nothing to delete.
pub(crate) async fn assert_delete_not_found(
    store: &DynSecretStore,
    scope: &Scope,
    name: &SecretName,
    mode: DeleteMode,
) {
    let err = store.delete(scope, name, mode).await.unwrap_err();
    assert!(err.is_not_found(), "{name}: {err}");
}

/// Asserts that `err` is the conflict of a write that expected version `expected` and
/// found `actual`.
pub(crate) fn assert_conflict(err: &Error, expected: u64, actual: Option<u64>) {
    assert!(
        matches!(err, Error::Conflict { expected: e, actual: a, .. } if *e == expected && *a == actual),
        "{err}"
    );
}

/// Puts `text` as the next version of `name`, which must succeed.
pub(crate) async fn put(
    store: &DynSecretStore,
    scope: &Scope,
    name: &SecretName,
    text: &str,
) -> SecretMeta {
    let options = PutOptions::new();
    store
        .put(scope, name, &value(text), &options)
        .await
        .unwrap()
}

/// An optional feature of a store ([`Capabilities`]) that a check needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Atomic check-and-set writes.
    CheckAndSet,
    /// Metadata edits without a new version.
    UpdateAttributes,
    /// Listing scopes.
    ListScopes,
}

impl Capability {
    /// Whether `capabilities` include this one.
    pub fn of(self, capabilities: Capabilities) -> bool {
        match self {
            Self::CheckAndSet => capabilities.check_and_set,
            Self::UpdateAttributes => capabilities.update_attributes,
            Self::ListScopes => capabilities.list_scopes,
        }
    }
}

/// How the suite runs one check.
pub type Run = for<'a> fn(&'a DynSecretStore, &'a Settings) -> BoxFuture<'a, ()>;

/// What a run of the suite may tune.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Rounds of [`concurrent_check_and_set`].
    pub cas_rounds: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            cas_rounds: CAS_ROUNDS,
        }
    }
}

/// One check of the suite.
#[derive(Clone, Copy)]
pub struct Check {
    /// Its name, which is also its test's.
    pub name: &'static str,
    /// What the store must have for [`run`](Self::run).
    pub needs: Option<Capability>,
    /// The check.
    pub run: Run,
    /// The check for a store without [`needs`](Self::needs).
    pub otherwise: Option<Run>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .field("needs", &self.needs)
            .finish_non_exhaustive()
    }
}

macro_rules! checks {
    ($($name:ident $(needs $cap:ident else $otherwise:ident)?),* $(,)?) => {
        /// Every check of the suite, in order.
        pub const CHECKS: &[Check] = &[$(Check {
            name: stringify!($name),
            needs: checks!(@needs $($cap)?),
            run: |store, _settings| Box::pin($name(store)),
            otherwise: checks!(@otherwise $($otherwise)?),
        }),*];
    };
    (@needs) => { None };
    (@needs $cap:ident) => { Some(Capability::$cap) };
    (@otherwise) => { None };
    (@otherwise $o:ident) => { Some(|store, _settings| Box::pin($o(store))) };
}

checks![
    put_get_round_trip,
    metadata_round_trip,
    versions,
    create_only,
    check_and_set,
    list_prefix_and_paging,
    soft_delete_and_destroy,
    history_and_restore,
    expired_and_inactive,
    not_found,
    invalid_names,
    scope_isolation,
    large_and_unicode_values,
    concurrent_blind_writes needs CheckAndSet else contended_writes_leave_a_written_value,
    usage_records,
    expiring_soon,
    rewrap_under_one_key,
    list_filters_and_find,
    update_attributes needs UpdateAttributes else update_attributes_refused,
    list_scopes needs ListScopes else list_scopes_refused,
];

/// The contended check-and-set check, with its rounds from [`Settings`].
pub const CONCURRENT_CHECK_AND_SET: Check = Check {
    name: "concurrent_check_and_set",
    needs: Some(Capability::CheckAndSet),
    run: |store, settings| Box::pin(concurrent_check_and_set(store, settings.cas_rounds)),
    otherwise: Some(|store, _| Box::pin(contended_writes_leave_a_written_value(store))),
};

/// Every check: [`CHECKS`] and [`CONCURRENT_CHECK_AND_SET`].
pub fn all() -> impl Iterator<Item = &'static Check> {
    CHECKS
        .iter()
        .chain(std::iter::once(&CONCURRENT_CHECK_AND_SET))
}

/// Runs the check named `name` on `store`: its own check if the store has what it needs,
/// its `otherwise` check if not.
///
/// # Panics
/// On a violation, and when no check has that name.
pub async fn run(name: &str, store: &DynSecretStore, settings: &Settings) {
    let check = all()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no conformance check is named {name}"));
    let has = check.needs.is_none_or(|cap| cap.of(store.capabilities()));
    match (has, check.otherwise) {
        (false, Some(otherwise)) => otherwise(store, settings).await,
        _ => (check.run)(store, settings).await,
    }
}

/// Runs every check in order (for stores tested outside the generated tests).
pub async fn run_all(store: &DynSecretStore) {
    let settings = Settings::default();
    for check in all() {
        run(check.name, store, &settings).await;
    }
}

/// Generates one `#[tokio::test]` per conformance check, and a test that the generated
/// list is [`all`](crate::conformance::all).
///
/// The argument is an expression of type `impl Future<Output = Option<Arc<DynSecretStore>>>`,
/// evaluated once per test; `None` means the backend's server is not configured (the
/// factory says why, and fails when `COFFER_REQUIRE_SERVICES=1`). An optional second
/// argument sets the rounds of the concurrent check-and-set check. The calling crate
/// needs `tokio` (with `macros` and `rt-multi-thread`) as a dev-dependency.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!($make, $crate::conformance::CAS_ROUNDS);
    };
    ($make:expr, $rounds:expr) => {
        $crate::conformance_tests!(@each $make, $rounds;
            put_get_round_trip, metadata_round_trip, versions, create_only, check_and_set,
            list_prefix_and_paging, soft_delete_and_destroy, history_and_restore,
            expired_and_inactive, not_found,
            invalid_names, scope_isolation, large_and_unicode_values, concurrent_blind_writes,
            usage_records, expiring_soon, rewrap_under_one_key, list_filters_and_find,
            update_attributes, list_scopes, concurrent_check_and_set);
    };
    (@each $make:expr, $rounds:expr; $($check:ident),*) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                if let Some(store) = $make.await {
                    let settings = $crate::conformance::Settings { cas_rounds: $rounds };
                    $crate::conformance::run(stringify!($check), &*store, &settings).await;
                }
            }
        )*

        #[test]
        fn every_conformance_check_has_its_test() {
            let generated = [$(stringify!($check)),*];
            let listed: Vec<&str> = $crate::conformance::all().map(|c| c.name).collect();
            assert_eq!(generated.as_slice(), listed.as_slice());
        }
    };
}
