//! Keyrings sealed under a key-encryption key: round trips, wrong and mismatched KEKs
//! named by their source, and sealed documents changed after sealing.

use std::os::unix::fs::PermissionsExt as _;

use coffer_envelope::{Context, KdfParams, Kek, KekSource, Keyring, MasterKey};

fn sample() -> (Keyring, Vec<u8>, Context<'static>) {
    let mut keyring = Keyring::new(MasterKey::generate());
    let ctx = Context::new("tenant", "openai_api_key").with_version(1);
    let sealed = keyring.seal(b"sk-under-key-1", &ctx);
    keyring.rotate();
    keyring.rotate();
    keyring.set_primary(3).unwrap();
    keyring.remove(2).unwrap();
    keyring.set_rotation_pending(true);
    (keyring, sealed, ctx)
}

fn key_file(dir: &std::path::Path, key: &str, mode: u32) -> std::path::PathBuf {
    let path = dir.join("kek");
    std::fs::write(&path, format!("{key}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn a_sealed_keyring_opens_whole_with_its_kek() {
    let (keyring, envelope, ctx) = sample();
    let kek = Kek::from_key(MasterKey::generate());
    let sealed = kek.seal_keyring(&keyring).unwrap();
    let text = String::from_utf8(sealed.clone()).unwrap();
    assert!(text.contains("coffer-keyring/v1"), "{text}");
    let opened = kek.open_keyring(&sealed).unwrap();
    assert_eq!(opened.key_ids().collect::<Vec<_>>(), [1, 3]);
    assert_eq!(opened.retired_ids().collect::<Vec<_>>(), [2]);
    assert_eq!(opened.primary_id(), 3);
    assert!(opened.rotation_pending());
    assert_eq!(opened.created_at(1), keyring.created_at(1));
    assert_eq!(opened.check_value(3), keyring.check_value(3));
    assert_eq!(
        &opened.open(&envelope, &ctx).unwrap()[..],
        b"sk-under-key-1"
    );
    // Two seals of one keyring differ (fresh nonce), and both open.
    let again = kek.seal_keyring(&keyring).unwrap();
    assert_ne!(again, sealed);
    assert_eq!(kek.open_keyring(&again).unwrap().primary_id(), 3);
}

#[test]
fn a_wrong_kek_is_named_by_its_source() {
    let (keyring, _, _) = sample();
    let dir = tempfile::tempdir().unwrap();
    let right = MasterKey::generate();
    let sealed = Kek::from_key(right).seal_keyring(&keyring).unwrap();

    let wrong = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        rand::random::<[u8; 32]>(),
    );
    let path = key_file(dir.path(), &wrong, 0o600);
    let kek = Kek::from_key_file(&path).unwrap();
    assert_eq!(kek.source(), &KekSource::KeyFile(path.clone()));
    let err = kek.open_keyring(&sealed).unwrap_err().to_string();
    assert!(
        err.contains(&format!("the key file {}", path.display())) && err.contains("wrong key"),
        "{err}"
    );
    assert!(!err.contains(&wrong), "{err}");
    assert!(!format!("{kek:?}").contains(&wrong));

    // A key file others can read is refused before it is used.
    let path = key_file(dir.path(), &wrong, 0o644);
    let err = Kek::from_key_file(&path).unwrap_err().to_string();
    assert!(err.contains("chmod 600"), "{err}");
    let path = key_file(dir.path(), "not-a-key", 0o600);
    let err = Kek::from_key_file(&path).unwrap_err().to_string();
    assert!(err.contains("not a key file"), "{err}");
}

#[test]
fn a_passphrase_kek_keeps_its_salt_and_names_a_wrong_passphrase() {
    let mut keyring =
        Keyring::from_passphrase(&"inner words".into(), KdfParams::generate()).unwrap();
    keyring.rotate();
    let kek = Kek::from_passphrase("correct horse battery staple".into());
    let sealed = kek.seal_keyring(&keyring).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&sealed).unwrap();
    assert_eq!(doc["kdf"]["iterations"], 600_000);
    assert_eq!(doc["kek"], "passphrase");
    let opened = kek.open_keyring(&sealed).unwrap();
    // The passphrase-derived key travels as its bytes: no inner passphrase needed.
    assert_eq!(opened.check_value(1), keyring.check_value(1));

    let err = Kek::from_passphrase("wrong horse".into())
        .open_keyring(&sealed)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the passphrase does not open it (wrong passphrase)"),
        "{err}"
    );
    let err = Kek::from_key(MasterKey::generate())
        .open_keyring(&sealed)
        .unwrap_err()
        .to_string();
    assert!(err.contains("sealed with a passphrase"), "{err}");
}

#[test]
fn a_sealed_keyring_changed_after_sealing_does_not_open() {
    let (keyring, _, _) = sample();
    let kek = Kek::from_key(MasterKey::generate());
    let sealed = kek.seal_keyring(&keyring).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&sealed).unwrap();
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut d = doc.clone();
        f(&mut d);
        kek.open_keyring(&serde_json::to_vec(&d).unwrap())
            .unwrap_err()
            .to_string()
    };
    let err = edit(&|d| {
        let mut ct = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            d["ciphertext"].as_str().unwrap(),
        )
        .unwrap();
        ct[5] ^= 1;
        d["ciphertext"] =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ct).into();
    });
    assert!(err.contains("changed after it was sealed"), "{err}");
    let err = edit(&|d| d["format"] = "coffer-keyring/v0".into());
    assert!(err.contains("unknown format"), "{err}");
    let err = edit(&|d| d["nonce"] = "AAAA".into());
    assert!(err.contains("invalid nonce"), "{err}");
    let err = edit(&|d| d["check"] = "0000000000000000".into());
    assert!(err.contains("wrong key"), "{err}");
    let err = kek.open_keyring(b"{not json").unwrap_err().to_string();
    assert!(err.contains("not a sealed keyring document"), "{err}");
    let err = kek
        .open_keyring(&sealed[..sealed.len() / 2])
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a sealed keyring document"), "{err}");
}
