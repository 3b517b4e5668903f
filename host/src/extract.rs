//! Getting the bodies of a run: from Bitcram (token first, then the three
//! calls, the lists streamed as they arrive) or from a snapshot directory
//! (each file read in chunks when its turn comes).

use std::io::{Read, Write as _};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use futures_util::stream::{self, BoxStream};
use futures_util::{StreamExt as _, TryStreamExt as _};

use crate::bitcram::{BitcramClient, BitcramConfig, Checkout, ListStream, Opened, SplitError};
use crate::body::Body;
use crate::model::{BodyDigest, RunInfo, Source, format_synced_at};
use crate::secrets::{SecretRef, Token};
use crate::snapshot::{BodyFile, Snapshot, WrittenBody};

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
    /// The longest the token and the calls may take in all, the bodies'
    /// arrival included.
    pub deadline: Duration,
}

/// The pages in contract order, produced one at a time.
pub type Pages = BoxStream<'static, anyhow::Result<(Source, Body)>>;

/// The bodies of one run.
pub struct Extracted {
    pub run_info: RunInfo,
    pub pages: Pages,
    /// Each body's sha256, in contract order, for the run's input key.
    digests: Vec<(Source, u32, Digest)>,
    /// `bitcram` or `snapshot`.
    pub kind: &'static str,
    pub secrets_ms: u64,
    /// Until both lists had started to arrive.
    pub extract_ms: u64,
}

/// A body's sha256: known, or once the body has arrived.
enum Digest {
    Known(String),
    Arriving(tokio::task::JoinHandle<Result<String, String>>),
}

impl Extracted {
    /// Whether every body's digest is known already (a snapshot's are, from
    /// its manifest; a live run's lists', only once they have arrived).
    pub fn digests_known(&self) -> bool {
        self.digests
            .iter()
            .all(|(_, _, digest)| matches!(digest, Digest::Known(_)))
    }

    /// Waits for every body and holds it whole: for a run that needs the
    /// input's digests before its transform.
    pub async fn hold_whole(&mut self) -> anyhow::Result<()> {
        let pages = std::mem::replace(&mut self.pages, stream::empty().boxed());
        let held: Vec<(Source, Body)> = pages
            .and_then(|(source, body)| async move {
                let bytes = body.whole().await.map_err(|reason| anyhow!(reason))?;
                Ok((source, Body::Whole(bytes)))
            })
            .try_collect()
            .await?;
        self.pages = stream::iter(held.into_iter().map(Ok)).boxed();
        self.digests().await.map(drop)
    }

    /// Each body's digest, in contract order; the bodies must have arrived
    /// (the transform took them to their end, or they were held whole).
    pub async fn digests(&mut self) -> anyhow::Result<Vec<BodyDigest>> {
        let mut settled = Vec::with_capacity(self.digests.len());
        for (source, page, digest) in &mut self.digests {
            let sha256 = match digest {
                Digest::Known(sha256) => sha256.clone(),
                Digest::Arriving(arrival) => {
                    let sha256 = arrival
                        .await
                        .map_err(|e| anyhow!("receiving the {} body failed: {e}", source.name()))?
                        .map_err(|reason| anyhow!(reason))?;
                    *digest = Digest::Known(sha256.clone());
                    sha256
                }
            };
            settled.push(BodyDigest {
                source: *source,
                page: *page,
                sha256,
            });
        }
        Ok(settled)
    }
}

/// Reads the token and opens the calls (the lists' bodies then arrive as the
/// transform takes them), or opens the snapshot.
pub async fn extract(input: Input) -> anyhow::Result<Extracted> {
    match input {
        Input::Snapshot(snapshot) => Ok(Extracted {
            run_info: snapshot.run_info(),
            // The manifest's digests: each body is checked against its own
            // as it is read, and a mismatch fails the run before its commit.
            digests: crate::snapshot::digests(snapshot.manifest())
                .into_iter()
                .map(|d| (d.source, d.page, Digest::Known(d.sha256)))
                .collect(),
            pages: stream::iter(crate::snapshot::pages(snapshot)).boxed(),
            kind: "snapshot",
            secrets_ms: 0,
            extract_ms: 0,
        }),
        Input::Live(live) => {
            let deadline = live.deadline;
            let ends_at = tokio::time::Instant::now() + deadline;
            let (opened, run_info, secrets_ms, extract_ms) =
                within(deadline, open_live(*live, ends_at, SYNC_AFTER_CUT)).await?;
            let Opened {
                checkout,
                stock,
                price_list,
            } = opened;
            let checkout = Bytes::from(checkout.body);
            let checkout_sha256 = crate::snapshot::sha256_hex(&checkout);
            Ok(Extracted {
                run_info,
                pages: stream::iter([
                    Ok((Source::Checkout, Body::Whole(checkout))),
                    Ok((Source::Stock, stock.body)),
                    Ok((Source::PriceList, price_list.body)),
                ])
                .boxed(),
                digests: vec![
                    (Source::Checkout, 0, Digest::Known(checkout_sha256)),
                    (Source::Stock, 0, Digest::Arriving(stock.arrival)),
                    (Source::PriceList, 0, Digest::Arriving(price_list.arrival)),
                ],
                kind: "bitcram",
                secrets_ms,
                extract_ms,
            })
        }
    }
}

/// `work`, or the extraction's timeout.
async fn within<T>(
    deadline: Duration,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(deadline, work)
        .await
        .unwrap_or_else(|_| {
            Err(anyhow!(
                "the extraction did not finish within {} (--extract-timeout); nothing was written",
                crate::model::format_duration(deadline)
            ))
        })
}

/// A client with its token, and what reading the token took.
struct Connected {
    client: BitcramClient,
    bitcram_url: String,
    checkout_number: String,
    secrets_ms: u64,
}

async fn connect(live: LiveInput) -> anyhow::Result<Connected> {
    let secrets_started = Instant::now();
    let token = match live.token {
        TokenSource::Env(token) => token,
        TokenSource::SecretManager(secret) => crate::secrets::read_token(&secret).await?,
    };
    let secrets_ms = secrets_started.elapsed().as_millis() as u64;
    let bitcram_url = live.bitcram.base_url.to_string();
    Ok(Connected {
        client: BitcramClient::new(live.bitcram, token)?,
        bitcram_url,
        checkout_number: live.checkout_number,
        secrets_ms,
    })
}

impl Connected {
    fn run_info(self, checkout: &Checkout) -> RunInfo {
        RunInfo {
            created_at: format_synced_at(time::OffsetDateTime::now_utc()),
            bitcram_url: self.bitcram_url,
            checkout_number: self.checkout_number,
            checkout_id: checkout.id,
            warehouse_id: checkout.warehouse_id,
        }
    }
}

/// Reads the token, finds the checkout and opens the two lists; returns them
/// (their bodies arriving), the run's context, and the time spent on the
/// token and on the calls.
async fn open_live(
    live: LiveInput,
    ends_at: tokio::time::Instant,
    after_cut: &'static str,
) -> anyhow::Result<(Opened, RunInfo, u64, u64)> {
    let connected = connect(live).await?;
    let started = Instant::now();
    let opened = connected
        .client
        .open(&connected.checkout_number, ends_at, after_cut)
        .await?;
    let extract_ms = started.elapsed().as_millis() as u64;
    let secrets_ms = connected.secrets_ms;
    let run_info = connected.run_info(&opened.checkout);
    Ok((opened, run_info, secrets_ms, extract_ms))
}

/// What a body cut off in the middle means to a sync.
const SYNC_AFTER_CUT: &str = "a body cut off once the transform has started is not fetched \
                              again, and the run stops with nothing written";
/// What it means to a snapshot.
const SNAPSHOT_AFTER_CUT: &str = "a body cut off once it has started to arrive is not fetched again, and no snapshot is \
     written";

/// `bitcram-sync snapshot --out DIR`: fetches the bodies and stores each as
/// it arrives, checking the lists' envelopes on the way; the snapshot is
/// complete (its manifest written) only once every body has passed.
pub async fn write_snapshot(
    live: LiveInput,
    dir: &Path,
) -> anyhow::Result<crate::snapshot::Manifest> {
    let deadline = live.deadline;
    let ends_at = tokio::time::Instant::now() + deadline;
    within(deadline, async move {
        let (opened, run_info, _, _) = open_live(live, ends_at, SNAPSHOT_AFTER_CUT).await?;
        crate::snapshot::create_dir(dir)?;
        let mut checkout = BodyFile::create(dir, Source::Checkout, 0)?;
        checkout
            .write_all(&opened.checkout.body)
            .with_context(|| format!("writing {}", checkout.path().display()))?;
        let checkout = checkout.finish()?;
        let stored = tokio::try_join!(
            store_list(dir, Source::Stock, opened.stock),
            store_list(dir, Source::PriceList, opened.price_list)
        );
        let (stock, price_list) = match stored {
            Ok(stored) => stored,
            Err(e) => {
                // The other list may still be on its way to its `.part` file,
                // on a thread that is not waited for.
                crate::snapshot::remove_parts(dir);
                return Err(e);
            }
        };
        crate::snapshot::commit(dir, &run_info, vec![checkout, stock, price_list])
    })
    .await
}

/// Writes one list into the snapshot directory as its chunks arrive, its
/// envelope checked on the way (on a blocking thread).
async fn store_list(dir: &Path, source: Source, list: ListStream) -> anyhow::Result<WrittenBody> {
    let mut file = BodyFile::create(dir, source, 0)?;
    let call = list.body.origin().unwrap_or(source.name()).to_owned();
    let mut reader = list.body.into_reader();
    let stored = tokio::task::spawn_blocking(move || {
        let path = file.path().display().to_string();
        let tee = Tee {
            reader: &mut reader,
            file: &mut file,
            path: &path,
        };
        let checked = crate::bitcram::check_reader(tee);
        // The producer's own words say best why its body ended.
        if let Some(reason) = reader.failure() {
            return Err(anyhow!(reason.to_owned()));
        }
        match checked {
            Ok(items) => {
                tracing::info!(call = %call, items, "Bitcram list checked");
                file.finish()
            }
            Err(SplitError::Malformed(reason)) => Err(anyhow!("{call}: {reason}")),
            // Writing the file failed: its words.
            Err(SplitError::Read(reason)) => Err(anyhow!(reason)),
        }
    })
    .await
    .map_err(|e| anyhow!("storing the {} body failed: {e}", source.name()))??;
    // Every byte was read: the arrival has its verdict.
    list.arrival
        .await
        .map_err(|e| anyhow!("receiving the {} body failed: {e}", source.name()))?
        .map_err(|reason| anyhow!(reason))?;
    Ok(stored)
}

/// Reads from `reader`, writing every byte read into `file`.
struct Tee<'a, R> {
    reader: R,
    file: &'a mut BodyFile,
    path: &'a str,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.reader.read(buf)?;
        self.file
            .write_all(&buf[..n])
            .map_err(|e| std::io::Error::other(format!("writing {}: {e}", self.path)))?;
        Ok(n)
    }
}
