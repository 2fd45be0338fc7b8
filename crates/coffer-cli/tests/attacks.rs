//! `coffer run`, `coffer export` and the CLI's output, tried as an attacker would, each
//! attack with the real program it abuses (python3, git, bash, base64, openssl).

use std::os::unix::fs::FileTypeExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
mod support;
use support::{coffer, initialised};

use assert_cmd::Command;
use predicates::prelude::*;

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("coffer")
}

fn put(dir: &Path, name: &str, value: &str) {
    coffer(dir)
        .args(["put", name])
        .write_stdin(value)
        .assert()
        .success();
}

fn stdout(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

fn random_hex() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A script that records that it ran (in `ran`, beside it), whatever its arguments.
fn hook(dir: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let script = dir.join("hook.sh");
    let ran = dir.join("ran");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho ran >> '{}'\n", ran.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, ran)
}

/// Whether `name` is on this machine; says so when a test skips for want of it.
fn need(name: &str) -> bool {
    let there = has_program(name);
    if !there {
        eprintln!("skipped: no {name}");
    }
    there
}

fn has_program(name: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---------------------------------------------------------------------------------------
// 1. The child never gets coffer's own credentials.

/// The child of `coffer --scope tenant-a run` tries what the attacker did: read its own
/// environment for coffer's keys, and run `coffer --scope tenant-b get … --reveal`.
#[test]
fn the_child_cannot_use_coffers_keys_to_read_another_scope() {
    let home = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}/secrets.db", home.path().display());
    let master_key = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    };
    let vault_token = format!("hvs.{}", random_hex());
    let pg_password = format!("pg-{}", random_hex());
    let passphrase = format!("pass-{}", random_hex());
    let other_tenant = format!("sk-tenant-b-{}", random_hex());
    let with_keys = |cmd: &mut Command| {
        cmd.env("COFFER_STORE", &store)
            .env("COFFER_MASTER_KEY", &master_key)
            .env("COFFER_PASSPHRASE", &passphrase)
            .env("COFFER_KEYRING", home.path().join("keyring.json"))
            .env("VAULT_TOKEN", &vault_token)
            .env("PGPASSWORD", &pg_password);
    };
    // The child runs in a folder of its own with no .coffer, as a job would.
    let work = tempfile::tempdir().unwrap();
    let mut init = coffer(work.path());
    with_keys(&mut init);
    init.arg("init").assert().success();
    for (scope, value) in [("tenant-a", "a-value-1234567"), ("tenant-b", &other_tenant)] {
        let mut put = coffer(work.path());
        with_keys(&mut put);
        put.args(["--scope", scope, "put", "api_key"])
            .write_stdin(value)
            .assert()
            .success();
    }
    let script = format!(
        "env; '{}' --scope tenant-b get api_key --reveal; echo \"status=$?\"",
        bin().display()
    );
    for mask in [true, false] {
        let mut run = coffer(work.path());
        with_keys(&mut run);
        run.args(["--scope", "tenant-a", "run"]);
        if !mask {
            run.arg("--no-mask");
        }
        let out = run.args(["--", "sh", "-c", &script]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("API_KEY=a-value-1234567") || mask, "{text}");
        assert!(
            !text.lines().any(|l| l.starts_with("COFFER_")),
            "mask={mask}: the child saw a COFFER_ variable: {text}"
        );
        for leaked in [
            &master_key,
            &vault_token,
            &pg_password,
            &passphrase,
            &other_tenant,
            "VAULT_TOKEN=",
            "PGPASSWORD=",
        ] {
            assert!(
                !text.contains(leaked),
                "mask={mask}: the child saw {leaked:?}"
            );
        }
        assert!(
            !text.contains("status=0"),
            "the child's coffer read tenant-b: {text}"
        );
    }

    // --pass-env keeps one by name; the rest stay out.
    let mut run = coffer(work.path());
    with_keys(&mut run);
    run.args([
        "--scope",
        "tenant-a",
        "run",
        "--no-mask",
        "--pass-env",
        "VAULT_TOKEN",
        "--",
        "sh",
        "-c",
        "printf '%s|%s' \"${VAULT_TOKEN:-unset}\" \"${COFFER_MASTER_KEY:-unset}\"",
    ])
    .assert()
    .success()
    .stdout(format!("{vault_token}|unset"));

    // A secret of the selection that supplies such a name wins over the scrub.
    let mut put = coffer(work.path());
    with_keys(&mut put);
    put.args(["--scope", "tenant-a", "put", "vault_token"])
        .write_stdin("hvs.the-jobs-own-token")
        .assert()
        .success();
    let mut run = coffer(work.path());
    with_keys(&mut run);
    run.args([
        "--scope",
        "tenant-a",
        "run",
        "--no-mask",
        "--",
        "sh",
        "-c",
        "printf %s \"$VAULT_TOKEN\"",
    ])
    .assert()
    .success()
    .stdout("hvs.the-jobs-own-token");
}

// ---------------------------------------------------------------------------------------
// 2. Names that change what a program runs, where it connects or whom it trusts.

/// Runs `coffer run [allow…] -- program…` in `dir` and returns the assert.
fn run_with(dir: &Path, allow: &[&str], program: &[&str]) -> assert_cmd::assert::Assert {
    let mut cmd = coffer(dir);
    cmd.args(["run", "--no-mask"]);
    for var in allow {
        cmd.args(["--allow-var", var]);
    }
    cmd.arg("--").args(program).assert()
}

/// `pythonwarnings` + `browser`: Python imports `antigravity` at start-up to resolve the
/// warning category, which opens "a browser": the hook.
#[test]
fn python_start_up_hook_needs_an_explicit_allow() {
    if !need("python3") {
        return;
    }
    let dir = initialised();
    let (script, ran) = hook(dir.path());
    put(dir.path(), "pythonwarnings", "all:0:antigravity.x:0:0");
    put(dir.path(), "browser", &script.display().to_string());
    let python = ["python3", "-c", "pass"];
    run_with(dir.path(), &[], &python)
        .code(125)
        .stderr(predicate::str::contains("--allow-var"))
        .stderr(predicate::str::contains("EnvMap::allow").not());
    run_with(dir.path(), &["PYTHONWARNINGS"], &python)
        .code(125)
        .stderr(predicate::str::contains(
            "BROWSER makes a program run another program",
        ))
        .stderr(predicate::str::contains("--allow-var BROWSER"));
    assert!(!ran.exists(), "the hook ran although refused");
    // Allowed by name, the hook really runs: the refusal is what stopped it.
    run_with(dir.path(), &["PYTHONWARNINGS", "BROWSER"], &python).success();
    assert!(ran.exists(), "the attack needs both variables to work");
}

/// `git_config_count` / `git_config_key_0` / `git_config_value_0` set `core.fsmonitor`,
/// which `git status` runs.
#[test]
fn git_config_from_the_environment_needs_an_explicit_allow() {
    if !need("git") {
        return;
    }
    let dir = initialised();
    let (script, ran) = hook(dir.path());
    let repo = dir.path().join("repo");
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .arg("-C")
            .arg(dir.path())
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q", "repo"]);
    git(&[
        "-C",
        "repo",
        "-c",
        "user.email=test@example.com",
        "-c",
        "user.name=test",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "first",
    ]);
    put(dir.path(), "git_config_count", "1");
    put(dir.path(), "git_config_key_0", "core.fsmonitor");
    put(
        dir.path(),
        "git_config_value_0",
        &script.display().to_string(),
    );
    let status = ["git", "-C", repo.to_str().unwrap(), "status", "--porcelain"];
    run_with(dir.path(), &[], &status)
        .code(125)
        .stderr(predicate::str::contains("(it matches GIT_*)"))
        .stderr(predicate::str::contains("--allow-var GIT_CONFIG_"));
    assert!(!ran.exists());
    let all = ["GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0"];
    run_with(dir.path(), &all, &status).success();
    assert!(ran.exists(), "git ran the hook once allowed");
}

/// `bash_env`: bash sources it before running any non-interactive command.
#[test]
fn bash_start_up_file_needs_an_explicit_allow() {
    let dir = initialised();
    let (script, ran) = hook(dir.path());
    put(dir.path(), "bash_env", &script.display().to_string());
    run_with(dir.path(), &[], &["bash", "-c", "true"])
        .code(125)
        .stderr(predicate::str::contains(
            "BASH_ENV changes what an interpreter or shell runs at start-up",
        ))
        .stderr(predicate::str::contains("--allow-var BASH_ENV"));
    assert!(!ran.exists());
    run_with(dir.path(), &["BASH_ENV"], &["bash", "-c", "true"]).success();
    assert!(ran.exists());
}

/// `https_proxy` (lower case, as curl and Python read it) and `ssl_cert_file`: the
/// child's traffic and trust, shown by Python's own view of them.
#[test]
fn proxies_and_trust_anchors_need_an_explicit_allow() {
    if !need("python3") {
        return;
    }
    let dir = initialised();
    coffer(dir.path())
        .args(["put", "proxy", "--env-name", "https_proxy"])
        .write_stdin("http://127.0.0.1:9/")
        .assert()
        .success()
        .stderr(predicate::str::contains("--allow-var https_proxy"));
    // Python reports a CA file only if it exists.
    let ca = dir.path().join("attacker-ca.pem");
    std::fs::write(&ca, "not really a CA\n").unwrap();
    put(dir.path(), "ssl_cert_file", &ca.display().to_string());
    let show = [
        "python3",
        "-c",
        "import urllib.request, ssl; print(urllib.request.getproxies().get('https'), \
         ssl.get_default_verify_paths().cafile)",
    ];
    run_with(dir.path(), &[], &show)
        .code(125)
        .stderr(predicate::str::contains(
            "changes where traffic goes or whom TLS trusts",
        ));
    run_with(dir.path(), &["https_proxy"], &show)
        .code(125)
        .stderr(predicate::str::contains("SSL_CERT_FILE"));
    run_with(dir.path(), &["https_proxy", "SSL_CERT_FILE"], &show)
        .success()
        .stdout(format!("http://127.0.0.1:9/ {}\n", ca.display()));
}

/// `path` and `home`: where programs and their configuration are found.
#[test]
fn path_and_home_need_an_explicit_allow() {
    let dir = initialised();
    put(dir.path(), "path", "/tmp/attacker-bin");
    run_with(dir.path(), &[], &["true"])
        .code(125)
        .stderr(predicate::str::contains("PATH changes where programs"));
    coffer(dir.path())
        .args(["rm", "path", "--destroy"])
        .assert()
        .success();
    put(dir.path(), "home", "/tmp/attacker-home");
    run_with(dir.path(), &[], &["true"])
        .code(125)
        .stderr(predicate::str::contains("--allow-var HOME"));
    run_with(dir.path(), &["HOME"], &["sh", "-c", "printf %s \"$HOME\""])
        .success()
        .stdout("/tmp/attacker-home");
}

/// `put --env-name LD_PRELOAD` warns when it is written; `run` and `export` then refuse
/// with the flag that allows it, never the Rust API.
#[test]
fn a_loader_env_name_warns_at_put_and_names_the_flag_at_run() {
    let dir = initialised();
    coffer(dir.path())
        .args(["put", "helper", "--env-name", "LD_PRELOAD"])
        .write_stdin("/tmp/evil.so")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "warning: helper goes into a child's environment as LD_PRELOAD",
        ))
        .stderr(predicate::str::contains("--allow-var LD_PRELOAD"));
    for command in [&["run", "--", "true"][..], &["export"][..]] {
        coffer(dir.path())
            .args(command)
            .assert()
            .failure()
            .stderr(predicate::str::contains(
                "LD_PRELOAD makes the dynamic loader load other code",
            ))
            .stderr(predicate::str::contains("pass --allow-var LD_PRELOAD"))
            .stderr(predicate::str::contains("EnvMap").not())
            .stderr(predicate::str::contains("/tmp/evil.so").not());
    }
}

// ---------------------------------------------------------------------------------------
// 3. Masking the forms common tools print.

/// Runs `script` under `coffer run` with the secret `V` = `value`, where the script also
/// writes what it prints to `$FORMS` (outside coffer's masking). Returns the masked
/// output and what the child printed unmasked.
fn masked(value: &str, script: &str) -> (String, String) {
    let dir = initialised();
    put(dir.path(), "v", value);
    let forms = dir.path().join("forms.txt");
    let out = coffer(dir.path())
        .env("FORMS", &forms)
        .args(["run", "--", "sh", "-c", script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let raw = std::fs::read_to_string(&forms).unwrap();
    (String::from_utf8(out.stdout).unwrap(), raw)
}

/// [`masked`], then [`assert_masked`], and `labels` labels in the output if given.
fn assert_script_masked(what: &str, value: &str, script: &str, labels: Option<usize>) -> String {
    let (out, raw) = masked(value, script);
    assert_masked(what, &out, &raw);
    if let Some(n) = labels {
        assert_eq!(out.matches("[REDACTED:V]").count(), n, "{what}: {out}");
    }
    raw
}

/// Every line of the unmasked output is one form: none may survive in the masked
/// output, not even with the line breaks taken out.
fn assert_masked(what: &str, masked: &str, raw: &str) {
    let flat: String = masked
        .chars()
        .filter(|c| *c != '\n' && *c != '\r')
        .collect();
    for form in raw.lines().filter(|l| l.len() >= 16) {
        // The middle of the form: what depends on the value alone.
        let middle = &form[4..form.len() - 4];
        assert!(
            !flat.contains(middle),
            "{what}: {form:?} survived in {masked:?}"
        );
    }
    assert!(masked.contains("[REDACTED:V]"), "{what}: {masked:?}");
}

/// The standard `base64` tool (76 columns) and `openssl base64` (64 columns) on values
/// of 57 bytes and more, at each alignment, the value itself preceded by 0, 1 or 2 bytes.
#[test]
fn line_wrapped_base64_is_masked_at_every_alignment() {
    let value = format!(
        "sk-proj-{}{}{}",
        random_hex(),
        random_hex(),
        &random_hex()[..12]
    );
    assert!(value.len() >= 57);
    let openssl = has_program("openssl");
    for prefix in ["", "u", "us"] {
        for (tool, width) in [("base64", 76), ("base64 -w 64", 64), ("openssl base64", 64)] {
            if tool.starts_with("openssl") && !openssl {
                continue;
            }
            let script = format!(
                "printf '%s%s' '{prefix}' \"$V\" | {tool} > \"$FORMS.b64\"; cat \"$FORMS.b64\"; \
                 tr -d '\\n' < \"$FORMS.b64\" > \"$FORMS\"; echo >> \"$FORMS\""
            );
            let (out, raw) = masked(&value, &script);
            assert!(
                out.lines().all(|l| l.len() <= width),
                "{tool}: the lines keep their shape: {out}"
            );
            // The unwrapped text, minus the prefix's characters, must not survive.
            let skip = [0, 2, 3][prefix.len()];
            let raw = raw.trim_end();
            assert_masked(tool, &out, &format!("{}\n", &raw[skip..raw.len() - 4]));
        }
    }
}

/// A PEM-style value (its own lines of 64 base64 characters) printed as is.
#[test]
fn a_multi_line_value_printed_as_is_is_masked() {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 96]>());
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n{}\n-----END PRIVATE KEY-----",
        &body[..64],
        &body[64..]
    );
    let (out, raw) = masked(
        &pem,
        "printf '%s\\n' \"$V\"; printf '%s\\n' \"$V\" > \"$FORMS\"",
    );
    assert!(!out.contains(&body[8..56]), "{out}");
    assert!(out.contains("[REDACTED:V]"), "{out}");
    assert!(raw.contains(&body[..64]));
}

/// A `python3` command for [`masked`]: `forms` (a Python list expression over the value
/// `v`, after `setup`) is written to `$FORMS` one per line (line breaks taken out, the
/// first `skip` characters dropped), then printed by `printer` (Python statements over
/// `forms`).
fn python_forms(setup: &str, forms: &str, skip: usize, printer: &str) -> String {
    format!(
        "python3 -c '
import base64, json, os, re, sys, urllib.parse as u
v = os.environ[\"V\"]
{setup}
forms = {forms}
open(os.environ[\"FORMS\"], \"w\").write(\"\".join(f.replace(\"\\n\", \"\")[{skip}:] + \"\\n\" for f in forms))
{printer}
'"
    )
}

/// JSON as Python's `json.dumps` writes it (ASCII-only and not), Python's `repr` and
/// `ascii` of the str, and `repr` of its UTF-8 bytes: values holding `"`, `\`, `'`, `/`
/// and non-ASCII, also outside the Basic Multilingual Plane (surrogate pairs).
#[test]
fn json_and_python_repr_escapes_are_masked() {
    if !need("python3") {
        return;
    }
    let value = format!("pa\"ss\\wo'rd/é😀-{}", &random_hex()[..12]);
    let script = python_forms(
        "",
        "[json.dumps(v), json.dumps(v, ensure_ascii=False), repr(v), ascii(v), \
         repr(v.encode()), json.dumps({\"k\": v}).replace(\"/\", \"\\\\/\")]",
        0,
        "for form in forms: print(\"x\" + form + \"y\")",
    );
    let raw = assert_script_masked("json/repr", &value, &script, Some(6));
    assert!(raw.lines().all(|l| l.len() > 20), "{raw}");
}

/// Percent-encoding in both cases: `urllib.parse.quote` (keeps `/`), `quote_plus`, and
/// both with lower-case hex, as some encoders write it.
#[test]
fn percent_encoding_in_either_case_is_masked() {
    if !need("python3") {
        return;
    }
    let value = format!("p@ss/w rd&é={}", &random_hex()[..12]);
    let script = python_forms(
        "low = lambda s: re.sub(\"%[0-9A-F]{2}\", lambda m: m.group(0).lower(), s)",
        "[u.quote(v), u.quote(v, safe=\"\"), u.quote_plus(v), low(u.quote(v)), \
         low(u.quote(v, safe=\"\")), low(u.quote_plus(v))]",
        0,
        "print(\" \".join(\"url=\" + f for f in forms))",
    );
    assert_script_masked("percent", &value, &script, Some(6));
}

/// Every form, written one byte at a time with a flush after each: split writes mask
/// the same as whole ones.
#[test]
fn forms_split_across_single_byte_writes_are_masked() {
    if !need("python3") {
        return;
    }
    let value = format!("tok\"en/é-{}{}", random_hex(), random_hex());
    let script = python_forms(
        "b = base64.encodebytes((\"x\" + v).encode()).decode()",
        "[v, json.dumps(v), repr(v), u.quote(v).lower(), b]",
        2,
        "for ch in \"\".join(f + \"\\n\" for f in forms): sys.stdout.write(ch); sys.stdout.flush()",
    );
    assert_script_masked("split", &value, &script, None);
}

// ---------------------------------------------------------------------------------------
// 4. `export --output` writes only a regular file or a new path.

fn exported() -> tempfile::TempDir {
    let dir = initialised();
    put(
        dir.path(),
        "openai_api_key",
        &format!("sk-{}", random_hex()),
    );
    dir
}

fn export_to(dir: &Path, path: &Path) -> assert_cmd::assert::Assert {
    coffer(dir).arg("export").arg("--output").arg(path).assert()
}

/// `export --output path` fails saying `why`, and `path` is still what `kind` says.
fn refused_and_kept(dir: &Path, path: &Path, why: &str, kind: fn(&std::fs::FileType) -> bool) {
    export_to(dir, path)
        .code(1)
        .stderr(predicate::str::contains(why));
    let file_type = std::fs::symlink_metadata(path).unwrap().file_type();
    assert!(kind(&file_type), "{} was replaced", path.display());
}

#[test]
fn export_refuses_a_fifo_and_its_reader_gets_nothing() {
    let dir = exported();
    let fifo = dir.path().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // A reader waiting on the FIFO, as the attacker's would.
    let reader = std::process::Command::new("timeout")
        .arg("10")
        .arg("cat")
        .arg(&fifo)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    refused_and_kept(
        dir.path(),
        &fifo,
        "a FIFO (named pipe), not a regular file",
        std::fs::FileType::is_fifo,
    );
    // Release the reader: it must have got nothing of the export.
    std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let out = reader.wait_with_output().unwrap();
    assert!(
        out.stdout.is_empty(),
        "the FIFO's reader got {:?}",
        out.stdout
    );
}

#[test]
fn export_does_not_follow_a_symlink() {
    let dir = exported();
    // A link to standard output, and a link to a file of the victim's.
    let to_stdout = dir.path().join("to-stdout");
    std::os::unix::fs::symlink("/proc/self/fd/1", &to_stdout).unwrap();
    let out = coffer(dir.path())
        .args(["export", "--output"])
        .arg(&to_stdout)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "wrote through the link to stdout");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is a symbolic link, which coffer does not follow"),
        "{err}"
    );
    assert!(std::fs::symlink_metadata(&to_stdout).unwrap().is_symlink());

    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "the victim's file\n").unwrap();
    let link = dir.path().join("link.env");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    export_to(dir.path(), &link).code(1);
    coffer(dir.path())
        .args(["export", "--force", "--output"])
        .arg(&link)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("symbolic link"));
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "the victim's file\n"
    );
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
}

/// `/dev/full` as root: a character device node is refused, not replaced. (A node of our
/// own when root can make one, so a failing test cannot replace the machine's.)
#[test]
fn export_refuses_devices_sockets_and_directories() {
    let dir = exported();
    let device = if nix_is_root() {
        let node = dir.path().join("full");
        let made = std::process::Command::new("mknod")
            .arg(&node)
            .args(["c", "1", "7"])
            .status()
            .unwrap();
        assert!(made.success());
        node
    } else {
        PathBuf::from("/dev/full")
    };
    refused_and_kept(
        dir.path(),
        &device,
        "a character device, not a regular file",
        std::fs::FileType::is_char_device,
    );

    let socket = dir.path().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    refused_and_kept(
        dir.path(),
        &socket,
        "a socket",
        std::fs::FileType::is_socket,
    );

    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    refused_and_kept(dir.path(), &sub, "a directory", std::fs::FileType::is_dir);
}

fn nix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

#[test]
fn export_dash_is_standard_output() {
    let dir = exported();
    let out = stdout(coffer(dir.path()).args(["export", "--output", "-"]));
    assert!(out.starts_with("OPENAI_API_KEY='sk-"), "{out}");
    assert!(!dir.path().join("-").exists(), "wrote a file named -");
}

#[test]
fn export_replaces_only_its_own_files_unless_forced() {
    let dir = exported();
    let env = dir.path().join(".env");
    std::fs::write(&env, "MINE=keep me\n").unwrap();
    export_to(dir.path(), &env)
        .code(1)
        .stderr(predicate::str::contains("coffer did not write it"))
        .stderr(predicate::str::contains("--force"));
    assert_eq!(std::fs::read_to_string(&env).unwrap(), "MINE=keep me\n");
    coffer(dir.path())
        .args(["export", "--force", "--output"])
        .arg(&env)
        .assert()
        .success();
    let first = std::fs::read_to_string(&env).unwrap();
    assert!(first.starts_with(coffer_env::EXPORT_MARKER), "{first}");
    // Its own file: replaced without --force, read back by dotenv readers as before.
    put(dir.path(), "second_key", "second-value-1");
    export_to(dir.path(), &env).success();
    let second = std::fs::read_to_string(&env).unwrap();
    assert!(second.contains("SECOND_KEY='second-value-1'"), "{second}");
    // JSON carries no marker: an existing JSON file needs --force.
    let json = dir.path().join("env.json");
    coffer(dir.path())
        .args(["export", "--format", "json", "--output"])
        .arg(&json)
        .assert()
        .success();
    coffer(dir.path())
        .args(["export", "--format", "json", "--output"])
        .arg(&json)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("JSON export carries no marker"));
    // No temporary file is left behind by any of it.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".coffer-export-")
        })
        .collect();
    assert!(leftovers.is_empty());
}

// ---------------------------------------------------------------------------------------
// 5. Output never panics.

/// A store with enough secrets (and events) that the output outgrows a pipe's buffer.
fn many_secrets() -> tempfile::TempDir {
    use coffer::SecretStore as _;
    let dir = initialised();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let keyring =
            coffer::envelope::Keyring::load(&dir.path().join(".coffer/keyring.json"), None)
                .unwrap();
        let url = format!(
            "sqlite://{}",
            dir.path().join(".coffer/secrets.db").display()
        );
        // Through the access log, as the CLI writes, so `audit` has as many events.
        let (store, sink) =
            coffer::sql::SqlAuditSink::open_with_store(&url, std::sync::Arc::new(keyring))
                .await
                .unwrap();
        let store = coffer::store::layer::AuditStore::new(store, vec![std::sync::Arc::new(sink)]);
        let scope = coffer::Scope::new("default").unwrap();
        for i in 0..1500 {
            let name = coffer::SecretName::new(format!("service_{i:04}_api_key")).unwrap();
            store
                .put(
                    &scope,
                    &name,
                    &format!("value-{i:04}-0123456789").into(),
                    &coffer::PutOptions::new().provider("provider-with-a-long-name"),
                )
                .await
                .unwrap();
        }
    });
    dir
}

#[test]
fn a_closed_pipe_ends_quietly_and_a_full_disk_is_an_error() {
    let dir = many_secrets();
    // Generate access-log events too.
    coffer(dir.path()).args(["list"]).assert().success();
    for command in [
        "list",
        "list --json",
        "audit --limit 3000",
        "audit --json --limit 3000",
    ] {
        // The shell pipeline the attacker used.
        let out = std::process::Command::new("bash")
            .current_dir(dir.path())
            .arg("-c")
            .arg(format!(
                "'{}' {command} | head -1 >/dev/null; echo \"status=${{PIPESTATUS[0]}}\"",
                bin().display()
            ))
            .output()
            .unwrap();
        let (text, err) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(text.trim(), "status=141", "{command}: {err}");
        assert!(err.is_empty(), "{command} said something: {err}");

        // A reader gone before the first write.
        let mut child = std::process::Command::new(bin())
            .current_dir(dir.path())
            .args(command.split(' '))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(141), "{command}");
        assert!(
            out.stderr.is_empty(),
            "{command}: {:?}",
            String::from_utf8_lossy(&out.stderr)
        );

        // A full disk.
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = std::process::Command::new(bin())
            .current_dir(dir.path())
            .args(command.split(' '))
            .stdout(full)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {err}");
        assert!(
            err.contains("cannot write to standard output: No space left on device"),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // Also a revealed value into a full disk: an error, no panic, no value.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = std::process::Command::new(bin())
        .current_dir(dir.path())
        .args(["get", "service_0001_api_key", "--reveal"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("value-0001"));
}

// ---------------------------------------------------------------------------------------
// 6. The audit actor.

#[test]
fn the_audit_actor_cannot_forge_a_line() {
    let dir = initialised();
    // $USER is the caller's to set; the actor comes from the user id instead.
    coffer(dir.path())
        .env(
            "USER",
            "alice\n2099-01-01T00:00:00.000Z  get  ok  forged  1  cli:admin",
        )
        .env("LOGNAME", "alice\nforged")
        .args(["put", "k", "--value", "value-123456"])
        .assert()
        .success();
    let me = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    // One row per event, as the JSON array counts them.
    let rows = |dir: &Path| {
        let table = stdout(coffer(dir).arg("audit"));
        let events: Vec<serde_json::Value> =
            serde_json::from_str(&stdout(coffer(dir).args(["audit", "--json"]))).unwrap();
        let events = events.len();
        assert_eq!(table.lines().count(), 1 + events, "{table}");
        table
    };
    let table = rows(dir.path());
    assert!(table.contains(&format!("cli:{}", me.trim())), "{table}");
    assert!(
        !table.contains("forged") && !table.contains("2099"),
        "{table}"
    );
    // COFFER_ACTOR says who instead, and may not hold a control character.
    coffer(dir.path())
        .env("COFFER_ACTOR", "agent:billing")
        .args(["get", "k", "--plain"])
        .assert()
        .success();
    coffer(dir.path())
        .env("COFFER_ACTOR", "agent\nforged")
        .args(["get", "k", "--plain"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "COFFER_ACTOR must be non-empty and hold no control",
        ));
    let table = rows(dir.path());
    assert!(table.contains("agent:billing"), "{table}");
    assert!(!table.contains("forged"), "{table}");
    // An actor another writer put into the log with a newline prints escaped, on one
    // line.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::Connection as _;
        let url = format!(
            "sqlite://{}",
            dir.path().join(".coffer/secrets.db").display()
        );
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let changed = sqlx::query(
            "UPDATE secret_access_log SET actor = 'agent' || char(10) || \
             '2099-01-01T00:00:00.000Z  get  ok  forged  1  cli:admin' \
             WHERE actor = 'agent:billing'",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        assert!(changed.rows_affected() > 0);
    });
    let table = rows(dir.path());
    assert!(table.contains("agent\\n2099-01-01"), "{table}");
    assert!(!table.lines().any(|l| l.starts_with("2099")), "{table}");
}

// ---------------------------------------------------------------------------------------
// 7. `put` with standard input closed.

#[test]
fn put_with_stdin_closed_or_empty_stores_nothing() {
    let dir = initialised();
    for redirect in ["<&-", "</dev/null", "< /dev/null"] {
        let out = std::process::Command::new("sh")
            .current_dir(dir.path())
            .arg("-c")
            .arg(format!("'{}' put k {redirect}", bin().display()))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{redirect}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("standard input gave no value"),
            "{redirect}: {out:?}"
        );
    }
    coffer(dir.path())
        .args(["get", "k", "--plain"])
        .assert()
        .code(3);
    // An empty value on purpose still can be stored.
    coffer(dir.path())
        .args(["put", "k", "--value="])
        .assert()
        .success();
}
