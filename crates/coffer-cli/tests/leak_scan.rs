//! One canary secret through every CLI command and the library flows around it, with
//! `RUST_LOG=trace`: stdout, stderr, logs, errors and `Debug` output hold it in no form —
//! raw, hex, base64 (three alignments, standard and URL-safe) or URL-encoded — except
//! where a command exists to hand it out (`get --reveal`, `export`, the child of `run`).

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// Every form the canary could leak in.
fn forms(canary: &str) -> Vec<String> {
    let bytes = canary.as_bytes();
    let mut forms = vec![
        canary.to_owned(),
        hex::encode(bytes),
        hex::encode_upper(bytes),
        url::form_urlencoded::byte_serialize(bytes).collect(),
        percent_encoding::utf8_percent_encode(canary, percent_encoding::NON_ALPHANUMERIC)
            .to_string(),
    ];
    // Base64 at each alignment: the characters that depend only on the canary.
    for pad in 0..3 {
        let mut shifted = vec![0u8; pad];
        shifted.extend_from_slice(bytes);
        for encoded in [STANDARD.encode(&shifted), URL_SAFE_NO_PAD.encode(&shifted)] {
            let start = (pad * 4).div_ceil(3) + 1;
            let end = encoded.trim_end_matches('=').len().saturating_sub(2);
            forms.push(encoded[start..end].to_owned());
        }
    }
    forms
}

fn assert_clean(what: &str, text: &str, forms: &[String]) {
    for form in forms {
        assert!(
            !text.contains(form.as_str()),
            "{what} holds the canary as {form:?}"
        );
    }
}

/// Runs `coffer args…` in `dir` at TRACE and returns stdout + stderr (and the status).
fn coffer(dir: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut cmd = assert_cmd::Command::cargo_bin("coffer").unwrap();
    cmd.current_dir(dir).args(args).env("RUST_LOG", "trace");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("COFFER_") {
            cmd.env_remove(key);
        }
    }
    if let Some(input) = stdin {
        cmd.write_stdin(input);
    }
    let out = cmd.output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn no_command_shows_the_canary_unless_asked_to() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let canary = format!(
        "cnry/{:016x}+{:016x}=",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    let forms = forms(&canary);
    let mut seen = String::new();
    let mut run = |args: &[&str], stdin: Option<&str>, must_succeed: bool| {
        let (ok, text) = coffer(d, args, stdin);
        assert!(!must_succeed || ok, "coffer {args:?} failed: {text}");
        assert_clean(&format!("coffer {args:?}"), &text, &forms);
        seen.push_str(&text);
    };
    let expires = (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339();
    run(&["init"], None, true);
    run(
        &[
            "put",
            "llm_key",
            "--kind",
            "api_key",
            "--expires-at",
            &expires,
        ],
        Some(&canary),
        true,
    );
    run(
        &["put", "other", "--value", "not-the-canary-value"],
        None,
        true,
    );
    run(&["get", "llm_key"], None, true);
    run(&["get", "llm_key", "--json"], None, true);
    run(&["get", "llm_key", "--version", "9"], None, false);
    run(&["list"], None, true);
    run(&["list", "--json"], None, true);
    run(&["list", "--expiring", "7d"], None, true);
    run(
        &["put", "llm_key", "--if-version", "7"],
        Some(&canary),
        false,
    );
    run(&["put", "llm_key", "--create-only"], Some(&canary), false);
    run(&["put", "bad name!"], Some(&canary), false);
    run(&["keys", "rotate"], None, true);
    run(&["get", "llm_key"], None, true);
    // The child gets it; its output is masked in every form it prints.
    run(
        &[
            "run",
            "--",
            "sh",
            "-c",
            "printf '%s\\n' \"$LLM_KEY\"; printf %s \"$LLM_KEY\" | base64 -w0; echo; \
             printf %s \"$LLM_KEY\" | od -An -tx1 | tr -d ' \\n'; echo >&2 \"$LLM_KEY\"",
        ],
        None,
        true,
    );
    run(
        &["export", "--format", "json", "--output", "out.json"],
        None,
        true,
    );
    run(
        &["export", "--format", "dotenv", "--output", "out.env"],
        None,
        true,
    );
    run(&["audit"], None, true);
    run(&["audit", "--json"], None, true);
    run(&["rm", "llm_key"], None, true);
    run(&["get", "llm_key"], None, false);

    // Where it is meant to appear, it does: the test would catch a leak.
    let (ok, revealed) = coffer(d, &["put", "llm_key"], Some(&canary));
    assert!(ok, "{revealed}");
    let (_, revealed) = coffer(d, &["get", "llm_key", "--reveal"], None);
    assert_eq!(revealed.lines().next(), Some(canary.as_str()));
    assert!(
        std::fs::read_to_string(d.join("out.json"))
            .unwrap()
            .contains(&canary)
    );
    assert!(
        seen.contains("TRACE") || seen.contains("DEBUG"),
        "logging was on"
    );

    // The database and the keyring hold it in no readable form.
    for file in [".coffer/secrets.db", ".coffer/keyring.json"] {
        let bytes = std::fs::read(d.join(file)).unwrap();
        assert_clean(file, &String::from_utf8_lossy(&bytes), &forms);
    }
}

#[tokio::test]
async fn library_errors_and_debug_output_hold_no_value() {
    use coffer::{Keyring, MasterKey, PutOptions, Scope, SecretName, SecretStore as _};
    let canary = format!("cnry/{:016x}+lib=", rand::random::<u64>());
    let forms = forms(&canary);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    let store = coffer::sql::SqliteStore::open(&path, Arc::clone(&keyring))
        .await
        .unwrap();
    let (scope, name) = (Scope::new("t").unwrap(), SecretName::new("k").unwrap());
    store
        .put(&scope, &name, &canary.clone().into(), &PutOptions::new())
        .await
        .unwrap();
    let secret = store.get(&scope, &name, None).await.unwrap();
    let mut text = format!("{secret:?} {:?} {store:?} {keyring:?}", secret.value);

    // Errors on the way: a wrong key, a conflict, an expired secret, a moved envelope.
    let wrong =
        coffer::sql::SqliteStore::open(&path, Arc::new(Keyring::new(MasterKey::generate()))).await;
    text.push_str(&format!("{:?}", wrong.map(|_| ()).unwrap_err()));
    let conflict = store
        .put(
            &scope,
            &name,
            &canary.clone().into(),
            &PutOptions::if_version(9),
        )
        .await
        .unwrap_err();
    text.push_str(&format!("{conflict} {conflict:?}"));
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    store
        .put(
            &scope,
            &name,
            &canary.clone().into(),
            &PutOptions::new().expires_at(past),
        )
        .await
        .unwrap();
    let expired = store.get(&scope, &name, None).await.unwrap_err();
    text.push_str(&format!("{expired} {expired:?}"));

    // coffer-env: the map, the writer's refusal, the database URL.
    let mut env = coffer::env::EnvMap::new();
    env.insert("K", canary.clone().into()).unwrap();
    text.push_str(&format!("{env:?}"));
    let url = coffer::env::DatabaseUrl::postgres("db.internal")
        .database("app")
        .user("u")
        .password(canary.clone().into());
    text.push_str(&format!("{url:?}"));
    let mut bad = coffer::env::EnvMap::new();
    bad.insert("K", format!("{canary}'$x").into()).unwrap();
    let refused = coffer::env::EnvWriter::new(coffer::env::Format::Dotenv)
        .render(&bad)
        .unwrap_err();
    text.push_str(&format!("{refused} {refused:?}"));

    // The broker: parameters and a failed login with the canary as the password.
    let params =
        coffer_broker::ConnectionParams::postgres("127.0.0.1", "nope", "u", canary.clone().into())
            .port(1);
    text.push_str(&format!("{params:?}"));
    let broker = coffer_broker::Broker::new(coffer_broker::Limits::default());
    let failed = broker.test_connection(&params).await.unwrap_err();
    text.push_str(&format!("{failed} {failed:?}"));

    assert_clean("library output", &text, &forms);
}
