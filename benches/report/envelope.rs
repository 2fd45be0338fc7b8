//! Envelope seal and open beside raw AES-256-GCM from the same `aes-gcm` crate, so the
//! ratio is what key commitment, the per-envelope HKDF key and context binding cost; up
//! to 1 KiB the seal is also compared with its floor (the RNG draw, the HKDF and the AES
//! key schedule an envelope must do, and the seal).

use std::hint::black_box;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use coffer_envelope::{Context, Keyring, MasterKey};
use criterion::{Criterion, Throughput};
use rand::Rng as _;

use crate::report::Report;

const SIZES: [(usize, &str); 3] = [(32, "32 B"), (1024, "1 KiB"), (65536, "64 KiB")];
const RAW: &str = "raw AES-256-GCM";
const ENVELOPE: &str = "coffer envelope";
const FLOOR: &str = "floor: RNG + HKDF-SHA256 (64 B) + AES-256-GCM";

pub(crate) fn bench(c: &mut Criterion, report: &mut Report) {
    let keyring = Keyring::new(MasterKey::generate());
    let ctx = Context::new("tenant-bench", "providers/openai/api_key").with_version(1);
    let raw = Aes256Gcm::new(&aes_gcm::Key::<Aes256Gcm>::from(rand::random::<[u8; 32]>()));

    let mut seal = report.group(
        c,
        "envelope seal",
        "Sealing a value: coffer's key-committing envelope, bound to tenant and name, beside \
         a bare AES-256-GCM seal with a random nonce (the same aes-gcm crate).",
    );
    for (size, label) in SIZES {
        let data = vec![0x5au8; size];
        seal.throughput(Throughput::Bytes(size as u64));
        seal.row_with(RAW, label, None, |b| {
            b.iter(|| {
                // What a bare seal needs too: a random nonce and an output buffer.
                let mut nonce = [0u8; 12];
                rand::rng().fill_bytes(&mut nonce);
                let mut out = Vec::with_capacity(12 + data.len() + 16);
                out.extend_from_slice(&nonce);
                out.extend_from_slice(black_box(&data));
                let tag = raw
                    .encrypt_inout_detached(&Nonce::from(nonce), b"", out[12..].as_mut().into())
                    .expect("seal");
                out.extend_from_slice(&tag);
                black_box(out)
            });
        });
        if size <= 1024 {
            // The floor an envelope cannot go below: its random salt and nonce (one RNG
            // call), HKDF-SHA256 extract and expand of 64 bytes (key and commitment),
            // the AES key schedule of the derived key and the seal itself.
            let ikm = rand::random::<[u8; 32]>();
            seal.row_with(FLOOR, label, Some(RAW), |b| {
                b.iter(|| {
                    let mut random = [0u8; 28];
                    rand::rng().fill_bytes(&mut random);
                    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(&random[..16]), &ikm);
                    let mut okm = [0u8; 64];
                    hk.expand(b"floor", &mut okm).expect("64 bytes");
                    let cipher = Aes256Gcm::new(&aes_gcm::Key::<Aes256Gcm>::from(
                        <[u8; 32]>::try_from(&okm[..32]).expect("32 bytes"),
                    ));
                    let mut out = Vec::with_capacity(data.len() + 16);
                    out.extend_from_slice(black_box(&data));
                    let nonce = Nonce::from(<[u8; 12]>::try_from(&random[16..]).expect("12"));
                    let tag = cipher
                        .encrypt_inout_detached(&nonce, &okm[32..], out.as_mut_slice().into())
                        .expect("seal");
                    out.extend_from_slice(&tag);
                    black_box(out)
                });
            });
        }
        let baseline = if size <= 1024 { FLOOR } else { RAW };
        seal.row_with(ENVELOPE, label, Some(baseline), |b| {
            b.iter(|| black_box(keyring.seal(black_box(&data), &ctx)));
        });
    }
    seal.finish();

    let mut open = report.group(
        c,
        "envelope open",
        "Opening it again: the envelope (commitment check, key derivation, context check) \
         beside a bare AES-256-GCM open. The envelope's plaintext buffer is also zeroized \
         when it is dropped, the bare one's is not.",
    );
    for (size, label) in SIZES {
        let data = vec![0x5au8; size];
        open.throughput(Throughput::Bytes(size as u64));
        let nonce = Nonce::from(rand::random::<[u8; 12]>());
        let mut ct = data.clone();
        let tag = raw
            .encrypt_inout_detached(&nonce, b"", ct.as_mut_slice().into())
            .expect("seal");
        open.row_with(RAW, label, None, |b| {
            b.iter(|| {
                let mut buf = black_box(&ct).clone();
                raw.decrypt_inout_detached(&nonce, b"", buf.as_mut_slice().into(), &tag)
                    .expect("open");
                black_box(buf)
            });
        });
        let sealed = keyring.seal(&data, &ctx);
        open.row_with(ENVELOPE, label, Some(RAW), |b| {
            b.iter(|| black_box(keyring.open(black_box(&sealed), &ctx).expect("open")));
        });
    }
    open.finish();

    head_mac(c, report, &keyring, &ctx);
    keyring_load(c, report);
}

/// Opening a keyring file of three keys at start-up: plain, sealed under a key (what
/// `COFFER_MASTER_KEY` or a key file does) and sealed under a passphrase (PBKDF2 with
/// 600,000 iterations, paid once per open by design).
fn keyring_load(c: &mut Criterion, report: &mut Report) {
    use coffer_envelope::Kek;

    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut keyring = Keyring::new(MasterKey::generate());
    keyring.rotate();
    keyring.rotate();
    let plain = dir.path().join("plain.json");
    keyring.save(&plain).expect("save");
    let key = Kek::from_key(MasterKey::generate());
    let sealed = dir.path().join("sealed.json");
    keyring.save_sealed(&sealed, &key).expect("seal");
    let words = Kek::from_passphrase("a passphrase for the benchmark".into());
    let by_passphrase = dir.path().join("passphrase.json");
    keyring.save_sealed(&by_passphrase, &words).expect("seal");

    let mut group = report.group(
        c,
        "keyring load",
        "Reading a keyring file of three keys at start-up: plain (keys in the clear, mode \
         0600), sealed under a 32-byte key-encryption key, and sealed under a passphrase \
         (PBKDF2-HMAC-SHA256, 600,000 iterations).",
    );
    group.sample_size(10);
    const PLAIN: &str = "plain file";
    group.row(PLAIN, None, |b| {
        b.iter(|| black_box(Keyring::load(&plain, None).expect("load")));
    });
    group.row("sealed under a key", Some(PLAIN), |b| {
        b.iter(|| black_box(Keyring::load_file(&sealed, Some(&key), None).expect("load")));
    });
    group.row("sealed under a passphrase", Some(PLAIN), |b| {
        b.iter(|| black_box(Keyring::load_file(&by_passphrase, Some(&words), None).expect("load")));
    });
    group.finish();
}

/// What authenticating a head adds to every read: one HMAC-SHA256 over its state, beside
/// the envelope open of a 32-byte value that the same read does anyway.
fn head_mac(c: &mut Criterion, report: &mut Report, keyring: &Keyring, ctx: &Context<'_>) {
    use coffer_store::backend::{tag_head, verify_head};
    use coffer_store::{PutOptions, Scope, SecretMeta, SecretName};

    let scope = Scope::new("tenant-bench").expect("scope");
    let name = SecretName::new("providers/openai/api_key").expect("name");
    let options = PutOptions::new()
        .provider("openai")
        .tags(["prod"])
        .expires_at(chrono::Utc::now() + chrono::Duration::days(90));
    let meta = SecretMeta::new(scope, name, &options.attributes);
    let tag = tag_head(keyring, &meta, false);
    let sealed = keyring.seal(&[0x5au8; 32], ctx);

    let mut group = report.group(
        c,
        "head MAC",
        "The check every read makes that its head (version, deleted, active, expiry, key, \
         scope, name and the rest of the metadata) was written by a holder of the keyring: \
         HMAC-SHA256 under a key derived once per keyring key, beside opening a 32-byte \
         envelope, which the same read does anyway.",
    );
    group.row(ENVELOPE, None, |b| {
        b.iter(|| black_box(keyring.open(black_box(&sealed), ctx).expect("open")));
    });
    group.row("verify head MAC", Some(ENVELOPE), |b| {
        b.iter(|| {
            verify_head(keyring, black_box(&meta), false, Some(black_box(&tag))).expect("verify")
        });
    });
    group.row("tag head", Some(ENVELOPE), |b| {
        b.iter(|| black_box(tag_head(keyring, black_box(&meta), false)));
    });
    group.finish();
}
