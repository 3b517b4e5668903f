//! What the load is asked to do, and what it reports having done.

use super::table::TableName;

/// How the new catalog replaces the old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Delete every row, insert every new row (the original job's result).
    Replace,
    /// Insert new ids, update changed rows, delete vanished ids; unchanged
    /// rows are not written.
    Diff,
}

impl SyncMode {
    /// `replace` or `diff`, as the settings spell it.
    pub fn name(self) -> &'static str {
        match self {
            SyncMode::Replace => "replace",
            SyncMode::Diff => "diff",
        }
    }
}

/// When the post-load statements run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PostLoadWhen {
    /// When the run wrote or deleted rows. Replace mode always rewrites
    /// every row; a diff run that found nothing to change skips them.
    Changes,
    /// On every run that commits, even a diff run that changed nothing
    /// (for statements that also read tables this job does not write).
    Always,
}

/// What the load does, checked and resolved.
#[derive(Debug, Clone)]
pub struct LoadSettings {
    pub table: TableName,
    pub mode: SyncMode,
    /// Statements run after the rows, inside the transaction.
    pub post_load: Vec<String>,
    /// When they run.
    pub post_load_when: PostLoadWhen,
    /// Refuse to delete more than this share of the current rows.
    pub max_delete_percent: f64,
    /// Lift the shrink guard (empty catalog, large drop).
    pub allow_shrink: bool,
    /// Compute everything, write nothing.
    pub dry_run: bool,
    /// The sync time, stamped on every written row's `updated_at`.
    pub synced_at: time::OffsetDateTime,
}

/// What the load did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LoadReport {
    pub dry_run: bool,
    /// Rows in the table before the run.
    pub rows_before: u64,
    /// Rows the transform produced.
    pub rows_new: u64,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub unchanged: u64,
    /// Post-load statements run.
    pub post_load_statements: usize,
    /// Whether they were skipped because a diff run changed nothing (see
    /// [`PostLoadWhen::Changes`]).
    pub post_load_skipped: bool,
    /// Time spent writing rows and deletions.
    pub load_ms: u64,
    /// Time spent in the post-load statements.
    pub post_load_ms: u64,
}
