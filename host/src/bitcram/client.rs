//! The client: the three calls, each retried, and their bodies read whole
//! or handed on in chunks as they arrive (see `receive`).

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
use super::receive::{BodyFault, read_body, stream_body};
use super::retry::{
    AttemptError, backoff_delay, redirect_refusal, retry_after, sanitize_snippet, transport_error,
};
use super::url::{check_base_url, is_loopback};
use crate::body::Body;
use crate::net::install_tls_provider;
use crate::secrets::Token;

/// How much of an error body is read to quote from it.
const ERROR_BODY_READ_BYTES: usize = 4096;

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

/// Everything one sync reads from Bitcram, the lists' bodies still
/// arriving (see [`BitcramClient::open`]).
#[derive(Debug)]
pub struct Opened {
    pub checkout: Checkout,
    pub stock: ListStream,
    pub price_list: ListStream,
}

/// A list whose body is arriving.
pub struct ListStream {
    /// The body's chunks, unchecked, ending in the arrival's verdict.
    pub body: Body,
    /// The arrival: the body's hex sha256 once every byte is in, or why not
    /// (in one line naming the call).
    pub arrival: tokio::task::JoinHandle<Result<String, String>>,
}

impl fmt::Debug for ListStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListStream").finish_non_exhaustive()
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
        let (price_list, stock) = list_calls(&checkout);
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

    /// Finds the checkout, then asks for its price list and its warehouse's
    /// stock concurrently, and returns once both have answered: the bodies
    /// arrive afterwards, in chunks, for the caller to take as they come
    /// (the envelope checks are the taker's). Each call is retried until its
    /// body starts; a body cut off afterwards is not fetched again (what was
    /// taken of it cannot be taken back here): its chunks end in the error,
    /// followed by `after_cut`, what that means to the caller.
    /// `deadline` bounds the bodies' arrival too.
    pub async fn open(
        &self,
        checkout_number: &str,
        deadline: tokio::time::Instant,
        after_cut: &'static str,
    ) -> anyhow::Result<Opened> {
        let checkout = self.find_checkout(checkout_number).await?;
        let (price_list, stock) = list_calls(&checkout);
        let (price_list, stock) = tokio::try_join!(
            self.open_call(price_list, deadline, after_cut),
            self.open_call(stock, deadline, after_cut)
        )?;
        Ok(Opened {
            checkout,
            stock,
            price_list,
        })
    }

    /// Opens `call` (with retries) and spawns the task that streams its body.
    async fn open_call(
        &self,
        call: Call,
        deadline: tokio::time::Instant,
        after_cut: &'static str,
    ) -> anyhow::Result<ListStream> {
        let span = call.span();
        let started = Instant::now();
        let (response, attempts) = self
            .retrying(&call, |url| self.respond(url, &call.query))
            .instrument(span.clone())
            .await?;
        let (sender, chunks) = crate::body::chunked(call.to_string(), true);
        let max_bytes = self.max_body_bytes;
        let arrival = async move {
            let result = stream_body(response, max_bytes, &sender, deadline).await;
            match result {
                Ok(received) => {
                    sender.end().await;
                    Ok(received)
                }
                Err(BodyFault::Stopped) => Err(format!("{call}: the body was not taken")),
                Err(BodyFault::Failed(reason)) => {
                    let reason = format!("{call}: {reason}; {after_cut}");
                    sender.fail(reason.clone()).await;
                    Err(reason)
                }
            }
            .map(|(sha256, bytes)| {
                tracing::info!(
                    bytes,
                    attempts,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "Bitcram body received"
                );
                sha256
            })
        };
        Ok(ListStream {
            body: Body::Chunks(chunks),
            arrival: tokio::spawn(arrival.instrument(span)),
        })
    }

    /// GETs `call` inside its tracing span.
    async fn get_call(&self, call: &Call) -> anyhow::Result<(Vec<u8>, CallStats)> {
        self.get(call).instrument(call.span()).await
    }

    /// GETs `call`, retrying what may pass on another attempt.
    async fn get(&self, call: &Call) -> anyhow::Result<(Vec<u8>, CallStats)> {
        let started = Instant::now();
        let ((status, body), attempts) = self
            .retrying(call, |url| self.attempt(url, &call.query))
            .await?;
        let stats = CallStats {
            bytes: body.len() as u64,
            attempts,
            elapsed: started.elapsed(),
        };
        tracing::info!(
            status = status.as_u16(),
            bytes = stats.bytes,
            attempt = attempts,
            elapsed_ms = stats.elapsed.as_millis() as u64,
            "Bitcram call succeeded"
        );
        Ok((body, stats))
    }

    /// Makes `attempt` on `call`'s URL until it succeeds, fails for good, or
    /// the attempts run out; returns its result and the attempts made.
    async fn retrying<T, F: Future<Output = Result<T, AttemptError>>>(
        &self,
        call: &Call,
        mut attempt: impl FnMut(Url) -> F,
    ) -> anyhow::Result<(T, u32)> {
        let url = self
            .base_url
            .join(&call.path)
            .map_err(|e| anyhow!("{call}: building the URL: {e}"))?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let attempt_started = Instant::now();
            match attempt(url.clone()).await {
                Ok(value) => return Ok((value, attempts)),
                Err(AttemptError::Permanent(reason)) => bail!("{call}: {reason}"),
                Err(AttemptError::Transient {
                    reason,
                    retry_after,
                }) => {
                    if attempts >= self.max_attempts {
                        bail!("{call}: {reason} (gave up after {attempts} attempts)");
                    }
                    let delay = retry_after
                        .unwrap_or_else(|| backoff_delay(self.retry_base_delay, attempts));
                    tracing::warn!(
                        attempt = attempts,
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
        url: Url,
        query: &[(&str, String)],
    ) -> Result<(StatusCode, Vec<u8>), AttemptError> {
        let response = self.respond(url, query).await?;
        let status = response.status();
        Ok((status, read_body(response, self.max_body_bytes).await?))
    }

    /// One GET up to its headers: a 2xx response, its body unread, or why
    /// not and whether to try again.
    async fn respond(
        &self,
        url: Url,
        query: &[(&str, String)],
    ) -> Result<reqwest::Response, AttemptError> {
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
            return Ok(response);
        }
        if status.is_redirection() {
            return Err(AttemptError::Permanent(redirect_refusal(
                status,
                &url,
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

impl Call {
    /// The span the call's log lines are in.
    fn span(&self) -> tracing::Span {
        tracing::info_span!("bitcram_call", endpoint = self.endpoint.name())
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bitcram {} (/{})", self.endpoint.name(), self.path)
    }
}

/// The two list calls of a checkout: its price list, its warehouse's stock.
fn list_calls(checkout: &Checkout) -> (Call, Call) {
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
    (price_list, stock)
}
