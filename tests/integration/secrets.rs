//! Reading the token through the real Secret Manager client against a fake
//! endpoint on 127.0.0.1: trimming, checksums, the errors a person acts on,
//! and failing fast without credentials.

use std::time::{Duration, Instant};

use bitcram_sync::secrets::{SecretRef, Token, read_token};

use crate::support::fake_bitcram::{
    FakeServer, Reply, google_error, secret_access_path, secret_reply,
};

const NAME: &str = "projects/acme/secrets/bitcram-token/versions/latest";

fn secret(server: &FakeServer) -> SecretRef {
    bitcram_sync::net::install_tls_provider();
    SecretRef {
        endpoint: Some(server.url()),
        ..SecretRef::latest("acme", "bitcram-token")
    }
}

fn access_path() -> String {
    secret_access_path("acme", "bitcram-token", "latest")
}

async fn serving(reply: Reply) -> FakeServer {
    let server = FakeServer::start().await;
    server.script(&access_path(), [reply]);
    server
}

#[track_caller]
fn one_line(error: anyhow::Error, payload: &str) -> String {
    let message = format!("{error:#}");
    println!("{message}");
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(!message.contains(payload), "the payload leaked: {message}");
    message
}

#[tokio::test]
async fn the_token_arrives_trimmed() {
    let payload = b"  tok-3f9a\n";
    let server = serving(secret_reply(NAME, payload, Some(crc32c::crc32c(payload)))).await;
    let token = read_token(&secret(&server)).await.unwrap();
    assert_eq!(token.expose(), "tok-3f9a");
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, access_path());
}

#[tokio::test]
async fn a_payload_without_a_checksum_is_taken() {
    let server = serving(secret_reply(NAME, b"tok-3f9a", None)).await;
    assert_eq!(
        read_token(&secret(&server)).await.unwrap().expose(),
        "tok-3f9a"
    );
}

#[tokio::test]
async fn a_named_version_at_an_endpoint_with_a_trailing_slash_is_read() {
    let server = FakeServer::start().await;
    server.script(
        &secret_access_path("acme", "bitcram-token", "7"),
        [secret_reply(NAME, b"tok-7", None)],
    );
    let secret = SecretRef {
        version: "7".to_owned(),
        // A trailing slash on the endpoint is harmless.
        endpoint: Some(format!("{}/", server.url())),
        ..secret(&server)
    };
    assert_eq!(read_token(&secret).await.unwrap().expose(), "tok-7");
}

#[tokio::test]
async fn a_missing_secret_says_not_found_and_names_the_version() {
    let server = serving(google_error(
        404,
        "NOT_FOUND",
        "Secret [projects/123/secrets/bitcram-token] not found or has no versions.",
    ))
    .await;
    let message = one_line(read_token(&secret(&server)).await.unwrap_err(), "tok-3f9a");
    assert!(
        message.contains("not found") && message.contains(NAME),
        "{message}"
    );
    assert_eq!(server.requests().len(), 1, "a 404 is not retried");
}

#[tokio::test]
async fn permission_denied_names_the_role_to_grant() {
    let server = serving(google_error(
        403,
        "PERMISSION_DENIED",
        "Permission 'secretmanager.versions.access' denied for resource",
    ))
    .await;
    let message = one_line(read_token(&secret(&server)).await.unwrap_err(), "tok-3f9a");
    assert!(
        message.contains("permission denied")
            && message.contains("roles/secretmanager.secretAccessor")
            && message.contains(NAME),
        "{message}"
    );
}

#[tokio::test]
async fn a_checksum_mismatch_is_refused() {
    let payload = b"tok-3f9a";
    let server = serving(secret_reply(
        NAME,
        payload,
        Some(crc32c::crc32c(b"tok-3f9b")),
    ))
    .await;
    let message = one_line(read_token(&secret(&server)).await.unwrap_err(), "tok-3f9a");
    assert!(
        message.contains("checksum") && message.contains(NAME),
        "{message}"
    );
}

#[tokio::test]
async fn a_payload_that_is_not_utf8_is_refused() {
    let payload = b"tok-\xff\xfe";
    let server = serving(secret_reply(NAME, payload, Some(crc32c::crc32c(payload)))).await;
    let message = one_line(read_token(&secret(&server)).await.unwrap_err(), "tok-");
    assert!(message.contains("not UTF-8"), "{message}");
}

#[tokio::test]
async fn a_blank_payload_is_refused() {
    let server = serving(secret_reply(NAME, b" \n", None)).await;
    let message = one_line(read_token(&secret(&server)).await.unwrap_err(), "\u{0}");
    assert!(
        message.contains("empty") && message.contains(NAME),
        "{message}"
    );
}

#[test]
fn a_token_prints_redacted() {
    let token = Token::new("\t tok-3f9a \r\n".to_owned()).unwrap();
    assert_eq!(token.expose(), "tok-3f9a");
    assert_eq!(format!("{token}"), "[redacted]");
    assert_eq!(format!("{token:?}"), "[redacted]");
    assert_eq!(format!("{:?}", Some(&token)), "Some([redacted])");
    assert!(Token::new(" \n".to_owned()).is_err());
    let message = Token::new("tok\n3f9a".to_owned()).unwrap_err().to_string();
    assert!(!message.contains("3f9a"), "{message}");
}

#[test]
fn secret_references_are_plain_names() {
    let good = SecretRef::latest("example.com:acme", "bitcram_token-2");
    good.validate().unwrap();
    assert_eq!(
        good.resource_name(),
        "projects/example.com:acme/secrets/bitcram_token-2/versions/latest"
    );
    for bad in [
        SecretRef::latest("acme", "a/../b"),
        SecretRef::latest("", "token"),
        SecretRef {
            version: "1?x".to_owned(),
            ..SecretRef::latest("acme", "token")
        },
    ] {
        assert!(bad.validate().is_err(), "{bad}");
    }
}

/// Without an emulator and without credentials anywhere, the error comes
/// within seconds and says what to set. Run in a child process: it needs an
/// environment of its own.
#[test]
fn no_credentials_fail_within_seconds() {
    // The real binary, in an environment with no credentials anywhere: no
    // GOOGLE_APPLICATION_CREDENTIALS, an empty HOME, and a metadata server on
    // a port nothing listens on.
    let home = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metadata_host = closed.local_addr().unwrap().to_string();
    drop(closed);
    let snapshot_free = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = crate::support::bin()
        .args([
            "sync",
            "--bitcram-url",
            "http://127.0.0.1:9",
            "--checkout",
            "3",
        ])
        .args(["--project-id", "acme", "--secret-id", "bitcram-token"])
        .arg("--database-url")
        .arg(format!(
            "sqlite://{}",
            snapshot_free.path().join("x.db").display()
        ))
        .env("HOME", home.path())
        .env("GCE_METADATA_HOST", &metadata_host)
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .env_remove("GOOGLE_CLOUD_QUOTA_PROJECT")
        .env_remove("CLOUDSDK_CONFIG")
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    let message = errors[0];
    assert!(
        message.contains("credentials")
            && message.contains("GOOGLE_APPLICATION_CREDENTIALS")
            && message.contains("metadata server"),
        "{message}"
    );
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
}
