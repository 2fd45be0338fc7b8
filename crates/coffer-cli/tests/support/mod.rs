//! What several test files share: `coffer` as a child process, and the forms a secret
//! could leak in. Each test file uses part of it.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// `coffer` in `dir`, with no COFFER_* variable from the outer environment, killed
/// after a minute.
pub(crate) fn coffer(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("coffer").unwrap();
    cmd.current_dir(dir).timeout(Duration::from_secs(60));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("COFFER_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A folder where `coffer init` ran.
pub(crate) fn initialised() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    coffer(dir.path()).arg("init").assert().success();
    dir
}

/// Every form the canary could leak in.
pub(crate) fn forms(canary: &str) -> Vec<String> {
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

/// Panics, naming `what` and the form, if `text` holds any of `forms`.
pub(crate) fn assert_clean(what: &str, text: &str, forms: &[String]) {
    for form in forms {
        assert!(
            !text.contains(form.as_str()),
            "{what} holds the canary as {form:?}"
        );
    }
}
