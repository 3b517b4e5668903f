//! The client: the three calls, each retried, and the bodies read
//! (decompressed, bounded) into buffers sized from their `Content-Length`.

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use bytes::Bytes;
use reqwest::header::{self, HeaderValue};
use reqwest::{StatusCode, Url};
use tracing::Instrument as _;

use super::BitcramConfig;
use super::checkout::checkout_ids;
use super::envelope::check_envelope;
use super::retry::{
    AttemptError, backoff_delay, redirect_refusal, retry_after, sanitize_snippet, transport_error,
};
use super::url::{check_base_url, is_loopback};
use crate::net::install_tls_provider;
use crate::secrets::Token;

/// How much of an error body is read to quote from it.
const ERROR_BODY_READ_BYTES: usize = 4096;
/// The largest `Content-Length` a body buffer is sized for up front: a
/// mistaken or hostile header must not reserve unbounded memory (a larger
/// body still arrives, into a growing buffer).
const MAX_PRESIZED_BODY: u64 = 1 << 30;

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
    max_body_bytes: u64,
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
            max_body_bytes: config.max_body_bytes,
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
            return Ok((status, read_body(response, self.max_body_bytes).await?));
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

/// Reads a body chunk by chunk into one buffer sized from its
/// `Content-Length` (up to [`MAX_PRESIZED_BODY`]), rather than gathering
/// the chunks and copying them once more. A body shorter than its
/// `Content-Length` is an error worth another attempt; one longer than
/// `max_bytes` (decompressed, for a gzip body, which has no length up
/// front) is an error that another attempt would not change.
async fn read_body(
    mut response: reqwest::Response,
    max_bytes: u64,
) -> Result<Vec<u8>, AttemptError> {
    let expected = response.content_length();
    if let Some(len) = expected.filter(|&len| len > max_bytes) {
        return Err(too_large(len, max_bytes));
    }
    let capacity = expected.map_or(0, |len| len.min(MAX_PRESIZED_BODY) as usize);
    let mut body: Vec<u8> = Vec::with_capacity(capacity);
    advise_huge_pages(&mut body);
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(&e))? {
        if (body.len() + chunk.len()) as u64 > max_bytes {
            return Err(too_large(body.len() as u64 + chunk.len() as u64, max_bytes));
        }
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

fn too_large(at_least: u64, max_bytes: u64) -> AttemptError {
    let limit = if max_bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", max_bytes >> 20)
    } else {
        format!("{max_bytes} bytes")
    };
    AttemptError::Permanent(format!(
        "the response body is larger than the {limit} a body may be (it reached {at_least} \
         bytes, decompressed)"
    ))
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
