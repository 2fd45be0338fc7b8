//! `coffer run` and `coffer export`: exit codes, signals, masking, the environment.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
mod support;
use support::coffer;

use predicates::prelude::*;

/// A store with a few secrets, generated per run.
struct Fixture {
    dir: tempfile::TempDir,
    key: String,
    prefix_key: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    coffer(dir.path()).arg("init").assert().success();
    let key = format!("sk-test-{:032x}", rand::random::<u128>());
    // A secret that is a prefix of another.
    let prefix_key = key[..16].to_owned();
    let put = |name: &str, value: &str| {
        coffer(dir.path())
            .args(["put", name])
            .write_stdin(value)
            .assert()
            .success();
    };
    put("openai_api_key", &key);
    put("openai_key_prefix", &prefix_key);
    put("greeting", "hello world");
    Fixture {
        dir,
        key,
        prefix_key,
    }
}

#[test]
fn exit_codes_pass_through() {
    let f = fixture();
    let dir = f.dir.path();
    coffer(dir)
        .args(["run", "--", "sh", "-c", "exit 3"])
        .assert()
        .code(3);
    coffer(dir).args(["run", "--", "true"]).assert().code(0);
    // Died of a signal: 128 + the signal.
    coffer(dir)
        .args(["run", "--", "sh", "-c", "kill -TERM $$"])
        .assert()
        .code(143);
    coffer(dir)
        .args(["run", "--no-mask", "--", "sh", "-c", "kill -KILL $$"])
        .assert()
        .code(137);
    coffer(dir)
        .args(["run", "--", "/nonexistent/program"])
        .assert()
        .code(127)
        .stderr(predicate::str::contains("cannot run /nonexistent/program"));
    std::fs::write(dir.join("not-executable"), "#!/bin/sh\n").unwrap();
    coffer(dir)
        .args(["run", "--", "./not-executable"])
        .assert()
        .code(126);
    // coffer's own failure, before anything runs.
    coffer(dir)
        .args(["run", "--only", "missing", "--", "true"])
        .assert()
        .code(125)
        .stderr(predicate::str::contains("missing not found"));
    coffer(dir).args(["run"]).assert().failure();
}

#[test]
fn output_is_masked_even_one_byte_at_a_time() {
    let f = fixture();
    // The child prints the long key one byte per write, then the key that is a prefix of
    // it, then both joined, to stdout and stderr.
    let script = r#"
        s="$OPENAI_API_KEY"
        while [ -n "$s" ]; do rest="${s#?}"; printf %s "${s%"$rest"}"; s="$rest"; sleep 0.005; done
        printf ' | %s | %s%s\n' "$OPENAI_KEY_PREFIX" "$OPENAI_KEY_PREFIX" "$OPENAI_API_KEY"
        printf 'err %s\n' "$OPENAI_API_KEY" >&2
        printf '%s' "$GREETING"
    "#;
    let out = coffer(f.dir.path())
        .args(["run", "--", "sh", "-c", script])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stdout,
        "[REDACTED:OPENAI_API_KEY] | [REDACTED:OPENAI_KEY_PREFIX] | \
         [REDACTED:OPENAI_KEY_PREFIX][REDACTED:OPENAI_API_KEY]\n[REDACTED:GREETING]"
    );
    assert_eq!(stderr, "err [REDACTED:OPENAI_API_KEY]\n");
    assert!(!stdout.contains(&f.prefix_key) && !stderr.contains(&f.key));

    // Base64 and URL-encoded forms too.
    let out = coffer(f.dir.path())
        .args([
            "run",
            "--",
            "sh",
            "-c",
            "printf 'user:%s' \"$OPENAI_API_KEY\" | base64 -w0; echo; printf %s \"$GREETING\" | sed 's/ /%20/'",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("[REDACTED:OPENAI_API_KEY]"), "{stdout}");
    assert!(stdout.ends_with("[REDACTED:GREETING]"), "{stdout}");

    // --no-mask passes output through as is.
    coffer(f.dir.path())
        .args([
            "run",
            "--no-mask",
            "--",
            "sh",
            "-c",
            "printf %s \"$OPENAI_API_KEY\"",
        ])
        .assert()
        .success()
        .stdout(f.key.clone());
}

#[test]
fn short_values_are_not_masked_and_a_warning_says_so() {
    let f = fixture();
    coffer(f.dir.path())
        .args(["put", "pin"])
        .write_stdin("1234")
        .assert()
        .success();
    coffer(f.dir.path())
        .args([
            "run",
            "--only",
            "pin",
            "--",
            "sh",
            "-c",
            "printf %s \"$PIN\"",
        ])
        .assert()
        .success()
        .stdout("1234")
        .stderr(predicate::str::contains(
            "warning: PIN is shorter than 6 bytes and is not masked",
        ));
}

#[test]
fn selection_and_the_environment() {
    let f = fixture();
    let dir = f.dir.path();
    // --only and --prefix choose; nothing else arrives.
    coffer(dir)
        .args([
            "run",
            "--only",
            "greeting",
            "--no-mask",
            "--",
            "sh",
            "-c",
            "printf '%s|%s' \"$GREETING\" \"${OPENAI_API_KEY:-unset}\"",
        ])
        .assert()
        .success()
        .stdout("hello world|unset");
    coffer(dir)
        .args([
            "run",
            "--prefix",
            "openai_",
            "--no-mask",
            "--",
            "sh",
            "-c",
            "printf '%s' \"${GREETING:-unset}\"",
        ])
        .assert()
        .success()
        .stdout("unset");
    // --clean-env: PATH and HOME stay, everything else inherited goes.
    coffer(dir)
        .env("UNRELATED_PARENT_VAR", "x")
        .args([
            "run",
            "--clean-env",
            "--no-mask",
            "--",
            "sh",
            "-c",
            "printf '%s|%s|%s' \"${UNRELATED_PARENT_VAR:-unset}\" \"${PATH:+path}\" \"$GREETING\"",
        ])
        .assert()
        .success()
        .stdout("unset|path|hello world");
    // coffer's own environment never holds the secrets: the child reads its parent's.
    let out = coffer(dir)
        .args([
            "run",
            "--no-mask",
            "--",
            "sh",
            "-c",
            "tr '\\0' '\\n' < /proc/$PPID/environ",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let parent_env = String::from_utf8_lossy(&out.stdout);
    assert!(
        parent_env.contains("PATH="),
        "read the parent's environment"
    );
    assert!(!parent_env.contains("OPENAI_API_KEY") && !parent_env.contains(&f.key));
    assert!(std::env::var_os("OPENAI_API_KEY").is_none());
}

#[test]
fn loader_variables_are_refused_unless_allowed() {
    let f = fixture();
    let dir = f.dir.path();
    coffer(dir)
        .args(["put", "ld_preload"])
        .write_stdin("/tmp/not-there.so")
        .assert()
        .success();
    coffer(dir)
        .args(["run", "--", "true"])
        .assert()
        .code(125)
        .stderr(predicate::str::contains(
            "LD_PRELOAD makes the dynamic loader load other code",
        ));
    coffer(dir)
        .args([
            "run",
            "--allow-loader-var",
            "LD_PRELOAD",
            "--only",
            "ld_preload",
            "--no-mask",
            "--",
            "/bin/sh",
            "-c",
            "printf %s \"$LD_PRELOAD\"",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("/tmp/not-there.so"));
}

/// Starts `coffer run` on a child that reports signals, waits until it is ready, sends
/// `signal` to coffer, and returns coffer's exit code and output.
fn signal_roundtrip(dir: &Path, signal: &str, no_mask: bool) -> (i32, String) {
    let script = "trap 'echo got-int; exit 9' INT; trap 'echo got-term; exit 7' TERM; \
                  echo ready; while :; do sleep 0.05; done";
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("coffer"));
    cmd.current_dir(dir).arg("run");
    if no_mask {
        cmd.arg("--no-mask");
    }
    cmd.args(["--", "sh", "-c", script])
        .stdout(Stdio::piped())
        .stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("COFFER_") {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().expect("coffer exits, it is not killed");
        }
        assert!(Instant::now() < deadline, "coffer did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    (code, rest.join("\n"))
}

#[test]
fn sigint_and_sigterm_are_forwarded() {
    let f = fixture();
    for no_mask in [false, true] {
        assert_eq!(
            signal_roundtrip(f.dir.path(), "TERM", no_mask),
            (7, "got-term".to_owned()),
            "no_mask={no_mask}"
        );
        assert_eq!(
            signal_roundtrip(f.dir.path(), "INT", no_mask),
            (9, "got-int".to_owned()),
            "no_mask={no_mask}"
        );
    }
}

#[test]
fn no_mask_keeps_the_terminal() {
    let f = fixture();
    let bin = assert_cmd::cargo::cargo_bin("coffer");
    // `script` gives coffer a pseudo-terminal; `test -t 1` asks whether the child's stdout
    // is one.
    let run = |mask_flag: &str| {
        let inner = format!("{} run {mask_flag} -- sh -c 'test -t 1'", bin.display());
        std::process::Command::new("script")
            .args(["-qec", &inner, "/dev/null"])
            .current_dir(f.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(run("--no-mask"), Some(0));
    assert_eq!(run(""), Some(1));
}

#[test]
fn export_formats_and_files() {
    let f = fixture();
    let dir = f.dir.path();
    coffer(dir)
        .args(["export", "--only", "greeting"])
        .assert()
        .success()
        .stdout("GREETING='hello world'\n");
    coffer(dir)
        .args(["export", "--only", "greeting", "--export"])
        .assert()
        .success()
        .stdout("export GREETING='hello world'\n");
    let json = coffer(dir)
        .args(["export", "--format", "json"])
        .output()
        .unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(parsed["OPENAI_API_KEY"], f.key.as_str());
    assert_eq!(parsed["OPENAI_KEY_PREFIX"], f.prefix_key.as_str());

    coffer(dir)
        .args(["export", "--output", "out/.env"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "wrote 3 variables to out/.env (mode 0600)",
        ));
    let text = std::fs::read_to_string(dir.join("out/.env")).unwrap();
    assert!(text.contains(&format!("OPENAI_API_KEY='{}'", f.key)));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("out/.env"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A value no .env quoting carries: refused by name, no value shown, the old file kept;
    // the shell format carries it.
    coffer(dir)
        .args(["put", "tricky"])
        .write_stdin("it's $HOME")
        .assert()
        .success();
    coffer(dir)
        .args(["export", "--output", "out/.env"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("value of TRICKY"))
        .stderr(predicate::str::contains("it's").not());
    assert_eq!(std::fs::read_to_string(dir.join("out/.env")).unwrap(), text);
    let shell = coffer(dir)
        .args(["export", "--only", "tricky", "--format", "shell"])
        .output()
        .unwrap();
    let out = std::process::Command::new("sh")
        .args(["-c", "eval \"$1\"; printf %s \"$TRICKY\"", "sh"])
        .arg(String::from_utf8(shell.stdout).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"it's $HOME");
}
