//! The load: the new rows, the deletions and the post-load statements in one
//! transaction, so that readers see either the old catalog or the whole new
//! one, never an empty or half-loaded table.
//!
//! Nothing here issues a statement that commits implicitly (`TRUNCATE`, DDL):
//! the replace mode empties the table with `DELETE`. Rows are written inside
//! the transaction as the transform produces them; the guards are checked
//! after the last row and before `COMMIT`, and any failure rolls everything
//! back, including what the post-load statements wrote.

mod post_load;
mod state;
mod table;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use futures_util::TryStreamExt as _;
use sha2::{Digest, Sha256};
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyPool, AssertSqlSafe, QueryBuilder, Row as _, Transaction};

pub use post_load::{
    Flavor, Refusal, check_text as check_post_load_text, refusal_message, split_statements,
};
pub use state::{
    RunRecord, STATE_TABLE, TableDigest, create_state_table, create_state_table_sql, input_key,
    state_table,
};
pub use table::{Dialect, TableName, check_table, create_table, create_table_sql};

use crate::model::{Row, format_sql_datetime};
use post_load::TransactionMark;

/// Rows per multi-row statement: 4 placeholders a row stays far under MySQL's
/// 65,535 and SQLite's 32,766.
const CHUNK_ROWS: usize = 1000;
/// Bytes of `data` per statement: well under MySQL's default 64 MiB
/// `max_allowed_packet` (16 MiB on older MariaDB).
const CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// How long to wait for a connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Why the load refused to commit, on purpose.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GuardRefusal(pub String);

/// A database to connect to, with a description that carries no password.
#[derive(Clone)]
pub struct DatabaseTarget {
    url: String,
    description: String,
    /// A SQLite file that must already exist (it is not created).
    existing_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl DatabaseTarget {
    /// `url` may hold a password: it is never logged; `description` is.
    pub fn new(url: String, description: String) -> Self {
        Self {
            url,
            description,
            existing_file: None,
        }
    }

    /// A local SQLite file; created if missing only when `create` is set
    /// (by the commands that create tables: a failed `sync` leaves no empty
    /// file behind).
    pub fn sqlite(path: &std::path::Path, create: bool) -> Self {
        let description = format!("sqlite://{}", path.display());
        let mode = if create { "rwc" } else { "rw" };
        Self {
            url: format!("{description}?mode={mode}"),
            description,
            existing_file: (!create).then(|| path.to_owned()),
        }
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn is_sqlite(&self) -> bool {
        self.url.starts_with("sqlite:")
    }

    /// One connection, in a pool of one so that a transaction can own it.
    pub async fn connect(&self) -> anyhow::Result<AnyPool> {
        if let Some(path) = &self.existing_file
            && !path.is_file()
        {
            bail!(
                "connecting to the database {}: the file does not exist (create it and its table \
                 with `bitcram-sync db init --database-url {}`)",
                self.description,
                self.description
            );
        }
        sqlx::any::install_default_drivers();
        AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect(&self.url)
            .await
            .map_err(|e| {
                anyhow!(
                    "connecting to the database {}: {}",
                    self.description,
                    describe_db_error(&e)
                )
            })
    }
}

/// A database error as one line, without the connection's credentials
/// (sqlx's messages carry none; this only flattens them).
pub fn describe_db_error(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (code {code})", db.message()),
            None => db.message().to_owned(),
        },
        other => other.to_string().replace('\n', " "),
    }
}

/// The state of the table before the run, as the guards and the diff need it.
enum Current {
    /// Replace mode: only which ids exist.
    Ids(HashMap<String, ()>),
    /// Diff mode: each id's fingerprint of `stock` and `data`.
    Fingerprints(HashMap<String, Fingerprint>),
}

type Fingerprint = [u8; 16];

/// The state record's part of a load, when the state table exists.
struct Tracking {
    /// What the last committed run recorded, if any.
    previous: Option<RunRecord>,
    /// The digest of the table as the run found it (diff mode and dry runs).
    before: TableDigest,
    /// The digest of the rows this run writes.
    after: TableDigest,
    /// This run's input, once the sync knows it (see [`Loader::record_input`]).
    input: Option<InputRecord>,
}

/// This run's input, for the state record. A load never told its input
/// records an empty key, which no run matches: the next diff run transforms.
#[derive(Debug, Clone, Default)]
pub struct InputRecord {
    /// The [`input_key`].
    pub input_sha256: String,
    pub price_list_items: u64,
    pub stock_items: u64,
    pub dropped_stock_items: u64,
}

/// One open load transaction.
pub struct Loader {
    pool: AnyPool,
    tx: Option<Transaction<'static, Any>>,
    dialect: Dialect,
    settings: LoadSettings,
    quoted_table: String,
    synced_at_text: String,
    current: Current,
    pending: Vec<Row>,
    pending_bytes: usize,
    chunks_written: u64,
    lock_name: Option<String>,
    /// Marks the transaction, to tell whether a post-load statement ended it.
    mark: Option<TransactionMark>,
    tracking: Option<Tracking>,
    report: LoadReport,
    started: Instant,
}

impl Loader {
    /// Opens the transaction: takes the run lock, checks the table, reads
    /// the current rows' ids (and fingerprints, in diff mode)
    /// and, in replace mode, deletes every row (inside the transaction).
    /// Meant to run while the extraction is still under way.
    pub async fn begin(pool: AnyPool, settings: LoadSettings) -> anyhow::Result<Self> {
        let started = Instant::now();
        let mut conn = pool
            .acquire()
            .await
            .context("opening a database connection")?;
        let dialect = Dialect::detect(&mut conn).await?;
        drop(conn);
        let quoted_table = settings.table.quoted(dialect);
        let table = settings.table.clone();

        let mut tx = pool
            .begin()
            .await
            .map_err(|e| anyhow!("starting the transaction: {}", describe_db_error(&e)))?;
        let lock_name = match dialect {
            Dialect::MySql | Dialect::MariaDb => {
                // One sync per table at a time: a second run fails at once
                // instead of interleaving its writes with the first. Lock
                // names are server-wide and at most 64 characters: hash the
                // database and table into one.
                let name: String = sqlx::query_scalar(
                    "SELECT CAST(CONCAT('bitcram-sync:', LEFT(SHA2(CONCAT(COALESCE(?, DATABASE()), '.', ?), 256), 40)) AS CHAR)",
                )
                .bind(table.schema().map(str::to_owned))
                .bind(table.table().to_owned())
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| anyhow!("naming the run lock: {}", describe_db_error(&e)))?;
                let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 0)")
                    .bind(name.clone())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| anyhow!("taking the run lock: {}", describe_db_error(&e)))?;
                if got != Some(1) {
                    bail!(
                        "another bitcram-sync run is loading table {table}; try again when it has finished"
                    );
                }
                Some(name)
            }
            Dialect::Sqlite => None,
        };
        let mut loader = Self {
            pool,
            tx: Some(tx),
            dialect,
            quoted_table,
            synced_at_text: format_sql_datetime(settings.synced_at),
            current: Current::Ids(HashMap::new()),
            pending: Vec::with_capacity(CHUNK_ROWS),
            pending_bytes: 0,
            chunks_written: 0,
            lock_name,
            mark: None,
            tracking: None,
            report: LoadReport {
                dry_run: settings.dry_run,
                ..LoadReport::default()
            },
            settings,
            started,
        };
        match loader.prepare().await {
            Ok(()) => Ok(loader),
            Err(e) => {
                loader.abort().await;
                Err(e)
            }
        }
    }

    async fn prepare(&mut self) -> anyhow::Result<()> {
        let table = self.settings.table.clone();
        let dialect = self.dialect;
        let tx = self.tx.as_mut().expect("transaction open");
        check_table(tx, &table, dialect).await?;
        // Before anything is written: no post-load statement may end the
        // transaction (see `post_load`).
        post_load::check_statements(tx, &self.settings.post_load, dialect).await?;
        self.mark = Some(TransactionMark::set(tx).await?);
        self.tracking = state::read(tx, &table, dialect)
            .await?
            .map(|previous| Tracking {
                previous,
                before: TableDigest::default(),
                after: TableDigest::default(),
                input: None,
            });

        // Replace mode rewrites every row, dry run or not: only the ids matter.
        let fingerprints = self.settings.mode == SyncMode::Diff;
        self.current = if fingerprints {
            let data = match dialect {
                // MySQL returns its binary JSON as normalized text.
                Dialect::MySql => "CAST(data AS CHAR)",
                Dialect::MariaDb | Dialect::Sqlite => "data",
            };
            let sql = format!("SELECT id, stock, {data} FROM {}", self.quoted_table);
            let mut map = HashMap::new();
            let mut rows = sqlx::query(AssertSqlSafe(sql)).fetch(&mut **tx);
            while let Some(row) = rows.try_next().await.map_err(|e| {
                anyhow!(
                    "reading the current rows of {table}: {}",
                    describe_db_error(&e)
                )
            })? {
                let id: String = row.try_get(0)?;
                let stock: i64 = row.try_get(1)?;
                let data: String = row.try_get(2)?;
                let fp = fingerprint(stock, &data, dialect);
                if let Some(tracking) = &mut self.tracking {
                    tracking.before.add(&id, &fp);
                }
                map.insert(id, fp);
            }
            Current::Fingerprints(map)
        } else {
            let sql = format!("SELECT id FROM {}", self.quoted_table);
            let ids: Vec<String> = sqlx::query_scalar(AssertSqlSafe(sql))
                .fetch_all(&mut **tx)
                .await
                .map_err(|e| {
                    anyhow!(
                        "reading the current ids of {table}: {}",
                        describe_db_error(&e)
                    )
                })?;
            Current::Ids(ids.into_iter().map(|id| (id, ())).collect())
        };
        self.report.rows_before = match &self.current {
            Current::Ids(ids) => ids.len(),
            Current::Fingerprints(map) => map.len(),
        } as u64;

        if self.settings.mode == SyncMode::Replace && !self.settings.dry_run {
            let sql = format!("DELETE FROM {}", self.quoted_table);
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut **tx)
                .await
                .map_err(|e| {
                    anyhow!("delete: emptying {table} failed: {}", describe_db_error(&e))
                })?;
        }
        tracing::debug!(rows_before = self.report.rows_before, %table, "load transaction open");
        Ok(())
    }

    /// Takes a batch of checked rows; writes them in chunks.
    pub async fn write(&mut self, rows: Vec<Row>) -> anyhow::Result<()> {
        for row in rows {
            self.report.rows_new += 1;
            let new = matches!(self.current, Current::Fingerprints(_)) || self.tracking.is_some();
            let new = new.then(|| fingerprint(row.stock, &row.data, self.dialect));
            if let (Some(tracking), Some(new)) = (&mut self.tracking, &new) {
                tracking.after.add(&row.id, new);
            }
            let write = match &mut self.current {
                Current::Ids(ids) => {
                    ids.remove(&row.id);
                    self.report.inserted += 1;
                    true
                }
                Current::Fingerprints(map) => match map.remove(&row.id) {
                    None => {
                        self.report.inserted += 1;
                        true
                    }
                    Some(old) if Some(old) == new => {
                        self.report.unchanged += 1;
                        false
                    }
                    Some(_) => {
                        self.report.updated += 1;
                        true
                    }
                },
            };
            if write && !self.settings.dry_run {
                self.pending_bytes += row.data.len() + row.id.len();
                self.pending.push(row);
                if self.pending.len() >= CHUNK_ROWS || self.pending_bytes >= CHUNK_BYTES {
                    self.flush().await?;
                }
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.chunks_written += 1;
        let chunk = self.chunks_written;
        let rows = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let mut query: QueryBuilder<Any> = QueryBuilder::new(format!(
            "INSERT INTO {} (id, data, stock, updated_at) ",
            self.quoted_table
        ));
        query.push_values(&rows, |mut tuple, row| {
            tuple
                .push_bind(row.id.clone())
                .push_bind(row.data.clone())
                .push_bind(row.stock)
                .push_bind(self.synced_at_text.clone());
        });
        if self.settings.mode == SyncMode::Diff {
            query.push(match self.dialect {
                Dialect::MySql | Dialect::MariaDb => {
                    " ON DUPLICATE KEY UPDATE data = VALUES(data), stock = VALUES(stock), updated_at = VALUES(updated_at)"
                }
                Dialect::Sqlite => {
                    " ON CONFLICT(id) DO UPDATE SET data = excluded.data, stock = excluded.stock, updated_at = excluded.updated_at"
                }
            });
        }
        let tx = self.tx.as_mut().expect("transaction open");
        query.build().execute(&mut **tx).await.map_err(|e| {
            anyhow!(
                "insert chunk {chunk} ({} rows from product {}) failed: {}",
                rows.len(),
                rows[0].id,
                describe_db_error(&e)
            )
        })?;
        Ok(())
    }

    /// The last run's record when this run may skip the transform: diff mode,
    /// the state table holds a record whose input key is `input_sha256`, and
    /// the table is exactly as that run left it (same ids, `stock` and `data`).
    pub fn unchanged_since_last_run(&self, input_sha256: &str) -> Option<&RunRecord> {
        if self.settings.mode != SyncMode::Diff || self.report.rows_before == 0 {
            return None;
        }
        let tracking = self.tracking.as_ref()?;
        let previous = tracking.previous.as_ref()?;
        (previous.input_sha256 == input_sha256 && previous.table_digest == tracking.before.to_hex())
            .then_some(previous)
    }

    /// Tells the load this run's input, so that a commit records it in the
    /// state table (when there is one).
    pub fn record_input(&mut self, input: InputRecord) {
        if let Some(tracking) = &mut self.tracking {
            tracking.input = Some(input);
        }
    }

    /// Ends a run whose input and table are those of the last run (see
    /// [`Loader::unchanged_since_last_run`]): no row is written, and the
    /// post-load statements run only with [`PostLoadWhen::Always`].
    pub async fn finish_unchanged(mut self) -> anyhow::Result<LoadReport> {
        let rows = self.report.rows_before;
        self.report.rows_new = rows;
        self.report.unchanged = rows;
        self.current = Current::Ids(HashMap::new());
        if let Some(tracking) = &mut self.tracking {
            tracking.after = tracking.before;
            tracking.input = tracking.previous.as_ref().map(|previous| InputRecord {
                input_sha256: previous.input_sha256.clone(),
                price_list_items: previous.price_list_items,
                stock_items: previous.stock_items,
                dropped_stock_items: previous.dropped_stock_items,
            });
        }
        self.finish().await
    }

    /// Writes what is left, applies the deletions, checks the guards, runs
    /// the post-load statements and commits (or, in a dry run, rolls back).
    /// Any error rolls the whole transaction back.
    pub async fn finish(mut self) -> anyhow::Result<LoadReport> {
        match self.complete().await {
            Ok(()) => {
                self.release_lock().await;
                self.pool.close().await;
                Ok(self.report)
            }
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    async fn complete(&mut self) -> anyhow::Result<()> {
        self.flush().await?;
        let vanished: Vec<String> = match &mut self.current {
            Current::Ids(ids) => ids.drain().map(|(id, ())| id).collect(),
            Current::Fingerprints(map) => map.drain().map(|(id, _)| id).collect(),
        };
        self.report.deleted = vanished.len() as u64;
        self.check_guards()?;

        let table = self.settings.table.clone();
        if self.settings.mode == SyncMode::Diff && !self.settings.dry_run {
            let tx = self.tx.as_mut().expect("transaction open");
            for (n, ids) in vanished.chunks(CHUNK_ROWS).enumerate() {
                let mut query: QueryBuilder<Any> =
                    QueryBuilder::new(format!("DELETE FROM {} WHERE id IN (", self.quoted_table));
                let mut list = query.separated(", ");
                for id in ids {
                    list.push_bind(id.clone());
                }
                query.push(")");
                query.build().execute(&mut **tx).await.map_err(|e| {
                    anyhow!(
                        "delete chunk {} of vanished ids from {table} failed: {}",
                        n + 1,
                        describe_db_error(&e)
                    )
                })?;
            }
        }
        self.report.load_ms = self.started.elapsed().as_millis() as u64;

        if self.settings.dry_run {
            let tx = self.tx.take().expect("transaction open");
            tx.rollback()
                .await
                .map_err(|e| anyhow!("rolling back the dry run: {}", describe_db_error(&e)))?;
            return Ok(());
        }

        let changed = self.report.inserted + self.report.updated + self.report.deleted > 0;
        let post_load_runs = self.settings.mode == SyncMode::Replace
            || changed
            || self.settings.post_load_when == PostLoadWhen::Always;
        self.report.post_load_skipped = !post_load_runs && !self.settings.post_load.is_empty();
        if post_load_runs {
            self.run_post_load().await?;
        }

        // The state record goes last: a run whose post-load statements did
        // not complete must not look, to the next diff run, like one that did.
        if let Some(tracking) = &mut self.tracking {
            let input = tracking.input.take().unwrap_or_default();
            let record = RunRecord {
                input_sha256: input.input_sha256,
                table_digest: tracking.after.to_hex(),
                price_list_items: input.price_list_items,
                stock_items: input.stock_items,
                dropped_stock_items: input.dropped_stock_items,
                synced_at: self.synced_at_text.clone(),
            };
            let same = tracking.previous.as_ref().is_some_and(|previous| {
                previous.input_sha256 == record.input_sha256
                    && previous.table_digest == record.table_digest
            });
            if !same {
                let tx = self.tx.as_mut().expect("transaction open");
                state::write(tx, &table, self.dialect, &record).await?;
            }
        }

        let tx = self.tx.take().expect("transaction open");
        tx.commit()
            .await
            .map_err(|e| anyhow!("commit failed: {}", describe_db_error(&e)))?;
        Ok(())
    }

    /// Runs the post-load statements in order. After each one the
    /// transaction must still be the run's (see [`TransactionMark`]): if a
    /// statement ended it, the run stops there and says what the server did
    /// with the rows, whether or not the statement then failed.
    async fn run_post_load(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let tx = self.tx.as_mut().expect("transaction open");
        let mark = self.mark.as_ref().expect("marked when the load began");
        for (k, statement) in self.settings.post_load.iter().enumerate() {
            let ran = sqlx::raw_sql(AssertSqlSafe(statement.clone()))
                .execute(&mut **tx)
                .await;
            let failure = |e: &sqlx::Error| {
                format!(
                    "post-load statement {} (`{}`) failed: {}",
                    k + 1,
                    statement.trim(),
                    describe_db_error(e)
                )
            };
            match mark.still_open(tx).await {
                Ok(true) => {}
                Ok(false) => {
                    let written = self.report.inserted + self.report.updated;
                    let ended = post_load::how_it_ended(
                        tx,
                        &self.quoted_table,
                        &self.synced_at_text,
                        written,
                    )
                    .await;
                    let then = match &ran {
                        Ok(_) => String::new(),
                        Err(e) => format!(" (and then failed: {})", describe_db_error(e)),
                    };
                    bail!(
                        "post-load statement {} (`{}`) ended the load's transaction{then}: {}; \
                         post-load statements must not commit or roll back",
                        k + 1,
                        statement.trim(),
                        ended.describe(&self.settings.table.to_string()),
                    );
                }
                // The connection failed: the statement's own error says more.
                Err(check) => {
                    ran.map_err(|e| anyhow!(failure(&e)))?;
                    return Err(check);
                }
            }
            ran.map_err(|e| anyhow!(failure(&e)))?;
            self.report.post_load_statements += 1;
        }
        self.report.post_load_ms = started.elapsed().as_millis() as u64;
        Ok(())
    }

    /// The shrink guard: an empty catalog, or the removal of more than
    /// `max_delete_percent` of the current rows, is refused unless allowed.
    fn check_guards(&self) -> anyhow::Result<()> {
        if self.settings.allow_shrink {
            return Ok(());
        }
        let before = self.report.rows_before;
        let remaining = before - self.report.deleted;
        let table = &self.settings.table;
        if self.report.rows_new == 0 {
            return Err(GuardRefusal(format!(
                "shrink guard: the new catalog is empty; table {table} has {before} rows and would have none \
                 (use --allow-shrink to load it anyway)"
            ))
            .into());
        }
        if before > 0 {
            let percent = self.report.deleted as f64 * 100.0 / before as f64;
            if percent > self.settings.max_delete_percent {
                return Err(GuardRefusal(format!(
                    "shrink guard: the new catalog would remove {} of the {before} rows in {table} ({percent:.1}%, \
                     more than --max-delete-percent {}); {remaining} would remain, {} with the new products \
                     (use --allow-shrink to load it anyway)",
                    self.report.deleted,
                    self.settings.max_delete_percent,
                    self.report.rows_new,
                ))
                .into());
            }
        }
        Ok(())
    }

    /// Rolls back and closes; errors here only get logged (the server rolls
    /// back an unfinished transaction when its connection closes anyway).
    pub async fn abort(mut self) {
        if let Some(tx) = self.tx.take()
            && let Err(e) = tx.rollback().await
        {
            tracing::warn!(error = %describe_db_error(&e), "rollback failed; the server discards the transaction when the connection closes");
        }
        self.release_lock().await;
        self.pool.close().await;
    }

    async fn release_lock(&mut self) {
        if let Some(name) = self.lock_name.take() {
            let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
                .bind(name)
                .execute(&self.pool)
                .await;
        }
    }
}

/// `stock` and `data` hashed. Where the server keeps `data` as written, its
/// text is hashed as is; MySQL returns JSON normalized (key order, spacing),
/// so there both sides are hashed in a canonical form.
fn fingerprint(stock: i64, data: &str, dialect: Dialect) -> Fingerprint {
    let mut hasher = Sha256::new();
    hasher.update(stock.to_le_bytes());
    if dialect.keeps_json_text() {
        hasher.update(data.as_bytes());
    } else {
        match serde_json::from_str::<serde_json::Value>(data) {
            Ok(value) => hash_canonical(&value, &mut hasher),
            Err(_) => hasher.update(data.as_bytes()),
        }
    }
    let digest = hasher.finalize();
    digest[..16].try_into().expect("sha256 has 32 bytes")
}

fn hash_canonical(value: &serde_json::Value, hasher: &mut Sha256) {
    use serde_json::Value;
    match value {
        Value::Null => hasher.update(b"n"),
        Value::Bool(b) => hasher.update(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            // MySQL keeps integers as integers and stores the rest as doubles.
            match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => hasher.update(format!("i{i}")),
                (None, Some(u)) => hasher.update(format!("i{u}")),
                _ => hasher.update(format!("f{}", n.as_f64().unwrap_or(f64::NAN))),
            }
        }
        Value::String(s) => {
            hasher.update(b"s");
            hasher.update((s.len() as u64).to_le_bytes());
            hasher.update(s.as_bytes());
        }
        Value::Array(items) => {
            hasher.update(format!("a{}", items.len()));
            for item in items {
                hash_canonical(item, hasher);
            }
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            hasher.update(format!("o{}", keys.len()));
            for key in keys {
                hasher.update((key.len() as u64).to_le_bytes());
                hasher.update(key.as_bytes());
                hash_canonical(&map[key.as_str()], hasher);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_fingerprints_ignore_key_order_and_spacing() {
        let a = fingerprint(3, r#"{"b":1,"a":[1.5,null,"x y"]}"#, Dialect::MySql);
        let b = fingerprint(3, r#"{"a": [1.5, null, "x y"], "b": 1}"#, Dialect::MySql);
        assert_eq!(a, b);
        assert_ne!(
            a,
            fingerprint(4, r#"{"b":1,"a":[1.5,null,"x y"]}"#, Dialect::MySql)
        );
        assert_ne!(
            a,
            fingerprint(3, r#"{"b":2,"a":[1.5,null,"x y"]}"#, Dialect::MySql)
        );
    }

    #[test]
    fn a_database_target_prints_its_description_never_its_url() {
        let target = DatabaseTarget::new(
            "mysql://sync:hunter2@db.internal:3306/shop".to_owned(),
            "mysql://sync@db.internal:3306/shop".to_owned(),
        );
        assert_eq!(format!("{target:?}"), "mysql://sync@db.internal:3306/shop");
        assert_eq!(target.description(), "mysql://sync@db.internal:3306/shop");
    }

    #[test]
    fn text_fingerprints_compare_bytes() {
        let a = fingerprint(3, r#"{"b":1}"#, Dialect::MariaDb);
        assert_eq!(a, fingerprint(3, r#"{"b":1}"#, Dialect::Sqlite));
        assert_ne!(a, fingerprint(3, r#"{"b": 1}"#, Dialect::MariaDb));
    }
}
