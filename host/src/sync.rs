//! One sync, end to end: the plugin gate, the token, the extraction (while
//! the load transaction opens), the transform streaming rows to a database
//! writer, the load, and the run report.

use std::time::Instant;

use anyhow::{Context as _, anyhow};
use tokio::sync::mpsc;

use crate::extract::{Extracted, Input};
use crate::load::{DatabaseTarget, InputRecord, LoadReport, LoadSettings, Loader};
use crate::model::{Row, SourceCounts, format_synced_at};
use crate::plugin::Plugin;
use crate::report::{Phases, RunReport, SourceReport};
use crate::transform::{RowSink, TransformFailure, TransformReport, run_transform};

/// Batches in flight between the transform and the database writer: enough
/// to keep both busy, few enough to bound memory.
const WRITER_QUEUE_BATCHES: usize = 4;
/// On a terminal, a progress line every this many rows.
const PROGRESS_EVERY_ROWS: usize = 20_000;

/// A checked sync, ready to run.
pub struct SyncJob {
    pub input: Input,
    pub database: DatabaseTarget,
    pub load: LoadSettings,
}

/// Runs the sync with a plugin that already passed the gate.
pub async fn run_sync(job: SyncJob, plugin: &Plugin, run_id: String) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let synced_at = job.load.synced_at;
    let mode = job.load.mode;
    let dry_run = job.load.dry_run;
    let table = job.load.table.to_string();

    // The load transaction opens (reading the current rows, locking none)
    // while the extraction runs: neither waits for the other.
    let database = job.database.clone();
    let load_settings = job.load;
    let open_loader = async move {
        let pool = database.connect().await?;
        Loader::begin(pool, load_settings)
            .await
            .with_context(|| format!("preparing the load into {}", database.description()))
    };
    let (extracted, loader) = tokio::join!(crate::extract::extract(job.input), open_loader);
    let (mut extracted, loader) = match (extracted, loader) {
        (Ok(extracted), Ok(loader)) => (extracted, loader),
        // The extraction comes first in a run: its failure is the one to report.
        (Err(e), Ok(loader)) => {
            loader.abort().await;
            return Err(e);
        }
        (Err(e), Err(_)) => return Err(e),
        (Ok(_), Err(e)) => return Err(e),
    };
    let finished = Finished {
        run_id,
        mode,
        dry_run,
        table,
        synced_at: format_synced_at(synced_at),
        started,
        plugin,
    };

    // A diff run on the very input of the last run, against the table as
    // that run left it, would only compute what is already there. Knowing
    // needs every body's digest before the transform: a live run that may
    // skip holds its bodies whole first (the others stream them).
    if !extracted.digests_known()
        && loader.skippable_record().is_some()
        && let Err(e) = extracted.hold_whole().await
    {
        loader.abort().await;
        return Err(e);
    }
    if extracted.digests_known() {
        let input_sha256 = input_key(plugin, &mut extracted).await?;
        if let Some(previous) = loader.unchanged_since_last_run(&input_sha256) {
            tracing::info!(
                last_run = %previous.synced_at,
                "the bodies and the plugin are those of the last run, and the table is as it \
                 left it: nothing to transform"
            );
            let counts = TransformCounts {
                source: previous.counts,
                plugin_peak_memory_bytes: 0,
                transform_ms: 0,
            };
            let load = loader.finish_unchanged().await?;
            return Ok(finished.report(&extracted, counts, load, true));
        }
    }

    let transform_started = Instant::now();
    let context = extracted.run_info.run_context(format_synced_at(synced_at));
    let (sender, mut receiver) = mpsc::channel::<Vec<Row>>(WRITER_QUEUE_BATCHES);
    // On a terminal, a long load shows its progress.
    let show_progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let writer = tokio::spawn(async move {
        let mut loader = loader;
        // Replace mode's DELETE runs while the transform takes the stock.
        if let Err(e) = loader.start_writing().await {
            loader.abort().await;
            return Err(e);
        }
        let mut written = 0usize;
        while let Some(rows) = receiver.recv().await {
            let before = written;
            written += rows.len();
            if let Err(e) = loader.write(rows).await {
                loader.abort().await;
                return Err(e);
            }
            tracing::debug!(rows = written, "rows written inside the transaction");
            if show_progress && written / PROGRESS_EVERY_ROWS > before / PROGRESS_EVERY_ROWS {
                tracing::info!(rows = written, "rows loaded so far");
            }
        }
        Ok(loader)
    });
    let mut sink = ChannelSink(sender);
    let pages = std::mem::replace(
        &mut extracted.pages,
        futures_util::StreamExt::boxed(futures_util::stream::empty()),
    );
    let transformed = run_transform(plugin, &context, pages, &mut sink).await;
    drop(sink);
    let transform_ms = transform_started.elapsed().as_millis() as u64;
    let written = writer
        .await
        .map_err(|e| anyhow!("the database writer failed: {e}"))?;
    let (report, mut loader): (TransformReport, Loader) = match (transformed, written) {
        (Ok(report), Ok(loader)) => (report, loader),
        // The writer's own error explains a closed channel best.
        (_, Err(e)) => return Err(e),
        (Err(e), Ok(loader)) => {
            loader.abort().await;
            return Err(transform_error(e));
        }
    };
    let counts = TransformCounts {
        source: SourceCounts::from(&report.summary),
        plugin_peak_memory_bytes: report.plugin_peak_memory_bytes as u64,
        transform_ms,
    };
    // Every body has arrived: the transform took each to its end.
    let input_sha256 = match input_key(plugin, &mut extracted).await {
        Ok(key) => key,
        Err(e) => {
            loader.abort().await;
            return Err(e);
        }
    };
    loader.record_input(InputRecord {
        input_sha256,
        counts: counts.source,
    });
    let load: LoadReport = loader.finish().await?;
    Ok(finished.report(&extracted, counts, load, false))
}

/// The run's input key: the plugin, the checkout, every body's digest.
async fn input_key(plugin: &Plugin, extracted: &mut Extracted) -> anyhow::Result<String> {
    let digests = extracted.digests().await?;
    Ok(crate::load::input_key(
        &plugin.identity().sha256,
        extracted.run_info.checkout_id,
        extracted.run_info.warehouse_id,
        &digests,
    ))
}

/// What the transform reported, or the last run's figures when it was skipped.
struct TransformCounts {
    source: SourceCounts,
    plugin_peak_memory_bytes: u64,
    transform_ms: u64,
}

/// What a run knows before its end, for its report.
struct Finished<'a> {
    run_id: String,
    mode: crate::load::SyncMode,
    dry_run: bool,
    table: String,
    synced_at: String,
    started: Instant,
    plugin: &'a Plugin,
}

impl Finished<'_> {
    fn report(
        self,
        extracted: &Extracted,
        counts: TransformCounts,
        load: LoadReport,
        transform_skipped: bool,
    ) -> RunReport {
        let phases = Phases {
            secrets_ms: extracted.secrets_ms,
            extract_ms: extracted.extract_ms,
            transform_ms: counts.transform_ms,
            load_ms: load.load_ms,
            post_load_ms: load.post_load_ms,
            total_ms: self.started.elapsed().as_millis() as u64,
        };
        RunReport {
            outcome: "succeeded",
            run_id: self.run_id,
            mode: self.mode,
            dry_run: self.dry_run,
            table: self.table,
            synced_at: self.synced_at,
            source: SourceReport {
                kind: extracted.kind,
                checkout_number: extracted.run_info.checkout_number.clone(),
                checkout_id: extracted.run_info.checkout_id,
                warehouse_id: extracted.run_info.warehouse_id,
                counts: counts.source,
            },
            rows: load,
            transform_skipped,
            plugin: self.plugin.identity().clone(),
            plugin_peak_memory_bytes: counts.plugin_peak_memory_bytes,
            phases,
        }
    }
}

/// Keeps a transform failure's own type (so a refused plugin keeps its exit
/// code) inside anyhow.
fn transform_error(e: TransformFailure) -> anyhow::Error {
    match e {
        TransformFailure::Io(inner) => inner,
        other => anyhow::Error::new(other),
    }
}

/// Hands batches to the database writer task.
struct ChannelSink(mpsc::Sender<Vec<Row>>);

impl RowSink for ChannelSink {
    async fn accept(&mut self, rows: Vec<Row>) -> anyhow::Result<()> {
        self.0
            .send(rows)
            .await
            .map_err(|_| anyhow!("the database writer stopped"))
    }
}
