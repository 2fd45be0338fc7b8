//! `SharedKeyring` on a storage that counts its reads: a reload that finds nothing new
//! holds off the next for the interval (an attacker who forges key ids costs one read per
//! interval), a reload that finds a change holds nothing off, and `KeyringReload` retries
//! a call once after a reload that changed the keyring.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use coffer_envelope::{Kek, Keyring, KeyringKek, MasterKey};
use coffer_store::keys::{KeyringStorage, MemoryKeyringStorage, SharedKeyring, StoredKeyring};
use coffer_store::{Error, Result, async_trait};

#[derive(Debug, Default)]
struct Counting {
    inner: MemoryKeyringStorage,
    reads: AtomicUsize,
}

#[async_trait]
impl KeyringStorage for Counting {
    fn backend(&self) -> &'static str {
        "counting"
    }
    async fn read_keyring(&self) -> Result<Option<StoredKeyring>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_keyring().await
    }
    async fn write_keyring(&self, document: &[u8], expected: Option<u64>) -> Result<u64> {
        self.inner.write_keyring(document, expected).await
    }
}

#[tokio::test]
async fn fruitless_reloads_are_rate_limited_and_fruitful_ones_are_not() {
    let storage = Arc::new(Counting::default());
    let kek: Arc<dyn KeyringKek> = Arc::new(Kek::from_key(MasterKey::generate()));
    let a = SharedKeyring::create(
        storage.clone(),
        kek.clone(),
        Keyring::new(MasterKey::generate()),
    )
    .await
    .unwrap();
    let b = SharedKeyring::open(storage.clone(), kek.clone())
        .await
        .unwrap()
        .min_reload_interval(Duration::from_secs(3600));
    let reads = || storage.reads.load(Ordering::SeqCst);
    let start = reads();

    // Nothing new: one read, then none within the interval however often it is asked.
    for _ in 0..100 {
        assert!(!b.reload(b.generation()).await.unwrap());
    }
    assert_eq!(reads() - start, 1);

    // A change made elsewhere is not seen until the interval passes or a notice comes...
    a.update(|ring| Ok(ring.rotate())).await.unwrap();
    assert!(!b.reload(b.generation()).await.unwrap());
    assert!(b.reload_now().await.unwrap());
    assert_eq!(b.handle().current().primary_id(), 2);
    // ...and a reload that found something holds nothing off.
    a.update(|ring| Ok(ring.rotate())).await.unwrap();
    let c = SharedKeyring::open(storage.clone(), kek.clone())
        .await
        .unwrap()
        .min_reload_interval(Duration::from_secs(3600));
    a.update(|ring| Ok(ring.rotate())).await.unwrap();
    assert!(c.reload(c.generation()).await.unwrap());
    a.update(|ring| Ok(ring.rotate())).await.unwrap();
    assert!(c.reload(c.generation()).await.unwrap());
    assert_eq!(c.handle().current().primary_id(), 5);

    // A caller that worked with an older generation retries at once, without a read.
    let before = reads();
    assert!(c.reload(1).await.unwrap());
    assert_eq!(reads(), before);
}

#[tokio::test]
async fn a_rekey_keeps_the_keys_and_the_old_kek_no_longer_opens() {
    let storage = Arc::new(MemoryKeyringStorage::default());
    let old: Arc<dyn KeyringKek> = Arc::new(Kek::from_key(MasterKey::generate()));
    let new: Arc<dyn KeyringKek> = Arc::new(Kek::from_passphrase("a new passphrase".into()));
    let a = SharedKeyring::create(
        storage.clone(),
        old.clone(),
        Keyring::new(MasterKey::generate()),
    )
    .await
    .unwrap();
    let check = a.handle().current().check_value(1);
    a.rekey(new.clone()).await.unwrap();
    let err = SharedKeyring::open(storage.clone(), old).await.unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    assert!(
        err.to_string().contains("sealed with a passphrase"),
        "{err}"
    );
    let b = SharedKeyring::open(storage, new).await.unwrap();
    assert_eq!(b.handle().current().check_value(1), check);
    assert_eq!(b.generation(), 2);
}

/// A keyring file as coffer wrote it before (plain, keys in the clear) moved into a store
/// under a KEK: another instance that opens the kept keyring opens every golden envelope
/// of `coffer-envelope/tests/data/envelope-v1` byte for byte.
#[tokio::test]
async fn a_keyring_file_moved_into_the_store_opens_the_golden_envelopes() {
    use coffer_envelope::{Context, from_text};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../coffer-envelope/tests/data/envelope-v1");
    let mut opened = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let golden: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let keys = golden["keys"].as_array().unwrap().iter().map(|k| {
            let id = u32::try_from(k[0].as_u64().unwrap()).unwrap();
            let bytes: [u8; 32] = hex::decode(k[1].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            (id, MasterKey::from_bytes(bytes))
        });
        let keys: Vec<_> = keys.collect();
        let primary = keys.iter().map(|(id, _)| *id).max().unwrap();
        // Today's keyring file, written and read back as a machine would.
        let home = tempfile::tempdir().unwrap();
        let file = home.path().join("keyring.json");
        Keyring::from_keys(keys, primary)
            .unwrap()
            .save(&file)
            .unwrap();
        let loaded = Keyring::load(&file, None).unwrap();

        let storage = Arc::new(MemoryKeyringStorage::default());
        let kek: Arc<dyn KeyringKek> = Arc::new(Kek::from_key(MasterKey::generate()));
        SharedKeyring::create(storage.clone(), kek.clone(), loaded)
            .await
            .unwrap();
        let other = SharedKeyring::open(storage, kek).await.unwrap();

        let scope = golden["scope"].as_str().unwrap();
        let name = golden["name"].as_str().unwrap();
        let mut ctx = Context::new(scope, name);
        if let Some(v) = golden["version"].as_u64() {
            ctx = ctx.with_version(v);
        }
        let envelope = from_text(golden["envelope_text"].as_str().unwrap()).unwrap();
        assert_eq!(
            envelope,
            hex::decode(golden["envelope_hex"].as_str().unwrap()).unwrap()
        );
        let plain = other.handle().current().open(&envelope, &ctx).unwrap();
        assert_eq!(
            hex::encode(&plain[..]),
            golden["plaintext_hex"].as_str().unwrap(),
            "{}",
            path.display()
        );
        opened += 1;
    }
    assert_eq!(opened, 4);
}
