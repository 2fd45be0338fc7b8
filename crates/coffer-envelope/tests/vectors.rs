//! Known-answer tests for the primitives the envelope is built on.

use coffer_envelope::{KdfParams, MasterKey};
use hkdf::Hkdf;
use sha2::Sha256;

struct HkdfCase {
    ikm: Vec<u8>,
    salt: Vec<u8>,
    info: Vec<u8>,
    prk: &'static str,
    okm: &'static str,
}

/// RFC 5869 appendix A, test cases 1–3 (HKDF-SHA256).
fn rfc5869_cases() -> Vec<HkdfCase> {
    vec![
        HkdfCase {
            ikm: vec![0x0b; 22],
            salt: (0x00..=0x0c).collect(),
            info: (0xf0..=0xf9).collect(),
            prk: "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
            okm: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        },
        HkdfCase {
            ikm: (0x00..=0x4f).collect(),
            salt: (0x60..=0xaf).collect(),
            info: (0xb0..=0xff).collect(),
            prk: "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
            okm: "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
        },
        HkdfCase {
            ikm: vec![0x0b; 22],
            salt: vec![],
            info: vec![],
            prk: "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
            okm: "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        },
    ]
}

#[test]
fn hkdf_sha256_rfc5869() {
    let cases = rfc5869_cases();
    for (i, case) in cases.iter().enumerate() {
        let (prk, hk) = Hkdf::<Sha256>::extract(Some(&case.salt), &case.ikm);
        assert_eq!(hex::encode(prk), case.prk, "case {}", i + 1);
        let mut okm = vec![0u8; case.okm.len() / 2];
        hk.expand(&case.info, &mut okm).unwrap();
        assert_eq!(hex::encode(&okm), case.okm, "case {}", i + 1);
    }
    assert_eq!(cases.len(), 3);
}

/// RFC 7914 §11: PBKDF2-HMAC-SHA256 test vectors.
#[test]
fn pbkdf2_hmac_sha256_rfc7914() {
    let cases = [
        (
            "passwd",
            "salt",
            1,
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783",
        ),
        (
            "Password",
            "NaCl",
            80000,
            "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d",
        ),
    ];
    for (password, salt, iterations, expected) in cases {
        let mut out = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut out);
        assert_eq!(hex::encode(out), expected, "{password}/{salt}/{iterations}");
    }
}

/// The passphrase path of `MasterKey` is exactly PBKDF2-HMAC-SHA256 with the stored salt.
#[test]
fn passphrase_key_is_pbkdf2_hmac_sha256() {
    let params = KdfParams {
        algorithm: "pbkdf2-hmac-sha256".into(),
        iterations: 600_000,
        salt: b"coffer-test-salt".to_vec(),
    };
    let key = MasterKey::from_passphrase(&"hunter2 hunter2".into(), &params).unwrap();
    let mut expected = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(
        b"hunter2 hunter2",
        b"coffer-test-salt",
        600_000,
        &mut expected,
    );
    assert_eq!(
        key.check_value(),
        MasterKey::from_bytes(expected).check_value()
    );
}

/// Wycheproof AES-GCM, restricted to what the envelope uses: 256-bit keys, 96-bit
/// nonces, 128-bit tags.
#[test]
fn wycheproof_aes_256_gcm() {
    use aes_gcm::aead::{AeadInOut, KeyInit};
    use aes_gcm::{Aes256Gcm, Nonce, Tag};
    use wycheproof::TestResult;
    use wycheproof::aead::{TestName, TestSet};

    let set = TestSet::load(TestName::AesGcm).unwrap();
    let (mut valid, mut invalid) = (0usize, 0usize);
    for group in set.test_groups {
        if group.key_size != 256 || group.nonce_size != 96 || group.tag_size != 128 {
            continue;
        }
        for test in group.tests {
            let cipher = Aes256Gcm::new_from_slice(&test.key).unwrap();
            let nonce = Nonce::try_from(&test.nonce[..]).unwrap();
            let tag = Tag::try_from(&test.tag[..]).unwrap();

            let mut buf = test.pt.to_vec();
            let sealed_tag = cipher
                .encrypt_inout_detached(&nonce, &test.aad, buf.as_mut_slice().into())
                .unwrap();
            let mut ct = test.ct.to_vec();
            let opened =
                cipher.decrypt_inout_detached(&nonce, &test.aad, ct.as_mut_slice().into(), &tag);
            match test.result {
                TestResult::Valid | TestResult::Acceptable => {
                    assert_eq!(buf, *test.ct, "tc {} ciphertext", test.tc_id);
                    assert_eq!(sealed_tag[..], test.tag[..], "tc {} tag", test.tc_id);
                    assert!(opened.is_ok(), "tc {} must open", test.tc_id);
                    assert_eq!(ct, *test.pt, "tc {} plaintext", test.tc_id);
                    valid += 1;
                }
                TestResult::Invalid => {
                    assert!(opened.is_err(), "tc {} must not open", test.tc_id);
                    invalid += 1;
                }
            }
        }
    }
    println!("wycheproof AES-256-GCM: {valid} valid, {invalid} invalid cases");
    assert_eq!((valid, invalid), (WYCHEPROOF_VALID, WYCHEPROOF_INVALID));
}

/// Pinned so a change in the vector set or in the filter cannot silently run fewer cases.
const WYCHEPROOF_VALID: usize = 39;
const WYCHEPROOF_INVALID: usize = 27;
