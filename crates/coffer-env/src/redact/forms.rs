//! The forms of a value the redactor looks for, and the line breaks it looks through.
//!
//! Each encoder here writes a value the way a common tool prints it: percent-encoding in
//! both hex cases (RFC 3986, `application/x-www-form-urlencoded`, and Python's
//! `urllib.parse.quote`, which keeps `/`), hex dumps, base64 at each alignment in both
//! alphabets, JSON string escaping as serde, `json.dumps`, `JSON.stringify`, Go and PHP
//! write it, and Python's `repr` of a `str` and of `bytes`.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, utf8_percent_encode};
use zeroize::Zeroizing;

/// A form of a value, zeroized when dropped.
pub(super) type Form = Zeroizing<Vec<u8>>;

/// Line widths at which tools wrap base64: 76 (`base64`, MIME) and 64 (PEM, `openssl
/// base64`).
pub(super) const WRAP_WIDTHS: [usize; 2] = [64, 76];

/// Which bytes can be part of base64 text in either alphabet (padding included).
const BASE64_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'-' | b'_' | b'=');
        b += 1;
    }
    table
};

/// Whether `b` can be part of base64 text in either alphabet (padding included).
pub(super) fn is_base64(b: u8) -> bool {
    BASE64_BYTES[usize::from(b)]
}

/// The shortest line a wrap can end.
pub(super) const MIN_WRAP: usize = WRAP_WIDTHS[0];

/// Whether a line break that follows a run of `run` base64 characters is one a base64
/// tool inserted (so the text reads on without it).
pub(super) fn is_wrap(run: usize) -> bool {
    WRAP_WIDTHS.contains(&run)
}

/// RFC 3986's percent-encoding with only the unreserved characters (`A-Z a-z 0-9 - . _ ~`)
/// kept: how [`DatabaseUrl`](crate::DatabaseUrl) writes users and passwords into a
/// `DATABASE_URL` (the test `database_urls_encode_as_the_redactor_looks` holds the two
/// together).
pub(crate) const COMPONENT: &AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Python's `urllib.parse.quote` default: RFC 3986 unreserved characters and `/` kept.
const PY_QUOTE: &AsciiSet = &COMPONENT.remove(b'/');

/// Every form of `value`, before line-break normalization and the length cut.
pub(super) fn all(value: &[u8]) -> Vec<Form> {
    let mut out = vec![Zeroizing::new(value.to_vec())];
    if let Ok(text) = std::str::from_utf8(value) {
        for set in [COMPONENT, PY_QUOTE] {
            push_both_cases(
                &mut out,
                utf8_percent_encode(text, set).to_string().into_bytes(),
            );
        }
        push_both_cases(
            &mut out,
            url::form_urlencoded::byte_serialize(value)
                .collect::<String>()
                .into_bytes(),
        );
        json(&mut out, text);
        python_str(&mut out, text);
    }
    python_bytes(&mut out, value);
    // Hex dumps, lower and upper case.
    out.push(Zeroizing::new(hex::encode(value).into_bytes()));
    out.push(Zeroizing::new(hex::encode_upper(value).into_bytes()));
    base64(&mut out, value);
    out
}

/// `encoded` as is and with the hex digits of every `%XX` in lower case.
fn push_both_cases(out: &mut Vec<Form>, encoded: Vec<u8>) {
    let mut lower = Zeroizing::new(encoded.clone());
    let mut i = 0;
    while i < lower.len() {
        if lower[i] == b'%' {
            for b in lower.iter_mut().skip(i + 1).take(2) {
                b.make_ascii_lowercase();
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    out.push(Zeroizing::new(encoded));
    out.push(lower);
}

/// Base64 in both alphabets at the three alignments a value can take inside a longer
/// base64 text (it starts at bit 0, 8 or 16 of a 24-bit group): only the characters
/// that depend on the value's bits alone.
fn base64(out: &mut Vec<Form>, value: &[u8]) {
    for shift in 0..3usize {
        let mut shifted = Zeroizing::new(vec![0u8; shift]);
        shifted.extend_from_slice(value);
        let first = (shift * 8).div_ceil(6);
        let last = shifted.len() * 8 / 6;
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let encoded = Zeroizing::new(engine.encode(&shifted[..]).into_bytes());
            if last > first {
                out.push(Zeroizing::new(encoded[first..last].to_vec()));
            }
        }
    }
}

/// How a JSON encoder writes a string's content.
#[derive(Clone, Copy)]
struct JsonStyle {
    /// Non-ASCII as `\uXXXX` (with surrogate pairs), as `json.dumps` does by default.
    ascii: bool,
    /// Upper-case hex digits in `\u` escapes.
    upper: bool,
    /// `/` as `\/` (PHP's `json_encode`).
    slash: bool,
    /// `<`, `>`, `&`, U+2028 and U+2029 as `\u` escapes (Go's `encoding/json`).
    html: bool,
}

fn json(out: &mut Vec<Form>, text: &str) {
    for bits in 0u8..16 {
        let style = JsonStyle {
            ascii: bits & 1 != 0,
            upper: bits & 2 != 0,
            slash: bits & 4 != 0,
            html: bits & 8 != 0,
        };
        out.push(json_escape(text, style));
    }
}

fn push_u(buf: &mut Vec<u8>, unit: u16, upper: bool) {
    let hex = if upper {
        format!("\\u{unit:04X}")
    } else {
        format!("\\u{unit:04x}")
    };
    buf.extend_from_slice(hex.as_bytes());
}

fn json_escape(text: &str, style: JsonStyle) -> Form {
    let mut buf = Zeroizing::new(Vec::with_capacity(text.len() + 8));
    for c in text.chars() {
        match c {
            '"' => buf.extend_from_slice(b"\\\""),
            '\\' => buf.extend_from_slice(b"\\\\"),
            '\n' => buf.extend_from_slice(b"\\n"),
            '\r' => buf.extend_from_slice(b"\\r"),
            '\t' => buf.extend_from_slice(b"\\t"),
            '\u{8}' => buf.extend_from_slice(b"\\b"),
            '\u{c}' => buf.extend_from_slice(b"\\f"),
            '/' if style.slash => buf.extend_from_slice(b"\\/"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' if style.html => {
                push_u(&mut buf, c as u16, style.upper);
            }
            c if (c as u32) < 0x20 => push_u(&mut buf, c as u16, style.upper),
            c if !c.is_ascii() && style.ascii => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    push_u(&mut buf, *unit, style.upper);
                }
            }
            c => {
                let mut utf8 = [0u8; 4];
                buf.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    buf
}

/// Python's `repr` of a `str`, and `ascii()`: `\\`, `\n`, `\r`, `\t`, other control
/// characters as `\xhh`; `'` escaped (a single-quoted repr) or not (double-quoted);
/// non-ASCII as is (`repr`) or as `\xhh`, `\uhhhh`, `\Uhhhhhhhh` (`ascii`).
fn python_str(out: &mut Vec<Form>, text: &str) {
    for escape_quote in [true, false] {
        for ascii in [false, true] {
            let mut buf = Zeroizing::new(Vec::with_capacity(text.len() + 8));
            for c in text.chars() {
                match c {
                    '\\' => buf.extend_from_slice(b"\\\\"),
                    '\'' if escape_quote => buf.extend_from_slice(b"\\'"),
                    '\n' => buf.extend_from_slice(b"\\n"),
                    '\r' => buf.extend_from_slice(b"\\r"),
                    '\t' => buf.extend_from_slice(b"\\t"),
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                        buf.extend_from_slice(format!("\\x{:02x}", c as u32).as_bytes());
                    }
                    c if !c.is_ascii() && ascii => {
                        let code = c as u32;
                        let escaped = if code < 0x100 {
                            format!("\\x{code:02x}")
                        } else if code < 0x10000 {
                            format!("\\u{code:04x}")
                        } else {
                            format!("\\U{code:08x}")
                        };
                        buf.extend_from_slice(escaped.as_bytes());
                    }
                    c => {
                        let mut utf8 = [0u8; 4];
                        buf.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                    }
                }
            }
            out.push(buf);
        }
    }
}

/// Python's `repr` of `bytes`: printable ASCII as is, `\\`, `\n`, `\r`, `\t`, `\'`
/// (or a bare `'` in a double-quoted repr), everything else `\xhh`.
fn python_bytes(out: &mut Vec<Form>, value: &[u8]) {
    for escape_quote in [true, false] {
        let mut buf = Zeroizing::new(Vec::with_capacity(value.len() + 8));
        for &b in value {
            match b {
                b'\\' => buf.extend_from_slice(b"\\\\"),
                b'\'' if escape_quote => buf.extend_from_slice(b"\\'"),
                b'\n' => buf.extend_from_slice(b"\\n"),
                b'\r' => buf.extend_from_slice(b"\\r"),
                b'\t' => buf.extend_from_slice(b"\\t"),
                0x20..0x7f => buf.push(b),
                _ => buf.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            }
        }
        out.push(buf);
    }
}

/// `form` with the line breaks a base64 tool would have inserted taken out, read as if
/// it started a line: the text the redactor matches against (see
/// [`View`](super::View)).
pub(super) fn without_wraps(form: &[u8]) -> Form {
    let mut out = Zeroizing::new(Vec::with_capacity(form.len()));
    let mut run = 0usize;
    let mut i = 0;
    while i < form.len() {
        let b = form[i];
        if matches!(b, b'\r' | b'\n') && is_wrap(run) {
            // A wrap: `\n`, or `\r\n` as one.
            if b == b'\r' && form.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            i += 1;
            run = 0;
            continue;
        }
        run = if is_base64(b) { run + 1 } else { 0 };
        out.push(b);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(forms: &[Form], want: &str) -> bool {
        forms.iter().any(|f| f.as_slice() == want.as_bytes())
    }

    #[test]
    fn escapes_as_the_tools_write_them() {
        let forms = all("a\"b\\c/d<é😀'".as_bytes());
        // serde_json / JSON.stringify
        assert!(has(&forms, "a\\\"b\\\\c/d<é😀'"));
        // json.dumps (ensure_ascii)
        assert!(has(&forms, "a\\\"b\\\\c/d<\\u00e9\\ud83d\\ude00'"));
        // PHP json_encode
        assert!(has(&forms, "a\\\"b\\\\c\\/d<\\u00e9\\ud83d\\ude00'"));
        // Go encoding/json
        assert!(has(&forms, "a\\\"b\\\\c/d\\u003cé😀'"));
        // Python repr of the str, single-quoted, and ascii()
        assert!(has(&forms, "a\"b\\\\c/d<é😀\\'"));
        assert!(has(&forms, "a\"b\\\\c/d<\\xe9\\U0001f600\\'"));
        // Python repr of the UTF-8 bytes
        assert!(has(&forms, "a\"b\\\\c/d<\\xc3\\xa9\\xf0\\x9f\\x98\\x80\\'"));
    }

    #[test]
    fn database_urls_encode_as_the_redactor_looks() {
        use secrecy::ExposeSecret as _;
        // Every printable ASCII character and some beyond, as a password.
        let password: String = (0x20u8..0x7f)
            .map(char::from)
            .chain("é😀".chars())
            .collect();
        let url = crate::DatabaseUrl::postgres("127.0.0.1")
            .user("u")
            .password(password.clone().into())
            .to_url()
            .unwrap();
        let encoded = utf8_percent_encode(&password, COMPONENT).to_string();
        assert!(url.expose_secret().contains(&format!("u:{encoded}@")));
        assert!(has(&all(password.as_bytes()), &encoded));
    }

    #[test]
    fn percent_encoding_in_both_cases() {
        let forms = all("p@ss/word é".as_bytes());
        assert!(has(&forms, "p%40ss%2Fword%20%C3%A9"));
        assert!(has(&forms, "p%40ss%2fword%20%c3%a9"));
        assert!(has(&forms, "p%40ss/word%20%c3%a9"));
        assert!(has(&forms, "p%40ss%2fword+%c3%a9"));
    }

    #[test]
    fn wraps_come_out_only_after_a_full_base64_line() {
        let line = "A".repeat(64);
        let pem = format!("-----BEGIN KEY-----\n{line}\n{line}\r\nABC\n-----END KEY-----");
        let want = format!("-----BEGIN KEY-----\n{line}{line}ABC\n-----END KEY-----");
        assert_eq!(without_wraps(pem.as_bytes()).as_slice(), want.as_bytes());
        let short = "abc\ndef";
        assert_eq!(without_wraps(short.as_bytes()).as_slice(), short.as_bytes());
    }
}
