//! Secrets: the Bitcram bearer token, read from Google Secret Manager.
//!
//! The token is the raw payload of a secret version (not JSON), rotated by
//! another job that adds versions, so the job reads `latest` on every run.
//! It lives in [`Token`], whose `Debug` and `Display` print `[redacted]`: it
//! never reaches a log line, an error message or a report.
//!
//! Credentials are Application Default Credentials (the metadata server on
//! Cloud Run). They are checked under a short deadline before the first call,
//! because the client library on its own retries a missing metadata server
//! for about a minute before it says anything.

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use google_cloud_auth::credentials::{self, Credentials, anonymous};
use google_cloud_secretmanager_v1::client::SecretManagerService;

/// The version read when none is named: the one most recently added.
pub const LATEST_VERSION: &str = "latest";
/// The IAM role a principal needs to read a secret's payload.
pub const SECRET_ACCESSOR_ROLE: &str = "roles/secretmanager.secretAccessor";
/// How long finding Application Default Credentials and getting a first
/// access token with them may take. The metadata server answers in
/// milliseconds where it exists.
pub const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one Secret Manager request may take.
const ACCESS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// What to do when no credentials were found; appended to those errors.
const CREDENTIALS_HELP: &str = "on Cloud Run, run the job as a service account; elsewhere set \
     GOOGLE_APPLICATION_CREDENTIALS to a service-account key file or run \
     `gcloud auth application-default login`; for a Secret Manager emulator set \
     SECRET_MANAGER_ENDPOINT";

/// A bearer token. Its `Debug` and `Display` print `[redacted]`; only
/// [`Token::expose`] gives the text, for the one header that carries it.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Takes a token, without surrounding whitespace (a secret written with
    /// `echo` ends in a newline). Refuses an empty token and one with
    /// characters an HTTP header cannot carry; the error never quotes it.
    pub fn new(raw: String) -> anyhow::Result<Self> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            bail!("the token is empty");
        }
        if let Some(position) = trimmed.chars().position(|c| !c.is_ascii_graphic()) {
            bail!(
                "the token holds a character that an HTTP header cannot carry (at character {}); \
                 only visible ASCII is allowed",
                position + 1
            );
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The token's text. Use it only to build the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Which secret version holds the token, and where Secret Manager is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// The Google Cloud project's id or number.
    pub project_id: String,
    /// The secret's id within the project.
    pub secret_id: String,
    /// The version: a number or an alias, usually [`LATEST_VERSION`].
    pub version: String,
    /// Another Secret Manager endpoint (`http://127.0.0.1:PORT`): an emulator
    /// or a test's fake, reached without credentials. `None` is Google's.
    pub endpoint: Option<String>,
}

impl SecretRef {
    /// The `latest` version of `secret_id` in `project_id`, at Google's endpoint.
    pub fn latest(project_id: impl Into<String>, secret_id: impl Into<String>) -> Self {
        Self {
            project_id: project_id.into(),
            secret_id: secret_id.into(),
            version: LATEST_VERSION.to_owned(),
            endpoint: None,
        }
    }

    /// `projects/P/secrets/S/versions/V`.
    pub fn resource_name(&self) -> String {
        format!(
            "projects/{}/secrets/{}/versions/{}",
            self.project_id, self.secret_id, self.version
        )
    }

    /// Checks that every part is a plain name, so that none can change the
    /// request's path. Project ids may hold `.` and `:` (domain-scoped
    /// projects); secret ids and version aliases hold letters, digits, `-`
    /// and `_`.
    pub fn validate(&self) -> anyhow::Result<()> {
        let parts = [
            ("project id", &self.project_id, "-_.:"),
            ("secret id", &self.secret_id, "-_"),
            ("secret version", &self.version, "-_"),
        ];
        for (what, value, extra) in parts {
            let plain = |c: char| c.is_ascii_alphanumeric() || extra.contains(c);
            if value.is_empty() || !value.chars().all(plain) {
                bail!("invalid {what} {value:?}: only letters, digits and {extra:?} are allowed");
            }
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            bail!(
                "invalid Secret Manager endpoint {endpoint:?}: expected http://HOST:PORT or https://HOST"
            );
        }
        Ok(())
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.resource_name())
    }
}

/// Reads the token from `secret`: the payload, its checksum verified when
/// Secret Manager sends one, decoded as UTF-8 and trimmed.
///
/// Errors are one line and name the secret version; none quotes the payload.
pub async fn read_token(secret: &SecretRef) -> anyhow::Result<Token> {
    secret.validate()?;
    crate::net::install_tls_provider();
    let started = Instant::now();
    let name = secret.resource_name();
    let credentials = find_credentials(secret.endpoint.as_deref()).await?;
    let mut builder = SecretManagerService::builder()
        .with_credentials(credentials)
        .with_attempt_timeout(ACCESS_ATTEMPT_TIMEOUT);
    if let Some(endpoint) = &secret.endpoint {
        // The client appends `/v1/...`: a trailing slash would double it.
        builder = builder.with_endpoint(endpoint.trim_end_matches('/'));
    }
    let client = builder
        .build()
        .await
        .map_err(|e| anyhow!("creating the Secret Manager client: {}", error_chain(&e)))?;
    let response = client
        .access_secret_version()
        .set_name(name.clone())
        .send()
        .await
        .map_err(|e| access_error(&name, &e))?;
    let payload = response
        .payload
        .ok_or_else(|| anyhow!("secret version {name} came back without a payload"))?;
    if let Some(expected) = payload.data_crc32c
        && i64::from(crc32c::crc32c(&payload.data)) != expected
    {
        // Neither checksum is printed: both are derived from the token.
        bail!(
            "secret version {name}: the payload does not match its checksum (dataCrc32c); \
             it was damaged on the way, refusing it"
        );
    }
    let text = String::from_utf8(payload.data.to_vec())
        .map_err(|_| anyhow!("secret version {name}: the payload is not UTF-8 text"))?;
    let token = Token::new(text).map_err(|e| anyhow!("secret version {name}: {e}"))?;
    tracing::info!(
        secret = %name,
        checksum_verified = payload.data_crc32c.is_some(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "read the Bitcram token from Secret Manager"
    );
    Ok(token)
}

/// Anonymous credentials for an emulator; otherwise Application Default
/// Credentials, proven by getting their headers under [`CREDENTIALS_TIMEOUT`].
async fn find_credentials(endpoint: Option<&str>) -> anyhow::Result<Credentials> {
    if endpoint.is_some() {
        return Ok(anonymous::Builder::new().build());
    }
    let source = credentials_source();
    let credentials = credentials::Builder::default().build().map_err(|e| {
        anyhow!(
            "no usable Google credentials ({source}): {}; {CREDENTIALS_HELP}",
            error_chain(&e)
        )
    })?;
    match tokio::time::timeout(
        CREDENTIALS_TIMEOUT,
        credentials.headers(http::Extensions::new()),
    )
    .await
    {
        Ok(Ok(_)) => Ok(credentials),
        Ok(Err(e)) => Err(anyhow!(
            "no usable Google credentials ({source}): {}; {CREDENTIALS_HELP}",
            error_chain(&e)
        )),
        Err(_) => Err(anyhow!(
            "no Google credentials after {} s ({source}, which did not answer); {CREDENTIALS_HELP}",
            CREDENTIALS_TIMEOUT.as_secs()
        )),
    }
}

/// Where Application Default Credentials come from here, in the order the
/// auth library looks (AIP-4110): for the message when they do not work.
fn credentials_source() -> String {
    if let Some(path) = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS") {
        return format!(
            "looked in GOOGLE_APPLICATION_CREDENTIALS={}",
            path.to_string_lossy()
        );
    }
    let well_known = std::env::var_os("HOME").map(|home| {
        std::path::Path::new(&home).join(".config/gcloud/application_default_credentials.json")
    });
    if let Some(path) = well_known.filter(|p| p.is_file()) {
        return format!(
            "looked in gcloud's application-default login, {}",
            path.display()
        );
    }
    let host = std::env::var("GCE_METADATA_HOST")
        .unwrap_or_else(|_| "metadata.google.internal".to_owned());
    format!(
        "GOOGLE_APPLICATION_CREDENTIALS is unset and there is no gcloud application-default \
         login, so asked the metadata server at {host}"
    )
}

/// One line for a failed access: what the status means for this job.
fn access_error(name: &str, error: &google_cloud_secretmanager_v1::Error) -> anyhow::Error {
    // Over REST the HTTP status and the RPC code agree; either is enough.
    let code = error.status().map(|s| s.code.name());
    match (error.http_status_code(), code) {
        (Some(404), _) | (_, Some("NOT_FOUND")) => anyhow!(
            "secret version {name} not found: check the project, the secret's name, and that \
             it has an enabled version"
        ),
        (Some(403), _) | (_, Some("PERMISSION_DENIED")) => anyhow!(
            "permission denied reading secret version {name}: the job's service account needs \
             {SECRET_ACCESSOR_ROLE} on the secret ({})",
            error_chain(error)
        ),
        (Some(401), _) | (_, Some("UNAUTHENTICATED")) => anyhow!(
            "Secret Manager did not accept the credentials reading {name} ({})",
            error_chain(error)
        ),
        _ => anyhow!("reading secret version {name}: {}", error_chain(error)),
    }
}

/// Phrases the Google libraries add to every level of a transient error;
/// this job does not try again, so they only add noise.
const RETRY_BOILERPLATE: [&str; 2] = [
    " Subsequent calls with this credential might succeed.",
    " but future attempts may succeed",
];

/// An error and its sources on one line, leaving out a source whose text
/// its parent already printed (the Google libraries often do).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let clean = |text: String| {
        RETRY_BOILERPLATE
            .iter()
            .fold(text, |text, noise| text.replace(noise, ""))
    };
    crate::net::join_causes(clean(error.to_string()), error.source(), clean)
}
