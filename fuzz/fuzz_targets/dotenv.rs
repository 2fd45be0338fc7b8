#![no_main]
//! The .env writer on arbitrary values: refused as not portable, or read back exactly by
//! dotenvy. Replayed on stable by `crates/coffer-env/tests/dotenv.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    coffer_env::fuzzing::dotenv_round_trip(data, |text| {
        dotenvy::from_read_iter(text.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    });
});
