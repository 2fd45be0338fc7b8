//! The body of the `dotenv` fuzz target, shared with the test that replays its corpus on
//! stable Rust (`fuzz/corpus/dotenv/`). The `.env` reader is a parameter so the library
//! does not depend on one: the target and the test pass dotenvy.

use crate::{EnvMap, EnvWriter, Error, Format};

/// What a `.env` reader returns: the pairs in order, or why it failed.
pub type Read = Result<Vec<(String, String)>, String>;

/// Arbitrary bytes as a value: the `.env` writer either refuses it as not portable or
/// writes a file `read` gives back exactly, with and without `export`; the shell and
/// JSON formats take every value.
pub fn dotenv_round_trip(data: &[u8], read: impl Fn(&str) -> Read) {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let mut map = EnvMap::new();
    if map.insert("FUZZ_VALUE", value.to_owned().into()).is_err() {
        assert!(value.contains('\0'), "a value without NUL was refused");
        return;
    }
    for export in [false, true] {
        match EnvWriter::new(Format::Dotenv).export(export).render(&map) {
            Ok(text) => {
                let pairs = read(&text).unwrap_or_else(|e| panic!("unreadable .env: {e}"));
                assert!(
                    pairs == [("FUZZ_VALUE".to_owned(), value.to_owned())],
                    "the value did not round-trip"
                );
            }
            Err(Error::NotPortable { .. }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    for format in [Format::Shell, Format::Json] {
        assert!(EnvWriter::new(format).render(&map).is_ok());
    }
}
