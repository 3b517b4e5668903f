//! The load: the new rows, the deletions and the post-load statements in one
//! transaction, so that readers see either the old catalog or the whole new
//! one, never an empty or half-loaded table.
//!
//! Nothing here issues a statement that commits implicitly (`TRUNCATE`, DDL):
//! the replace mode empties the table with `DELETE`. Rows are written inside
//! the transaction as the transform produces them; the guards are checked
//! after the last row and before `COMMIT`, and any failure rolls everything
//! back, including what the post-load statements wrote.

mod current;
mod fingerprint;
mod guards;
mod lock;
mod options;
mod post_load;
mod state;
mod table;
mod target;

use std::time::Instant;

use anyhow::{Context as _, anyhow, bail};
use sqlx::{Any, AnyPool, AssertSqlSafe, QueryBuilder, Transaction};

pub use options::{LoadReport, LoadSettings, PostLoadWhen, SyncMode};
pub use post_load::{
    Flavor, Refusal, check_text as check_post_load_text, refusal_message, split_statements,
};
pub use state::{
    RunRecord, STATE_TABLE, TableDigest, create_state_table, create_state_table_sql, input_key,
    state_table,
};
pub use table::{Dialect, TableName, check_table, create_table, create_table_sql};
pub use target::{DatabaseTarget, describe_db_error};

use crate::id_set::IdTally;
use crate::model::{Row, SourceCounts, format_sql_datetime};
use current::Current;
use fingerprint::fingerprint;
use post_load::TransactionMark;

/// Rows per multi-row statement: 4 placeholders a row stays far under MySQL's
/// 65,535 and SQLite's 32,766.
const CHUNK_ROWS: usize = 1000;
/// Bytes of ids and `data` per statement: well under MySQL's default 64 MiB
/// `max_allowed_packet` (16 MiB on older MariaDB).
const CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// What [`create_tables`] found and did.
#[derive(Debug, Clone, Copy)]
pub struct TablesCreated {
    pub dialect: Dialect,
    /// Whether the target table was created (false: it existed).
    pub table: bool,
    /// Whether the state table was created.
    pub state_table: bool,
}

/// Connects, finds the dialect, and creates the target table and its state
/// table where missing (`db init` and `demo`).
pub async fn create_tables(
    pool: &sqlx::AnyPool,
    table: &TableName,
) -> anyhow::Result<TablesCreated> {
    let mut conn = pool
        .acquire()
        .await
        .context("opening a database connection")?;
    let dialect = Dialect::detect(&mut conn).await?;
    let created = create_table(&mut conn, table, dialect).await?;
    let state_created = state::create_state_table(&mut conn, table, dialect).await?;
    Ok(TablesCreated {
        dialect,
        table: created,
        state_table: state_created,
    })
}

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
    pub counts: SourceCounts,
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
    /// Whether replace mode has emptied the table yet.
    emptied: bool,
    tracking: Option<Tracking>,
    report: LoadReport,
    started: Instant,
}

impl Loader {
    /// Opens the transaction: takes the run lock, checks the table and the
    /// post-load statements, and reads the current rows' ids (and
    /// fingerprints, in diff mode) without locking them. Meant to run while
    /// the extraction is still under way; replace mode's `DELETE` waits for
    /// [`start_writing`](Self::start_writing).
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
            Dialect::MySql | Dialect::MariaDb => Some(lock::take(&mut tx, &table).await?),
            Dialect::Sqlite => None,
        };
        let mut loader = Self {
            pool,
            tx: Some(tx),
            dialect,
            quoted_table,
            synced_at_text: format_sql_datetime(settings.synced_at),
            current: Current::Ids(IdTally::default()),
            pending: Vec::with_capacity(CHUNK_ROWS),
            pending_bytes: 0,
            chunks_written: 0,
            lock_name,
            mark: None,
            emptied: false,
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
        let before = self.tracking.as_mut().map(|tracking| &mut tracking.before);
        let read = current::Read {
            table: &table,
            quoted_table: &self.quoted_table,
            dialect,
            fingerprints,
        };
        self.current = read.rows(tx, before).await?;
        self.report.rows_before = self.current.len();

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
                    ids.strike(&row.id);
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

    /// Says that rows are about to come (the transform is starting): replace
    /// mode empties the table now, inside the transaction, so that the
    /// `DELETE` runs while the transform takes the stock (no row can be
    /// made before the stock has all arrived). Not earlier: until then the
    /// run holds no row lock, so a slow Bitcram keeps no other writer of the
    /// table waiting. Without it, the first rows written empty the table.
    pub async fn start_writing(&mut self) -> anyhow::Result<()> {
        self.empty_for_replace().await
    }

    /// Replace mode: empties the table (inside the transaction), once.
    async fn empty_for_replace(&mut self) -> anyhow::Result<()> {
        if self.settings.mode != SyncMode::Replace || self.settings.dry_run || self.emptied {
            return Ok(());
        }
        let sql = format!("DELETE FROM {}", self.quoted_table);
        let tx = self.tx.as_mut().expect("transaction open");
        sqlx::query(AssertSqlSafe(sql))
            .execute(&mut **tx)
            .await
            .map_err(|e| {
                anyhow!(
                    "delete: emptying {} failed: {}",
                    self.settings.table,
                    describe_db_error(&e)
                )
            })?;
        self.emptied = true;
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.empty_for_replace().await?;
        self.chunks_written += 1;
        let chunk = self.chunks_written;
        let rows = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let mut query: QueryBuilder<Any> = QueryBuilder::new(format!(
            "INSERT INTO {} (id, data, stock, updated_at) ",
            self.quoted_table
        ));
        // Named in the message of a failed chunk; the rows themselves are
        // moved into the statement, not copied.
        let (count, first_id) = (rows.len(), rows[0].id.clone());
        let synced_at = &self.synced_at_text;
        query.push_values(rows, |mut tuple, row| {
            tuple
                .push_bind(row.id)
                .push_bind(row.data)
                .push_bind(row.stock)
                .push_bind(synced_at.clone());
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
                "insert chunk {chunk} ({count} rows from product {first_id}) failed: {}",
                describe_db_error(&e)
            )
        })?;
        Ok(())
    }

    /// The last run's record when this run may skip the transform: diff mode,
    /// the state table holds a record whose input key is `input_sha256`, and
    /// the table is exactly as that run left it (same ids, `stock` and `data`).
    pub fn unchanged_since_last_run(&self, input_sha256: &str) -> Option<&RunRecord> {
        self.skippable_record()
            .filter(|previous| previous.input_sha256 == input_sha256)
    }

    /// Whether some input could let this run skip its transform (see
    /// [`Loader::unchanged_since_last_run`]): a diff run on a table as the
    /// last recorded run left it, whose record is returned.
    pub fn skippable_record(&self) -> Option<&RunRecord> {
        if self.settings.mode != SyncMode::Diff || self.report.rows_before == 0 {
            return None;
        }
        let tracking = self.tracking.as_ref()?;
        let previous = tracking.previous.as_ref()?;
        (previous.table_digest == tracking.before.to_hex()).then_some(previous)
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
        self.current = Current::Ids(IdTally::default());
        if let Some(tracking) = &mut self.tracking {
            tracking.after = tracking.before;
            tracking.input = tracking.previous.as_ref().map(|previous| InputRecord {
                input_sha256: previous.input_sha256.clone(),
                counts: previous.counts,
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
        let (deleted, vanished) = self.current.take_vanished();
        self.report.deleted = deleted;
        guards::check_shrink(&self.settings, &self.report)?;
        // A catalog without rows, allowed by --allow-shrink, still empties
        // the table (a load never told rows were coming has not yet).
        self.empty_for_replace().await?;

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
        // A table that is not as the last recorded run left it (a run whose
        // post-load statements did not complete, an edit behind the job's
        // back) gets its post-load statements too.
        let drifted = self.tracking.as_ref().is_some_and(|tracking| {
            tracking
                .previous
                .as_ref()
                .is_some_and(|previous| previous.table_digest != tracking.before.to_hex())
        });
        let post_load_runs = self.settings.mode == SyncMode::Replace
            || changed
            || drifted
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
                counts: input.counts,
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
        let written = self.report.inserted + self.report.updated;
        let table = self.settings.table.to_string();
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
            match mark.transaction_open(tx).await {
                Ok(true) => {}
                Ok(false) => {
                    let ended = post_load::how_it_ended(
                        tx,
                        &self.quoted_table,
                        &self.synced_at_text,
                        written,
                    )
                    .await
                    .describe(&table);
                    match &ran {
                        // A deadlock, say: the server ended it, not the statement.
                        Err(e) => bail!(
                            "{}, and the load's transaction had ended: {ended}",
                            failure(e)
                        ),
                        Ok(_) => bail!(
                            "post-load statement {} (`{}`) ended the load's transaction: {ended}; \
                             post-load statements must not commit or roll back",
                            k + 1,
                            statement.trim(),
                        ),
                    }
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
        // Open, but is it still the run's? (A statement could have ended it
        // and started another.)
        if !self.settings.post_load.is_empty() && !mark.still_ours(tx).await? {
            let ended =
                post_load::how_it_ended(tx, &self.quoted_table, &self.synced_at_text, written)
                    .await
                    .describe(&table);
            bail!(
                "the post-load statements ended the load's transaction and started another: {ended}; \
                 post-load statements must not commit or roll back"
            );
        }
        self.report.post_load_ms = started.elapsed().as_millis() as u64;
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
            lock::release(&self.pool, name).await;
        }
    }
}
