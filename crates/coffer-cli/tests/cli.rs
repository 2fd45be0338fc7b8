//! The `coffer` command's behaviour, pinned: output, exit codes, files.

mod support;
use support::{coffer, initialised};

use predicates::prelude::*;

#[test]
fn init_creates_a_private_keyring_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    coffer(dir.path())
        .arg("init")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "keyring: .coffer/keyring.json (created, mode 0600)",
        ))
        .stdout(predicate::str::contains(
            "store: sqlite://.coffer/secrets.db (sqlite, ready)",
        ));
    let keyring = dir.path().join(".coffer/keyring.json");
    let before = std::fs::read(&keyring).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&keyring).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let dir_mode = std::fs::metadata(dir.path().join(".coffer"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
    }
    coffer(dir.path())
        .arg("init")
        .assert()
        .success()
        .stdout(predicate::str::contains("(exists)"));
    assert_eq!(
        std::fs::read(&keyring).unwrap(),
        before,
        "a second init keeps the key"
    );
}

#[test]
fn a_missing_keyring_says_how_to_create_one() {
    let dir = tempfile::tempdir().unwrap();
    coffer(dir.path())
        .args(["get", "x"])
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with(
            "error: no keyring at .coffer/keyring.json: run `coffer init`",
        ));
}

#[test]
fn put_get_list_rm() {
    let dir = initialised();
    let d = dir.path();
    coffer(d)
        .args([
            "put",
            "openai_api_key",
            "--value",
            "sk-test-abcdefgh1234",
            "--provider",
            "openai",
        ])
        .args([
            "--kind",
            "api_key",
            "--tag",
            "prod",
            "--tag",
            "llm",
            "--env-name",
            "OPENAI_API_KEY",
        ])
        .assert()
        .success()
        .stdout("stored default/openai_api_key v1\n");
    coffer(d)
        .args(["put", "openai_api_key", "--value", "sk-test-zyxwvuts5678"])
        .assert()
        .success()
        .stdout("stored default/openai_api_key v2\n");
    // Masked only for a terminal: to a pipe, a plain get is refused, not a fake value.
    coffer(d)
        .args(["get", "openai_api_key"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("--plain"));
    coffer(d)
        .args(["get", "openai_api_key", "--field", "version"])
        .assert()
        .success()
        .stdout("2\n");
    coffer(d)
        .args(["get", "openai_api_key", "--field", "env_name"])
        .assert()
        .success()
        .stdout("OPENAI_API_KEY\n");
    coffer(d)
        .args(["get", "openai_api_key", "--field", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("the fields are"));
    coffer(d)
        .args(["get", "openai_api_key", "--plain"])
        .assert()
        .success()
        .stdout("sk-test-zyxwvuts5678\n");
    coffer(d)
        .args(["get", "openai_api_key", "--reveal"])
        .assert()
        .success()
        .stdout("sk-test-zyxwvuts5678\n");
    coffer(d)
        .args(["get", "openai_api_key", "--reveal", "--version", "1"])
        .assert()
        .success()
        .stdout("sk-test-abcdefgh1234\n");
    let out = coffer(d)
        .args(["get", "openai_api_key", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["value"], "********5678");
    assert_eq!(json["masked"], true);
    assert_eq!(json["version"], 2);
    assert_eq!(json["provider"], "openai");
    assert_eq!(json["tags"], serde_json::json!(["prod", "llm"]));

    coffer(d)
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "NAME            VERSION  KIND     PROVIDER  STATUS  TAGS",
        ))
        .stdout(predicate::str::contains(
            "openai_api_key  2        api_key  openai    active  prod,llm",
        ))
        .stdout(predicate::str::contains("sk-test").not());
    let out = coffer(d)
        .args(["list", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(
        !text.contains("sk-test") && !text.contains("5678"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);

    coffer(d)
        .args(["rm", "openai_api_key"])
        .assert()
        .success()
        .stdout("deleted default/openai_api_key\n");
    coffer(d)
        .args(["get", "openai_api_key"])
        .assert()
        .code(3)
        .stderr("error: secret default/openai_api_key not found\n");
    coffer(d)
        .args(["rm", "openai_api_key", "--destroy"])
        .assert()
        .success();
    coffer(d)
        .args(["rm", "openai_api_key", "--destroy"])
        .assert()
        .code(3);
}

#[test]
fn values_from_stdin_and_files() {
    let dir = initialised();
    let d = dir.path();
    coffer(d)
        .args(["put", "from_stdin"])
        .write_stdin("line one\nline two\n")
        .assert()
        .success();
    coffer(d)
        .args(["get", "from_stdin", "--reveal"])
        .assert()
        .stdout("line one\nline two\n");
    coffer(d)
        .args(["put", "crlf"])
        .write_stdin("windows\r\n")
        .assert()
        .success();
    coffer(d)
        .args(["get", "crlf", "--reveal"])
        .assert()
        .stdout("windows\n");
    coffer(d)
        .args(["put", "two_newlines"])
        .write_stdin("v\n\n")
        .assert()
        .success();
    coffer(d)
        .args(["get", "two_newlines", "--reveal"])
        .assert()
        .stdout("v\n\n");

    let file = d.join("value.txt");
    std::fs::write(&file, "exact bytes\n").unwrap();
    coffer(d)
        .args(["put", "from_file", "--value-file"])
        .arg(&file)
        .assert()
        .success()
        .stderr(predicate::str::contains("trailing newline was not stored"));
    coffer(d)
        .args(["get", "from_file", "--reveal"])
        .assert()
        .stdout("exact bytes\n");
    coffer(d)
        .args(["put", "from_file_raw", "--raw", "--value-file"])
        .arg(&file)
        .assert()
        .success()
        .stderr("");
    coffer(d)
        .args(["get", "from_file_raw", "--reveal"])
        .assert()
        .stdout("exact bytes\n\n");
    // A value that starts like a flag (a PEM block, --x) is a value.
    coffer(d)
        .args(["put", "pem", "--value", "-----BEGIN PRIVATE KEY-----"])
        .assert()
        .success();
    coffer(d)
        .args(["get", "pem", "--plain"])
        .assert()
        .stdout("-----BEGIN PRIVATE KEY-----\n");
    std::fs::write(&file, [0xff, 0xfe]).unwrap();
    coffer(d)
        .args(["put", "binary", "--value-file"])
        .arg(&file)
        .assert()
        .code(1)
        .stderr("error: the value is not valid UTF-8\n");
}

#[test]
fn short_values_are_masked_entirely() {
    let dir = initialised();
    coffer(dir.path())
        .args(["put", "pin", "--value", "1234567"])
        .assert()
        .success();
    let out = coffer(dir.path())
        .args(["get", "pin", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["value"], "********");
}

#[test]
fn conditional_writes_and_bad_input() {
    let dir = initialised();
    let d = dir.path();
    coffer(d)
        .args(["put", "k", "--value", "v1", "--create-only"])
        .assert()
        .success()
        .stdout("stored default/k v1\n");
    coffer(d)
        .args(["put", "k", "--value", "v2", "--create-only"])
        .assert()
        .code(4)
        .stderr("error: secret default/k already exists\n");
    coffer(d)
        .args(["put", "k", "--value", "v2", "--if-version", "5"])
        .assert()
        .code(4)
        .stderr("error: secret default/k: expected version 5, found version 1\n");
    coffer(d)
        .args(["put", "k", "--value", "v2", "--if-version", "1"])
        .assert()
        .success()
        .stdout("stored default/k v2\n");
    coffer(d)
        .args(["put", "a//b", "--value", "v"])
        .assert()
        .code(2)
        .stderr("error: invalid secret name \"a//b\": must not contain '//'\n");
    coffer(d)
        .args(["--scope", "a/b", "list"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid scope \"a/b\""));
    coffer(d)
        .args(["put", "k", "--value", "v", "--kind", "token"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("invalid value 'token' for '--kind")
                .and(predicate::str::contains("api_key")),
        );
    coffer(d)
        .args(["put", "k", "--value", "v", "--expires-at", "tomorrow"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not a date: give YYYY-MM-DD"));
    coffer(d)
        .args([
            "put",
            "k",
            "--value",
            "sk-secret-value-in-error",
            "--env-name",
            "9X",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid env_name"))
        .stderr(predicate::str::contains("sk-secret-value-in-error").not());
}

#[test]
fn expired_secrets_are_refused() {
    let dir = initialised();
    let d = dir.path();
    coffer(d)
        .args(["put", "old", "--value", "v", "--expires-in", "1s"])
        .assert()
        .success();
    coffer(d)
        .args(["put", "past", "--value", "v", "--expires-at", "2020-01-01"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is in the past"));
    std::thread::sleep(std::time::Duration::from_millis(1200));
    coffer(d)
        .args(["get", "old"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("expired at 20"));
    coffer(d)
        .arg("list")
        .assert()
        .stdout(predicate::str::contains("expired 20")); // A put renews it with --no-expiry or a new --expires-in; --inactive stores one unread.
    coffer(d)
        .args(["put", "old", "--value", "v2", "--no-expiry"])
        .assert()
        .success();
    coffer(d)
        .args(["get", "old", "--field", "expires_at"])
        .assert()
        .stdout("\n");
    coffer(d)
        .args(["get", "old", "--plain"])
        .assert()
        .success()
        .stdout("v2\n");
    coffer(d)
        .args(["put", "old", "--value", "v3", "--inactive"])
        .assert()
        .success();
    coffer(d).args(["get", "old", "--plain"]).assert().code(5);
    coffer(d)
        .args([
            "put",
            "old",
            "--value",
            "v4",
            "--active",
            "--expires-in",
            "1h",
        ])
        .assert()
        .success();
    coffer(d)
        .args(["get", "old", "--plain"])
        .assert()
        .success()
        .stdout("v4\n");
    coffer(d)
        .args([
            "put",
            "old",
            "--value",
            "v5",
            "--no-expiry",
            "--expires-in",
            "1h",
        ])
        .assert()
        .code(2);
}

#[test]
fn scopes_are_separate() {
    let dir = initialised();
    let d = dir.path();
    coffer(d)
        .args(["--scope", "tenant-a", "put", "k", "--value", "for-a"])
        .assert()
        .success();
    coffer(d)
        .args(["--scope", "tenant-b", "get", "k"])
        .assert()
        .code(3);
    coffer(d)
        .env("COFFER_SCOPE", "tenant-a")
        .args(["get", "k", "--reveal"])
        .assert()
        .stdout("for-a\n");
}

#[test]
fn master_key_from_the_environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = "42".repeat(32);
    coffer(d)
        .env("COFFER_MASTER_KEY", &key)
        .arg("init")
        .assert()
        .success()
        .stdout(predicate::str::contains("using COFFER_MASTER_KEY"));
    assert!(!d.join(".coffer/keyring.json").exists());
    coffer(d)
        .env("COFFER_MASTER_KEY", &key)
        .args(["put", "k", "--value", "v"])
        .assert()
        .success();
    coffer(d)
        .env("COFFER_MASTER_KEY", &key)
        .args(["get", "k", "--reveal"])
        .assert()
        .stdout("v\n");
    coffer(d)
        .env("COFFER_MASTER_KEY", "43".repeat(32))
        .args(["get", "k"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "not the key this store was sealed with",
        ));
    coffer(d)
        .env("COFFER_MASTER_KEY", "too-short")
        .args(["get", "k"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("COFFER_MASTER_KEY"))
        .stderr(predicate::str::contains("too-short").not());
}

/// `COFFER_MASTER_KEY` keeps working after three rotations: the first one turns it into
/// the key-encryption key of a sealed keyring file (keeping it as key 1 for what it
/// sealed), later ones add keys under it, and the old key can then be retired.
#[test]
fn master_key_keeps_working_after_three_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = base64_of(rand::random::<[u8; 32]>());
    let with_key = |args: &[&str]| {
        let mut cmd = coffer(d);
        cmd.env("COFFER_MASTER_KEY", &key).args(args);
        cmd
    };
    with_key(&["init"]).assert().success();
    with_key(&["put", "k0", "--value", "value-0"])
        .assert()
        .success();
    for round in 1..=3 {
        with_key(&["keys", "rotate"])
            .assert()
            .success()
            .stdout(format!(
                "rotated to key {}; rewrapped {round} envelopes\n",
                round + 1
            ));
        with_key(&[
            "put",
            &format!("k{round}"),
            "--value",
            &format!("value-{round}"),
        ])
        .assert()
        .success();
    }
    let path = d.join(".coffer/keyring.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("coffer-keyring/v1"), "sealed: {text}");
    assert!(!text.contains(&key), "the KEK is not in the file");
    for i in 0..=3 {
        with_key(&["get", &format!("k{i}"), "--reveal"])
            .assert()
            .success()
            .stdout(format!("value-{i}\n"));
    }
    let keys = {
        let out = with_key(&["keys", "list", "--json"]).assert().success();
        serde_json::from_slice::<serde_json::Value>(&out.get_output().stdout).unwrap()
    };
    assert_eq!(keys.as_array().unwrap().len(), 4);
    assert_eq!(keys[3]["state"], "primary");
    with_key(&["keys", "retire", "1"])
        .assert()
        .success()
        .stdout("retired key 1\n");
    with_key(&["get", "k0", "--reveal"])
        .assert()
        .success()
        .stdout("value-0\n");

    // Without the KEK, or with another one, the sealed file says what it needs.
    coffer(d)
        .args(["get", "k0"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "sealed under a key-encryption key",
        ));
    let other = base64_of(rand::random::<[u8; 32]>());
    coffer(d)
        .env("COFFER_MASTER_KEY", &other)
        .args(["get", "k0"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "COFFER_MASTER_KEY does not open it (wrong key)",
        ))
        .stderr(predicate::str::contains(&other).not());
    coffer(d)
        .env("COFFER_PASSPHRASE", "not the kek")
        .args(["get", "k0"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("sealed with a key"));
}

/// `keys rekey` re-seals only the keyring: a plain file becomes sealed under a key file,
/// then under a passphrase; each old KEK stops working, every secret still reads.
#[test]
fn rekey_reseals_the_keyring_under_a_new_kek() {
    let dir = initialised();
    let d = dir.path();
    coffer(d)
        .args(["put", "token", "--value", "value-token"])
        .assert()
        .success();
    coffer(d)
        .args(["keys", "rekey"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no new key-encryption key"));

    let kek_file = d.join("kek.key");
    std::fs::write(&kek_file, base64_of(rand::random::<[u8; 32]>())).unwrap();
    std::fs::set_permissions(
        &kek_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    coffer(d)
        .env("COFFER_NEW_KEK_FILE", &kek_file)
        .args(["keys", "rekey"])
        .assert()
        .success()
        .stdout(predicate::str::contains("set COFFER_KEK_FILE="));
    coffer(d)
        .env("COFFER_KEK_FILE", &kek_file)
        .args(["get", "token", "--reveal"])
        .assert()
        .success()
        .stdout("value-token\n");
    coffer(d)
        .env("COFFER_KEK_FILE", &kek_file)
        .env("COFFER_NEW_PASSPHRASE", "a long and new passphrase")
        .args(["keys", "rekey"])
        .assert()
        .success()
        .stdout(predicate::str::contains("set COFFER_PASSPHRASE"));
    coffer(d)
        .env("COFFER_KEK_FILE", &kek_file)
        .args(["get", "token"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("sealed with a passphrase"));
    coffer(d)
        .env("COFFER_PASSPHRASE", "the wrong passphrase")
        .args(["get", "token"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("wrong passphrase"));
    coffer(d)
        .env("COFFER_PASSPHRASE", "a long and new passphrase")
        .args(["get", "token", "--reveal"])
        .assert()
        .success()
        .stdout("value-token\n");
    let text = std::fs::read_to_string(d.join(".coffer/keyring.json")).unwrap();
    assert!(text.contains("\"kek\":\"passphrase\""), "{text}");
}

#[test]
fn keys_rotate_rewraps_everything() {
    let dir = initialised();
    let d = dir.path();
    for i in 0..30 {
        coffer(d)
            .args(["put", &format!("k{i}"), "--value", &format!("value-{i}")])
            .assert()
            .success();
    }
    coffer(d)
        .args(["keys", "rotate"])
        .assert()
        .success()
        .stdout("rotated to key 2; rewrapped 30 envelopes\n");
    coffer(d)
        .args(["keys", "rotate"])
        .assert()
        .success()
        .stdout("rotated to key 3; rewrapped 30 envelopes\n");
    for i in 0..30 {
        coffer(d)
            .args(["get", &format!("k{i}"), "--reveal"])
            .assert()
            .stdout(format!("value-{i}\n"));
        let out = coffer(d)
            .args(["get", &format!("k{i}"), "--json"])
            .assert()
            .get_output()
            .stdout
            .clone();
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(json["key_id"], 3);
    }
}

/// A rotation interrupted after the new key was saved and part of the store was
/// rewrapped: running it again resumes the same rotation (no third key) and finishes.
#[test]
fn an_interrupted_rotation_resumes() {
    let dir = initialised();
    let d = dir.path();
    for i in 0..20 {
        coffer(d)
            .args(["put", &format!("k{i}"), "--value", &format!("value-{i}")])
            .assert()
            .success();
    }
    let keyring_path = d.join(".coffer/keyring.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&keyring_path).unwrap()).unwrap();
    // What `keys rotate` writes before rewrapping: a second key, primary, rotation pending.
    let new_key = base64_of([7u8; 32]);
    json["keys"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "id": 2, "key": new_key, "check": check_value_of_sevens()
        }));
    json["primary"] = 2.into();
    json["rotation_pending"] = true.into();
    std::fs::write(&keyring_path, json.to_string()).unwrap();
    coffer(d)
        .args(["keys", "rotate"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "resuming the unfinished rotation to key 2",
        ))
        .stdout("rotated to key 2; rewrapped 20 envelopes\n");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&keyring_path).unwrap()).unwrap();
    assert_eq!(json["keys"].as_array().unwrap().len(), 2);
    assert_eq!(json["rotation_pending"], false);
    for i in 0..20 {
        coffer(d)
            .args(["get", &format!("k{i}"), "--reveal"])
            .assert()
            .stdout(format!("value-{i}\n"));
    }
}

/// Keys as `coffer keys list --json` shows them.
fn keys_json(d: &std::path::Path) -> Vec<serde_json::Value> {
    let out = coffer(d)
        .args(["keys", "list", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// `keys list` counts from the store; `keys retire` refuses the primary, an unknown key
/// and a key still in use, and after a rotation removes the old key's material for good.
#[test]
fn keys_are_listed_and_retired_only_when_nothing_uses_them() {
    let dir = initialised();
    let d = dir.path();
    for i in 0..3 {
        coffer(d)
            .args(["put", &format!("k{i}"), "--value", &format!("value-{i}")])
            .assert()
            .success();
    }
    coffer(d)
        .args(["put", "k0", "--value", "value-0b"])
        .assert()
        .success();
    let keys = keys_json(d);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], 1);
    assert_eq!(keys[0]["state"], "primary");
    assert_eq!(keys[0]["envelopes"], 4, "every version counts");
    assert_eq!(keys[0]["heads"], 3);
    assert!(keys[0]["created"].as_str().unwrap().ends_with('Z'));

    coffer(d)
        .args(["keys", "retire", "1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("key 1 is the primary"));
    coffer(d)
        .args(["keys", "retire", "7"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("key 7 is not in the keyring"));

    // A new primary that nothing uses yet, the old one still in use: refused.
    let keyring_path = d.join(".coffer/keyring.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&keyring_path).unwrap()).unwrap();
    json["keys"].as_array_mut().unwrap().push(
        serde_json::json!({"id": 2, "key": base64_of([7u8; 32]), "check": check_value_of_sevens()}),
    );
    json["primary"] = 2.into();
    std::fs::write(&keyring_path, json.to_string()).unwrap();
    coffer(d)
        .args(["keys", "retire", "1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "key 1 still protects 4 envelopes and 3 head MACs",
        ));
    let table = coffer(d).args(["keys", "list"]).assert().success();
    let table = String::from_utf8(table.get_output().stdout.clone()).unwrap();
    assert!(
        table.lines().next().unwrap().contains("ENVELOPES"),
        "{table}"
    );
    assert!(table.contains("in use"), "{table}");

    coffer(d)
        .args(["keys", "rotate"])
        .assert()
        .success()
        .stdout("rotated to key 3; rewrapped 4 envelopes\n");
    coffer(d)
        .args(["keys", "retire", "1"])
        .assert()
        .success()
        .stdout("retired key 1\n");
    let text = std::fs::read_to_string(&keyring_path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        json["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["id"] != 1),
        "key 1's material is gone"
    );
    let keys = keys_json(d);
    let states: Vec<(u64, &str)> = keys
        .iter()
        .map(|k| (k["id"].as_u64().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [(1, "retired"), (2, "unused"), (3, "primary")]);
    for i in 1..3 {
        coffer(d)
            .args(["get", &format!("k{i}"), "--reveal"])
            .assert()
            .success()
            .stdout(format!("value-{i}\n"));
    }
    coffer(d)
        .args(["get", "k0", "--version", "1", "--reveal"])
        .assert()
        .success()
        .stdout("value-0\n");
}

/// The leaked-key runbook in one command: a new primary, everything moved onto it, every
/// older key's material removed from the keyring file.
#[test]
fn rotate_with_retire_leaves_only_the_new_key() {
    let dir = initialised();
    let d = dir.path();
    coffer(d)
        .args(["put", "token", "--value", "value-token"])
        .assert()
        .success();
    let keyring_path = d.join(".coffer/keyring.json");
    let before = std::fs::read_to_string(&keyring_path).unwrap();
    let old_key: serde_json::Value = serde_json::from_str(&before).unwrap();
    let old_key = old_key["keys"][0]["key"].as_str().unwrap().to_owned();
    coffer(d)
        .args(["keys", "rotate", "--retire"])
        .assert()
        .success()
        .stdout("rotated to key 2; rewrapped 1 envelopes\nretired key 1\n");
    let after = std::fs::read_to_string(&keyring_path).unwrap();
    assert!(!after.contains(&old_key), "the leaked key is gone");
    coffer(d)
        .args(["get", "token", "--reveal"])
        .assert()
        .success()
        .stdout("value-token\n");
    coffer(d)
        .args(["keys", "rotate", "--retire"])
        .assert()
        .success()
        .stdout("rotated to key 3; rewrapped 1 envelopes\nretired key 2\n");
    // COFFER_MASTER_KEY over a plain keyring file: coffer changes neither.
    for args in [
        &["keys", "rotate"][..],
        &["keys", "retire", "2"],
        &["keys", "rekey"],
    ] {
        coffer(d)
            .env("COFFER_MASTER_KEY", base64_of([9u8; 32]))
            .args(args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(
                "COFFER_MASTER_KEY overrides the keyring file",
            ));
    }
}

/// A head that has no MAC (as a coffer before 0.1's metadata MAC wrote it) is refused as
/// tampered, with a hint; `keys migrate` adopts it and the secret reads again.
#[tokio::test]
async fn keys_migrate_adopts_heads_written_without_a_mac() {
    let dir = initialised();
    let d = dir.path();
    coffer(d)
        .args(["put", "legacy", "--value", "value-legacy"])
        .assert()
        .success();
    let db = d.join(".coffer/secrets.db");
    {
        use sqlx::ConnectOptions as _;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .connect()
            .await
            .unwrap();
        sqlx::query("UPDATE coffer_secrets SET mac = NULL")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    coffer(d)
        .args(["get", "legacy", "--reveal"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("coffer keys migrate"))
        .stdout("");
    coffer(d)
        .args(["keys", "migrate"])
        .assert()
        .success()
        .stdout("gave 1 heads a MAC of their current state\n");
    coffer(d)
        .args(["get", "legacy", "--reveal"])
        .assert()
        .success()
        .stdout("value-legacy\n");
    coffer(d)
        .args(["keys", "migrate"])
        .assert()
        .success()
        .stdout("gave 0 heads a MAC of their current state\n");
}

fn base64_of(bytes: [u8; 32]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
}

fn check_value_of_sevens() -> String {
    coffer::MasterKey::from_bytes([7u8; 32]).check_value()
}

/// The same commands against Postgres (`COFFER_TEST_POSTGRES_URL`), in a throwaway database.
#[tokio::test]
async fn works_against_postgres() {
    let Some(db) = coffer_testkit::postgres::TestDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| {
        let mut cmd = coffer(d);
        cmd.arg("--store").arg(db.url()).args(args);
        cmd
    };
    run(&["init"])
        .assert()
        .success()
        .stdout(predicate::str::contains("(postgres, ready)"));
    run(&["put", "k", "--value", "pg-value-1234"])
        .assert()
        .success()
        .stdout("stored default/k v1\n");
    run(&["get", "k", "--reveal"])
        .assert()
        .success()
        .stdout("pg-value-1234\n");
    run(&["keys", "rotate"])
        .assert()
        .success()
        .stdout("rotated to key 2; rewrapped 1 envelopes\n");
    run(&["keys", "retire", "1"])
        .assert()
        .success()
        .stdout("retired key 1\n");
    run(&["get", "k", "--reveal"])
        .assert()
        .success()
        .stdout("pg-value-1234\n");
    // The URL's password never appears in an error.
    let mut bad = url::Url::parse(db.url()).unwrap();
    bad.set_password(Some("pw-should-not-leak")).unwrap();
    bad.set_port(Some(1)).unwrap();
    coffer(d)
        .arg("--store")
        .arg(bad.as_str())
        .args(["get", "k"])
        .assert()
        .code(7)
        .stderr(predicate::str::contains("pw-should-not-leak").not());
}

#[test]
fn audit_shows_who_touched_what_and_never_a_value() {
    let dir = initialised();
    let canary = "sk-cli-audit-canary-40917";
    coffer(dir.path())
        .args(["put", "openai_api_key", "--value", canary])
        .env("COFFER_ACTOR", "cli:alice")
        .assert()
        .success();
    coffer(dir.path())
        .args(["get", "openai_api_key", "--reveal"])
        .env("COFFER_ACTOR", "cli:alice")
        .assert()
        .success();
    coffer(dir.path())
        .args(["get", "missing"])
        .env("COFFER_ACTOR", "cli:bob")
        .assert()
        .code(3);
    coffer(dir.path())
        .args(["--scope", "other", "put", "openai_api_key", "--value", "x"])
        .assert()
        .success();

    let table = coffer(dir.path()).arg("audit").assert().success();
    let table = String::from_utf8(table.get_output().stdout.clone()).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("TIME"), "{table}");
    assert_eq!(lines.len(), 5, "{table}");
    assert!(
        lines[1].contains("get")
            && lines[1].contains("error:not_found")
            && lines[1].contains("cli:bob"),
        "{table}"
    );
    assert!(
        lines[2].contains("get") && lines[2].contains(" ok ") && lines[2].contains("cli:alice"),
        "{table}"
    );
    assert!(
        lines[4].contains("put") && lines[4].contains("attempt"),
        "{table}"
    );
    assert!(!table.contains(canary));

    let json = coffer(dir.path())
        .args(["audit", "--name", "openai_api_key", "--json"])
        .assert()
        .success();
    let json = String::from_utf8(json.get_output().stdout.clone()).unwrap();
    let events: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(events.len(), 3);
    assert!(
        events
            .iter()
            .all(|e| e["name"] == "openai_api_key" && e["scope"] == "default")
    );
    assert_eq!(events[0]["operation"], "get");
    assert_eq!(events[0]["context"]["actor"], "cli:alice");
    assert!(!json.contains(canary));

    // The database itself holds no value in its log either.
    let db = std::fs::read(dir.path().join(".coffer/secrets.db")).unwrap();
    assert!(!db.windows(canary.len()).any(|w| w == canary.as_bytes()));

    coffer(dir.path())
        .args(["--store", "memory://", "audit"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "the access log lives in a SQL store",
        ));
}

#[test]
fn list_expiring_shows_what_expires_soon() {
    let dir = initialised();
    let now = chrono::Utc::now();
    for (name, at) in [
        ("in-3-days", Some(now + chrono::Duration::days(3))),
        ("in-30-days", Some(now + chrono::Duration::days(30))),
        ("forever", None),
    ] {
        let mut cmd = coffer(dir.path());
        cmd.args(["put", name, "--value", "v"]);
        if let Some(at) = at {
            cmd.args(["--expires-at", &at.to_rfc3339()]);
        }
        cmd.assert().success();
    }
    // One that has expired already (a past expiry cannot be stored: it expires now).
    coffer(dir.path())
        .args(["put", "gone", "--value", "v", "--expires-in", "1s"])
        .assert()
        .success();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let out = coffer(dir.path())
        .args(["list", "--expiring", "7d"])
        .assert()
        .success();
    let out = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let names: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names, ["gone", "in-3-days"], "{out}");
    assert!(
        out.contains("expired ") && out.contains("expires "),
        "{out}"
    );
    coffer(dir.path())
        .args(["list", "--expiring", "1h", "--prefix", "in-"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "nothing in scope default expires within 1h",
        ));
    coffer(dir.path())
        .args(["list", "--expiring", "soon"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--expiring"));
}

/// Two machines share one store and keep no keyring files: `keys migrate --to-store`
/// moves machine A's keyring into the store, sealed under `COFFER_MASTER_KEY`; machine
/// B, a separate process with only that variable, reads and writes; a rotation with
/// retirement on A is followed by B's next command; three rotations on B later, A still
/// reads everything; a re-key changes only the KEK.
#[test]
fn the_keyring_kept_in_the_store_is_shared_by_two_machines() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let (a_home, b_home) = (a_dir.path(), b_dir.path());
    let db = a_home.join(".coffer/secrets.db");
    let store = format!("sqlite://{}", db.display());
    let key = base64_of(rand::random::<[u8; 32]>());
    let on = |home: &std::path::Path, key: &str, args: &[&str]| {
        let mut cmd = coffer(home);
        cmd.env("COFFER_STORE", &store)
            .env("COFFER_MASTER_KEY", key)
            .args(args);
        cmd
    };
    coffer(a_home).arg("init").assert().success();
    for i in 0..3 {
        coffer(a_home)
            .args(["put", &format!("k{i}"), "--value", &format!("value-{i}")])
            .assert()
            .success();
    }
    // Without the KEK the keyring cannot move: nothing changes.
    coffer(a_home)
        .args(["keys", "migrate", "--to-store"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("COFFER_MASTER_KEY"));
    on(a_home, &key, &["keys", "migrate", "--to-store"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "the sqlite store now keeps the keyring (sealed under COFFER_MASTER_KEY); read back 3 secrets",
        ))
        .stderr(predicate::str::contains("is no longer used"));
    std::fs::remove_file(a_home.join(".coffer/keyring.json")).unwrap();

    // Machine B has no keyring file, only the KEK.
    on(b_home, &key, &["get", "k1", "--reveal"])
        .assert()
        .success()
        .stdout("value-1\n");
    on(a_home, &key, &["keys", "rotate", "--retire"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "rotated to key 2; rewrapped 3 envelopes",
        ))
        .stdout(predicate::str::contains("retired key 1"));
    on(b_home, &key, &["put", "k3", "--value", "value-3"])
        .assert()
        .success();
    let keys = {
        let out = on(b_home, &key, &["keys", "list", "--json"])
            .assert()
            .success();
        serde_json::from_slice::<serde_json::Value>(&out.get_output().stdout).unwrap()
    };
    let states: Vec<(u64, String)> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["id"].as_u64().unwrap(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [(1, "retired".to_owned()), (2, "primary".to_owned())]
    );

    // COFFER_MASTER_KEY keeps working after three rotations, on the other machine too.
    for round in 1..=3 {
        on(b_home, &key, &["keys", "rotate"])
            .assert()
            .success()
            .stdout(predicate::str::contains(format!(
                "rotated to key {}",
                round + 2
            )));
    }
    for i in 0..=3 {
        on(a_home, &key, &["get", &format!("k{i}"), "--reveal"])
            .assert()
            .success()
            .stdout(format!("value-{i}\n"));
    }

    // A wrong KEK names its source and says so; no key is printed.
    let other = base64_of(rand::random::<[u8; 32]>());
    on(b_home, &other, &["get", "k0"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "does not open with COFFER_MASTER_KEY",
        ))
        .stderr(predicate::str::contains("wrong key"))
        .stderr(predicate::str::contains(&other).not());

    // A re-key: the old KEK stops working, the new one reads everything.
    let new = base64_of(rand::random::<[u8; 32]>());
    on(a_home, &key, &["keys", "rekey"])
        .env("COFFER_NEW_MASTER_KEY", &new)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "sealed the keyring kept in the sqlite store",
        ));
    on(b_home, &key, &["get", "k0"]).assert().code(1);
    on(b_home, &new, &["get", "k0", "--reveal"])
        .assert()
        .success()
        .stdout("value-0\n");
}

/// The keyring kept in a Postgres database through the CLI, and a Supabase project that
/// does not seal values (no `?seal=true`) refused as a place to keep one: it would hold a
/// keyring no value uses.
#[tokio::test]
async fn keys_migrate_to_store_on_postgres_and_not_on_an_unsealed_supabase() {
    let Some(db) = coffer_testkit::postgres::TestDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = base64_of(rand::random::<[u8; 32]>());
    let run = |store: &str, args: &[&str]| {
        let mut cmd = coffer(d);
        cmd.arg("--store")
            .arg(store)
            .env("COFFER_MASTER_KEY", &key)
            .args(args);
        cmd
    };
    coffer(d)
        .arg("--store")
        .arg(db.url())
        .arg("init")
        .assert()
        .success();
    coffer(d)
        .arg("--store")
        .arg(db.url())
        .args(["put", "k", "--value", "pg-kept-value"])
        .assert()
        .success();
    run(db.url(), &["keys", "migrate", "--to-store"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "the postgres store now keeps the keyring",
        ));
    std::fs::remove_file(d.join(".coffer/keyring.json")).unwrap();
    run(db.url(), &["keys", "rotate", "--retire"])
        .assert()
        .success()
        .stdout(predicate::str::contains("retired key 1"));
    run(db.url(), &["get", "k", "--reveal"])
        .assert()
        .success()
        .stdout("pg-kept-value\n");

    let project = coffer_testkit::postgres::SupabaseProject::create()
        .await
        .unwrap();
    let pool = sqlx::PgPool::connect(project.url()).await.unwrap();
    let unsealed = format!("supabase+{}", project.url());
    let other = tempfile::tempdir().unwrap();
    coffer(other.path()).arg("init").assert().success();
    coffer(other.path())
        .arg("--store")
        .arg(&unsealed)
        .env("COFFER_MASTER_KEY", &key)
        .args(["keys", "migrate", "--to-store"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "does not seal values with the keyring",
        ));
    let kept: Option<String> =
        sqlx::query_scalar("SELECT name FROM vault.secrets WHERE name = 'coffer-keyring'")
            .fetch_optional(&pool)
            .await
            .unwrap();
    assert_eq!(kept, None, "nothing was written");
}

/// `coffer set` edits metadata in place: an expired secret is renewed, an inactive one
/// reactivated, nothing gets a new version; `list` filters by what it set.
#[test]
fn set_edits_metadata_without_a_new_version_and_list_filters_by_it() {
    let dir = initialised();
    let d = dir.path();
    coffer(d)
        .args(["put", "k", "--value", "sk-set-1", "--expires-in", "1s"])
        .assert()
        .success();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    coffer(d)
        .args([
            "put",
            "gh",
            "--value",
            "ghp_set_2",
            "--provider",
            "github",
            "--kind",
            "oauth_token",
        ])
        .assert()
        .success();
    coffer(d).args(["get", "k", "--reveal"]).assert().code(5);
    coffer(d)
        .args(["set", "k", "--no-expiry"])
        .assert()
        .success()
        .stdout("updated default/k: version 1 (no new version), active, no expiry\n");
    coffer(d)
        .args(["get", "k", "--reveal"])
        .assert()
        .success()
        .stdout("sk-set-1\n");
    coffer(d)
        .args(["set", "k", "--inactive"])
        .assert()
        .success();
    coffer(d)
        .args(["get", "k", "--reveal"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("inactive"));
    let names = |args: &[&str]| {
        let out = coffer(d)
            .arg("list")
            .arg("--json")
            .args(args)
            .output()
            .unwrap();
        let items: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        items
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&["--inactive"]), ["k"]);
    assert_eq!(names(&["--active"]), ["gh"]);
    assert_eq!(names(&["--provider", "github"]), ["gh"]);
    assert_eq!(names(&["--kind", "oauth_token"]), ["gh"]);
    coffer(d)
        .args([
            "set",
            "k",
            "--active",
            "--expires-in",
            "90d",
            "--tag",
            "prod",
            "--description",
            "renewed",
            "--provider",
            "openai",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "version 1 (no new version), active, expires 20",
        ));
    assert_eq!(names(&["--tag", "prod"]), ["k"]);
    assert_eq!(names(&["--provider", "openai", "--active"]), ["k"]);
    coffer(d)
        .args([
            "set",
            "k",
            "--untag",
            "prod",
            "--no-description",
            "--no-provider",
        ])
        .assert()
        .success();
    assert!(names(&["--tag", "prod"]).is_empty());
    let out = coffer(d).args(["list", "--json"]).output().unwrap();
    let items: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let k = items.iter().find(|m| m["name"] == "k").unwrap();
    assert_eq!(
        (
            k["version"].as_u64(),
            k["description"].is_null(),
            k["provider"].is_null()
        ),
        (Some(1), true, true)
    );
    // A past expiry, an empty edit and a missing secret are refused.
    coffer(d)
        .args(["set", "k", "--expires-at", "2020-01-01"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("in the past"));
    coffer(d)
        .args(["set", "k"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nothing to change"));
    coffer(d)
        .args(["set", "missing", "--inactive"])
        .assert()
        .code(3);
}

/// Shell completion, the `--` hint of `run`, and memory:// saying it keeps nothing.
#[test]
fn completion_run_hint_and_memory_warning() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (shell, marker) in [
        ("bash", "_coffer()"),
        ("zsh", "#compdef coffer"),
        ("fish", "complete -c coffer"),
    ] {
        let out = coffer(d).args(["completion", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains(marker) && script.contains("import"),
            "{shell}: {script:.200}"
        );
    }
    coffer(d)
        .args(["run", "npm", "start"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("hint: put the command after `--`"));
    coffer(d)
        .args(["--store", "memory://", "put", "k", "--value", "v"])
        .assert()
        .success()
        .stderr(predicate::str::contains("memory:// keeps nothing"));
}

/// `init` makes a project git keeps out; every command finds it from a sub-folder, as
/// git finds `.git`; and only `init` creates a store.
#[test]
fn the_project_is_found_from_sub_folders_and_reads_never_create_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    coffer(d)
        .args(["--scope", "team", "init"])
        .assert()
        .success()
        .stdout(predicate::str::contains(".gitignore: created"));
    assert_eq!(
        std::fs::read_to_string(d.join(".coffer/.gitignore"))
            .unwrap()
            .lines()
            .last(),
        Some("*")
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join(".coffer/config.json")).unwrap())
            .unwrap();
    assert_eq!(
        config,
        serde_json::json!({"store": "sqlite://.coffer/secrets.db", "scope": "team"})
    );
    // git, if it is here, sees nothing to commit in .coffer/.
    if std::process::Command::new("git")
        .arg("--version")
        .output()
        .is_ok()
    {
        std::process::Command::new("git")
            .arg("init")
            .arg("-q")
            .current_dir(d)
            .status()
            .unwrap();
        let status = std::process::Command::new("git")
            .args(["status", "--porcelain", "--untracked-files=all"])
            .current_dir(d)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&status.stdout),
            "",
            "nothing of .coffer/ to commit"
        );
    }
    let sub = d.join("src/deep/er");
    std::fs::create_dir_all(&sub).unwrap();
    coffer(&sub)
        .args(["put", "k", "--value", "from-a-sub-folder"])
        .assert()
        .success();
    // The scope came from the project's config.
    coffer(d)
        .args(["--scope", "team", "get", "k", "--reveal"])
        .assert()
        .success()
        .stdout("from-a-sub-folder\n");
    coffer(&sub)
        .args(["get", "k", "--reveal"])
        .assert()
        .success()
        .stdout("from-a-sub-folder\n");

    // A store that is not there is not made by a read, nor by a write.
    for args in [&["list"][..], &["put", "x", "--value", "v"]] {
        coffer(d)
            .arg("--store")
            .arg("sqlite://.coffer/secret.db")
            .args(args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(
                "no store at .coffer/secret.db: run `coffer init`",
            ));
    }
    assert!(!d.join(".coffer/secret.db").exists());

    // A store that does not open is not written into the project's config, and a
    // password in the URL never is.
    let other = tempfile::tempdir().unwrap();
    coffer(other.path())
        .args([
            "--store",
            "postgres://app:pw-not-written@127.0.0.1:1/db",
            "init",
        ])
        .assert()
        .code(7);
    assert!(!other.path().join(".coffer/config.json").exists());
}

/// A password in the store URL is never written into the project's config (on a
/// database of its own: the server's own databases are not the tests' to write).
#[tokio::test]
async fn init_does_not_write_a_password_into_the_project_config() {
    let Some(db) = coffer_testkit::postgres::TestDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut with_password = url::Url::parse(db.url()).unwrap();
    with_password.set_password(Some("pw-not-written")).unwrap();
    coffer(dir.path())
        .args(["--store", with_password.as_str(), "init"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "not written to .coffer/config.json",
        ));
    let written = std::fs::read_to_string(dir.path().join(".coffer/config.json")).unwrap();
    assert!(
        !written.contains("pw-not-written") && !written.contains("store"),
        "{written}"
    );
}

/// `stdout` of a successful command, parsed as JSON.
fn json_of(cmd: &mut assert_cmd::Command) -> serde_json::Value {
    let out = cmd.assert().success();
    serde_json::from_slice(&out.get_output().stdout).unwrap()
}

#[test]
fn versions_rollback_restore_and_list_deleted() {
    let dir = initialised();
    let d = dir.path();
    for value in ["first-value-1", "second-value-2"] {
        coffer(d)
            .args(["put", "token", "--value", value, "--provider", "github"])
            .assert()
            .success();
    }
    // The history: two versions, oldest first, never a value.
    let out = coffer(d).args(["versions", "token"]).assert().success();
    let table = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(table.starts_with("VERSION  CREATED"), "{table}");
    assert!(table.contains("kept (latest)"), "{table}");
    assert!(!table.contains("first-value"), "{table}");
    let versions = json_of(coffer(d).args(["versions", "token", "--format", "json"]));
    let numbers: Vec<u64> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2]);
    assert_eq!(versions[0]["state"], "kept");
    assert_eq!(versions[0]["key_id"], 1);
    coffer(d).args(["versions", "nobody"]).assert().code(3);

    // Rollback: v1's value as v3, the metadata kept.
    coffer(d)
        .args(["rollback", "token", "--to", "1"])
        .assert()
        .success()
        .stdout("stored default/token v3: the value of v1 (metadata unchanged)\n");
    coffer(d)
        .args(["get", "token", "--plain"])
        .assert()
        .success()
        .stdout("first-value-1\n");
    coffer(d)
        .args(["get", "token", "--field", "provider"])
        .assert()
        .stdout("github\n");
    coffer(d)
        .args(["rollback", "token", "--to", "9"])
        .assert()
        .code(3);

    // Soft delete, list --deleted, restore as it was.
    coffer(d).args(["rm", "token"]).assert().success();
    coffer(d).args(["get", "token", "--plain"]).assert().code(3);
    let deleted = json_of(coffer(d).args(["list", "--deleted", "--json"]));
    assert_eq!(deleted.as_array().unwrap().len(), 1);
    assert_eq!(deleted[0]["name"], "token");
    assert_eq!(deleted[0]["version"], 3);
    coffer(d)
        .args(["list", "--deleted", "--provider", "openai"])
        .assert()
        .success()
        .stderr("no deleted secrets in scope default\n");
    coffer(d)
        .args(["restore", "token"])
        .assert()
        .success()
        .stdout("restored default/token v3\n");
    coffer(d)
        .args(["get", "token", "--plain", "--version", "2"])
        .assert()
        .success()
        .stdout("second-value-2\n");
    coffer(d)
        .args(["restore", "token"])
        .assert()
        .success()
        .stdout("default/token is not deleted (v3): nothing to restore\n");
    coffer(d)
        .args(["list", "--deleted"])
        .assert()
        .success()
        .stdout("");
    // Destroyed is gone for good.
    coffer(d)
        .args(["rm", "token", "--destroy"])
        .assert()
        .success();
    coffer(d).args(["restore", "token"]).assert().code(3);
    coffer(d).args(["versions", "token"]).assert().code(3);
}

#[test]
fn bulk_put_pairs_and_stdin_lines() {
    let dir = initialised();
    let d = dir.path();
    coffer(d)
        .args(["put", "a=1", "b=two", "c=x=y", "--tag", "bulk"])
        .assert()
        .success()
        .stdout("stored default/a v1\nstored default/b v1\nstored default/c v1\n");
    coffer(d)
        .args(["get", "c", "--plain"])
        .assert()
        .stdout("x=y\n");
    coffer(d)
        .args(["get", "a", "--field", "tags"])
        .assert()
        .stdout("[\"bulk\"]\n");
    // Everything is checked before anything is written.
    coffer(d)
        .args(["put", "d=1", "bad name!=2"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid secret name"));
    coffer(d)
        .args(["put", "d=1", "d=2"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("given twice"));
    coffer(d).args(["get", "d", "--plain"]).assert().code(3);
    coffer(d)
        .args(["put", "d=1", "e=2", "--value", "x"])
        .assert()
        .code(2);
    coffer(d)
        .args(["put", "d", "e"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("NAME=VALUE"));

    // Lines: the value is the rest of the line, exactly; comments and blanks skipped.
    let out = coffer(d)
        .args(["put", "--from-stdin-lines", "--format", "json"])
        .write_stdin("# a comment\nX_KEY=1\n\nY_KEY= spaced value \r\nb=three\n")
        .assert()
        .success();
    let stored: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let names: Vec<&str> = stored
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["X_KEY", "Y_KEY", "b"]);
    assert_eq!(stored[2]["version"], 2);
    coffer(d)
        .args(["get", "Y_KEY", "--plain"])
        .assert()
        .stdout(" spaced value \n");
    // A bad line is named by its number, never shown.
    coffer(d)
        .args(["put", "--from-stdin-lines"])
        .write_stdin("OK=1\nsk-canary-value-no-equals\n")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("line 2 is not NAME=VALUE"))
        .stderr(predicate::str::contains("sk-canary").not());
    coffer(d).args(["get", "OK", "--plain"]).assert().code(3);
    coffer(d)
        .args(["put", "--from-stdin-lines"])
        .write_stdin("# only a comment\n")
        .assert()
        .code(2);
}

#[test]
fn one_json_shape_per_entity() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let init = json_of(coffer(d).args(["init", "--format", "json"]));
    assert_eq!(init["backend"], "sqlite");
    assert_eq!(init["scope"], "default");
    assert_eq!(init["created"].as_array().unwrap().len(), 3, "{init}");
    // put, set, get and list print the same secret object (get adds the value).
    let put = json_of(coffer(d).args([
        "put",
        "k",
        "--value",
        "sk-json-shape-1234",
        "--provider",
        "openai",
        "--json",
    ]));
    let set = json_of(coffer(d).args(["set", "k", "--tag", "t", "--format", "json"]));
    let get = json_of(coffer(d).args(["get", "k", "--format", "json"]));
    let list = json_of(coffer(d).args(["list", "--format", "json"]));
    let keys_of = |v: &serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys_of(&put), keys_of(&set));
    assert_eq!(keys_of(&put), keys_of(&list[0]));
    let mut with_value = keys_of(&put);
    with_value.extend(["masked".to_owned(), "value".to_owned()]);
    with_value.sort();
    assert_eq!(keys_of(&get), with_value);
    assert_eq!(get["value"], "********1234");
    assert_eq!(set["tags"], serde_json::json!(["t"]));
    assert_eq!(set["version"], 1);
    // Collections are one JSON array: list, versions, audit, keys.
    for args in [
        &["versions", "k", "--json"][..],
        &["audit", "--json"],
        &["keys", "list", "--json"],
    ] {
        let v = json_of(coffer(d).args(args));
        assert!(
            v.is_array() && !v.as_array().unwrap().is_empty(),
            "{args:?}: {v}"
        );
    }
    let rm = json_of(coffer(d).args(["rm", "k", "--json"]));
    assert_eq!(
        rm,
        serde_json::json!({"scope": "default", "name": "k", "destroyed": false})
    );
    let restored = json_of(coffer(d).args(["restore", "k", "--json"]));
    assert_eq!(keys_of(&restored), keys_of(&put));
    // Reports: import, copy, keys rotate and retire.
    std::fs::write(
        d.join("in.env"),
        "IMPORTED_KEY=sk-imported-1234\nPATH=/evil\n",
    )
    .unwrap();
    let import = json_of(coffer(d).args(["import", "in.env", "--json"]));
    assert_eq!(import["created"], serde_json::json!(["imported_key"]));
    assert_eq!(import["refused"][0]["variable"], "PATH");
    assert!(!import.to_string().contains("sk-imported"), "{import}");
    let copy = json_of(coffer(d).args(["copy", "--to", "memory://", "--json"]));
    assert_eq!(copy["created"], 2, "{copy}");
    assert_eq!(copy["verified"], 2, "{copy}");
    assert_eq!(copy["items"][0]["outcome"], "created");
    let rotated = json_of(coffer(d).args(["keys", "rotate", "--retire", "--json"]));
    assert_eq!(rotated["primary"], 2);
    assert_eq!(rotated["retired"], serde_json::json!([1]));
    coffer(d)
        .args(["list", "--format", "yaml"])
        .assert()
        .code(2);
}

#[test]
fn warnings_in_one_style_and_errors_that_say_the_fix() {
    let dir = initialised();
    let d = dir.path();
    coffer(d)
        .args(["put", "off_key", "--value", "abcdefghijk"])
        .assert()
        .success();
    coffer(d)
        .args(["set", "off_key", "--inactive"])
        .assert()
        .success();
    // A library's warning: once, in coffer's style, no tracing line.
    let out = coffer(d).args(["run", "--", "true"]).assert().success();
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(
        stderr,
        "coffer: warning: skipped: secret default/off_key is inactive (scope=default, \
         name=off_key)\n"
    );
    // RUST_LOG asks for tracing's own lines.
    coffer(d)
        .args(["run", "--", "true"])
        .env("RUST_LOG", "warn")
        .assert()
        .success()
        .stderr(predicate::str::contains("WARN coffer_env::map"));

    // A scheme coffer does not open: the nearest one it does, as a usage error.
    for (url, nearest) in [
        ("postgress://127.0.0.1/x", "did you mean postgres://?"),
        (
            "supabase://db.example/x",
            "did you mean supabase+postgres://?",
        ),
        ("sqlit://x.db", "did you mean sqlite://?"),
    ] {
        coffer(d)
            .args(["--store", url, "list"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(nearest));
    }
    coffer(d)
        .args(["--store", "mysql://127.0.0.1/x", "list"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("did you mean").not())
        .stderr(predicate::str::contains("it opens memory://, sqlite://"));
    // An unreachable server (a closed loopback port) is named by its address.
    coffer(d)
        .args(["--store", "vault+http://127.0.0.1:9/secret", "list"])
        .env("VAULT_TOKEN", "not-a-real-token")
        .assert()
        .code(7)
        .stderr(predicate::str::contains(
            "is the server at 127.0.0.1:9 up and reachable?",
        ))
        .stderr(predicate::str::contains("not-a-real-token").not());
}
