//! Round trips, nonce and salt uniqueness, keyring files, and `Debug` redaction.

use std::collections::HashSet;

use coffer_envelope::{
    Context, HEADER_LEN, KdfParams, Keyring, MasterKey, NONCE_LEN, OVERHEAD, SALT_LEN, from_text,
    to_text,
};
use proptest::prelude::*;

fn check_round_trip(keyring: &Keyring, data: &[u8], scope: &str, name: &str, version: Option<u64>) {
    let ctx = match version {
        Some(v) => Context::new(scope, name).with_version(v),
        None => Context::new(scope, name),
    };
    let sealed = keyring.seal(data, &ctx);
    assert_eq!(sealed.len(), data.len() + OVERHEAD);
    assert_eq!(&keyring.open(&sealed, &ctx).unwrap()[..], data);
    let text = to_text(&sealed);
    assert!(text.starts_with("cf1."));
    assert_eq!(
        &keyring.open(&from_text(&text).unwrap(), &ctx).unwrap()[..],
        data
    );
}

#[test]
fn round_trip_at_the_edge_sizes() {
    let keyring = Keyring::new(MasterKey::generate());
    for size in [0usize, 1, 15, 16, 17, 4095, 4096, 65535, 65536] {
        let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
        check_round_trip(&keyring, &data, "tenant", "name", Some(size as u64));
    }
}

proptest! {
    #[test]
    fn round_trip_random(
        data in proptest::collection::vec(any::<u8>(), 0..70_000),
        scope in "[A-Za-z0-9_.@-]{1,64}",
        name in "[A-Za-z0-9_./-]{1,255}",
        version in proptest::option::of(any::<u64>()),
    ) {
        let keyring = Keyring::new(MasterKey::generate());
        check_round_trip(&keyring, &data, &scope, &name, version);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        coffer_envelope::fuzzing::parse_open(&data);
    }
}

#[test]
fn salts_and_nonces_never_repeat_over_2_pow_17_seals() {
    let keyring = Keyring::new(MasterKey::generate());
    let ctx = Context::new("t", "n");
    let n = 1usize << 17;
    let mut salts = HashSet::with_capacity(n);
    let mut nonces = HashSet::with_capacity(n);
    for _ in 0..n {
        let sealed = keyring.seal(b"same plaintext", &ctx);
        let salt: [u8; SALT_LEN] = sealed[5..5 + SALT_LEN].try_into().unwrap();
        let nonce: [u8; NONCE_LEN] = sealed[HEADER_LEN - NONCE_LEN..HEADER_LEN]
            .try_into()
            .unwrap();
        salts.insert(salt);
        nonces.insert(nonce);
    }
    assert_eq!(salts.len(), n);
    assert_eq!(nonces.len(), n);
}

#[test]
fn debug_of_key_types_shows_no_key_bytes() {
    let bytes = [0xa7u8; 32];
    let key = MasterKey::from_bytes(bytes);
    let mut ring = Keyring::new(key.clone());
    ring.add(MasterKey::from_bytes([0x5c; 32]));
    let params = KdfParams::generate();
    let from_pass = MasterKey::from_passphrase(&"a passphrase".into(), &params).unwrap();
    let outputs = [
        format!("{key:?}"),
        format!("{key:#?}"),
        format!("{ring:?}"),
        format!("{ring:#?}"),
        format!("{from_pass:?}"),
    ];
    let forbidden = [
        hex::encode(bytes),
        "a7a7a7".to_owned(),
        "167, 167".to_owned(),
        "p6en".to_owned(), // base64 of a7 a7 a7
        "5c5c5c".to_owned(),
        "a passphrase".to_owned(),
    ];
    for out in &outputs {
        for bad in &forbidden {
            assert!(
                !out.to_lowercase().contains(&bad.to_lowercase()),
                "{out:?} contains {bad}"
            );
        }
        assert!(out.contains("REDACTED") || out.contains("Keyring"), "{out}");
    }
}

#[cfg(unix)]
#[test]
fn keyring_file_round_trips_with_mode_0600_and_refuses_open_permissions() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/keyring.json");
    let mut ring = Keyring::new(MasterKey::generate());
    let ctx = Context::new("t", "n");
    let sealed = ring.seal(b"v1", &ctx);
    ring.rotate();
    ring.set_rotation_pending(true);
    ring.save(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let loaded = Keyring::load(&path, None).unwrap();
    assert_eq!(loaded.primary_id(), 2);
    assert!(loaded.rotation_pending());
    assert_eq!(&loaded.open(&sealed, &ctx).unwrap()[..], b"v1");

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Keyring::load(&path, None).unwrap_err().to_string();
    assert!(err.contains("chmod 600"), "{err}");
}

/// A removed key's material is gone from the file, its id is never given out again, and
/// what it sealed no longer opens; creation times survive a save and load.
#[test]
fn a_removed_key_is_gone_from_the_file_and_its_id_is_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.json");
    let mut ring = Keyring::new(MasterKey::generate());
    let ctx = Context::new("t", "n");
    let old = ring.seal(b"old", &ctx);
    let created = ring
        .created_at(1)
        .expect("a new key records when it was made");
    assert_eq!(ring.rotate(), 2);
    assert!(ring.remove(2).is_err(), "the primary cannot be removed");
    assert!(ring.remove(9).is_err(), "nor a key the ring does not hold");
    ring.remove(1).unwrap();
    ring.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches("\"check\"").count(), 1, "one key left: {text}");

    let mut loaded = Keyring::load(&path, None).unwrap();
    assert_eq!(loaded.key_ids().collect::<Vec<_>>(), [2]);
    assert_eq!(loaded.retired_ids().collect::<Vec<_>>(), [1]);
    assert!(loaded.created_at(2).unwrap() >= created);
    assert!(loaded.open(&old, &ctx).is_err());
    assert_eq!(loaded.rotate(), 3);
    loaded.set_primary(3).unwrap();
    loaded.remove(2).unwrap();
    assert_eq!(loaded.rotate(), 4, "ids of removed keys are not reused");

    // A file that lists an id both as a key and as retired is refused.
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["retired"] = serde_json::json!([2]);
    std::fs::write(&path, json.to_string()).unwrap();
    let err = Keyring::load(&path, None).unwrap_err().to_string();
    assert!(
        err.contains("key id 2 is reserved, repeated or retired"),
        "{err}"
    );
}

#[test]
fn damaged_keyring_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.json");
    let ring = Keyring::new(MasterKey::generate());
    ring.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();

    let write = |content: &str| {
        std::fs::write(&path, content).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    };
    // A key whose bytes changed no longer matches its check value.
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut changed = json.clone();
    changed["keys"][0]["key"] = serde_json::Value::String(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        [9u8; 32],
    ));
    write(&changed.to_string());
    let err = Keyring::load(&path, None).unwrap_err().to_string();
    assert!(err.contains("check value"), "{err}");

    write("{ not json");
    let err = Keyring::load(&path, None).unwrap_err().to_string();
    assert!(err.contains("invalid JSON"), "{err}");
    assert!(
        !err.contains("not json"),
        "the error must not echo file content: {err}"
    );

    let mut bad_primary = json.clone();
    bad_primary["primary"] = 9.into();
    write(&bad_primary.to_string());
    assert!(
        Keyring::load(&path, None)
            .unwrap_err()
            .to_string()
            .contains("primary key 9")
    );

    let missing = dir.path().join("nope.json");
    assert!(
        Keyring::load(&missing, None)
            .unwrap_err()
            .to_string()
            .contains("nope.json")
    );
}

#[test]
fn passphrase_keyring_needs_the_right_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.json");
    let ring = Keyring::from_passphrase(&"right horse".into(), KdfParams::generate()).unwrap();
    let ctx = Context::new("t", "n");
    let sealed = ring.seal(b"v", &ctx);
    ring.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("pbkdf2-hmac-sha256") && !text.contains("\"key\""),
        "{text}"
    );

    assert!(
        Keyring::load(&path, None)
            .unwrap_err()
            .to_string()
            .contains("passphrase")
    );
    let err = Keyring::load(&path, Some(&"wrong horse".into()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("wrong passphrase"), "{err}");
    let loaded = Keyring::load(&path, Some(&"right horse".into())).unwrap();
    assert_eq!(&loaded.open(&sealed, &ctx).unwrap()[..], b"v");
}
