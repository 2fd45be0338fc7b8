//! The body of the `statement` fuzz target, shared with the test that replays its
//! corpus on stable Rust (`fuzz/corpus/statement/`).

use crate::statement::{Dialect, check};
use crate::{BrokerError, Engine, Mode};

/// The statement checker on arbitrary text for every database, string-escape setting
/// and mode: no panic, only `Rejected` errors, and nothing read-only accepts is refused
/// read-write.
pub fn statement(data: &[u8]) {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let dialects = [Engine::Postgres, Engine::Mysql, Engine::Sqlite]
        .into_iter()
        .flat_map(|kind| {
            [false, true].map(|backslash_escapes| Dialect {
                kind,
                backslash_escapes,
            })
        });
    for dialect in dialects {
        let read_only = check(sql, dialect, Mode::ReadOnly);
        let read_write = check(sql, dialect, Mode::ReadWrite);
        for result in [&read_only, &read_write] {
            if let Err(e) = result {
                assert!(matches!(e, BrokerError::Rejected { .. }), "{e}");
            }
        }
        if let Ok(ro) = &read_only {
            let rw = read_write
                .as_ref()
                .unwrap_or_else(|e| panic!("read-only accepts, read-write refuses: {e}"));
            assert_eq!(ro.keyword, rw.keyword);
        }
    }
}
