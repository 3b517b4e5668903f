//! The Bitcram client against a fake Bitcram on 127.0.0.1: the three calls
//! as sent, bodies as received (the lists taken as a run takes them, in
//! chunks as they arrive), retries and what is never retried, envelopes
//! that are refused, and where the token may go.

use std::time::Duration;

use anyhow::anyhow;
use bitcram_sync::bitcram::{
    BitcramClient, BitcramConfig, Checkout, ListStream, check_envelope, parse_base_url,
};
use bitcram_sync::secrets::Token;
use sha2::{Digest as _, Sha256};

use crate::support::fake_bitcram::{CHECKOUTS, FakeServer, PRICE_LIST, Reply, STOCK};

const TOKEN: &str = "tok-3f9a";
const CHECKOUT_BODY: &str = r#"{"items":[{"id":17,"checkout_number":3,"is_open":true,"warehouse":{"id":5},"price_list":{"id":248}}]}"#;
/// Odd spacing, key order and number forms: must come back untouched.
const PRICE_LIST_BODY: &str = "{\"items\": [\n  {\"product_id\":214101,\"price\":12345.0,\"product_name\":\"Caf\\u00e9\"},\n  {\"price\":null,\"product_id\":\"0042\"}\n], \"count\": 2}\n";
const STOCK_BODY: &str = r#"{"items":[{"product_id":214101,"product":{"id":214101},"warehouse_id":5,"product_balance":-2.50}]}"#;

/// Settings for tests: quick retries, short timeouts.
fn config(server: &FakeServer) -> BitcramConfig {
    BitcramConfig {
        max_attempts: 3,
        retry_base_delay: Duration::from_millis(5),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        ..BitcramConfig::new(parse_base_url(&server.url(), false).unwrap())
    }
}

fn client(server: &FakeServer) -> BitcramClient {
    client_with(config(server))
}

fn client_with(config: BitcramConfig) -> BitcramClient {
    bitcram_sync::net::install_tls_provider();
    BitcramClient::new(config, Token::new(TOKEN.to_owned()).unwrap()).unwrap()
}

/// A server that answers the three calls with the bodies above.
async fn healthy_server() -> FakeServer {
    let server = FakeServer::start().await;
    server.script(CHECKOUTS, [Reply::ok(CHECKOUT_BODY)]);
    server.script(PRICE_LIST, [Reply::ok(PRICE_LIST_BODY)]);
    server.script(STOCK, [Reply::ok(STOCK_BODY)]);
    server
}

#[track_caller]
fn one_line(error: anyhow::Error) -> String {
    let message = format!("{error:#}");
    println!("{message}");
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(!message.contains(TOKEN), "the token leaked: {message}");
    message
}

/// What a caller of `open` is told a cut body means to it.
const AFTER_CUT: &str = "the caller stops";

/// What a run reads from Bitcram, taken as a run takes it: the checkout
/// found, then both lists opened and read to their ends as they arrive,
/// each arrival's digest matched and each envelope checked.
#[derive(Debug)]
struct Fetched {
    checkout: Checkout,
    price_list: Vec<u8>,
    stock: Vec<u8>,
    price_list_items: usize,
    stock_items: usize,
}

async fn fetch(client: &BitcramClient, number: &str) -> anyhow::Result<Fetched> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let opened = client.open(number, deadline, AFTER_CUT).await?;
    let ((price_list, price_list_items), (stock, stock_items)) =
        tokio::try_join!(take(opened.price_list), take(opened.stock))?;
    Ok(Fetched {
        checkout: opened.checkout,
        price_list,
        stock,
        price_list_items,
        stock_items,
    })
}

/// One list read to its end: its bytes and items, or why not in one line
/// naming the call.
async fn take(list: ListStream) -> anyhow::Result<(Vec<u8>, usize)> {
    let origin = list.body.origin().unwrap_or_default().to_owned();
    let bytes = list.body.whole().await.map_err(anyhow::Error::msg)?;
    let sha256 = list.arrival.await?.map_err(anyhow::Error::msg)?;
    assert_eq!(sha256, hex::encode(Sha256::digest(&bytes)), "{origin}");
    let items = check_envelope(&bytes).map_err(|reason| anyhow!("{origin}: {reason}"))?;
    Ok((bytes.to_vec(), items))
}

async fn fetch_error(server: &FakeServer) -> String {
    match fetch(&client(server), "3").await {
        Ok(fetched) => panic!(
            "expected an error, got {} price-list items",
            fetched.price_list_items
        ),
        Err(e) => one_line(e),
    }
}

#[tokio::test]
async fn fetches_the_checkout_the_price_list_and_the_stock_as_sent() {
    let server = healthy_server().await;
    let fetched = fetch(&client(&server), "3").await.unwrap();

    assert_eq!(
        (fetched.checkout.id, fetched.checkout.warehouse_id),
        (17, 5)
    );
    assert_eq!(fetched.checkout.body, CHECKOUT_BODY.as_bytes());
    assert_eq!(fetched.price_list, PRICE_LIST_BODY.as_bytes());
    assert_eq!(fetched.stock, STOCK_BODY.as_bytes());
    assert_eq!((fetched.price_list_items, fetched.stock_items), (2, 1));
    assert_eq!(server.requests_to(PRICE_LIST).len(), 1);
    assert_eq!(server.requests_to(STOCK).len(), 1);

    server.assert_documented_calls(TOKEN, "3", 5);
}

#[tokio::test]
async fn ids_sent_as_numeric_strings_are_accepted() {
    let server = FakeServer::start().await;
    server.script(
        CHECKOUTS,
        [Reply::ok(
            r#"{"items":[{"id":"17","checkout_number":"3","warehouse":{"id":"5"}}]}"#,
        )],
    );
    let checkout = client(&server).find_checkout("3").await.unwrap();
    assert_eq!((checkout.id, checkout.warehouse_id), (17, 5));
}

#[tokio::test]
async fn a_base_url_with_a_path_prefix_keeps_it() {
    let server = FakeServer::start().await;
    server.script("/bitcram/api/checkouts/index", [Reply::ok(CHECKOUT_BODY)]);
    let mut config = config(&server);
    config.base_url = parse_base_url(&format!("{}/bitcram", server.url()), false).unwrap();
    let checkout = client_with(config).find_checkout("3").await.unwrap();
    assert_eq!(checkout.id, 17);
}

#[tokio::test]
async fn a_500_is_retried() {
    let server = healthy_server().await;
    server.script(
        PRICE_LIST,
        [
            Reply::json(500, r#"{"error":"boom"}"#),
            Reply::ok(PRICE_LIST_BODY),
        ],
    );
    let fetched = fetch(&client(&server), "3").await.unwrap();
    assert_eq!(fetched.price_list, PRICE_LIST_BODY.as_bytes());
    assert_eq!(server.requests_to(PRICE_LIST).len(), 2);
}

#[tokio::test]
async fn a_429_waits_as_long_as_retry_after_says() {
    let server = healthy_server().await;
    server.script(
        STOCK,
        [
            Reply::json(429, r#"{"error":"slow down"}"#).header("Retry-After", "1"),
            Reply::ok(STOCK_BODY),
        ],
    );
    let fetched = fetch(&client(&server), "3").await.unwrap();
    assert_eq!(fetched.stock, STOCK_BODY.as_bytes());
    let stock = server.requests_to(STOCK);
    assert_eq!(stock.len(), 2);
    let waited = stock[1].at - stock[0].at;
    // The backoff alone would be a few milliseconds.
    assert!(waited >= Duration::from_millis(900), "waited {waited:?}");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
}

#[tokio::test]
async fn a_persistent_503_gives_up_after_the_attempts_allowed() {
    let server = healthy_server().await;
    server.script(
        PRICE_LIST,
        [Reply::json(
            503,
            "<html><body>\n  Service\tUnavailable\n</body></html>",
        )],
    );
    let message = fetch_error(&server).await;
    assert_eq!(server.requests_to(PRICE_LIST).len(), 3);
    assert!(
        message.contains("price_list")
            && message.contains(PRICE_LIST)
            && message.contains("503")
            && message.contains("gave up after 3 attempts"),
        "{message}"
    );
    // The body is quoted on one line.
    assert!(
        message.contains("<html><body> Service Unavailable </body></html>"),
        "{message}"
    );
}

#[tokio::test]
async fn a_401_is_token_rejected_and_not_retried() {
    let server = healthy_server().await;
    server.script(CHECKOUTS, [Reply::json(401, r#"{"error":"expired"}"#)]);
    let message = fetch_error(&server).await;
    assert_eq!(server.requests_to(CHECKOUTS).len(), 1);
    assert!(
        message.contains("token rejected") && message.contains("checkout"),
        "{message}"
    );
    assert!(server.requests_to(PRICE_LIST).is_empty());
}

#[tokio::test]
async fn a_403_is_forbidden_and_not_retried() {
    let server = healthy_server().await;
    server.script(STOCK, [Reply::json(403, "{}")]);
    let message = fetch_error(&server).await;
    assert_eq!(server.requests_to(STOCK).len(), 1);
    assert!(
        message.contains("forbidden") && message.contains("stock"),
        "{message}"
    );
}

#[tokio::test]
async fn another_4xx_fails_at_once_with_a_clean_snippet() {
    let server = healthy_server().await;
    // An error page that echoes the token and carries a terminal escape.
    let body = format!(
        "{{\"error\":\"bad filter\",\"auth\":\"Bearer {TOKEN}\"}}\x1b[2J{}",
        "x".repeat(400)
    );
    server.script(CHECKOUTS, [Reply::json(400, body)]);
    let message = fetch_error(&server).await;
    assert_eq!(server.requests_to(CHECKOUTS).len(), 1);
    assert!(
        message.contains("400") && message.contains("bad filter") && message.contains("[redacted]"),
        "{message}"
    );
    assert!(
        !message.contains('\x1b') && message.len() < 600,
        "{message}"
    );
}

#[tokio::test]
async fn an_unknown_checkout_number_is_an_error_naming_it() {
    let server = healthy_server().await;
    server.script(CHECKOUTS, [Reply::ok(r#"{"items":[]}"#)]);
    let error = client(&server).find_checkout("99").await.unwrap_err();
    let message = one_line(error);
    assert!(
        message.contains("no checkout has the number 99"),
        "{message}"
    );
}

#[tokio::test]
async fn two_checkouts_with_the_number_are_an_error() {
    let server = healthy_server().await;
    server.script(
        CHECKOUTS,
        [Reply::ok(
            r#"{"items":[{"id":17,"warehouse":{"id":5}},{"id":18,"warehouse":{"id":6}}]}"#,
        )],
    );
    let message = fetch_error(&server).await;
    assert!(
        message.contains("2 checkouts") && message.contains("17, 18"),
        "{message}"
    );
}

#[tokio::test]
async fn a_checkout_for_another_number_is_an_error() {
    // What a server that ignored the filter would send.
    let server = healthy_server().await;
    server.script(
        CHECKOUTS,
        [Reply::ok(
            r#"{"items":[{"id":17,"checkout_number":4,"warehouse":{"id":5}}]}"#,
        )],
    );
    let message = fetch_error(&server).await;
    assert!(message.contains("asked for checkout number 3"), "{message}");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_an_error_naming_the_endpoint() {
    let server = healthy_server().await;
    server.script(STOCK, [Reply::ok("<html>maintenance</html>")]);
    let message = fetch_error(&server).await;
    assert!(
        message.contains("stock") && message.contains("not JSON"),
        "{message}"
    );
}

#[tokio::test]
async fn a_json_body_cut_short_is_an_error() {
    let server = healthy_server().await;
    server.script(PRICE_LIST, [Reply::ok(r#"{"items":[{"product_id":1},"#)]);
    let message = fetch_error(&server).await;
    assert!(
        message.contains("price_list") && message.contains("cut short"),
        "{message}"
    );
}

#[tokio::test]
async fn a_list_cut_short_after_it_started_is_not_asked_for_again() {
    // Its first bytes may already be downstream: the caller is told, and
    // decides (a sync stops with nothing written).
    let server = healthy_server().await;
    server.script(
        PRICE_LIST,
        [
            Reply::ok(PRICE_LIST_BODY).cut_after(20),
            Reply::ok(PRICE_LIST_BODY),
        ],
    );
    let message = fetch_error(&server).await;
    assert_eq!(server.requests_to(PRICE_LIST).len(), 1);
    assert!(
        message.contains("price_list")
            && message.contains(PRICE_LIST)
            && message.contains("cut short")
            && message.ends_with(AFTER_CUT),
        "{message}"
    );
}

#[tokio::test]
async fn a_discovery_body_cut_short_is_fetched_again_then_an_error() {
    // Read whole before anything uses it: another attempt costs nothing.
    let server = healthy_server().await;
    server.script(
        CHECKOUTS,
        [
            Reply::ok(CHECKOUT_BODY).cut_after(20),
            Reply::ok(CHECKOUT_BODY),
        ],
    );
    let fetched = fetch(&client(&server), "3").await.unwrap();
    assert_eq!(fetched.checkout.body, CHECKOUT_BODY.as_bytes());
    assert_eq!(server.requests_to(CHECKOUTS).len(), 2);

    server.script(CHECKOUTS, [Reply::ok(CHECKOUT_BODY).cut_after(20)]);
    let message = fetch_error(&server).await;
    assert_eq!(server.requests_to(CHECKOUTS).len(), 2 + 3);
    assert!(
        message.contains("checkout")
            && message.contains("cut short")
            && message.contains("gave up after 3 attempts"),
        "{message}"
    );
}

#[tokio::test]
async fn a_list_without_items_is_an_error() {
    let server = healthy_server().await;
    server.script(STOCK, [Reply::ok(r#"{"data":[]}"#)]);
    let message = fetch_error(&server).await;
    assert!(
        message.contains("stock") && message.contains("`items`"),
        "{message}"
    );
}

#[tokio::test]
async fn a_count_larger_than_the_items_carried_is_an_error() {
    let server = healthy_server().await;
    server.script(
        PRICE_LIST,
        [Reply::ok(
            r#"{"items":[{"product_id":1}],"count":250,"page":1}"#,
        )],
    );
    let message = fetch_error(&server).await;
    assert!(
        message.contains("price_list")
            && message.contains("count 250")
            && message.contains("1 items"),
        "{message}"
    );
}

#[tokio::test]
async fn a_reply_slower_than_the_request_timeout_is_retried() {
    let server = healthy_server().await;
    server.script(
        STOCK,
        [
            Reply::ok(STOCK_BODY).delayed(Duration::from_secs(3)),
            Reply::ok(STOCK_BODY),
        ],
    );
    let mut config = config(&server);
    config.request_timeout = Duration::from_millis(300);
    let fetched = fetch(&client_with(config), "3").await.unwrap();
    assert_eq!(fetched.stock, STOCK_BODY.as_bytes());
    assert_eq!(server.requests_to(STOCK).len(), 2);
}

#[tokio::test]
async fn a_list_taken_slower_than_the_request_timeout_still_arrives() {
    // A run takes a list as fast as its database takes the rows: the
    // request timeout bounds the wait for the headers, not the body.
    let server = healthy_server().await;
    let mut big = b"{\"items\":[".to_vec();
    while big.len() < 8 << 20 {
        big.extend_from_slice(br#"{"product_id":214101,"price":12345.0},"#);
    }
    big.extend_from_slice(br#"{"product_id":1}]}"#);
    server.script(PRICE_LIST, [Reply::ok(big.clone()).identity()]);
    let mut config = config(&server);
    config.request_timeout = Duration::from_millis(300);
    let client = client_with(config);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let opened = client.open("3", deadline, AFTER_CUT).await.unwrap();
    // Far more than the socket and the chunks in flight hold waits unread.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let (price_list, stock) = tokio::try_join!(take(opened.price_list), take(opened.stock))
        .map_err(one_line)
        .unwrap();
    assert_eq!(price_list.0, big);
    assert_eq!(stock.0, STOCK_BODY.as_bytes());
    assert_eq!(server.requests_to(PRICE_LIST).len(), 1);
}

#[tokio::test]
async fn a_connection_refused_is_retried_then_an_error() {
    let server = FakeServer::start().await;
    let url = server.url();
    drop(server);
    let mut config = BitcramConfig::new(parse_base_url(&url, false).unwrap());
    config.retry_base_delay = Duration::from_millis(1);
    config.max_attempts = 2;
    let message = one_line(client_with(config).find_checkout("3").await.unwrap_err());
    assert!(
        message.contains("cannot connect") && message.contains("gave up after 2 attempts"),
        "{message}"
    );
}

#[tokio::test]
async fn plain_http_is_only_for_loopback_addresses() {
    for url in [
        "http://127.0.0.1:8080",
        "http://localhost",
        "http://[::1]:9",
    ] {
        parse_base_url(url, false).unwrap();
    }
    let message = format!(
        "{:#}",
        parse_base_url("http://bitcram.example.com", false).unwrap_err()
    );
    assert!(message.contains("not a loopback address"), "{message}");
    parse_base_url("http://bitcram.example.com", true).unwrap();
    parse_base_url("https://bitcram.example.com", false).unwrap();
    let message = format!(
        "{:#}",
        parse_base_url("ftp://bitcram.example.com", true).unwrap_err()
    );
    assert!(message.contains("scheme ftp"), "{message}");
    let message = format!(
        "{:#}",
        parse_base_url("https://user:hunter2@bitcram.example.com", false).unwrap_err()
    );
    assert!(!message.contains("hunter2"), "{message}");

    // The client checks the config it is given, too.
    let mut config = BitcramConfig::new("http://10.1.2.3".parse().unwrap());
    let token = || Token::new(TOKEN.to_owned()).unwrap();
    assert!(BitcramClient::new(config.clone(), token()).is_err());
    config.allow_insecure_http = true;
    assert!(BitcramClient::new(config, token()).is_ok());
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed() {
    // 127.0.0.2 is another host to the client, and still this machine.
    let other = FakeServer::start_on("127.0.0.2").await;
    other.script(CHECKOUTS, [Reply::ok(CHECKOUT_BODY)]);
    let server = healthy_server().await;
    let location = format!("{}{CHECKOUTS}?where=x", other.url());
    server.script(
        CHECKOUTS,
        [Reply::json(302, "").header("Location", &location)],
    );

    let message = one_line(client(&server).find_checkout("3").await.unwrap_err());
    assert!(other.requests().is_empty(), "{:?}", other.requests());
    assert_eq!(server.requests_to(CHECKOUTS).len(), 1);
    assert!(
        message.contains("redirected (HTTP 302)") && message.contains(&other.url()),
        "{message}"
    );
}

#[test]
fn the_runs_client_settings_are_the_documented_defaults() {
    // What `sync` and `snapshot` use (README: 10 s to connect, 120 s in all,
    // 5 attempts with backoff from 0.5 s).
    let config = bitcram_sync::config::bitcram_config("https://shop.example", false).unwrap();
    assert_eq!(config.connect_timeout, Duration::from_secs(10));
    assert_eq!(config.request_timeout, Duration::from_secs(120));
    assert_eq!(config.max_attempts, 5);
    assert_eq!(config.retry_base_delay, Duration::from_millis(500));
    assert!(!config.allow_insecure_http);
}

#[tokio::test]
async fn bodies_are_asked_for_gzip_and_come_back_decompressed_byte_for_byte() {
    // The fake compresses what a client asks to have compressed.
    let server = healthy_server().await;
    let fetched = fetch(&client(&server), "3").await.unwrap();
    assert_eq!(fetched.price_list, PRICE_LIST_BODY.as_bytes());
    assert_eq!(fetched.stock, STOCK_BODY.as_bytes());
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    for request in requests {
        let accepted = request.accept_encoding.unwrap_or_default();
        assert!(
            accepted.split(',').any(|e| e.trim() == "gzip"),
            "{}: Accept-Encoding {accepted:?}",
            request.path
        );
    }
}

#[tokio::test]
async fn a_server_that_does_not_compress_works_the_same() {
    let server = FakeServer::start().await;
    server.script(CHECKOUTS, [Reply::ok(CHECKOUT_BODY).identity()]);
    server.script(PRICE_LIST, [Reply::ok(PRICE_LIST_BODY).identity()]);
    server.script(STOCK, [Reply::ok(STOCK_BODY).identity()]);
    let fetched = fetch(&client(&server), "3").await.unwrap();
    assert_eq!(fetched.price_list, PRICE_LIST_BODY.as_bytes());
    assert_eq!(fetched.stock, STOCK_BODY.as_bytes());
}

#[tokio::test]
async fn a_gzip_stream_cut_short_is_an_error_naming_the_call() {
    let server = healthy_server().await;
    let compressed = crate::support::fake_bitcram::gzip(PRICE_LIST_BODY.as_bytes()).len();
    // Complete as HTTP (the Content-Length matches), cut short as gzip.
    server.script(
        PRICE_LIST,
        [Reply::ok(PRICE_LIST_BODY).gzip_cut_to(compressed / 2)],
    );
    let message = fetch_error(&server).await;
    assert_eq!(server.requests_to(PRICE_LIST).len(), 1);
    assert!(
        message.contains("price_list")
            && message.contains("the response body was cut short or unreadable")
            && message.ends_with(AFTER_CUT),
        "{message}"
    );
    // The discovery body, cut once as gzip and whole the next time, is
    // fetched again.
    let checkout = crate::support::fake_bitcram::gzip(CHECKOUT_BODY.as_bytes()).len();
    server.script(
        CHECKOUTS,
        [
            Reply::ok(CHECKOUT_BODY).gzip_cut_to(checkout - 8),
            Reply::ok(CHECKOUT_BODY),
        ],
    );
    server.script(PRICE_LIST, [Reply::ok(PRICE_LIST_BODY)]);
    let fetched = fetch(&client(&server), "3").await.unwrap();
    assert_eq!(fetched.checkout.body, CHECKOUT_BODY.as_bytes());
    assert_eq!(fetched.price_list, PRICE_LIST_BODY.as_bytes());
}

#[tokio::test]
async fn a_body_that_inflates_past_the_limit_is_refused_without_another_attempt() {
    let server = healthy_server().await;
    // 8 MiB of JSON that gzip carries in a few KiB.
    let mut bomb = b"{\"items\":[".to_vec();
    bomb.resize(8 << 20, b' ');
    bomb.extend_from_slice(b"]}");
    assert!(crate::support::fake_bitcram::gzip(&bomb).len() < 64 << 10);
    server.script(PRICE_LIST, [Reply::ok(bomb.clone())]);
    let limited = BitcramConfig {
        max_body_bytes: 1 << 20,
        ..config(&server)
    };
    let error = fetch(&client_with(limited.clone()), "3").await.unwrap_err();
    let message = one_line(error);
    assert!(
        message.contains("price_list")
            && message.contains("the response body is larger than the 1 MiB a body may be"),
        "{message}"
    );
    assert_eq!(server.requests_to(PRICE_LIST).len(), 1);
    // Not compressed, the same body is refused by its Content-Length.
    server.script(PRICE_LIST, [Reply::ok(bomb).identity()]);
    let message = one_line(fetch(&client_with(limited), "3").await.unwrap_err());
    assert!(
        message.contains("larger than the 1 MiB a body may be (it reached 8388610 bytes"),
        "{message}"
    );
    assert_eq!(server.requests_to(PRICE_LIST).len(), 2);
}
