/// Where a secret lives: the data an envelope is bound to.
///
/// The context is never stored in the envelope; the caller supplies it again to
/// [`open`](crate::Keyring::open). Its canonical encoding is length-prefixed, so
/// `("ab", "c")` and `("a", "bc")` are different contexts:
///
/// ```text
/// u32 len(scope) || scope || u32 len(name) || name || 0x00            (no version)
/// u32 len(scope) || scope || u32 len(name) || name || 0x01 || u64 v  (version v)
/// ```
///
/// (all integers big-endian). A store that assigns versions itself binds what it knows
/// before the write and documents it.
///
/// ```
/// use coffer_envelope::Context;
/// let ctx = Context::new("tenant-a", "openai_api_key").with_version(3);
/// assert_eq!(ctx.version(), Some(3));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Context<'a> {
    scope: &'a str,
    name: &'a str,
    version: Option<u64>,
}

impl<'a> Context<'a> {
    /// A context for secret `name` of tenant `scope`, without a version.
    pub fn new(scope: &'a str, name: &'a str) -> Self {
        Self {
            scope,
            name,
            version: None,
        }
    }

    /// The same context bound to one version of the secret.
    #[must_use]
    pub fn with_version(mut self, version: u64) -> Self {
        self.version = Some(version);
        self
    }

    /// The scope (tenant).
    pub fn scope(&self) -> &'a str {
        self.scope
    }

    /// The secret's name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The version, if bound.
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// Length of the canonical encoding in bytes.
    pub fn encoded_len(&self) -> usize {
        4 + self.scope.len() + 4 + self.name.len() + 1 + if self.version.is_some() { 8 } else { 0 }
    }

    /// Appends the canonical encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        for part in [self.scope, self.name] {
            // Scope and name are validated far below 4 GiB by every store; saturate
            // rather than truncate so an absurd input still encodes unambiguously.
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        match self.version {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_unambiguous() {
        assert_ne!(
            Context::new("ab", "c").encode(),
            Context::new("a", "bc").encode()
        );
        assert_ne!(
            Context::new("a", "b").encode(),
            Context::new("a", "b").with_version(0).encode()
        );
        let ctx = Context::new("t", "n").with_version(258);
        assert_eq!(
            ctx.encode(),
            [
                0, 0, 0, 1, b't', 0, 0, 0, 1, b'n', 1, 0, 0, 0, 0, 0, 0, 1, 2
            ]
        );
        assert_eq!(ctx.encode().len(), ctx.encoded_len());
    }
}
