//! Getting the bodies of a run: from Bitcram (token first, then the three
//! calls) or from a snapshot directory.

use std::path::Path;
use std::time::Instant;

use crate::bitcram::{BitcramClient, BitcramConfig};
use crate::load::BodyDigest;
use crate::plugin::Source;
use crate::secrets::{SecretRef, Token};
use crate::snapshot::{BodySource, RunInfo};
use crate::sync::Input;

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
}

/// The pages in contract order, produced one at a time.
pub type Pages = Box<dyn Iterator<Item = anyhow::Result<(Source, Vec<u8>)>> + Send>;

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
            bodies: snapshot
                .manifest()
                .bodies
                .iter()
                .map(|entry| BodyDigest {
                    source: entry.source,
                    page: entry.page,
                    sha256: entry.sha256.clone(),
                })
                .collect(),
            pages: Box::new(crate::sync::snapshot_pages(snapshot)),
            kind: "snapshot",
            secrets_ms: 0,
            extract_ms: 0,
        }),
        Input::Live(live) => {
            let (bodies, run_info, secrets_ms, extract_ms) = fetch_live(*live).await?;
            let (bodies, digests) = tokio::task::spawn_blocking(move || {
                let digests = crate::snapshot::digest_bodies(
                    bodies
                        .iter()
                        .map(|(source, body)| (*source, body.as_slice())),
                );
                (bodies, digests)
            })
            .await
            .expect("hashing the bodies does not panic");
            let pages = bodies
                .into_iter()
                .map(|(source, body)| Ok((Source::from(source), body)));
            Ok(Extracted {
                run_info,
                pages: Box::new(pages),
                bodies: digests,
                kind: "bitcram",
                secrets_ms,
                extract_ms,
            })
        }
    }
}

/// The bodies in contract order, the run's context, and the time spent on
/// the token and on the calls.
pub async fn fetch_live(
    live: LiveInput,
) -> anyhow::Result<(Vec<(BodySource, Vec<u8>)>, RunInfo, u64, u64)> {
    let secrets_started = Instant::now();
    let token = match live.token {
        TokenSource::Env(token) => token,
        TokenSource::SecretManager(secret) => crate::secrets::read_token(&secret).await?,
    };
    let secrets_ms = secrets_started.elapsed().as_millis() as u64;
    let extract_started = Instant::now();
    let bitcram_url = live.bitcram.base_url.to_string();
    let client = BitcramClient::new(live.bitcram, token)?;
    let extract = client.fetch(&live.checkout_number).await?;
    let extract_ms = extract_started.elapsed().as_millis() as u64;
    let run_info = RunInfo {
        created_at: crate::plugin::format_synced_at(time::OffsetDateTime::now_utc()),
        bitcram_url,
        checkout_number: live.checkout_number,
        checkout_id: extract.checkout.id,
        warehouse_id: extract.checkout.warehouse_id,
    };
    let bodies = vec![
        (BodySource::Checkout, extract.checkout.body),
        (BodySource::Stock, extract.stock),
        (BodySource::PriceList, extract.price_list),
    ];
    Ok((bodies, run_info, secrets_ms, extract_ms))
}

/// `bitcram-sync snapshot --out DIR`: fetches and stores the bodies.
pub async fn write_snapshot(
    live: LiveInput,
    dir: &Path,
) -> anyhow::Result<crate::snapshot::Manifest> {
    let (bodies, run_info, _, _) = fetch_live(live).await?;
    crate::snapshot::write(
        dir,
        &run_info,
        bodies.iter().map(|(s, b)| (*s, b.as_slice())),
    )
}
