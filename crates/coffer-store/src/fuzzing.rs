//! Bodies of the fuzz targets on this crate's parsers, shared with the tests that replay
//! their corpora on stable Rust (`fuzz/corpus/store_url/`).

use crate::open::{redact_url, scheme_of, take_flag};
use crate::{ListOptions, Scope, SecretName, derive_env_name};

/// Store URLs and names from arbitrary bytes: no panic, a redacted URL keeps no user,
/// password, query or fragment, `take_flag` removes its flag for good (the URL text itself
/// may change again: the url crate re-normalizes some odd paths, such as `file://p//…`,
/// on each parse — a fuzz finding), and what a name parser accepts round-trips.
pub fn store_url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = scheme_of(text);
    let redacted = redact_url(text);
    if url::Url::parse(text).is_ok() {
        let back = url::Url::parse(&redacted);
        assert!(back.is_ok(), "a redacted URL no longer parses");
        if let Ok(back) = back {
            assert!(
                back.username().is_empty() && back.password().is_none(),
                "credentials survived redaction"
            );
            assert!(back.query().is_none() && back.fragment().is_none());
        }
    }
    for flag in ["row_level_security", "seal"] {
        if let Ok((without, _)) = take_flag(text, flag) {
            let again = take_flag(&without, flag);
            assert!(
                matches!(again, Ok((_, false))),
                "the flag survived take_flag"
            );
        }
    }
    if let Ok(scope) = Scope::new(text) {
        assert_eq!(scope.as_str(), text);
    }
    if let Ok(name) = SecretName::new(text) {
        assert_eq!(name.as_str(), text);
        let env = derive_env_name(name.as_str());
        assert!(
            env.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        );
    }
    let _ = ListOptions::new().prefix(text).validate();
}
