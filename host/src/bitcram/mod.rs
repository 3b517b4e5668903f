//! The Bitcram client: finds a checkout by its number, then fetches the
//! checkout's price list and its warehouse's stock, concurrently.
//!
//! Bodies come back byte for byte as received: product data is the
//! transform's to parse. The checkout's discovery body is read whole and
//! checked here; the two lists arrive in chunks ([`BitcramClient::open`]),
//! and whoever takes them checks their envelopes on the way (JSON,
//! complete, an `items` array, no `count`/`total` above the items carried:
//! [`check_reader`], [`split_reader`]), so that a broken or partial list is
//! an error and never a smaller catalog downstream.
//!
//! Transport rules: HTTPS, or plain HTTP to a loopback address (or anywhere
//! with `allow_insecure_http`); redirects are never followed, so the bearer
//! token only goes to the configured host; bounded retries with exponential
//! backoff and jitter on 429, 5xx, connection failures and timeouts, and on
//! a discovery body cut short, honouring `Retry-After`; 401, 403 and other
//! 4xx fail at once. A list whose body is cut off after it started to
//! arrive is not asked for again: its chunks end in the error.
//! Bodies are asked for gzip-compressed (`Accept-Encoding: gzip`) and
//! decompressed as they arrive; a server that does not compress works the
//! same. Every check, digest and snapshot sees the decompressed bytes, and
//! a body larger than `max_body_bytes` once decompressed is an error.

mod checkout;
mod client;
mod envelope;
mod receive;
mod retry;
mod url;

use std::time::Duration;

use reqwest::Url;

pub use client::{BitcramClient, Checkout, Endpoint, ListStream, Opened};
pub use envelope::{SplitError, check_envelope, check_reader, split_list, split_reader};
pub use retry::MAX_RETRY_AFTER;
pub use url::{check_base_url, parse_base_url};

/// Default for [`BitcramConfig::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`BitcramConfig::request_timeout`]: generous for a server
/// that builds a large list before it answers.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Default for [`BitcramConfig::max_attempts`].
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Default for [`BitcramConfig::retry_base_delay`]: waits of about 0.5, 1,
/// 2 and 4 s between five attempts.
pub const DEFAULT_RETRY_BASE_DELAY: Duration = Duration::from_millis(500);

/// Default for [`BitcramConfig::max_body_bytes`]: some two million
/// products of the price list's usual size (about 470 bytes each).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1 << 30;

/// How to reach Bitcram.
#[derive(Debug, Clone)]
pub struct BitcramConfig {
    /// The instance's URL; the API is under `{base_url}/api/`. See
    /// [`parse_base_url`].
    pub base_url: Url,
    /// Allow plain `http://` to hosts other than loopback addresses.
    pub allow_insecure_http: bool,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Limit on the wait for a response's headers, and on a body read whole
    /// (the checkout's discovery). A list's body, which arrives as fast as
    /// its taker takes it, is bounded by the deadline given to
    /// [`BitcramClient::open`] instead.
    pub request_timeout: Duration,
    /// Attempts per call, the first included (at least 1).
    pub max_attempts: u32,
    /// The wait before the second attempt; it doubles with each further one.
    pub retry_base_delay: Duration,
    /// The largest body taken, counted as decompressed: a body that would
    /// inflate past it is an error, not an exhausted memory.
    pub max_body_bytes: u64,
}

impl BitcramConfig {
    /// The defaults for `base_url`.
    pub fn new(base_url: Url) -> Self {
        Self {
            base_url,
            allow_insecure_http: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_base_delay: DEFAULT_RETRY_BASE_DELAY,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}
