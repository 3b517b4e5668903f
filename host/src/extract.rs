//! Getting the bodies of a run: from Bitcram (token first, then the three
//! calls) or from a snapshot directory.

use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::{self, BoxStream};

use crate::bitcram::{BitcramClient, BitcramConfig, Download, PendingList};
use crate::model::{BodyDigest, RunInfo, Source, format_synced_at};
use crate::secrets::{SecretRef, Token};
use crate::snapshot::Snapshot;

/// Where the bodies come from.
pub enum Input {
    /// A snapshot directory (`sync --from`).
    Snapshot(Snapshot),
    /// Bitcram itself.
    Live(Box<LiveInput>),
}

/// Where the token comes from.
pub enum TokenSource {
    /// `BITCRAM_TOKEN`, for local runs.
    Env(Token),
    /// Secret Manager.
    SecretManager(SecretRef),
}

/// A live extraction's settings.
pub struct LiveInput {
    pub bitcram: BitcramConfig,
    pub token: TokenSource,
    pub checkout_number: String,
    /// The longest the token and the calls may take in all.
    pub deadline: std::time::Duration,
}

/// The pages in contract order, produced one at a time.
pub type Pages = BoxStream<'static, anyhow::Result<(Source, Bytes)>>;

/// The bodies of one run.
pub struct Extracted {
    pub run_info: RunInfo,
    pub pages: Pages,
    /// Each body's sha256, in contract order, for the run's input key.
    pub bodies: Vec<BodyDigest>,
    /// `bitcram` or `snapshot`.
    pub kind: &'static str,
    pub secrets_ms: u64,
    pub extract_ms: u64,
}

/// Reads the token and fetches the bodies, or opens the snapshot.
pub async fn extract(input: Input) -> anyhow::Result<Extracted> {
    match input {
        Input::Snapshot(snapshot) => Ok(Extracted {
            run_info: snapshot.run_info(),
            // The manifest's digests: each body is checked against its own
            // when it is read.
            bodies: crate::snapshot::digests(snapshot.manifest()),
            pages: stream::iter(crate::snapshot::pages(snapshot)).boxed(),
            kind: "snapshot",
            secrets_ms: 0,
            extract_ms: 0,
        }),
        Input::Live(live) => {
            let (download, run_info, secrets_ms, extract_ms) = download_live(*live).await?;
            let Download {
                checkout,
                stock,
                price_list,
            } = download;
            let checkout = Bytes::from(checkout.body);
            // The input key needs every body's digest; the lists' envelope
            // checks run meanwhile, on other threads.
            let bodies = [
                (Source::Checkout, checkout.clone()),
                (Source::Stock, stock.unchecked_body().clone()),
                (Source::PriceList, price_list.unchecked_body().clone()),
            ];
            let digests = tokio::task::spawn_blocking(move || {
                crate::snapshot::digest_bodies(
                    bodies.iter().map(|(source, body)| (*source, body.as_ref())),
                )
            })
            .await
            .expect("hashing the bodies does not panic");
            // A list reaches the plugin only once its check passed (the price
            // list's usually has by the time the plugin has taken the stock).
            let checked = |source: Source, list: PendingList| async move {
                let (body, _) = list.checked().await?;
                Ok((source, body))
            };
            let pages = stream::iter([Ok((Source::Checkout, checkout))])
                .chain(stream::once(checked(Source::Stock, stock)))
                .chain(stream::once(checked(Source::PriceList, price_list)));
            Ok(Extracted {
                run_info,
                pages: pages.boxed(),
                bodies: digests,
                kind: "bitcram",
                secrets_ms,
                extract_ms,
            })
        }
    }
}

/// Reads the token, finds the checkout and downloads the bodies; returns the
/// download (the lists' checks still running), the run's context, and
/// the time spent on the token and on the calls.
async fn download_live(live: LiveInput) -> anyhow::Result<(Download, RunInfo, u64, u64)> {
    let deadline = live.deadline;
    tokio::time::timeout(deadline, download_live_untimed(live))
        .await
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "the extraction did not finish within {} (--extract-timeout); nothing was written",
                crate::model::format_duration(deadline)
            ))
        })
}

async fn download_live_untimed(live: LiveInput) -> anyhow::Result<(Download, RunInfo, u64, u64)> {
    let secrets_started = Instant::now();
    let token = match live.token {
        TokenSource::Env(token) => token,
        TokenSource::SecretManager(secret) => crate::secrets::read_token(&secret).await?,
    };
    let secrets_ms = secrets_started.elapsed().as_millis() as u64;
    let extract_started = Instant::now();
    let bitcram_url = live.bitcram.base_url.to_string();
    let client = BitcramClient::new(live.bitcram, token)?;
    let download = client.download(&live.checkout_number).await?;
    let extract_ms = extract_started.elapsed().as_millis() as u64;
    let run_info = RunInfo {
        created_at: format_synced_at(time::OffsetDateTime::now_utc()),
        bitcram_url,
        checkout_number: live.checkout_number,
        checkout_id: download.checkout.id,
        warehouse_id: download.checkout.warehouse_id,
    };
    Ok((download, run_info, secrets_ms, extract_ms))
}

/// `bitcram-sync snapshot --out DIR`: fetches, checks and stores the bodies.
pub async fn write_snapshot(
    live: LiveInput,
    dir: &Path,
) -> anyhow::Result<crate::snapshot::Manifest> {
    let (download, run_info, _, _) = download_live(live).await?;
    let extract = download.checked().await?;
    crate::snapshot::write(
        dir,
        &run_info,
        [
            (Source::Checkout, extract.checkout.body.as_slice()),
            (Source::Stock, extract.stock.as_slice()),
            (Source::PriceList, extract.price_list.as_slice()),
        ],
    )
}
