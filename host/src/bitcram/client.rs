//! The client: the three calls, each retried, and their bodies read whole
//! or handed on in chunks as they arrive (see `receive`).

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
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

/// How far past the extraction's deadline the HTTP client lets a streamed
/// body run, so that the body's reader, which stops at the deadline, is the
/// one to say why it stopped.
const STREAMED_TIMEOUT_MARGIN: Duration = Duration::from_secs(5);

/// How much of an error body is read to quote from it.
const ERROR_BODY_READ_BYTES: usize = 4096;

/// The three calls, named in logs and errors.
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
    /// How long a call may wait for its response's headers; a body read
    /// whole must arrive within it too.
    request_timeout: Duration,
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
            request_timeout: config.request_timeout,
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
        let body = self.get(&call).instrument(call.span()).await?;
        check_envelope(&body).map_err(|reason| anyhow!("{call}: {reason}"))?;
        let (id, warehouse_id) =
            checkout_ids(&body, number).map_err(|reason| anyhow!("{call}: {reason}"))?;
        Ok(Checkout {
            id,
            warehouse_id,
            body,
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
            .retrying(&call, |url| self.respond(url, &call.query, Some(deadline)))
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

    /// GETs `call` and reads its body whole, retrying what may pass on
    /// another attempt (a body cut short included).
    async fn get(&self, call: &Call) -> anyhow::Result<Vec<u8>> {
        let started = Instant::now();
        let ((status, body), attempts) = self
            .retrying(call, |url| self.attempt(url, &call.query))
            .await?;
        tracing::info!(
            status = status.as_u16(),
            bytes = body.len(),
            attempt = attempts,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Bitcram call succeeded"
        );
        Ok(body)
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
        let response = self.respond(url, query, None).await?;
        let status = response.status();
        Ok((status, read_body(response, self.max_body_bytes).await?))
    }

    /// One GET up to its headers: a 2xx response, its body unread, or why
    /// not and whether to try again. The headers must come within the
    /// request timeout; so must the whole body, unless it is `streamed`
    /// until a deadline: a list's body arrives as fast as the run takes it
    /// (a slow database slows it), so only the extraction's deadline bounds
    /// it, and the body's reader says so in its own words when it passes.
    async fn respond(
        &self,
        url: Url,
        query: &[(&str, String)],
        streamed: Option<tokio::time::Instant>,
    ) -> Result<reqwest::Response, AttemptError> {
        let mut request = self
            .http
            .get(url.clone())
            .header(header::AUTHORIZATION, self.authorization.clone())
            .header(header::ACCEPT, "application/json")
            .query(query);
        if let Some(deadline) = streamed {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            request = request.timeout(left + STREAMED_TIMEOUT_MARGIN);
        }
        let response = match tokio::time::timeout(self.request_timeout, request.send()).await {
            Ok(sent) => sent.map_err(|e| transport_error(&e))?,
            Err(_) => {
                return Err(AttemptError::Transient {
                    reason: format!(
                        "timed out: no response within {} s",
                        self.request_timeout.as_secs_f64()
                    ),
                    retry_after: None,
                });
            }
        };
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
