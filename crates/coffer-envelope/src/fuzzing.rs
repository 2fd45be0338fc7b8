//! The body of the `parse_open` fuzz target, shared with the test that replays its corpus.

use crate::{Context, Keyring, MasterKey, from_text};

/// A fixed two-key ring (ids 1 and 2, key bytes `0x01..` and `0x02..`), the one the
/// fuzz corpus was sealed with.
pub fn keyring() -> Keyring {
    Keyring::from_keys(
        [
            (1, MasterKey::from_bytes([1; 32])),
            (2, MasterKey::from_bytes([2; 32])),
        ],
        2,
    )
    .unwrap_or_else(|_| Keyring::new(MasterKey::from_bytes([2; 32])))
}

/// The context the fuzz corpus was sealed under.
pub fn context() -> Context<'static> {
    Context::new("fuzz-tenant", "fuzz/secret").with_version(1)
}

/// Feeds arbitrary bytes to every parser: as a binary envelope, as the text form, and
/// as a plaintext that must round-trip. Panics only if an invariant is broken.
pub fn parse_open(data: &[u8]) {
    let keyring = keyring();
    let ctx = context();
    let _ = keyring.open(data, &ctx);
    let _ = keyring.key_id_of(data);
    let _ = keyring.rewrap(data, &ctx);
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(bytes) = from_text(text)
    {
        let _ = keyring.open(&bytes, &ctx);
    }
    let sealed = keyring.seal(data, &ctx);
    let opened = keyring.open(&sealed, &ctx);
    assert!(
        matches!(opened, Ok(ref p) if p.as_slice() == data),
        "round trip failed"
    );
}
