//! Log output kept in memory.

/// Log output kept in memory, for tests that check what a flow logs: hand
/// `move || capture.clone()` to a `tracing_subscriber::fmt()` builder's `with_writer`,
/// run the flow, then read [`LogCapture::text`].
///
/// ```
/// use std::io::Write as _;
/// let capture = coffer_testkit::LogCapture::default();
/// let mut writer = capture.clone();
/// writer.write_all(b"TRACE something happened").unwrap();
/// assert!(capture.text().contains("TRACE"));
/// ```
#[derive(Clone, Default)]
pub struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    /// Everything written so far, as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::fmt::Debug for LogCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // What a test captured may be exactly what must not leak: only its size.
        let len = self.0.lock().map_or(0, |b| b.len());
        f.debug_struct("LogCapture").field("bytes", &len).finish()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
