//! Which failures are worth another attempt, how long to wait, and what of
//! an error body may be quoted.

use std::hash::{BuildHasher as _, Hasher as _};
use std::time::Duration;

use reqwest::header::{self, HeaderMap};
use reqwest::{StatusCode, Url};

use crate::net::join_causes;

/// The longest `Retry-After` honoured; a server asking for more gets this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The longest computed backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How much of an error body is quoted in a message.
const ERROR_SNIPPET_CHARS: usize = 200;

/// Why an attempt failed, sorted by whether another could succeed.
pub(super) enum AttemptError {
    Transient {
        reason: String,
        /// What the server asked for, capped at [`MAX_RETRY_AFTER`].
        retry_after: Option<Duration>,
    },
    Permanent(String),
}

impl AttemptError {
    /// Why, whether or not another attempt could pass.
    pub(super) fn into_reason(self) -> String {
        match self {
            AttemptError::Transient { reason, .. } | AttemptError::Permanent(reason) => reason,
        }
    }
}

/// Sorts a transport failure: timeouts, connection failures and bodies cut
/// short are worth another attempt; a request that cannot be built is not.
pub(super) fn transport_error(error: &reqwest::Error) -> AttemptError {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_body() || error.is_decode() {
        "the response body was cut short or unreadable"
    } else {
        "the request failed"
    };
    // reqwest's own message repeats the URL; its causes say what happened.
    let reason = join_causes(what.to_owned(), std::error::Error::source(error), |t| t);
    if error.is_builder() {
        AttemptError::Permanent(reason)
    } else {
        AttemptError::Transient {
            reason,
            retry_after: None,
        }
    }
}

/// The message for a redirect: where it pointed (its origin only).
pub(super) fn redirect_refusal(status: StatusCode, url: &Url, headers: &HeaderMap) -> String {
    let target = headers
        .get(header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|location| url.join(location).ok());
    let to = match &target {
        Some(target) => format!(" to {}", target.origin().ascii_serialization()),
        None => String::new(),
    };
    format!(
        "redirected (HTTP {}){to}; redirects are not followed so that the token only goes to \
         the configured host: check the Bitcram URL",
        status.as_u16()
    )
}

/// `Retry-After` in its seconds form, capped at [`MAX_RETRY_AFTER`]. The
/// date form is not honoured (backoff applies).
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// The wait after failed attempt `attempt` (from 1): `base` doubled per
/// attempt, capped, with "equal jitter" (half fixed, half random) so that
/// runs failing together do not retry in step.
pub(super) fn backoff_delay(base: Duration, attempt: u32) -> Duration {
    let doubled = base
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    let half = doubled / 2;
    half + half.mul_f64(random_fraction())
}

/// A number in [0, 1). Each `RandomState` has fresh random keys; good
/// enough for jitter, not for anything secret.
fn random_fraction() -> f64 {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// One line of printable text from an error body: the token blanked out,
/// control characters and runs of whitespace made single spaces, cut to
/// [`ERROR_SNIPPET_CHARS`].
pub(super) fn sanitize_snippet(body: &[u8], token: &str) -> String {
    let text = String::from_utf8_lossy(body).replace(token, "[redacted]");
    let printable: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = printable.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= ERROR_SNIPPET_CHARS {
        return line;
    }
    let mut cut: String = line.chars().take(ERROR_SNIPPET_CHARS).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn snippets_are_one_clean_line_without_the_token() {
        let body = b"{\"error\":\"bad token s3cr3t\"}\r\n\x1b[31mred\x1b[0m\t  end";
        assert_eq!(
            sanitize_snippet(body, "s3cr3t"),
            "{\"error\":\"bad token [redacted]\"} [31mred [0m end"
        );
        let long = "x".repeat(500);
        assert_eq!(
            sanitize_snippet(long.as_bytes(), "t").chars().count(),
            ERROR_SNIPPET_CHARS + 1
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(100);
        for attempt in 1..=4 {
            let full = base * (1 << (attempt - 1));
            let delay = backoff_delay(base, attempt);
            assert!(delay >= full / 2 && delay <= full, "{attempt}: {delay:?}");
        }
        assert!(backoff_delay(base, 40) <= MAX_BACKOFF);
    }

    #[test]
    fn retry_after_seconds_are_capped() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("3600"));
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
