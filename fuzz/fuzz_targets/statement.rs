#![no_main]
//! The broker's statement checks on arbitrary SQL for every database and mode: no panic,
//! and nothing read-only accepts is refused read-write. Replayed on stable by
//! `crates/coffer-broker/tests/fuzz_corpus.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    coffer_broker::fuzzing::statement(data);
});
