//! The Bitcram client: finds a checkout by its number, then fetches the
//! checkout's price list and its warehouse's stock, concurrently.
//!
//! Bodies come back byte for byte as received: product data is the
//! transform's to parse. The host only checks each list's envelope, cheaply
//! (JSON, complete, an `items` array, no `count`/`total` above the items
//! carried), so that a broken or partial list is an error here and never a
//! smaller catalog downstream. Each check runs on a blocking thread:
//! [`BitcramClient::fetch`] waits for them, [`BitcramClient::download`]
//! hands them over still running, so that a sync hashes the bodies and
//! starts its transform meanwhile, taking each list only once it passed.
//!
//! Transport rules: HTTPS, or plain HTTP to a loopback address (or anywhere
//! with `allow_insecure_http`); redirects are never followed, so the bearer
//! token only goes to the configured host; bounded retries with exponential
//! backoff and jitter on 429, 5xx, connection failures, timeouts and bodies
//! cut short, honouring `Retry-After`; 401, 403 and other 4xx fail at once.

use std::fmt;
use std::hash::{BuildHasher as _, Hasher as _};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use tracing::Instrument as _;

use crate::net::{install_tls_provider, join_causes};
use crate::secrets::Token;

/// Default for [`BitcramConfig::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`BitcramConfig::request_timeout`]: a whole catalog of
/// 100k items is tens of megabytes.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Default for [`BitcramConfig::max_attempts`].
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Default for [`BitcramConfig::retry_base_delay`]: waits of about 0.5, 1,
/// 2 and 4 s between five attempts.
pub const DEFAULT_RETRY_BASE_DELAY: Duration = Duration::from_millis(500);
/// The longest `Retry-After` honoured; a server asking for more gets this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The longest computed backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How much of an error body is read to quote from it.
const ERROR_BODY_READ_BYTES: usize = 4096;
/// How much of an error body is quoted in a message.
const ERROR_SNIPPET_CHARS: usize = 200;
/// The largest `Content-Length` a body buffer is sized for up front: a
/// mistaken or hostile header must not reserve unbounded memory (a larger
/// body still arrives, into a growing buffer).
const MAX_PRESIZED_BODY: u64 = 1 << 30;

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
    /// Limit on one whole request, body included.
    pub request_timeout: Duration,
    /// Attempts per call, the first included (at least 1).
    pub max_attempts: u32,
    /// The wait before the second attempt; it doubles with each further one.
    pub retry_base_delay: Duration,
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
        }
    }
}

/// Parses and checks a Bitcram base URL (see [`check_base_url`]).
pub fn parse_base_url(text: &str, allow_insecure_http: bool) -> anyhow::Result<Url> {
    let url = Url::parse(text.trim())
        .map_err(|e| anyhow!("invalid Bitcram URL {:?}: {e}", text.trim()))?;
    check_base_url(&url, allow_insecure_http)?;
    Ok(url)
}

/// Checks that the bearer token may be sent to `url`: `https://`, or
/// `http://` to a loopback address (127.0.0.0/8, ::1, `localhost`) unless
/// `allow_insecure_http`; no user name or password, query or fragment.
pub fn check_base_url(url: &Url, allow_insecure_http: bool) -> anyhow::Result<()> {
    if !url.username().is_empty() || url.password().is_some() {
        // Not quoted: the URL holds a password.
        bail!("the Bitcram URL must not carry a user name or password");
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure_http || is_loopback(url) => {}
        "http" => bail!(
            "the Bitcram URL {url} is plain http:// to a host that is not a loopback address: \
             the token would travel unencrypted; use https:// (or allow insecure HTTP explicitly)"
        ),
        other => bail!("the Bitcram URL {url} has the scheme {other}: only https:// is supported"),
    }
    if url.host_str().is_none_or(str::is_empty) {
        bail!("the Bitcram URL {url} has no host");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("the Bitcram URL {url} must not have a query or a fragment");
    }
    Ok(())
}

/// Whether `url`'s host is this machine: 127.0.0.0/8 (also as an
/// IPv4-mapped IPv6 address), ::1 or `localhost`.
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// The three calls, named in logs, errors and stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Checkout discovery by number.
    Checkout,
    /// The checkout's price list (the catalog).
    PriceList,
    /// The warehouse's stock.
    Stock,
}

impl Endpoint {
    /// The name used in logs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Checkout => "checkout",
            Endpoint::PriceList => "price_list",
            Endpoint::Stock => "stock",
        }
    }
}

/// What one call cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallStats {
    /// Size of the body returned.
    pub bytes: u64,
    /// Attempts made, the successful one included.
    pub attempts: u32,
    /// Wall time from the first attempt to the end, waits included.
    pub elapsed: Duration,
}

/// The checkout found by its number.
#[derive(Debug, Clone)]
pub struct Checkout {
    /// The checkout's id.
    pub id: u64,
    /// Its warehouse's id.
    pub warehouse_id: u64,
    /// The discovery response, as received.
    pub body: Vec<u8>,
    pub stats: CallStats,
}

/// Everything one sync reads from Bitcram, every body checked.
#[derive(Debug, Clone)]
pub struct Extract {
    pub checkout: Checkout,
    /// The price-list response, as received.
    pub price_list: Vec<u8>,
    /// The stock response, as received.
    pub stock: Vec<u8>,
    /// Items in the price list's envelope.
    pub price_list_items: usize,
    /// Items in the stock's envelope.
    pub stock_items: usize,
    pub price_list_stats: CallStats,
    pub stock_stats: CallStats,
}

/// Everything one sync reads from Bitcram, downloaded; the two lists'
/// envelope checks may still be running (see [`BitcramClient::download`]).
#[derive(Debug)]
pub struct Download {
    pub checkout: Checkout,
    /// The stock response, as received, with its check.
    pub stock: PendingList,
    /// The price-list response, as received, with its check.
    pub price_list: PendingList,
}

impl Download {
    /// Waits for both checks: every body checked.
    pub async fn checked(self) -> anyhow::Result<Extract> {
        let (price_list_stats, stock_stats) = (self.price_list.stats, self.stock.stats);
        let ((price_list, price_list_items), (stock, stock_items)) =
            tokio::try_join!(self.price_list.checked(), self.stock.checked())?;
        Ok(Extract {
            checkout: self.checkout,
            // Neither conversion copies: each `Bytes` is the only one left.
            price_list: price_list.into(),
            stock: stock.into(),
            price_list_items,
            stock_items,
            price_list_stats,
            stock_stats,
        })
    }
}

/// A list body downloaded whole, whose envelope check runs on a blocking
/// thread: the caller may read the bytes meanwhile (to hash them, say), and
/// must take them through [`checked`](Self::checked) before trusting them.
#[derive(Debug)]
pub struct PendingList {
    /// The call, for messages.
    call: String,
    body: Bytes,
    pub stats: CallStats,
    check: tokio::task::JoinHandle<Result<usize, String>>,
}

impl PendingList {
    /// Starts checking `body` on a blocking thread.
    fn start(call: &Call, body: Vec<u8>, stats: CallStats) -> Self {
        let body = Bytes::from(body);
        let shared = body.clone();
        let check = tokio::task::spawn_blocking(move || check_envelope(&shared));
        Self {
            call: call.to_string(),
            body,
            stats,
            check,
        }
    }

    /// The body as received, not yet known to be a complete list.
    pub fn unchecked_body(&self) -> &Bytes {
        &self.body
    }

    /// The body and its item count once the check passed, or an error naming
    /// the endpoint.
    pub async fn checked(self) -> anyhow::Result<(Bytes, usize)> {
        let call = self.call;
        let items = self
            .check
            .await
            .map_err(|e| anyhow!("{call}: checking the body failed: {e}"))?
            .map_err(|reason| anyhow!("{call}: {reason}"))?;
        tracing::info!(call = %call, items, "Bitcram list checked");
        Ok((self.body, items))
    }
}

/// A Bitcram API client for one instance and one token.
#[derive(Debug)]
pub struct BitcramClient {
    http: reqwest::Client,
    /// The configured URL, its path ending in `/` so that API paths join
    /// below it.
    base_url: Url,
    /// `Bearer <token>`, marked sensitive.
    authorization: HeaderValue,
    /// Kept to blank the token out of any error body quoted.
    token: Token,
    max_attempts: u32,
    retry_base_delay: Duration,
}

impl BitcramClient {
    /// Checks `config` and builds the HTTP client.
    pub fn new(config: BitcramConfig, token: Token) -> anyhow::Result<Self> {
        install_tls_provider();
        check_base_url(&config.base_url, config.allow_insecure_http)?;
        if config.max_attempts == 0 {
            bail!("Bitcram max attempts must be at least 1");
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| anyhow!("the Bitcram token cannot be sent in an HTTP header"))?;
        authorization.set_sensitive(true);
        let mut builder = reqwest::Client::builder();
        if is_loopback(&config.base_url) {
            // A proxy from the environment cannot reach this machine's
            // loopback, and would see the token of a plain-HTTP call.
            builder = builder.no_proxy();
        }
        let http = builder
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // Following a redirect would hand the token to whoever it names.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("bitcram-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow!("creating the HTTP client: {e}"))?;
        let mut base_url = config.base_url;
        if !base_url.path().ends_with('/') {
            let path = format!("{}/", base_url.path());
            base_url.set_path(&path);
        }
        Ok(Self {
            http,
            base_url,
            authorization,
            token,
            max_attempts: config.max_attempts,
            retry_base_delay: config.retry_base_delay,
        })
    }

    /// Finds the checkout numbered `number`: its id and its warehouse's id.
    /// No match, several matches, or a match for another number is an error.
    pub async fn find_checkout(&self, number: &str) -> anyhow::Result<Checkout> {
        let number = number.trim();
        if number.is_empty() {
            bail!("the checkout number is empty");
        }
        let filter = serde_json::json!({ "checkouts.checkout_number": number }).to_string();
        let call = Call {
            endpoint: Endpoint::Checkout,
            path: "api/checkouts/index".to_owned(),
            query: vec![("where", filter)],
        };
        let (body, stats) = self.get_call(&call).await?;
        let (body, _) = PendingList::start(&call, body, stats).checked().await?;
        let (id, warehouse_id) =
            checkout_ids(&body, number).map_err(|reason| anyhow!("{call}: {reason}"))?;
        Ok(Checkout {
            id,
            warehouse_id,
            body: body.into(),
            stats,
        })
    }

    /// Finds the checkout, then fetches its price list and its warehouse's
    /// stock concurrently; either failing fails the whole. Every body is
    /// checked when this returns.
    pub async fn fetch(&self, checkout_number: &str) -> anyhow::Result<Extract> {
        self.download(checkout_number).await?.checked().await
    }

    /// As [`fetch`](Self::fetch), but returns as soon as the last byte has
    /// arrived: the lists' envelope checks (tens of milliseconds of CPU for a
    /// large catalog) are left running, for the caller to overlap with other
    /// work.
    pub async fn download(&self, checkout_number: &str) -> anyhow::Result<Download> {
        let started = Instant::now();
        let checkout = self.find_checkout(checkout_number).await?;
        let price_list = Call {
            endpoint: Endpoint::PriceList,
            path: format!("api/checkouts/index/{}/price_list", checkout.id),
            query: Vec::new(),
        };
        let stock = Call {
            endpoint: Endpoint::Stock,
            path: "api/stock_items/index".to_owned(),
            query: vec![
                ("list_light", "true".to_owned()),
                (
                    "where",
                    serde_json::json!({ "warehouse_id": checkout.warehouse_id }).to_string(),
                ),
            ],
        };
        let ((price_list_body, price_list_stats), (stock_body, stock_stats)) =
            tokio::try_join!(self.get_call(&price_list), self.get_call(&stock))?;
        // The checks start once every byte is in: CPU spent on one list
        // while the other downloads would only slow the download.
        let price_list = PendingList::start(&price_list, price_list_body, price_list_stats);
        let stock = PendingList::start(&stock, stock_body, stock_stats);
        tracing::info!(
            checkout_id = checkout.id,
            warehouse_id = checkout.warehouse_id,
            price_list_bytes = price_list.stats.bytes,
            stock_bytes = stock.stats.bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "fetched the catalog and stock from Bitcram"
        );
        Ok(Download {
            checkout,
            stock,
            price_list,
        })
    }

    /// GETs `call` inside its tracing span.
    async fn get_call(&self, call: &Call) -> anyhow::Result<(Vec<u8>, CallStats)> {
        let span = tracing::info_span!("bitcram_call", endpoint = call.endpoint.name());
        self.get(call).instrument(span).await
    }

    /// GETs `call`, retrying what may pass on another attempt.
    async fn get(&self, call: &Call) -> anyhow::Result<(Vec<u8>, CallStats)> {
        let url = self
            .base_url
            .join(&call.path)
            .map_err(|e| anyhow!("{call}: building the URL: {e}"))?;
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let attempt_started = Instant::now();
            match self.attempt(&url, &call.query).await {
                Ok((status, body)) => {
                    let stats = CallStats {
                        bytes: body.len() as u64,
                        attempts: attempt,
                        elapsed: started.elapsed(),
                    };
                    tracing::info!(
                        status = status.as_u16(),
                        bytes = stats.bytes,
                        attempt,
                        elapsed_ms = stats.elapsed.as_millis() as u64,
                        "Bitcram call succeeded"
                    );
                    return Ok((body, stats));
                }
                Err(AttemptError::Permanent(reason)) => bail!("{call}: {reason}"),
                Err(AttemptError::Transient {
                    reason,
                    retry_after,
                }) => {
                    if attempt >= self.max_attempts {
                        bail!("{call}: {reason} (gave up after {attempt} attempts)");
                    }
                    let delay = retry_after
                        .unwrap_or_else(|| backoff_delay(self.retry_base_delay, attempt));
                    tracing::warn!(
                        attempt,
                        elapsed_ms = attempt_started.elapsed().as_millis() as u64,
                        delay_ms = delay.as_millis() as u64,
                        error = %reason,
                        "Bitcram call failed; retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// One GET: the body of a 2xx, or why not and whether to try again.
    async fn attempt(
        &self,
        url: &Url,
        query: &[(&str, String)],
    ) -> Result<(StatusCode, Vec<u8>), AttemptError> {
        let response = self
            .http
            .get(url.clone())
            .header(header::AUTHORIZATION, self.authorization.clone())
            .header(header::ACCEPT, "application/json")
            .query(query)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok((status, read_body(response).await?));
        }
        if status.is_redirection() {
            return Err(AttemptError::Permanent(redirect_refusal(
                status,
                url,
                response.headers(),
            )));
        }
        let retry_after = retry_after(response.headers());
        let snippet = self.error_snippet(response).await;
        let quoted = if snippet.is_empty() {
            String::new()
        } else {
            format!(": {snippet}")
        };
        Err(match status {
            StatusCode::UNAUTHORIZED => AttemptError::Permanent(format!(
                "token rejected (HTTP 401): the token is wrong or has expired{quoted}"
            )),
            StatusCode::FORBIDDEN => AttemptError::Permanent(format!(
                "forbidden (HTTP 403): the token may not read this{quoted}"
            )),
            s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => {
                AttemptError::Transient {
                    reason: format!("HTTP {s}{quoted}"),
                    retry_after,
                }
            }
            s => AttemptError::Permanent(format!("HTTP {s}{quoted}")),
        })
    }

    /// The start of an error body, on one line, without control characters
    /// or the token, for a message.
    async fn error_snippet(&self, mut response: reqwest::Response) -> String {
        let mut head = Vec::new();
        while head.len() < ERROR_BODY_READ_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => head.extend_from_slice(&chunk),
                _ => break,
            }
        }
        head.truncate(ERROR_BODY_READ_BYTES);
        sanitize_snippet(&head, self.token.expose())
    }
}

/// One API call: which, and where.
struct Call {
    endpoint: Endpoint,
    /// Relative to the base URL.
    path: String,
    query: Vec<(&'static str, String)>,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bitcram {} (/{})", self.endpoint.name(), self.path)
    }
}

/// Why an attempt failed, sorted by whether another could succeed.
enum AttemptError {
    Transient {
        reason: String,
        /// What the server asked for, capped at [`MAX_RETRY_AFTER`].
        retry_after: Option<Duration>,
    },
    Permanent(String),
}

/// Sorts a transport failure: timeouts, connection failures and bodies cut
/// short are worth another attempt; a request that cannot be built is not.
/// Reads a body chunk by chunk into one buffer sized from its
/// `Content-Length` (up to [`MAX_PRESIZED_BODY`]), rather than gathering
/// the chunks and copying them once more. A body shorter than its
/// `Content-Length` is an error worth another attempt.
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, AttemptError> {
    let expected = response.content_length();
    let capacity = expected.map_or(0, |len| len.min(MAX_PRESIZED_BODY) as usize);
    let mut body: Vec<u8> = Vec::with_capacity(capacity);
    advise_huge_pages(&mut body);
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(&e))? {
        body.extend_from_slice(&chunk);
    }
    match expected {
        Some(len) if len != body.len() as u64 => Err(AttemptError::Transient {
            reason: format!(
                "the response body was cut short: {} of {len} bytes",
                body.len()
            ),
            retry_after: None,
        }),
        _ => Ok(body),
    }
}

/// Asks Linux to back a large body's buffer with huge pages where it can.
/// Filling 50 MB of fresh memory otherwise takes some 13,000 page faults,
/// which cost more than the download itself on a fast link (measured on a
/// 2-core VM: 35 ms in 4 KiB pages, 12 ms in 2 MiB ones). Advice only: a
/// kernel without transparent huge pages ignores or refuses it, and the
/// buffer works the same.
fn advise_huge_pages(buffer: &mut Vec<u8>) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        const WORTH_IT: usize = 4 << 20;
        let capacity = buffer.capacity();
        if capacity < WORTH_IT {
            return;
        }
        let start = buffer.as_mut_ptr() as usize;
        let aligned = start.next_multiple_of(PAGE);
        let len = (capacity - (aligned - start)) / PAGE * PAGE;
        // SAFETY: madvise only gives advice about pages that lie wholly
        // inside the buffer's allocation; MADV_HUGEPAGE never changes what
        // the memory holds.
        let refused =
            unsafe { libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE) } != 0;
        if refused {
            tracing::debug!("the kernel refused huge pages for a body buffer");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buffer;
}

fn transport_error(error: &reqwest::Error) -> AttemptError {
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
fn redirect_refusal(status: StatusCode, url: &Url, headers: &HeaderMap) -> String {
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
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
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
fn backoff_delay(base: Duration, attempt: u32) -> Duration {
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
fn sanitize_snippet(body: &[u8], token: &str) -> String {
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

/// A list response's envelope. The items are skipped, not built: this
/// checks the JSON without holding it.
#[derive(Deserialize)]
struct ListEnvelope {
    items: Vec<IgnoredAny>,
    count: Option<Value>,
    total: Option<Value>,
}

/// Checks a list body: one complete JSON object with an `items` array, and
/// no `count` or `total` larger than the items it carries (no paginated
/// response has ever been seen; one would be a partial list). Returns the
/// number of items.
fn check_envelope(body: &[u8]) -> Result<usize, String> {
    // A derived struct also accepts a JSON array as its fields in order.
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err("the body is empty".to_owned()),
        Some(b'{') => {}
        Some(_) if serde_json::from_slice::<IgnoredAny>(body).is_ok() => {
            return Err("the body is JSON but not an object with an `items` array".to_owned());
        }
        Some(_) => return Err("the body is not JSON".to_owned()),
    }
    let envelope: ListEnvelope = serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Eof => format!("the body is cut short ({e})"),
            Category::Syntax | Category::Io => format!("the body is not JSON ({e})"),
            Category::Data => format!("the body is not a list {{\"items\": [...]}} ({e})"),
        }
    })?;
    let items = envelope.items.len();
    for (field, value) in [("count", &envelope.count), ("total", &envelope.total)] {
        if let Some(value) = value
            && reported_len(value).is_some_and(|reported| reported > items as f64)
        {
            return Err(format!(
                "the response reports {field} {value} but carries {items} items; a partial list \
                 is refused"
            ));
        }
    }
    Ok(items)
}

/// A `count` or `total` as a number, if it is one (or a numeric string).
/// Other shapes are unknown and cannot be compared.
///
/// Guess: no Bitcram response has been seen with a count, total or any
/// pagination field (see the API notes); these two names are the likeliest,
/// and a larger one than the items carried is refused rather than trusted.
fn reported_len(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// One checkout in the discovery response; other fields are ignored.
#[derive(Deserialize)]
struct CheckoutItem {
    id: Option<Value>,
    checkout_number: Option<Value>,
    warehouse: Option<WarehouseRef>,
}

#[derive(Deserialize)]
struct WarehouseRef {
    id: Option<Value>,
}

#[derive(Deserialize)]
struct CheckoutList {
    items: Vec<CheckoutItem>,
}

/// The checkout id and warehouse id from a discovery body already checked
/// by [`check_envelope`].
fn checkout_ids(body: &[u8], number: &str) -> Result<(u64, u64), String> {
    let list: CheckoutList = serde_json::from_slice(body)
        .map_err(|e| format!("the checkout list is not as expected ({e})"))?;
    let item = match list.items.as_slice() {
        [] => return Err(format!("no checkout has the number {number}")),
        [item] => item,
        items => {
            let ids: Vec<String> = items
                .iter()
                .map(|i| i.id.as_ref().map_or("?".to_owned(), Value::to_string))
                .collect();
            return Err(format!(
                "{} checkouts have the number {number} (ids {}); expected one",
                items.len(),
                ids.join(", ")
            ));
        }
    };
    // A server that ignored the filter would return some checkout: make
    // sure it is the one asked for.
    if let Some(found) = &item.checkout_number
        && !same_number(found, number)
    {
        return Err(format!(
            "asked for checkout number {number} but got checkout number {found}"
        ));
    }
    let id = item
        .id
        .as_ref()
        .and_then(as_id)
        .ok_or_else(|| format!("checkout {number} has no usable `id`"))?;
    let warehouse_id = item
        .warehouse
        .as_ref()
        .and_then(|w| w.id.as_ref())
        .and_then(as_id)
        .ok_or_else(|| format!("checkout {number} has no usable `warehouse.id`"))?;
    Ok((id, warehouse_id))
}

/// An id sent as a number or as a string of digits.
fn as_id(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }
}

/// Whether a `checkout_number` in a response is `wanted` (`3`, `"3"` and
/// `"03"` are the same number).
fn same_number(found: &Value, wanted: &str) -> bool {
    let found = match found {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => return false,
    };
    match (found.parse::<u64>(), wanted.parse::<u64>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => found == wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes() {
        assert_eq!(check_envelope(br#"{"items":[1,{"a":2}]}"#), Ok(2));
        assert_eq!(check_envelope(br#" {"count":2,"items":[1,2]} "#), Ok(2));
        assert_eq!(check_envelope(br#"{"items":[],"total":null}"#), Ok(0));
        let err = |body: &[u8]| check_envelope(body).unwrap_err();
        assert!(err(br#"{"items":[1,2"#).contains("cut short"));
        assert!(err(b"<html>").contains("not JSON"));
        assert!(err(b"").contains("empty"));
        assert!(err(br#"[[1,2]]"#).contains("not an object"));
        assert!(err(br#"{"data":[]}"#).contains("items"));
        assert!(err(br#"{"items":{}}"#).contains("items"));
        assert!(err(br#"{"items":[1],"count":2}"#).contains("count 2"));
        assert!(err(br#"{"items":[1],"total":"3"}"#).contains("total \"3\""));
        assert!(err(br#"{"items":[1]} x"#).contains("not JSON"));
    }

    #[test]
    fn checkout_ids_accept_numbers_and_numeric_strings() {
        let body = br#"{"items":[{"id":"17","checkout_number":"03","warehouse":{"id":5}}]}"#;
        assert_eq!(checkout_ids(body, "3"), Ok((17, 5)));
        let body = br#"{"items":[{"id":17,"warehouse":{"id":"0005"}}]}"#;
        assert_eq!(checkout_ids(body, "3"), Ok((17, 5)));
        let body = br#"{"items":[{"id":17,"checkout_number":4,"warehouse":{"id":5}}]}"#;
        assert!(
            checkout_ids(body, "3")
                .unwrap_err()
                .contains("got checkout number 4")
        );
        let body = br#"{"items":[{"id":-1,"warehouse":{"id":5}}]}"#;
        assert!(checkout_ids(body, "3").unwrap_err().contains("`id`"));
        let body = br#"{"items":[{"id":17}]}"#;
        assert!(
            checkout_ids(body, "3")
                .unwrap_err()
                .contains("warehouse.id")
        );
    }

    #[test]
    fn loopback_hosts() {
        for url in [
            "http://127.0.0.1:1",
            "http://127.9.9.9",
            "http://[::1]:8",
            "http://LocalHost",
            "http://[::ffff:127.0.0.1]",
        ] {
            assert!(is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
        for url in [
            "http://10.0.0.1",
            "http://example.com",
            "http://localhost.example.com",
            "http://[::2]",
        ] {
            assert!(!is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
    }

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
