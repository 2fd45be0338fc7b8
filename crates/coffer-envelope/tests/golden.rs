//! Golden envelopes under `tests/data/envelope-v1/` (beside this file), each with its
//! key and context. Every future version of this crate must open them byte for byte.
//!
//! To add cases, run with `COFFER_WRITE_GOLDEN=1`: files that exist are never rewritten.

use std::path::PathBuf;

use coffer_envelope::{Context, Keyring, MasterKey, from_text, to_text};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Golden {
    description: String,
    /// Keyring keys as `[id, hex]`; the envelope names the one that sealed it.
    keys: Vec<(u32, String)>,
    scope: String,
    name: String,
    version: Option<u64>,
    plaintext_hex: String,
    envelope_hex: String,
    envelope_text: String,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/envelope-v1")
}

/// (file stem, description, plaintext, version, sealing key id)
type Case = (&'static str, &'static str, Vec<u8>, Option<u64>, u32);

fn cases() -> Vec<Case> {
    vec![
        ("empty", "empty plaintext, no version", vec![], None, 1),
        (
            "api-key",
            "an API key, version 1",
            b"sk-proj-0123456789abcdefABCDEF".to_vec(),
            Some(1),
            1,
        ),
        (
            "utf8",
            "multi-byte UTF-8, version 42",
            "pässwörd ✓ 秘密 🔑".as_bytes().to_vec(),
            Some(42),
            1,
        ),
        (
            "one-kib",
            "1 KiB of bytes 0..=255, sealed by key 3 of 3",
            (0..1024).map(|i| (i % 256) as u8).collect(),
            Some(u64::MAX),
            3,
        ),
    ]
}

fn keyring_of(keys: &[(u32, String)], primary: u32) -> Keyring {
    Keyring::from_keys(
        keys.iter()
            .map(|(id, hex)| (*id, MasterKey::from_hex(hex).unwrap())),
        primary,
    )
    .unwrap()
}

#[test]
fn golden_envelopes_still_open() {
    let dir = dir();
    if std::env::var_os("COFFER_WRITE_GOLDEN").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        let keys: Vec<(u32, String)> = (1..=3)
            .map(|id| (id, hex::encode([id as u8 * 0x11; 32])))
            .collect();
        for (file, description, plaintext, version, key_id) in cases() {
            let path = dir.join(format!("{file}.json"));
            if path.exists() {
                continue;
            }
            let ring = keyring_of(&keys, key_id);
            let (scope, name) = ("tenant-golden", "providers/openai/api_key");
            let ctx = match version {
                Some(v) => Context::new(scope, name).with_version(v),
                None => Context::new(scope, name),
            };
            let sealed = ring.seal(&plaintext, &ctx);
            let golden = Golden {
                description: description.into(),
                keys: keys.clone(),
                scope: scope.into(),
                name: name.into(),
                version,
                plaintext_hex: hex::encode(&plaintext),
                envelope_hex: hex::encode(&sealed),
                envelope_text: to_text(&sealed),
            };
            std::fs::write(&path, serde_json::to_string_pretty(&golden).unwrap() + "\n").unwrap();
        }
    }

    let mut opened = 0;
    for (file, ..) in cases() {
        let path = dir.join(format!("{file}.json"));
        let golden: Golden = serde_json::from_str(
            &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
        .unwrap();
        let ring = keyring_of(&golden.keys, 1);
        let ctx = match golden.version {
            Some(v) => Context::new(&golden.scope, &golden.name).with_version(v),
            None => Context::new(&golden.scope, &golden.name),
        };
        let sealed = hex::decode(&golden.envelope_hex).unwrap();
        assert_eq!(
            from_text(&golden.envelope_text).unwrap(),
            sealed,
            "{file}: text form"
        );
        assert_eq!(to_text(&sealed), golden.envelope_text, "{file}: text form");
        let plaintext = ring
            .open(&sealed, &ctx)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(hex::encode(&plaintext[..]), golden.plaintext_hex, "{file}");
        opened += 1;
    }
    assert_eq!(opened, cases().len());
}

/// Replays the `parse_open` fuzz corpus (`fuzz/corpus/parse_open/`) on stable Rust.
#[test]
fn fuzz_corpus_replays() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/parse_open");
    if std::env::var_os("COFFER_WRITE_GOLDEN").is_some() {
        write_seed_corpus(&dir);
    }
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        coffer_envelope::fuzzing::parse_open(&data);
        n += 1;
    }
    assert!(n >= 10, "corpus too small: {n} files");
}

/// Seeds: envelopes under the fuzz keyring (both keys, with and without payload), their
/// text forms, truncations and one-bit edits of the header.
fn write_seed_corpus(dir: &std::path::Path) {
    use coffer_envelope::fuzzing::{context, keyring};
    std::fs::create_dir_all(dir).unwrap();
    let ring = keyring();
    let ctx = context();
    let mut old = Keyring::from_keys([(1, MasterKey::from_bytes([1; 32]))], 1).unwrap();
    let sealed_old = old.seal(b"sealed by key 1", &ctx);
    old.add(MasterKey::from_bytes([2; 32]));
    let mut seeds: Vec<Vec<u8>> = vec![
        ring.seal(b"", &ctx),
        ring.seal(b"sk-test-0123456789", &ctx),
        ring.seal(&[0u8; 100], &ctx),
        sealed_old.clone(),
        to_text(&ring.seal(b"text form", &ctx)).into_bytes(),
        b"cf1.".to_vec(),
        b"cf1.!!!!".to_vec(),
        vec![],
        vec![1],
        vec![2; 81],
    ];
    let base = ring.seal(b"abc", &ctx);
    for cut in [1, 5, 21, 53, 65, 80] {
        seeds.push(base[..cut].to_vec());
    }
    for at in [0, 4, 10, 40, 70] {
        let mut edited = base.clone();
        edited[at] ^= 1;
        seeds.push(edited);
    }
    for (i, seed) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap();
    }
}
