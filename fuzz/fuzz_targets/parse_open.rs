#![no_main]
//! Envelope parsing and opening on arbitrary bytes: no panic, and every plaintext
//! round-trips. `cargo +nightly fuzz run parse_open`; the corpus replays on stable in
//! `crates/coffer-envelope/tests/golden.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    coffer_envelope::fuzzing::parse_open(data);
});
