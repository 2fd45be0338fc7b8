//! The prompts at a real terminal: `coffer put NAME` and a passphrase-derived keyring ask
//! without echoing what is typed. A tmux server of the test's own (its own socket) runs
//! coffer in a pseudo-terminal; the test types with `send-keys` and reads the screen
//! with `capture-pane`.

mod support;
use support::coffer;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server on a socket of its own, killed when dropped.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// Starts a server running `script` in `dir` (a clean environment: no COFFER_* of
    /// the test's), or `None` when tmux is missing and the run does not require it.
    fn start(dir: &Path, script: &str) -> Option<Self> {
        if Command::new("tmux").arg("-V").output().is_err() {
            assert!(
                std::env::var_os("COFFER_REQUIRE_SERVICES").is_none(),
                "tmux is required (scripts/services.sh installs it)"
            );
            eprintln!("skipped: tmux is not installed");
            return None;
        }
        let tmux = Self {
            socket: dir.join("tmux.sock"),
        };
        let status = tmux
            .command()
            .args([
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "200",
                "-y",
                "40",
            ])
            .arg(format!("cd '{}' && {script}; sleep 60", dir.display()))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("TERM", "xterm")
            .status()
            .unwrap();
        assert!(status.success());
        Some(tmux)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&self.socket);
        cmd
    }

    /// What the terminal shows now.
    fn screen(&self) -> String {
        let out = self
            .command()
            .args(["capture-pane", "-p", "-J"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (up to a minute) until the screen shows `text`, and returns the screen.
    fn wait_for(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the terminal never showed {text:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (up to a minute) until the program in the pane has turned the terminal's
    /// echo off. The prompt is printed a moment before echo goes off, so a line typed
    /// as soon as the prompt shows could be echoed by the terminal itself; a person
    /// reads the prompt first, and the test waits for the terminal's own state.
    fn wait_echo_off(&self) {
        let out = self
            .command()
            .args(["display-message", "-p", "#{pane_tty}"])
            .output()
            .unwrap();
        let tty = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(!tty.is_empty(), "tmux named no pane tty");
        let start = Instant::now();
        loop {
            let out = Command::new("stty")
                .args(["-F", &tty, "-a"])
                .output()
                .unwrap();
            let modes = String::from_utf8_lossy(&out.stdout);
            if modes.split_whitespace().any(|mode| mode == "-echo") {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the terminal's echo never went off:\n{modes}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types `text` and Enter once echo is off.
    fn type_hidden_line(&self, text: &str) {
        self.wait_echo_off();
        self.type_line(text);
    }

    /// Types `text` and Enter.
    fn type_line(&self, text: &str) {
        let status = self
            .command()
            .args(["send-keys", "-l", text])
            .status()
            .unwrap();
        assert!(status.success());
        let status = self
            .command()
            .args(["send-keys", "Enter"])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").status();
    }
}

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("coffer")
}

#[test]
fn a_value_typed_at_the_prompt_is_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    coffer(d).arg("init").assert().success();
    let typed = format!("sk-typed-{}", std::process::id());
    let Some(tmux) = Tmux::start(
        d,
        &format!("'{}' put typed_key; echo \"status=$?\"", bin().display()),
    ) else {
        return;
    };
    tmux.wait_for("Value for typed_key (not shown): ");
    tmux.type_hidden_line(&typed);
    let screen = tmux.wait_for("status=");
    assert!(screen.contains("stored default/typed_key v1"), "{screen}");
    assert!(screen.contains("status=0"), "{screen}");
    assert!(!screen.contains(&typed), "the value was echoed:\n{screen}");
    coffer(d)
        .args(["get", "typed_key", "--plain"])
        .assert()
        .success()
        .stdout(format!("{typed}\n"));
}

#[test]
fn an_empty_answer_at_the_prompt_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    coffer(d).arg("init").assert().success();
    let Some(tmux) = Tmux::start(
        d,
        &format!("'{}' put empty_key; echo \"status=$?\"", bin().display()),
    ) else {
        return;
    };
    tmux.wait_for("Value for empty_key (not shown): ");
    tmux.type_hidden_line("");
    let screen = tmux.wait_for("status=");
    assert!(screen.contains("no value was typed"), "{screen}");
    assert!(screen.contains("status=2"), "{screen}");
    coffer(d)
        .args(["get", "empty_key", "--plain"])
        .assert()
        .code(3);
}

#[test]
fn a_passphrase_is_asked_for_without_echo() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let passphrase = format!("correct horse {}", std::process::id());
    coffer(d)
        .arg("init")
        .env("COFFER_PASSPHRASE", &passphrase)
        .assert()
        .success();
    coffer(d)
        .args(["put", "k", "--value", "v-1"])
        .env("COFFER_PASSPHRASE", &passphrase)
        .assert()
        .success();
    // Without a terminal the error says what to set.
    coffer(d)
        .args(["list"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("set COFFER_PASSPHRASE"));
    let Some(tmux) = Tmux::start(
        d,
        &format!("'{}' list; echo \"status=$?\"", bin().display()),
    ) else {
        return;
    };
    tmux.wait_for("Passphrase for .coffer/keyring.json (or set COFFER_PASSPHRASE): ");
    tmux.type_hidden_line(&passphrase);
    let screen = tmux.wait_for("status=");
    assert!(screen.contains("status=0"), "{screen}");
    assert!(screen.contains("NAME"), "{screen}");
    assert!(
        !screen.contains(&passphrase),
        "the passphrase was echoed:\n{screen}"
    );
}
