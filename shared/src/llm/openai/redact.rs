//! What may be kept of an upstream's error body: scrubbed of credentials, then cut short.
//!
//! The one rule for the text an LLM server sends back with a failure status: before it is kept
//! in [`LlmError::Status`](crate::llm::LlmError::Status), the configured API key, any
//! `Bearer …` token and any `sk-…`-looking key are replaced by `[REDACTED]` (servers echo what
//! they were sent, and proxies echo headers), then the text is cut to [`MAX_ERROR_BODY_CHARS`]
//! characters. Scrubbing comes first, so a cut never leaves half a key behind.
//!
//! Pure text in, text out. It must not decide where the body goes: it is for a log field,
//! never for a client, and never part of an error's `Display`.

/// How much of an error body is kept in [`LlmError::Status`](crate::llm::LlmError::Status).
pub(super) const MAX_ERROR_BODY_CHARS: usize = 500;

/// What stands in for a secret.
const REDACTED: &str = "[REDACTED]";

/// How many key characters after `sk-` make it look like a key (real ones have 40 and more;
/// short words such as `sk-learn` are left alone).
const MIN_KEY_CHARS: usize = 12;

/// The error body to keep: lossy UTF-8, [`scrub`]bed, then at most [`MAX_ERROR_BODY_CHARS`]
/// characters, marked with `…` when cut.
pub(super) fn error_body(body: &[u8], api_key: Option<&str>) -> String {
    let text = scrub(&String::from_utf8_lossy(body), api_key);
    let mut out: String = text.chars().take(MAX_ERROR_BODY_CHARS).collect();
    if text.chars().nth(MAX_ERROR_BODY_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// `text` with every occurrence of `api_key`, every `Bearer <token>` (any case) and every
/// `sk-…` key replaced by `[REDACTED]`. The word `Bearer` and the text around stay.
pub(super) fn scrub(text: &str, api_key: Option<&str>) -> String {
    let text = match api_key {
        Some(key) if !key.is_empty() => text.replace(key, REDACTED),
        _ => text.to_owned(),
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut kept, mut i) = (0, 0);
    while i < bytes.len() {
        let at_word_start = i == 0 || !is_word_byte(bytes[i - 1]);
        match if at_word_start { secret_at(bytes, i) } else { None } {
            Some((from, to)) => {
                // Both ends sit next to ASCII bytes, so they are char boundaries.
                out.push_str(&text[kept..from]);
                out.push_str(REDACTED);
                (kept, i) = (to, to);
            }
            None => i += 1,
        }
    }
    out.push_str(&text[kept..]);
    out
}

/// The byte range to hide when a secret starts at `i`: the whole `sk-…` key, or the token
/// after `Bearer` and its blanks.
fn secret_at(bytes: &[u8], i: usize) -> Option<(usize, usize)> {
    let rest = &bytes[i..];
    if let Some(key) = rest.strip_prefix(b"sk-") {
        let len = run(key, is_key_byte);
        return (len >= MIN_KEY_CHARS).then_some((i, i + 3 + len));
    }
    let word = rest.get(..6).filter(|w| w.eq_ignore_ascii_case(b"bearer"))?;
    let blanks = run(&rest[word.len()..], |b| b == b' ' || b == b'\t');
    let from = i + word.len() + blanks;
    let len = run(&bytes[from..], is_token_byte);
    (blanks > 0 && len > 0).then_some((from, from + len))
}

/// How many bytes at the start of `bytes` satisfy `pred`.
fn run(bytes: &[u8], pred: impl Fn(u8) -> bool) -> usize {
    bytes.iter().take_while(|&&b| pred(b)).count()
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Characters of an `sk-` key, and `*` for the masked forms servers print (`sk-proj-****abcd`).
fn is_key_byte(b: u8) -> bool {
    is_word_byte(b) || b == b'*'
}

/// An RFC 6750 `b64token`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "my-configured-key-0042";

    #[test]
    fn the_configured_key_is_removed_wherever_it_stands() {
        assert_eq!(
            scrub(&format!("bad key {KEY}, or x{KEY}y"), Some(KEY)),
            "bad key [REDACTED], or x[REDACTED]y"
        );
        assert_eq!(scrub("nothing secret", Some("")), "nothing secret");
        assert_eq!(scrub("nothing secret", None), "nothing secret");
    }

    #[test]
    fn bearer_tokens_lose_their_token_in_any_case() {
        assert_eq!(
            scrub(r#"{"authorization": "Bearer abc.DEF-123_x~+/="}"#, None),
            r#"{"authorization": "Bearer [REDACTED]"}"#
        );
        assert_eq!(scrub("got bearer\teyJhbGciOi.x.y ok", None), "got bearer\t[REDACTED] ok");
        assert_eq!(scrub("a Bearer, not a token", None), "a Bearer, not a token");
        assert_eq!(scrub("Bearer", None), "Bearer");
    }

    #[test]
    fn sk_keys_are_removed_but_words_that_merely_contain_sk_stay() {
        let openai =
            r#"{"error": {"message": "Incorrect API key provided: sk-proj-AbC123dEf456GhI789. See"}}"#;
        assert_eq!(
            scrub(openai, None),
            r#"{"error": {"message": "Incorrect API key provided: [REDACTED]. See"}}"#
        );
        assert_eq!(scrub("key sk-proj-****************abcd here", None), "key [REDACTED] here");
        for kept in ["task-force-of-twelve-people", "disk-usage-report-2024-01", "sk-learn", "ask-me"] {
            assert_eq!(scrub(kept, None), kept);
        }
    }

    #[test]
    fn text_around_secrets_survives_including_non_ascii() {
        assert_eq!(
            scrub("échec: sk-abcdefghijklmnop — Bearer t0k3n → réessayez", None),
            "échec: [REDACTED] — Bearer [REDACTED] → réessayez"
        );
    }

    #[test]
    fn the_body_is_scrubbed_before_it_is_cut() {
        let body = format!("{} sk-{}", "e".repeat(490), "k".repeat(40));
        let kept = error_body(body.as_bytes(), None);
        assert_eq!(kept.chars().count(), MAX_ERROR_BODY_CHARS + 1);
        assert!(kept.ends_with(" [REDACTED…") && !kept.contains("kkk"), "{kept}");
        assert_eq!(error_body(b"short", Some(KEY)), "short");
        assert_eq!(error_body(b"\xff busy", None), "\u{fffd} busy");
    }
}
