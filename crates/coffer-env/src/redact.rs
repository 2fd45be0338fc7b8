//! Masking secrets in output: a streaming redactor over aho-corasick.

use std::fmt;
use std::io::{self, Write};

use aho_corasick::{AhoCorasick, MatchKind};
use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

use crate::EnvMap;

mod forms;

/// A form of a value to look for.
type Pattern = Zeroizing<Vec<u8>>;
/// `[REDACTED:NAME]`.
type Label = Box<[u8]>;

/// Values shorter than this many bytes are not masked: masking `abc` would garble every
/// word that holds it and hide nothing worth hiding. [`Redactor::unmasked`] names them.
pub const MIN_MASK_LEN: usize = 6;

/// Replaces every secret value in a byte stream with `[REDACTED:NAME]`.
///
/// Besides each value as is, it masks the forms common tools print it in:
///
/// - percent-encoding, upper- and lower-case hex: RFC 3986 components,
///   `application/x-www-form-urlencoded`, and Python's `urllib.parse.quote` (keeps `/`);
/// - hex dumps, lower and upper case;
/// - base64 in the standard and URL-safe alphabets, at each of the three alignments a
///   value can take inside a longer base64 text (`user:password` in a Basic auth header),
///   also line-wrapped at 64 or 76 columns (`base64`, MIME, PEM, `openssl base64`), LF or
///   CRLF: a line break that follows exactly 64 or 76 base64 characters is read through;
/// - JSON string escaping as serde, `JSON.stringify`, Python's `json.dumps` (`\uXXXX`
///   with surrogate pairs), Go (`\u003c`) and PHP (`\/`) write it;
/// - Python's `repr` and `ascii` of the value as `str`, and `repr` of its UTF-8 `bytes`.
///
/// Where values overlap, the longest match wins, so a secret that is a prefix of another
/// masks as itself only when the longer one does not match. A wrap inside a masked value
/// stays in the output after the label, so the text keeps its lines.
///
/// Not masked: values shorter than [`MIN_MASK_LEN`] (named by [`unmasked`](Self::unmasked));
/// values transformed otherwise (reversed, compressed, encrypted, escaped twice, other
/// encodings such as base32); and, in `coffer run`, whatever the child writes to
/// `/dev/tty` or to descriptors other than its stdout and stderr.
///
/// A [`RedactStream`] carries the state between writes, so a value split across
/// writes (a child printing it one byte at a time) is masked too. It holds back only the
/// bytes that could still be the start of a value; everything else passes at once.
///
/// The matcher keeps copies of the values in memory for its lifetime (aho-corasick does
/// not zeroize them); the redactor's own copies and buffers are zeroized.
///
/// ```
/// use coffer_env::{EnvMap, Redactor};
///
/// let mut env = EnvMap::new();
/// env.insert("OPENAI_API_KEY", "sk-live-0123456789".into())?;
/// let redactor = Redactor::from_map(&env);
/// let mut stream = redactor.stream();
/// let mut out = Vec::new();
/// stream.push(b"key=sk-live-0123", &mut out);
/// stream.push(b"456789 done\n", &mut out);
/// stream.finish(&mut out);
/// assert_eq!(out, b"key=[REDACTED:OPENAI_API_KEY] done\n");
/// # Ok::<(), coffer_env::Error>(())
/// ```
pub struct Redactor {
    matcher: Option<AhoCorasick>,
    /// Replacement per pattern id.
    labels: Vec<Box<[u8]>>,
    /// The patterns, sorted, for "could this still become a match" checks.
    sorted: Vec<Zeroizing<Vec<u8>>>,
    first_bytes: [bool; 256],
    max_len: usize,
    unmasked: Vec<String>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.labels.len())
            .field("unmasked", &self.unmasked)
            .finish_non_exhaustive()
    }
}

/// The forms of `value` the redactor looks for, as the matcher reads them (wrap line
/// breaks taken out, see [`View`]), each at least [`MIN_MASK_LEN`] long.
fn forms(value: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut out: Vec<_> = forms::all(value)
        .iter()
        .map(|form| forms::without_wraps(form))
        .collect();
    out.retain(|form| form.len() >= MIN_MASK_LEN);
    out
}

/// Longest run of base64 characters the stream state tracks; any longer run is no wrap.
const RUN_CAP: usize = 1 + forms::WRAP_WIDTHS[forms::WRAP_WIDTHS.len() - 1];

/// The text the matcher reads: the pending bytes with the line breaks a base64 tool
/// inserted taken out. A `\n` or `\r\n` is such a wrap when it follows a run of exactly
/// 64 or 76 base64 characters (counted from the line's start or the last character
/// outside the alphabet), so a value's base64 matches however `base64` or a PEM writer
/// folded it, while every other line break stays and ends a line's possible matches.
struct View<'a> {
    bytes: std::borrow::Cow<'a, [u8]>,
    /// For each byte taken out, in order: how many view bytes precede it.
    keys: Vec<usize>,
}

impl<'a> View<'a> {
    /// `buf` read after `run_before` base64 characters (and, with `cr_wrap`, right after
    /// a wrap's `\r`).
    fn new(buf: &'a [u8], run_before: usize, cr_wrap: bool) -> Self {
        let mut removed = Vec::new();
        let mut last_cr_wrap = cr_wrap.then_some(usize::MAX);
        // Where the current line starts in `buf`, and whether it started before `buf`.
        let mut line_start = 0;
        let mut carried = run_before;
        for i in memchr::memchr2_iter(b'\n', b'\r', buf) {
            let after_cr_wrap = match i.checked_sub(1) {
                Some(prev) => last_cr_wrap == Some(prev),
                None => last_cr_wrap == Some(usize::MAX),
            };
            // A run is no longer than its line: most lines are too short to be a wrap,
            // and need no look at their bytes.
            let wrap = if buf[i] == b'\n' && after_cr_wrap {
                true
            } else {
                i - line_start + carried >= forms::MIN_WRAP
                    && forms::is_wrap(run_ending_at(buf, i, run_before))
            };
            line_start = i + 1;
            carried = 0;
            if wrap {
                removed.push(i);
                if buf[i] == b'\r' {
                    last_cr_wrap = Some(i);
                }
            }
        }
        if removed.is_empty() {
            return Self {
                bytes: std::borrow::Cow::Borrowed(buf),
                keys: removed,
            };
        }
        let mut bytes = Vec::with_capacity(buf.len());
        let mut from = 0;
        for (n, i) in removed.iter_mut().enumerate() {
            bytes.extend_from_slice(&buf[from..*i]);
            from = *i + 1;
            *i -= n;
        }
        bytes.extend_from_slice(&buf[from..]);
        Self {
            bytes: std::borrow::Cow::Owned(bytes),
            keys: removed,
        }
    }

    /// The original index of view byte `v` (or the end, for `v` at the view's end).
    fn orig(&self, v: usize) -> usize {
        if self.keys.is_empty() {
            return v;
        }
        v + self.keys.partition_point(|&k| k <= v)
    }

    /// The original index just past view byte `end - 1` (`end > 0`).
    fn orig_end(&self, end: usize) -> usize {
        self.orig(end - 1) + 1
    }
}

impl Drop for View<'_> {
    fn drop(&mut self) {
        if let std::borrow::Cow::Owned(bytes) = &mut self.bytes {
            zeroize::Zeroize::zeroize(bytes);
        }
    }
}

/// The run of base64 characters that ends right before `buf[end]`, `run_before` counted
/// in when it reaches the start; capped at [`RUN_CAP`].
fn run_ending_at(buf: &[u8], end: usize, run_before: usize) -> usize {
    let from = end.saturating_sub(RUN_CAP);
    let run = buf[from..end]
        .iter()
        .rev()
        .take_while(|&&b| forms::is_base64(b))
        .count();
    if run == end {
        (run + run_before).min(RUN_CAP)
    } else {
        run.min(RUN_CAP)
    }
}

impl Redactor {
    /// A redactor for `(name, value)` pairs.
    pub fn new<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a SecretString)>) -> Self {
        // Every form of every value, with its label; then duplicates dropped (the first
        // value to claim a form labels it).
        let mut candidates: Vec<(Zeroizing<Vec<u8>>, usize)> = Vec::new();
        let mut names: Vec<Box<[u8]>> = Vec::new();
        let mut unmasked = Vec::new();
        for (name, value) in secrets {
            let value = value.expose_secret().as_bytes();
            if value.len() < MIN_MASK_LEN {
                tracing::warn!(
                    "{name} is shorter than {MIN_MASK_LEN} bytes and is not masked in output"
                );
                unmasked.push(name.to_owned());
                continue;
            }
            let label = names.len();
            names.push(format!("[REDACTED:{name}]").into_bytes().into());
            candidates.extend(forms(value).into_iter().map(|form| (form, label)));
        }
        // Stable: equal forms keep their order, so the first value's label wins.
        candidates.sort_by(|a, b| a.0.cmp(&b.0));
        candidates.dedup_by(|later, earlier| later.0 == earlier.0);
        let (patterns, labels): (Vec<Pattern>, Vec<Label>) = candidates
            .into_iter()
            .map(|(form, label)| (form, names[label].clone()))
            .unzip();
        let matcher = (!patterns.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(patterns.iter().map(|p| p.as_slice()))
                .expect("patterns are non-empty byte strings")
        });
        let max_len = patterns.iter().map(|p| p.len()).max().unwrap_or(0);
        let mut first_bytes = [false; 256];
        for p in &patterns {
            first_bytes[usize::from(p[0])] = true;
        }
        let sorted = patterns;
        Self {
            matcher,
            labels,
            sorted,
            first_bytes,
            max_len,
            unmasked,
        }
    }

    /// A redactor for every variable of `map`.
    pub fn from_map(map: &EnvMap) -> Self {
        Self::new(map.iter())
    }

    /// The variables not masked because their values are shorter than [`MIN_MASK_LEN`].
    pub fn unmasked(&self) -> &[String] {
        &self.unmasked
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// A stream that masks what is pushed through it.
    pub fn stream(&self) -> RedactStream<'_> {
        RedactStream {
            redactor: self,
            pending: Zeroizing::new(Vec::new()),
            run_before: 0,
            cr_wrap: false,
        }
    }

    /// `input` with every value masked, in one go.
    pub fn redact(&self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len());
        let mut stream = self.stream();
        stream.push(input, &mut out);
        stream.finish(&mut out);
        out
    }

    /// Whether some pattern starts with `text` (or is it).
    fn continues(&self, text: &[u8]) -> bool {
        let i = self.sorted.partition_point(|p| p.as_slice() < text);
        self.sorted.get(i).is_some_and(|p| p.starts_with(text))
    }

    /// Whether some pattern longer than `text` starts with it.
    fn extends(&self, text: &[u8]) -> bool {
        let mut i = self.sorted.partition_point(|p| p.as_slice() < text);
        if self.sorted.get(i).is_some_and(|p| p.as_slice() == text) {
            i += 1;
        }
        self.sorted.get(i).is_some_and(|p| p.starts_with(text))
    }
}

/// The state of one masked stream (see [`Redactor`]): push bytes in, get masked bytes
/// out, and [`finish`](Self::finish) at the end to release what was held back.
pub struct RedactStream<'r> {
    redactor: &'r Redactor,
    pending: Zeroizing<Vec<u8>>,
    /// The run of base64 characters that ends right before `pending`.
    run_before: usize,
    /// Whether the byte right before `pending` is the `\r` of a wrap.
    cr_wrap: bool,
}

impl fmt::Debug for RedactStream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedactStream")
            .field("held_bytes", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl RedactStream<'_> {
    /// Masks `input` (continuing what came before) and appends what can be released to
    /// `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.redactor.is_empty() && self.pending.is_empty() {
            out.extend_from_slice(input);
            return;
        }
        self.pending.extend_from_slice(input);
        self.drain(out, false);
    }

    /// Releases everything still held back, masked.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.drain(out, true);
    }

    /// How many bytes are held back because they could be the start of a value.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    fn drain(&mut self, out: &mut Vec<u8>, eof: bool) {
        let r = self.redactor;
        let buf = &self.pending[..];
        let view = View::new(buf, self.run_before, self.cr_wrap);
        let text = &view.bytes[..];
        let len = text.len();
        // All positions below are the view's until mapped back with `orig`.
        let mut cursor = 0;
        let mut cursor_orig = 0;
        // Where a value could start that the bytes so far do not yet complete: only the
        // last `max_len - 1` bytes can hold one.
        let tail = len.saturating_sub(r.max_len.saturating_sub(1));
        let open: Vec<usize> = if eof {
            Vec::new()
        } else {
            (tail..len)
                .filter(|&p| r.first_bytes[usize::from(text[p])] && r.continues(&text[p..]))
                .collect()
        };
        if let Some(matcher) = &r.matcher {
            for m in matcher.find_iter(text) {
                // A longer value may still complete with bytes yet to come.
                if !eof && m.start() + r.max_len > len && r.extends(&text[m.start()..]) {
                    break;
                }
                // So may a value starting before this match, which would be the leftmost
                // (the whole text masks it instead of this one).
                if open.iter().any(|&p| p >= cursor && p < m.start()) {
                    break;
                }
                let (start, end) = (view.orig(m.start()), view.orig_end(m.end()));
                out.extend_from_slice(&buf[cursor_orig..start]);
                out.extend_from_slice(&r.labels[m.pattern().as_usize()]);
                // The wraps inside the value stay, so the text keeps its lines.
                out.extend(
                    buf[start..end]
                        .iter()
                        .filter(|b| matches!(b, b'\r' | b'\n')),
                );
                cursor = m.end();
                cursor_orig = end;
            }
        }
        let hold_from = match open.iter().find(|&&p| p >= cursor) {
            Some(&p) => view.orig(p),
            None => buf.len(),
        };
        if hold_from > cursor_orig {
            out.extend_from_slice(&buf[cursor_orig..hold_from]);
        }
        let consumed = hold_from.max(cursor_orig);
        if consumed > 0 {
            self.cr_wrap = buf[consumed - 1] == b'\r'
                && view
                    .keys
                    .iter()
                    .zip(0..)
                    .any(|(&k, n)| k + n == consumed - 1);
            self.run_before = run_ending_at(buf, consumed, self.run_before);
        }
        drop(view);
        self.pending.drain(..consumed);
    }
}

/// A [`Write`] that masks everything written through it into an inner writer.
/// [`finish`](Self::finish) releases the bytes held back and returns the writer;
/// dropping it without finishing releases them too, ignoring errors.
pub struct RedactWriter<'r, W: Write> {
    stream: RedactStream<'r>,
    inner: Option<W>,
    buf: Vec<u8>,
}

impl<W: Write> fmt::Debug for RedactWriter<'_, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedactWriter")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl<'r, W: Write> RedactWriter<'r, W> {
    /// Masks what is written into `inner` with `redactor`.
    pub fn new(redactor: &'r Redactor, inner: W) -> Self {
        Self {
            stream: redactor.stream(),
            inner: Some(inner),
            buf: Vec::new(),
        }
    }

    /// Writes what was held back, flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.finish_inner()?;
        Ok(self.inner.take().expect("present until finished"))
    }

    fn finish_inner(&mut self) -> io::Result<()> {
        self.stream.finish(&mut self.buf);
        let Some(inner) = self.inner.as_mut() else {
            return Ok(());
        };
        inner.write_all(&self.buf)?;
        self.buf.clear();
        inner.flush()
    }
}

impl<W: Write> Write for RedactWriter<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let inner = self
            .inner
            .as_mut()
            .ok_or_else(|| io::Error::other("write after finish"))?;
        self.stream.push(data, &mut self.buf);
        inner.write_all(&self.buf)?;
        self.buf.clear();
        Ok(data.len())
    }

    /// Flushes the inner writer. Bytes that could be the start of a value stay held back
    /// until more output shows what they are, or until [`finish`](Self::finish).
    fn flush(&mut self) -> io::Result<()> {
        match self.inner.as_mut() {
            Some(inner) => inner.flush(),
            None => Ok(()),
        }
    }
}

impl<W: Write> Drop for RedactWriter<'_, W> {
    fn drop(&mut self) {
        if self.inner.is_some() {
            let _ = self.finish_inner();
        }
    }
}

/// Copies `reader` to `writer` masked, flushing after every read so interactive output
/// stays interactive. Returns the bytes read.
#[cfg(feature = "tokio")]
pub async fn copy_redacted<R, W>(
    redactor: &Redactor,
    mut reader: R,
    mut writer: W,
) -> io::Result<u64>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let mut stream = redactor.stream();
    let mut buf = Zeroizing::new(vec![0u8; 64 * 1024]);
    let mut out = Vec::with_capacity(64 * 1024);
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf[..]).await?;
        if n == 0 {
            stream.finish(&mut out);
        } else {
            total += n as u64;
            stream.push(&buf[..n], &mut out);
        }
        if !out.is_empty() {
            writer.write_all(&out).await?;
            out.clear();
            writer.flush().await?;
        }
        if n == 0 {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD_NO_PAD;

    use super::*;

    fn redactor(pairs: &[(&str, &str)]) -> Redactor {
        let values: Vec<(String, SecretString)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), SecretString::from(*v)))
            .collect();
        Redactor::new(values.iter().map(|(k, v)| (k.as_str(), v)))
    }

    fn bytewise(r: &Redactor, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut s = r.stream();
        for b in input {
            s.push(std::slice::from_ref(b), &mut out);
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn masks_whole_and_split() {
        let r = redactor(&[("A", "secret-one"), ("B", "secret-one-two")]);
        let text = b"x secret-one y secret-one-two z secret-on";
        let want = b"x [REDACTED:A] y [REDACTED:B] z secret-on".to_vec();
        assert_eq!(r.redact(text), want);
        assert_eq!(bytewise(&r, text), want);
    }

    #[test]
    fn encoded_forms() {
        let value = "p@ss word/+&=é";
        let r = redactor(&[("P", value)]);
        let basic = STANDARD_NO_PAD.encode(format!("user:{value}"));
        let encoded = [
            percent_encoding::utf8_percent_encode(value, forms::COMPONENT).to_string(),
            url::form_urlencoded::byte_serialize(value.as_bytes()).collect(),
            basic.clone(),
            hex::encode(value),
            hex::encode_upper(value),
        ];
        for e in encoded {
            let out = String::from_utf8(r.redact(e.as_bytes())).unwrap();
            assert!(out.contains("[REDACTED:P]"), "{e} -> {out}");
        }
    }

    #[test]
    fn releases_bytes_that_cannot_start_a_value() {
        let r = redactor(&[("A", "secret-one")]);
        let mut s = r.stream();
        let mut out = Vec::new();
        s.push(b"Password: ", &mut out);
        assert_eq!(out, b"Password: ");
        s.push(b"sec", &mut out);
        assert_eq!(s.held(), 3);
        s.push(b"ond", &mut out);
        assert_eq!(out, b"Password: second");
    }

    #[test]
    fn short_values_are_named() {
        let r = redactor(&[("SHORT", "abc"), ("LONG", "abcdefgh")]);
        assert_eq!(r.unmasked(), ["SHORT"]);
        assert_eq!(r.redact(b"abc abcdefgh"), b"abc [REDACTED:LONG]");
        assert!(!format!("{r:?}").contains("abcdefgh"));
    }
}
