//! What the leak checks of several test files share: the forms a secret could leak in.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

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
