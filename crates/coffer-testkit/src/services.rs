//! The test services: whether a run requires them, and where they are.

/// Whether `COFFER_REQUIRE_SERVICES=1` is set: then a missing test server is a failure.
pub fn services_required() -> bool {
    std::env::var("COFFER_REQUIRE_SERVICES")
        .is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Reads a `COFFER_TEST_*` address; when unset, prints why the test skips, or panics
/// when [`services_required`].
pub fn service_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                !services_required(),
                "{var} is not set and COFFER_REQUIRE_SERVICES=1: start the test services (scripts/services.sh)"
            );
            eprintln!("skipped: {var} is not set (scripts/services.sh starts the test services)");
            None
        }
    }
}
