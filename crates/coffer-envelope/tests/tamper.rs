//! Tampering, truncation, wrong keys and key commitment: every one is an `Err`, never a
//! panic, never `Ok`.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use coffer_envelope::{
    COMMITMENT_LEN, Context, Error, HEADER_LEN, HKDF_LABEL, Keyring, MasterKey, NONCE_LEN,
    SALT_LEN, TAG_LEN,
};

fn ring() -> Keyring {
    Keyring::new(MasterKey::generate())
}

fn kib() -> Vec<u8> {
    (0..1024u32).map(|i| (i * 31 % 251) as u8).collect()
}

fn assert_opaque(result: Result<impl Sized, Error>, what: &str) {
    match result {
        Err(Error::DecryptionFailed) => {}
        Err(other) => panic!("{what}: expected the opaque error, got {other}"),
        Ok(_) => panic!("{what}: opened"),
    }
}

#[test]
fn every_bit_flip_of_a_1kib_envelope_fails() {
    let keyring = ring();
    let ctx = Context::new("tenant", "name").with_version(7);
    let sealed = keyring.seal(&kib(), &ctx);
    let mut flipped = 0;
    for byte in 0..sealed.len() {
        for bit in 0..8 {
            let mut bad = sealed.clone();
            bad[byte] ^= 1 << bit;
            let result = keyring.open(&bad, &ctx);
            match byte {
                // The version byte and key id are checked before any crypto, with errors of their own.
                0 => assert!(matches!(result, Err(Error::UnsupportedVersion { .. }))),
                1..=4 => assert!(matches!(result, Err(Error::UnknownKey { .. }))),
                _ => assert_opaque(result, &format!("byte {byte} bit {bit}")),
            }
            flipped += 1;
        }
    }
    assert_eq!(flipped, (HEADER_LEN + 1024 + TAG_LEN) * 8);
}

#[test]
fn every_bit_flip_of_the_context_fails() {
    let keyring = ring();
    let (scope, name) = ("tenant-a", "openai_api_key");
    let sealed = keyring.seal(&kib(), &Context::new(scope, name).with_version(3));
    // Every bit of the scope and the name (kept printable where a flip leaves UTF-8)…
    for (which, text) in [(0, scope), (1, name)] {
        for i in 0..text.len() {
            for bit in 0..8 {
                let mut bytes = text.as_bytes().to_vec();
                bytes[i] ^= 1 << bit;
                let Ok(changed) = String::from_utf8(bytes) else {
                    continue;
                };
                let ctx = if which == 0 {
                    Context::new(&changed, name).with_version(3)
                } else {
                    Context::new(scope, &changed).with_version(3)
                };
                assert_opaque(keyring.open(&sealed, &ctx), "flipped context");
            }
        }
    }
    // …every bit of the version, and the version dropped.
    for bit in 0..64 {
        let ctx = Context::new(scope, name).with_version(3 ^ (1u64 << bit));
        assert_opaque(keyring.open(&sealed, &ctx), "flipped version");
    }
    assert_opaque(
        keyring.open(&sealed, &Context::new(scope, name)),
        "no version",
    );
}

#[test]
fn truncations_and_appended_bytes_fail() {
    let keyring = ring();
    let ctx = Context::new("t", "n");
    let sealed = keyring.seal(&kib(), &ctx);
    for len in 0..sealed.len() {
        assert!(
            keyring.open(&sealed[..len], &ctx).is_err(),
            "truncated to {len}"
        );
    }
    let mut one_more = sealed.clone();
    one_more.push(0);
    assert_opaque(keyring.open(&one_more, &ctx), "one appended byte");
    let mut garbage = sealed.clone();
    garbage.extend((0..1024u32).map(|i| (i * 7) as u8));
    assert_opaque(keyring.open(&garbage, &ctx), "1 KiB appended");
}

#[test]
fn wrong_key_and_edited_key_id_fail() {
    let ctx = Context::new("t", "n");
    let a = ring();
    let b = ring();
    let sealed = a.seal(b"sk-live-abcdef", &ctx);
    assert_opaque(b.open(&sealed, &ctx), "wrong key");

    let mut two = Keyring::new(MasterKey::generate());
    let sealed = two.seal(b"sk-live-abcdef", &ctx);
    two.rotate();
    let mut edited = sealed.clone();
    edited[1..5].copy_from_slice(&2u32.to_be_bytes());
    assert_opaque(two.open(&edited, &ctx), "key id edited to another key");
    edited[1..5].copy_from_slice(&99u32.to_be_bytes());
    assert!(matches!(
        two.open(&edited, &ctx),
        Err(Error::UnknownKey { key_id: 99 })
    ));
    assert_eq!(&two.open(&sealed, &ctx).unwrap()[..], b"sk-live-abcdef");
}

/// An attacker who knows two keys builds a ciphertext and a GCM tag valid under the
/// second key for the same nonce; without the second key's commitment it must not open.
#[test]
fn key_commitment_rejects_a_tag_recomputed_under_another_key() {
    let ctx = Context::new("tenant", "name").with_version(1);
    let k1 = MasterKey::from_bytes([0x11; 32]);
    let k2 = MasterKey::from_bytes([0x22; 32]);
    let ring1 = Keyring::from_keys([(1, k1.clone())], 1).unwrap();
    let ring2 = Keyring::from_keys([(1, k2)], 1).unwrap();
    let sealed = ring1.seal(b"attack at dawn", &ctx);

    // Re-derive key 2's AES key for this envelope's salt and recompute the tag over the
    // same header, nonce and ciphertext bytes.
    let salt = &sealed[5..5 + SALT_LEN];
    let nonce_at = 5 + SALT_LEN + COMMITMENT_LEN;
    let nonce = Nonce::try_from(&sealed[nonce_at..nonce_at + NONCE_LEN]).unwrap();
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), &[0x22; 32]);
    let mut okm = [0u8; 64];
    hk.expand_multi_info(&[HKDF_LABEL, &ctx.encode()], &mut okm)
        .unwrap();
    let cipher2 = Aes256Gcm::new_from_slice(&okm[..32]).unwrap();
    let mut aad = sealed[..HEADER_LEN].to_vec();
    aad.extend_from_slice(&ctx.encode());
    // GCM encryption XORs a keystream: encrypting zeros under key 2 yields it, and
    // ct XOR keystream is the message that encrypts to exactly `ct` under key 2.
    let ct = &sealed[HEADER_LEN..sealed.len() - TAG_LEN];
    let mut keystream = vec![0u8; ct.len()];
    cipher2
        .encrypt_inout_detached(&nonce, &aad, keystream.as_mut_slice().into())
        .unwrap();
    let mut again: Vec<u8> = ct.iter().zip(&keystream).map(|(c, k)| c ^ k).collect();
    let tag = cipher2
        .encrypt_inout_detached(&nonce, &aad, again.as_mut_slice().into())
        .unwrap();
    assert_eq!(
        again, ct,
        "the forged message encrypts to the original ciphertext under key 2"
    );
    let mut forged = sealed[..sealed.len() - TAG_LEN].to_vec();
    forged.extend_from_slice(&tag);

    // Plain GCM under key 2 would accept it; the envelope does not, because key 2's
    // commitment differs from the one in the header.
    let mut check = ct.to_vec();
    assert!(
        cipher2
            .decrypt_inout_detached(&nonce, &aad, check.as_mut_slice().into(), &tag)
            .is_ok()
    );
    assert_opaque(ring2.open(&forged, &ctx), "forged under key 2");
    // And under key 1 the new tag is wrong.
    assert_opaque(ring1.open(&forged, &ctx), "forged tag under key 1");
}

#[test]
fn unknown_version_is_reported_before_any_crypto() {
    let keyring = ring();
    let mut sealed = keyring.seal(b"x", &Context::new("t", "n"));
    sealed[0] = 2;
    assert!(matches!(
        keyring.open(&sealed, &Context::new("t", "n")),
        Err(Error::UnsupportedVersion { version: 2 })
    ));
    assert!(matches!(
        keyring.open(&[], &Context::new("t", "n")),
        Err(Error::Malformed { .. })
    ));
}

#[test]
fn rewrap_moves_to_the_primary_and_keeps_the_context_binding() {
    let mut keyring = ring();
    let ctx = Context::new("t", "n").with_version(2);
    let sealed = keyring.seal(b"value", &ctx);
    assert!(!keyring.needs_rewrap(&sealed).unwrap());
    let new = keyring.rotate();
    assert!(keyring.needs_rewrap(&sealed).unwrap());
    let moved = keyring.rewrap(&sealed, &ctx).unwrap();
    assert_eq!(keyring.key_id_of(&moved).unwrap(), new);
    assert_eq!(&keyring.open(&moved, &ctx).unwrap()[..], b"value");
    assert_opaque(
        keyring.open(&moved, &Context::new("t", "n").with_version(3)),
        "other version",
    );
    assert_opaque(
        keyring.rewrap(&sealed, &Context::new("u", "n").with_version(2)),
        "rewrap, wrong ctx",
    );
}

#[test]
fn open_string_rejects_non_utf8_plaintext() {
    use secrecy::ExposeSecret as _;
    let keyring = ring();
    let ctx = Context::new("t", "n");
    let ok = keyring.seal("héllo ✓".as_bytes(), &ctx);
    assert_eq!(
        keyring.open_string(&ok, &ctx).unwrap().expose_secret(),
        "héllo ✓"
    );
    let bad = keyring.seal(&[0xff, 0xfe], &ctx);
    assert!(matches!(
        keyring.open_string(&bad, &ctx),
        Err(Error::Malformed { .. })
    ));
}
