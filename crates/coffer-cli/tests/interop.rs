//! Adopting coffer where secrets already live, with the real tools on the real servers:
//! `coffer import`, `coffer copy` across SQLite, Postgres, OpenBao and the Supabase Vault
//! extension, and Vault paths, fields and credentials as other Vault clients use them
//! (checked with the `bao` CLI both ways).

mod support;

use std::path::Path;

use coffer_testkit::postgres::{SupabaseProject, TestDatabase};
use coffer_testkit::service_env;
use predicates::prelude::*;
use rand::RngExt as _;
use support::{coffer, initialised};

struct Bao {
    addr: String,
    token: String,
}

fn bao_server() -> Option<Bao> {
    Some(Bao {
        addr: service_env("COFFER_TEST_VAULT_ADDR")?,
        token: service_env("COFFER_TEST_VAULT_TOKEN")?,
    })
}

fn random_hex() -> String {
    let n: u64 = rand::rng().random();
    format!("{n:016x}")
}

impl Bao {
    /// `bao` with the server's address and root token; its stdout.
    fn run(&self, args: &[&str]) -> String {
        coffer_testkit::clients::bao(&self.addr, &self.token, args)
    }

    /// A fresh KV v2 mount.
    fn mount(&self) -> String {
        let mount = format!("kv-{}", random_hex());
        self.run(&[
            "secrets",
            "enable",
            &format!("-path={mount}"),
            "-version=2",
            "kv",
        ]);
        mount
    }

    fn url(&self, mount: &str, params: &str) -> String {
        let base = format!("vault+{}/{mount}", self.addr);
        if params.is_empty() {
            base
        } else {
            format!("{base}?{params}")
        }
    }
}

/// `coffer` in `dir` against `store`, with the Vault token in the environment.
fn at(dir: &Path, store: &str, bao: &Bao) -> assert_cmd::Command {
    let mut cmd = coffer(dir);
    cmd.env("VAULT_TOKEN", &bao.token).arg("--store").arg(store);
    cmd
}

#[test]
fn values_bao_wrote_are_read_with_their_metadata_and_coffer_writes_are_read_by_bao() {
    let Some(bao) = bao_server() else { return };
    let mount = bao.mount();
    // A layout other tools made: apps/<tenant>/<name>, with a second field beside the value.
    bao.run(&[
        "kv",
        "put",
        &format!("-mount={mount}"),
        "apps/tenant-a/github_token",
        "value=ghp_written_by_bao",
        "username=deploy-bot",
    ]);
    bao.run(&[
        "kv",
        "metadata",
        "put",
        &format!("-mount={mount}"),
        "-custom-metadata=coffer_provider=github",
        "-custom-metadata=coffer_kind=oauth_token",
        "apps/tenant-a/github_token",
    ]);
    bao.run(&[
        "kv",
        "put",
        &format!("-mount={mount}"),
        "apps/tenant-b/db",
        "password=pg-pass-from-bao",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let store = bao.url(&mount, "layout=apps/{scope}/{name}");
    // No keyring anywhere: an unsealed Vault store needs none.
    at(dir.path(), &store, &bao)
        .args(["--scope", "tenant-a", "get", "github_token", "--reveal"])
        .assert()
        .success()
        .stdout("ghp_written_by_bao\n");
    let listed = at(dir.path(), &store, &bao)
        .args(["--scope", "tenant-a", "list", "--json"])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["name"], "github_token");
    assert_eq!(listed[0]["provider"], "github");
    assert_eq!(listed[0]["kind"], "oauth_token");
    assert_eq!(listed[0]["version"], 1);
    // Another field as the value.
    at(
        dir.path(),
        &bao.url(&mount, "layout=apps/{scope}/{name}&field=password"),
        &bao,
    )
    .args(["--scope", "tenant-b", "get", "db", "--reveal"])
    .assert()
    .success()
    .stdout("pg-pass-from-bao\n");

    // coffer writes: the first put to a new path prints nothing on stderr (no vaultrs
    // ERROR lines for the 404 of a path that does not exist yet).
    at(dir.path(), &store, &bao)
        .args([
            "--scope",
            "tenant-a",
            "put",
            "openai_api_key",
            "--value",
            "sk-from-coffer",
            "--provider",
            "openai",
            "--description",
            "made by coffer",
        ])
        .assert()
        .success()
        .stderr("");
    assert_eq!(
        bao.run(&[
            "kv",
            "get",
            &format!("-mount={mount}"),
            "-field=value",
            "apps/tenant-a/openai_api_key"
        ]),
        "sk-from-coffer"
    );
    let meta: serde_json::Value = serde_json::from_str(&bao.run(&[
        "kv",
        "metadata",
        "get",
        "-format=json",
        &format!("-mount={mount}"),
        "apps/tenant-a/openai_api_key",
    ]))
    .unwrap();
    assert_eq!(meta["data"]["custom_metadata"]["coffer_provider"], "openai");
    // A new version through coffer keeps the field bao wrote beside the value.
    at(dir.path(), &store, &bao)
        .args([
            "--scope",
            "tenant-a",
            "put",
            "github_token",
            "--value",
            "ghp_rotated_by_coffer",
        ])
        .assert()
        .success();
    let data: serde_json::Value = serde_json::from_str(&bao.run(&[
        "kv",
        "get",
        "-format=json",
        &format!("-mount={mount}"),
        "apps/tenant-a/github_token",
    ]))
    .unwrap();
    assert_eq!(data["data"]["data"]["value"], "ghp_rotated_by_coffer");
    assert_eq!(data["data"]["data"]["username"], "deploy-bot");
    assert_eq!(data["data"]["metadata"]["version"], 2);
    // Bad layouts are refused before anything is read.
    at(dir.path(), &bao.url(&mount, "layout=apps/{name}"), &bao)
        .args(["list"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("must hold {scope}"));
}

#[test]
fn a_sealed_vault_store_needs_seal_true_and_says_so() {
    let Some(bao) = bao_server() else { return };
    let mount = bao.mount();
    let dir = initialised();
    let sealed = bao.url(&mount, "seal=true");
    at(dir.path(), &sealed, &bao)
        .args(["put", "k", "--value", "sk-sealed-by-coffer"])
        .assert()
        .success();
    let stored = bao.run(&[
        "kv",
        "get",
        &format!("-mount={mount}"),
        "-field=value",
        "coffer/default/k",
    ]);
    assert!(
        stored.starts_with("cf1.") && !stored.contains("sk-sealed"),
        "{stored}"
    );
    at(dir.path(), &sealed, &bao)
        .args(["get", "k", "--reveal"])
        .assert()
        .success()
        .stdout("sk-sealed-by-coffer\n");
    // Without ?seal=true the envelope is not handed out as if it were the value.
    at(dir.path(), &bao.url(&mount, ""), &bao)
        .args(["get", "k", "--reveal"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("?seal=true"));
    // ?seal=true without a keyring is refused with what to do.
    let empty = tempfile::tempdir().unwrap();
    at(empty.path(), &sealed, &bao)
        .args(["get", "k", "--reveal"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("coffer init"));
}

#[test]
fn approle_and_the_vault_cli_token_file_log_in_without_vault_token() {
    let Some(bao) = bao_server() else { return };
    let mount = bao.mount();
    let approle = format!("approle-{}", random_hex());
    bao.run(&["auth", "enable", &format!("-path={approle}"), "approle"]);
    let policy = format!("coffer-{}", random_hex());
    let policy_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        policy_file.path(),
        format!(
            "path \"{mount}/*\" {{ capabilities = [\"create\", \"read\", \"update\", \"list\"] }}\n"
        ),
    )
    .unwrap();
    bao.run(&[
        "policy",
        "write",
        &policy,
        policy_file.path().to_str().unwrap(),
    ]);
    bao.run(&[
        "write",
        &format!("auth/{approle}/role/app"),
        &format!("token_policies={policy}"),
        "token_ttl=5m",
    ]);
    let role_id = bao
        .run(&[
            "read",
            "-field=role_id",
            &format!("auth/{approle}/role/app/role-id"),
        ])
        .trim()
        .to_owned();
    let secret_id = bao
        .run(&[
            "write",
            "-f",
            "-field=secret_id",
            &format!("auth/{approle}/role/app/secret-id"),
        ])
        .trim()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret-id");
    std::fs::write(&secret_file, format!("{secret_id}\n")).unwrap();
    let store = bao.url(&mount, &format!("approle_mount={approle}"));
    let app = |args: &[&str]| {
        let mut cmd = coffer(dir.path());
        cmd.env_remove("VAULT_TOKEN")
            .env("HOME", dir.path())
            .env("VAULT_ROLE_ID", &role_id)
            .env("VAULT_SECRET_ID_FILE", &secret_file)
            .arg("--store")
            .arg(&store)
            .args(args);
        cmd
    };
    app(&["put", "k", "--value", "via-approle"])
        .assert()
        .success()
        .stderr("");
    let out = app(&["get", "k", "--reveal"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "via-approle\n");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&secret_id));
    // Half an AppRole is refused, naming what is missing.
    let mut half = coffer(dir.path());
    half.env_remove("VAULT_TOKEN")
        .env("HOME", dir.path())
        .env("VAULT_ROLE_ID", &role_id)
        .arg("--store")
        .arg(&store)
        .args(["get", "k"]);
    half.assert()
        .code(1)
        .stderr(predicate::str::contains("VAULT_SECRET_ID"));

    // `vault login` leaves the token in ~/.vault-token; coffer uses it when VAULT_TOKEN is unset.
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".vault-token"), &bao.token).unwrap();
    let mut cmd = coffer(dir.path());
    cmd.env_remove("VAULT_TOKEN")
        .env("HOME", home.path())
        .arg("--store")
        .arg(bao.url(&mount, ""))
        .args(["get", "k", "--reveal"]);
    cmd.assert().success().stdout("via-approle\n");
    // Nothing at all: the error says every way to log in.
    let nowhere = tempfile::tempdir().unwrap();
    let mut cmd = coffer(dir.path());
    cmd.env_remove("VAULT_TOKEN")
        .env("HOME", nowhere.path())
        .arg("--store")
        .arg(bao.url(&mount, ""))
        .args(["get", "k"]);
    cmd.assert().code(1).stderr(
        predicate::str::contains("VAULT_TOKEN")
            .and(predicate::str::contains("VAULT_ROLE_ID"))
            .and(predicate::str::contains("vault login")),
    );
}

const DOTENV: &str = "\
# the project's .env
OPENAI_API_KEY=sk-dotenv-openai-7
export GITHUB_TOKEN='ghp_dotenv_8'
PATH=/usr/bin
";

#[test]
fn import_a_dotenv_file_and_the_environment() {
    let dir = initialised();
    std::fs::write(dir.path().join(".env"), DOTENV).unwrap();
    let first = coffer(dir.path())
        .args([
            "import",
            ".env",
            "--provider",
            "acme",
            "--kind",
            "api_key",
            "--tag",
            "imported",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{stdout}");
    assert!(
        stdout.contains("created 2: github_token, openai_api_key"),
        "{stdout}"
    );
    assert!(stdout.contains("refused PATH:"), "{stdout}");
    assert!(
        !stdout.contains("sk-dotenv") && !stdout.contains("ghp_dotenv"),
        "{stdout}"
    );
    coffer(dir.path())
        .args(["get", "openai_api_key", "--reveal"])
        .assert()
        .success()
        .stdout("sk-dotenv-openai-7\n");
    // Again: nothing new is written.
    coffer(dir.path())
        .args(["import", ".env"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "unchanged 2: github_token, openai_api_key",
        ));
    let listed = coffer(dir.path())
        .args(["list", "--json"])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert!(
        listed.as_array().unwrap().iter().all(|m| m["version"] == 1),
        "{listed}"
    );
    assert_eq!(listed[1]["env_name"], "OPENAI_API_KEY");
    assert_eq!(listed[1]["provider"], "acme");

    // From the environment, by prefix; coffer's own credentials never.
    coffer(dir.path())
        .env("APP_STRIPE_KEY", "sk_live_env_9")
        .env("COFFER_MASTER_KEY_UNUSED", "x")
        .args(["import", "--from-env", "--prefix", "APP_", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("would create 1: app_stripe_key"));
    coffer(dir.path())
        .args(["get", "app_stripe_key"])
        .assert()
        .code(3);
    // A format the name does not tell, and a line that does not parse.
    std::fs::write(dir.path().join("secrets.txt"), "A=1\n").unwrap();
    coffer(dir.path())
        .args(["import", "secrets.txt"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--input-format"));
    std::fs::write(
        dir.path().join("bad.env"),
        "GOOD=1\nBROKEN sk-not-shown-0\n",
    )
    .unwrap();
    coffer(dir.path())
        .args(["import", "bad.env"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("cannot be parsed")
                .and(predicate::str::contains("sk-not-shown").not()),
        );
}

/// SQLite → Postgres → OpenBao → Supabase (the real extension) → SQLite: every value and
/// every kept attribute arrives unchanged, each hop verified by digests, and a rerun of a
/// hop writes nothing.
#[tokio::test]
async fn copy_round_trip_through_every_backend() {
    let Some(bao) = bao_server() else { return };
    let Some(pg) = TestDatabase::create().await else {
        return;
    };
    let Some(project) = SupabaseProject::create().await else {
        return;
    };
    let dir = initialised();
    let d = dir.path();
    let soon = (chrono::Utc::now() + chrono::Duration::days(30))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for (scope, name, value, extra) in [
        (
            "tenant-a",
            "openai_api_key",
            "sk-round-trip-1",
            vec![
                "--provider",
                "openai",
                "--kind",
                "api_key",
                "--tag",
                "prod",
                "--tag",
                "llm",
            ],
        ),
        (
            "tenant-a",
            "stripe/webhook",
            "whsec_round_trip_2",
            vec![
                "--kind",
                "webhook_secret",
                "--description",
                "Stripe\nwebhook",
                "--env-name",
                "STRIPE_WEBHOOK",
            ],
        ),
        (
            "tenant-b",
            "db_password",
            "pg-round-trip-3 with spaces",
            vec!["--expires-at", soon.as_str()],
        ),
    ] {
        let mut cmd = coffer(d);
        cmd.args(["--scope", scope, "put", name, "--value", value])
            .args(&extra);
        cmd.assert().success();
    }
    let vault = bao.url(&bao.mount(), "");
    let supabase = format!("supabase+{}", project.url());
    let sqlite_a = "sqlite://.coffer/secrets.db".to_owned();
    let sqlite_b = "sqlite://b.db".to_owned();
    coffer(d)
        .args(["--store", &sqlite_b, "init"])
        .assert()
        .success();
    let hops = [
        (sqlite_a.clone(), pg.url().to_owned()),
        (pg.url().to_owned(), vault.clone()),
        (vault.clone(), supabase.clone()),
        (supabase.clone(), sqlite_b.clone()),
    ];
    for (from, to) in &hops {
        let mut cmd = coffer(d);
        cmd.env("VAULT_TOKEN", &bao.token).args([
            "copy",
            "--all-scopes",
            "--from",
            from,
            "--to",
            to,
        ]);
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{from} -> {to}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("copied 3 secrets: 3 created"),
            "{from} -> {to}: {stdout}"
        );
        assert!(stdout.contains("verified 3"), "{from} -> {to}: {stdout}");
        for v in ["sk-round-trip", "whsec_round", "pg-round-trip"] {
            assert!(!stdout.contains(v), "{stdout}");
        }
    }
    // A rerun of a hop writes nothing.
    let mut again = coffer(d);
    again.env("VAULT_TOKEN", &bao.token).args([
        "copy",
        "--all-scopes",
        "--from",
        &vault,
        "--to",
        &supabase,
    ]);
    again.assert().success().stdout(predicate::str::contains(
        "0 created, 0 updated, 3 unchanged",
    ));
    // What came back is what went in: metadata and values.
    for scope in ["tenant-a", "tenant-b"] {
        let list = |store: &str| {
            let out = coffer(d)
                .args(["--store", store, "--scope", scope, "list", "--json"])
                .output()
                .unwrap();
            let items: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
            items
                .into_iter()
                .map(|m| {
                    let keep = [
                        "name",
                        "provider",
                        "kind",
                        "description",
                        "tags",
                        "env_name",
                        "expires_at",
                        "active",
                    ];
                    keep.iter()
                        .map(|k| (k.to_string(), m[*k].clone()))
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(list(&sqlite_a), list(&sqlite_b), "{scope}");
    }
    for (scope, name, value) in [
        ("tenant-a", "openai_api_key", "sk-round-trip-1"),
        ("tenant-a", "stripe/webhook", "whsec_round_trip_2"),
        ("tenant-b", "db_password", "pg-round-trip-3 with spaces"),
    ] {
        coffer(d)
            .args([
                "--store", &sqlite_b, "--scope", scope, "get", name, "--reveal",
            ])
            .assert()
            .success()
            .stdout(format!("{value}\n"));
    }
    // An inactive secret is skipped with the reason; a dry run writes nothing.
    coffer(d)
        .args(["--scope", "tenant-a", "put", "old_key", "--value", "sk-old"])
        .assert()
        .success();
    let store = coffer::open(
        &format!("sqlite://{}", d.join(".coffer/secrets.db").display()),
        &coffer::OpenOptions::new().keyring(std::sync::Arc::new(
            coffer::envelope::Keyring::load(&d.join(".coffer/keyring.json"), None).unwrap(),
        )),
    )
    .await
    .unwrap();
    store
        .update_attributes(
            &coffer::Scope::new("tenant-a").unwrap(),
            &coffer::SecretName::new("old_key").unwrap(),
            &coffer::AttributeUpdate::new().active(false),
        )
        .await
        .unwrap();
    drop(store);
    coffer(d)
        .args(["copy", "--scope", "tenant-a", "--to", pg.url(), "--dry-run"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("skipped tenant-a/old_key: inactive")
                .and(predicate::str::contains("0 would create")),
        );
}
