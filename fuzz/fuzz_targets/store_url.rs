#![no_main]
//! Store URLs, scopes and names on arbitrary bytes: no panic, redaction keeps no
//! credential, flags come off for good. Replayed on stable by
//! `crates/coffer-store/tests/fuzz_corpus.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    coffer_store::fuzzing::store_url(data);
});
