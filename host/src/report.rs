//! The run report: one summary of a sync, logged as one structured entry and
//! written as JSON with `--report FILE`.

use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

use crate::load::{LoadReport, SyncMode};
use crate::model::SourceCounts;
use crate::plugin::PluginIdentity;

/// Everything a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// `succeeded` (a failed run writes a [`FailedRun`]).
    pub outcome: &'static str,
    pub run_id: String,
    pub mode: SyncMode,
    pub dry_run: bool,
    pub table: String,
    /// The sync time stamped on the written rows.
    pub synced_at: String,
    pub source: SourceReport,
    pub rows: LoadReport,
    /// A diff run whose input (bodies, checkout, plugin) was the last run's,
    /// against the table as that run left it: nothing was transformed, and
    /// the source counts are the last run's.
    pub transform_skipped: bool,
    pub plugin: PluginIdentity,
    pub plugin_peak_memory_bytes: u64,
    pub phases: Phases,
}

/// What was read, and from where.
#[derive(Debug, Clone, Serialize)]
pub struct SourceReport {
    /// `bitcram` or `snapshot`.
    pub kind: &'static str,
    pub checkout_number: String,
    pub checkout_id: u64,
    pub warehouse_id: u64,
    /// What the transform counted (in the JSON beside the fields above).
    #[serde(flatten)]
    pub counts: SourceCounts,
}

/// How long each phase took. Extraction and the opening of the load overlap,
/// and so do the transform and the writing of rows.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Phases {
    pub secrets_ms: u64,
    pub extract_ms: u64,
    pub transform_ms: u64,
    pub load_ms: u64,
    pub post_load_ms: u64,
    pub total_ms: u64,
}

impl RunReport {
    /// Logs the report as one entry with structured fields.
    pub fn log(&self) {
        let r = &self.rows;
        let p = &self.phases;
        tracing::info!(
            run_id = %self.run_id,
            mode = self.mode.name(),
            dry_run = self.dry_run,
            table = %self.table,
            source = self.source.kind,
            checkout = %self.source.checkout_number,
            price_list_items = self.source.counts.price_list_items,
            stock_items = self.source.counts.stock_items,
            dropped_stock_items = self.source.counts.dropped_stock_items,
            rows_before = r.rows_before,
            inserted = r.inserted,
            updated = r.updated,
            deleted = r.deleted,
            unchanged = r.unchanged,
            post_load_statements = r.post_load_statements,
            post_load_skipped = r.post_load_skipped,
            transform_skipped = self.transform_skipped,
            plugin = %self.plugin.name,
            plugin_version = %self.plugin.version,
            plugin_sha256 = %self.plugin.sha256,
            secrets_ms = p.secrets_ms,
            extract_ms = p.extract_ms,
            transform_ms = p.transform_ms,
            load_ms = p.load_ms,
            post_load_ms = p.post_load_ms,
            total_ms = p.total_ms,
            "{}",
            if self.dry_run { "dry run finished: nothing was written" } else { "sync finished" }
        );
    }

    /// Writes the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        write_json(self, path)
    }
}

/// The report of a run that failed: what it was asked to do, and the error
/// (one line, the whole chain, as printed). Nothing was committed unless the
/// error says so.
#[derive(Debug, Clone, Serialize)]
pub struct FailedRun {
    /// `failed`.
    pub outcome: &'static str,
    pub run_id: String,
    pub mode: SyncMode,
    pub dry_run: bool,
    pub table: String,
    pub synced_at: String,
    pub error: String,
}

impl FailedRun {
    /// Writes the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        write_json(self, path)
    }
}

/// Writes beside the file, then renames over it: a reader sees the old
/// report or the new one, never half of one.
fn write_json(report: &impl Serialize, path: &Path) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(report).expect("a report always serializes");
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    let part = std::path::PathBuf::from(part);
    std::fs::write(&part, json)
        .and_then(|()| std::fs::rename(&part, path))
        .with_context(|| format!("writing the run report {}", path.display()))
}

/// A run id for logs and reports: the Cloud Run execution when there is one,
/// otherwise the time and process id.
pub fn new_run_id(execution: Option<String>) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let local = format!("{:x}-{:x}", now.as_millis(), std::process::id());
    match execution {
        Some(execution) => format!("{execution}-{local}"),
        None => local,
    }
}
