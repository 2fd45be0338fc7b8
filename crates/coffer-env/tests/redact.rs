//! The streaming redactor: any split of the input masks the same as the whole, no value
//! survives, and a real child's output is masked as it streams.

use std::process::Stdio;

use coffer_env::{EnvMap, RedactWriter, Redactor};
use proptest::prelude::*;
use secrecy::SecretString;

fn redactor(values: &[String]) -> Redactor {
    let pairs: Vec<(String, SecretString)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("S{i}"), SecretString::from(v.clone())))
        .collect();
    Redactor::new(pairs.iter().map(|(k, v)| (k.as_str(), v)))
}

/// `text` pushed through a stream in pieces cut at `cuts` (any order, clamped).
fn split_redact(r: &Redactor, text: &[u8], cuts: Vec<usize>) -> Vec<u8> {
    let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut stream = r.stream();
    let mut at = 0;
    for cut in cuts.into_iter().chain([text.len()]) {
        stream.push(&text[at..cut], &mut out);
        at = cut;
    }
    stream.finish(&mut out);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Secrets from a tiny alphabet (so they overlap, nest and prefix each other), text
    /// made of secrets and noise, cut at random points.
    #[test]
    fn any_split_masks_like_the_whole(
        secrets in prop::collection::vec("[abcxyz]{6,14}", 1..6),
        pieces in prop::collection::vec(prop_oneof![
            (0usize..6).prop_map(Some),
            Just(None),
        ], 0..30),
        noise in "[abcxyz \n]{0,5}",
        cuts in prop::collection::vec(0usize..400, 0..20),
    ) {
        let r = redactor(&secrets);
        let mut text = Vec::new();
        for piece in pieces {
            match piece {
                Some(i) => text.extend_from_slice(secrets[i % secrets.len()].as_bytes()),
                None => text.extend_from_slice(noise.as_bytes()),
            }
        }
        let out = split_redact(&r, &text, cuts);
        prop_assert_eq!(&out, &r.redact(&text));
        for s in &secrets {
            prop_assert!(!contains(&out, s.as_bytes()), "{} survived", s);
        }
    }
}

/// `bytes` as base64 wrapped the way `base64` (76) or PEM writers (64) fold it.
fn wrapped(bytes: &[u8], width: usize, crlf: bool) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::new();
    for line in text.as_bytes().chunks(width) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push_str(if crlf { "\r\n" } else { "\n" });
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Secrets inside line-wrapped base64 (any width the tools use, LF or CRLF, any
    /// alignment), among lines that are not, cut at random points: the stream masks as
    /// the whole does, and the value's base64 survives neither with nor without the line
    /// breaks.
    #[test]
    fn wrapped_base64_masks_at_any_split(
        secret in "[a-z0-9]{40,90}",
        prefix in prop::collection::vec(any::<u8>(), 0..3),
        suffix in prop::collection::vec(any::<u8>(), 0..80),
        width in prop::sample::select(vec![64usize, 76]),
        crlf in any::<bool>(),
        before in "[a-z +/=\n]{0,90}",
        cuts in prop::collection::vec(0usize..600, 0..12),
    ) {
        use base64::Engine as _;
        let r = redactor(std::slice::from_ref(&secret));
        let mut blob = prefix.clone();
        blob.extend_from_slice(secret.as_bytes());
        blob.extend_from_slice(&suffix);
        let text = format!("{before}\n{}", wrapped(&blob, width, crlf)).into_bytes();
        let out = split_redact(&r, &text, cuts);
        prop_assert_eq!(&out, &r.redact(&text));
        // The characters that depend on the secret alone, with margin.
        let mut shifted = vec![0u8; prefix.len()];
        shifted.extend_from_slice(secret.as_bytes());
        let encoded = base64::engine::general_purpose::STANDARD.encode(&shifted);
        let middle = &encoded[4..encoded.len() - 4];
        let flat: Vec<u8> = out.iter().copied().filter(|b| *b != b'\n' && *b != b'\r').collect();
        prop_assert!(!contains(&flat, middle.as_bytes()), "survived: {}", String::from_utf8_lossy(&out));
        // The text keeps its lines.
        prop_assert_eq!(
            out.iter().filter(|b| **b == b'\n').count(),
            text.iter().filter(|b| **b == b'\n').count()
        );
    }
}

#[test]
fn writer_masks_byte_by_byte() {
    let r = redactor(&["tok_0123456789".to_owned()]);
    let mut w = RedactWriter::new(&r, Vec::new());
    for b in b"a tok_0123456789 b tok_0123" {
        std::io::Write::write_all(&mut w, std::slice::from_ref(b)).unwrap();
    }
    assert_eq!(w.finish().unwrap(), b"a [REDACTED:S0] b tok_0123");
}

/// A child printing a secret one byte at a time, with pauses, through a pipe.
#[tokio::test]
async fn child_output_split_across_writes() {
    let mut env = EnvMap::new();
    env.insert("API_TOKEN", "tok-3f9a7c1e55".into()).unwrap();
    env.insert("API_TOKEN_PREFIX", "tok-3f9a".into()).unwrap();
    let r = Redactor::from_map(&env);
    let mut cmd = tokio::process::Command::new("sh");
    cmd.args([
        "-c",
        "printf 'start '; for c in $(printf %s \"$API_TOKEN\" | sed 's/./& /g'); do \
         printf %s \"$c\"; sleep 0.01; done; printf ' mid %s end' \"$API_TOKEN_PREFIX\"",
    ])
    .stdout(Stdio::piped());
    env.apply(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut out = Vec::new();
    coffer_env::copy_redacted(&r, stdout, &mut out)
        .await
        .unwrap();
    assert!(child.wait().await.unwrap().success());
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "start [REDACTED:API_TOKEN] mid [REDACTED:API_TOKEN_PREFIX] end"
    );
}

#[tokio::test]
async fn clean_environment_keeps_only_the_allowlist() {
    let mut env = EnvMap::new();
    env.insert("INJECTED", "line 1\nline 2 'q' \"d\" $x".into())
        .unwrap();
    let script =
        "printf '%s|%s|%s' \"$INJECTED\" \"${CARGO_MANIFEST_DIR:-unset}\" \"${PATH:+path}\"";
    for clean in [false, true] {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", script]);
        if clean {
            env.apply_clean(&mut cmd, coffer_env::CLEAN_ENV_ALLOWLIST);
        } else {
            env.apply(&mut cmd);
        }
        let out = cmd.output().await.unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let inherited = if clean {
            "unset".to_owned()
        } else {
            env!("CARGO_MANIFEST_DIR").to_owned()
        };
        assert_eq!(
            text,
            format!("line 1\nline 2 'q' \"d\" $x|{inherited}|path"),
            "clean={clean}"
        );
    }
    // The parent's environment is untouched.
    assert!(std::env::var_os("INJECTED").is_none());
}
