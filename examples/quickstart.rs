//! The embedded default end to end: a SQLite file, a keyring, a few secrets of two
//! tenants, read back, listed without values, and a key rotation that rewraps them all.
//!
//! `cargo run --example quickstart` (writes under `target/quickstart/`, fresh each run).

use std::sync::Arc;

use coffer::secrecy::ExposeSecret as _;
use coffer::{
    Keyring, MasterKey, OpenOptions, PutOptions, Scope, SecretKind, SecretName, SecretStore as _,
    SecretStoreExt as _,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/quickstart");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let keyring_path = dir.join("keyring.json");
    let db_url = format!("sqlite://{}", dir.join("secrets.db").display());

    // 1. A keyring (one random key, saved with mode 0600) and the store.
    let mut keyring = Keyring::new(MasterKey::generate());
    keyring.save(&keyring_path)?;
    let store = coffer::open(
        &db_url,
        &OpenOptions::new().keyring(Arc::new(keyring.clone())),
    )
    .await?;
    println!("store: {db_url}");

    // 2. Secrets of two tenants. Demo values are generated per run; none is real.
    let run: u32 = std::process::id();
    let acme = Scope::new("acme")?;
    let globex = Scope::new("globex")?;
    let secrets = [
        (
            &acme,
            "openai_api_key",
            format!("sk-demo-{run:08x}-acme"),
            SecretKind::ApiKey,
            "openai",
        ),
        (
            &acme,
            "github/oauth_token",
            format!("gho_demo{run:08x}"),
            SecretKind::OauthToken,
            "github",
        ),
        (
            &acme,
            "stripe/webhook_secret",
            format!("whsec_demo{run:08x}"),
            SecretKind::WebhookSecret,
            "stripe",
        ),
        (
            &globex,
            "openai_api_key",
            format!("sk-demo-{run:08x}-globex"),
            SecretKind::ApiKey,
            "openai",
        ),
    ];
    for (scope, name, value, kind, provider) in &secrets {
        let meta = store
            .put(
                scope,
                &SecretName::new(*name)?,
                &value.clone().into(),
                &PutOptions::create_only().kind(*kind).provider(*provider),
            )
            .await?;
        println!("put {scope}/{name} -> version {}", meta.version);
    }
    // A second version of one of them.
    let name = SecretName::new("openai_api_key")?;
    store
        .put(
            &acme,
            &name,
            &format!("sk-demo-{run:08x}-acme-v2").into(),
            &PutOptions::if_version(1),
        )
        .await?;

    // 3. Read back: each tenant sees its own value under the same name.
    for scope in [&acme, &globex] {
        let secret = store.get(scope, &name, None).await?;
        let value = secret.value.expose_secret();
        println!(
            "get {scope}/{name} (v{}) = {}",
            secret.meta.version,
            mask(value)
        );
    }

    // 4. The masked listing: names and metadata, never values.
    println!(
        "\n{:<24} {:>7}  {:<16} {:<8}",
        "NAME (acme)", "VERSION", "KIND", "PROVIDER"
    );
    for meta in store.list_all(&acme, None).await? {
        let provider = meta.provider.as_deref().unwrap_or("-");
        println!(
            "{:<24} {:>7}  {:<16} {:<8}",
            meta.name.as_str(),
            meta.version,
            meta.kind.as_str(),
            provider
        );
    }

    // 5. Rotate: a new primary key, saved first, then every envelope rewrapped onto it.
    let new_id = keyring.rotate();
    keyring.save(&keyring_path)?;
    let store = coffer::open(&db_url, &OpenOptions::new().keyring(Arc::new(keyring))).await?;
    let rewrapped = store.rewrap_all(500, &mut |_, _| {}).await?.rewrapped;
    println!("\nrotated to key {new_id}: rewrapped {rewrapped} envelopes");
    let secret = store.get(&acme, &name, Some(1)).await?;
    println!(
        "version 1 of acme/{name} still opens, now under key {:?}",
        secret.meta.key_id.unwrap_or_default()
    );
    Ok(())
}

fn mask(value: &str) -> String {
    let tail: String = value
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("********{tail}")
}
