//! The `env` bench: building an EnvMap of 100 secrets from SQLite (beside the store reads
//! alone), masking throughput over a 64 MiB stream with 100 secrets (beside a plain
//! copy; log lines, and the same as base64 wrapped at 76 columns), and the whole-process cost of `coffer run -- true` with 100 secrets (beside
//! plain `true`).
//!
//! `cargo bench -p coffer-cli --bench env`

use std::hint::black_box;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use coffer::envelope::{Keyring, MasterKey};
use coffer::sql::SqliteStore;
use coffer::{PutOptions, Scope, SecretName, SecretStore as _, SecretStoreExt as _};
use coffer_env::{EnvMap, Redactor, Selection};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const SECRETS: usize = 100;
const STREAM: usize = 64 << 20;
const CHUNK: usize = 64 << 10;

fn secret_value(i: usize) -> String {
    format!("sk-bench-{i:03}-{:024x}", rand::random::<u128>())
}

/// A coffer folder as `coffer init` leaves it, with 100 secrets in scope `default`.
fn seeded_dir(rt: &tokio::runtime::Runtime) -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let keyring = Keyring::new(MasterKey::generate());
    keyring
        .save(&dir.path().join(".coffer/keyring.json"))
        .unwrap();
    let store = rt.block_on(async {
        let store = SqliteStore::open(&dir.path().join(".coffer/secrets.db"), Arc::new(keyring))
            .await
            .unwrap();
        let scope = Scope::new("default").unwrap();
        for i in 0..SECRETS {
            let name = SecretName::new(format!("service_{i:03}_api_key")).unwrap();
            store
                .put(&scope, &name, &secret_value(i).into(), &PutOptions::new())
                .await
                .unwrap();
        }
        store
    });
    (dir, Arc::new(store))
}

fn envmap(c: &mut Criterion, rt: &tokio::runtime::Runtime, store: &SqliteStore) {
    let scope = Scope::new("default").unwrap();
    let mut group = c.benchmark_group("env/envmap_100_secrets_sqlite");
    group.bench_function("store list + 100 gets", |b| {
        b.to_async(rt).iter(|| async {
            let metas = store.list_all(&scope, None).await.unwrap();
            for m in metas {
                black_box(store.get(&scope, &m.name, None).await.unwrap());
            }
        });
    });
    group.bench_function("EnvMap::from_store", |b| {
        b.to_async(rt).iter(|| async {
            let map = EnvMap::from_store(store, &scope, &Selection::all())
                .await
                .unwrap();
            assert_eq!(map.len(), SECRETS);
            black_box(map)
        });
    });
    group.finish();
}

/// 64 MiB of log-like lines; one line in 64 holds a secret.
fn stream(values: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(STREAM + 256);
    let mut i = 0usize;
    while out.len() < STREAM {
        if i.is_multiple_of(64) {
            let v = &values[(i / 64) % values.len()];
            out.extend_from_slice(format!("{i:08} auth header Bearer {v} ok\n").as_bytes());
        } else {
            out.extend_from_slice(
                format!(
                    "{i:08} GET /api/v1/items/{} 200 12.5ms user-agent=bench\n",
                    i * 7
                )
                .as_bytes(),
            );
        }
        i += 1;
    }
    out.truncate(STREAM);
    out
}

/// `input` as the `base64` tool writes it (76 columns), cut to [`STREAM`] bytes.
fn base64_lines(input: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(input);
    let mut out = Vec::with_capacity(STREAM + STREAM / 76 + 1);
    for line in text.as_bytes().chunks(76) {
        if out.len() >= STREAM {
            break;
        }
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.truncate(STREAM);
    out
}

fn masking(c: &mut Criterion) {
    let values: Vec<String> = (0..SECRETS).map(secret_value).collect();
    let mut env = EnvMap::new();
    for (i, v) in values.iter().enumerate() {
        env.insert(format!("SECRET_{i}"), v.clone().into()).unwrap();
    }
    let redactor = Redactor::from_map(&env);
    let input = stream(&values);
    let mut group = c.benchmark_group("env/mask_64MiB_100_secrets");
    group.throughput(Throughput::Bytes(STREAM as u64));
    group.sample_size(10);
    let mut out = Vec::with_capacity(STREAM + (1 << 20));
    group.bench_function("copy (no masking)", |b| {
        b.iter(|| {
            out.clear();
            for chunk in input.chunks(CHUNK) {
                out.extend_from_slice(chunk);
            }
            black_box(out.len())
        });
    });
    // The second input is the worst case for wrapped base64: every line break is a wrap
    // the masker reads through.
    let wrapped = base64_lines(&input);
    for (name, text) in [
        ("Redactor stream, 64 KiB writes", &input),
        ("Redactor stream, base64 wrapped at 76", &wrapped),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let mut s = redactor.stream();
                for chunk in text.chunks(CHUNK) {
                    s.push(chunk, &mut out);
                }
                s.finish(&mut out);
                black_box(out.len())
            });
        });
    }
    group.finish();
}

fn run(program: &Path, args: &[&str], dir: &Path) {
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env_remove("COFFER_STORE")
        .env_remove("COFFER_MASTER_KEY")
        .env_remove("COFFER_KEYRING")
        .env_remove("COFFER_SCOPE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

fn process(c: &mut Criterion, dir: &Path) {
    let coffer = Path::new(env!("CARGO_BIN_EXE_coffer"));
    let truth = Path::new("true");
    let mut group = c.benchmark_group("env/process_100_secrets");
    group.bench_function("true", |b| b.iter(|| run(truth, &[], dir)));
    group.bench_function("coffer run -- true", |b| {
        b.iter(|| run(coffer, &["run", "--", "true"], dir));
    });
    group.bench_function("coffer run --no-mask -- true", |b| {
        b.iter(|| run(coffer, &["run", "--no-mask", "--", "true"], dir));
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (dir, store) = seeded_dir(&rt);
    envmap(c, &rt, &store);
    masking(c);
    process(c, dir.path());
}

criterion_group!(env, benches);
criterion_main!(env);
