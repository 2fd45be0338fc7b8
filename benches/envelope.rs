//! Envelope seal and open beside raw AES-256-GCM (same `aes-gcm` crate, same sizes, one
//! run), so the ratio shows what key commitment, HKDF and context binding cost.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use coffer::{Context, Keyring, MasterKey};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::Rng as _;
use std::hint::black_box;

const SIZES: [(usize, &str); 3] = [(32, "32B"), (1024, "1KiB"), (65536, "64KiB")];

fn bench(c: &mut Criterion) {
    let keyring = Keyring::new(MasterKey::generate());
    let ctx = Context::new("tenant-bench", "providers/openai/api_key").with_version(1);
    let raw = Aes256Gcm::new(&aes_gcm::Key::<Aes256Gcm>::from([7u8; 32]));

    let mut seal = c.benchmark_group("seal");
    for (size, label) in SIZES {
        let data = vec![0x5au8; size];
        seal.throughput(Throughput::Bytes(size as u64));
        seal.bench_with_input(BenchmarkId::new("envelope", label), &data, |b, data| {
            b.iter(|| black_box(keyring.seal(black_box(data), &ctx)));
        });
        seal.bench_with_input(
            BenchmarkId::new("raw-aes-256-gcm", label),
            &data,
            |b, data| {
                b.iter(|| {
                    // What a bare AES-GCM seal needs too: a random nonce and an output buffer.
                    let mut nonce = [0u8; 12];
                    rand::rng().fill_bytes(&mut nonce);
                    let mut out = Vec::with_capacity(12 + data.len() + 16);
                    out.extend_from_slice(&nonce);
                    out.extend_from_slice(data);
                    let tag = raw
                        .encrypt_inout_detached(&Nonce::from(nonce), b"", out[12..].as_mut().into())
                        .unwrap();
                    out.extend_from_slice(&tag);
                    black_box(out)
                });
            },
        );
    }
    seal.finish();

    let mut open = c.benchmark_group("open");
    for (size, label) in SIZES {
        let data = vec![0x5au8; size];
        let sealed = keyring.seal(&data, &ctx);
        open.throughput(Throughput::Bytes(size as u64));
        open.bench_with_input(BenchmarkId::new("envelope", label), &sealed, |b, sealed| {
            b.iter(|| black_box(keyring.open(black_box(sealed), &ctx).unwrap()));
        });
        let nonce = Nonce::from([3u8; 12]);
        let mut ct = data.clone();
        let tag = raw
            .encrypt_inout_detached(&nonce, b"", ct.as_mut_slice().into())
            .unwrap();
        open.bench_with_input(BenchmarkId::new("raw-aes-256-gcm", label), &ct, |b, ct| {
            b.iter(|| {
                let mut buf = ct.clone();
                raw.decrypt_inout_detached(&nonce, b"", buf.as_mut_slice().into(), &tag)
                    .unwrap();
                black_box(buf)
            });
        });
    }
    open.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
