//! Benchmark (issue 4): `bitcram-sync sync` end to end on 100,000 products
//! against the local MariaDB, with a post-load procedure copying the table
//! into a mirror: replace mode on a full table, a diff after 3% of the
//! prices changed, and a diff with no change (which takes the no-change
//! shortcut; then once more without the state table, where the transform
//! runs and only the procedure is skipped). The ceiling it is compared to
//! is `LOAD DATA LOCAL INFILE` of the same rows into an empty table plus the
//! procedure on the full table.
//!
//! Run with `cargo bench -p bitcram-sync --bench sync`. Needs MariaDB on
//! 127.0.0.1:3306 (user root, no password; `.ci/start-mariadb`) and the
//! `mariadb` client. Uses the database `bitcram_bench`, dropped first and at
//! the end. Prints figures and whether each target is met; never fails on a
//! missed target.

mod common;

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use sqlx::{Executor as _, MySqlPool};

use common::database::{self, SyncRun, database_url};
use common::{Bodies, binary, mb, median, ms, verdict, write_snapshot};

const DATABASE: &str = "bitcram_bench";
const POST_LOAD_SQL: &str = "CALL update_mirror()";
/// The `updated_at` of the ceiling's rows.
const CEILING_UPDATED_AT: &str = "2026-11-28 09:23:00.000000";

/// Measured runs of each case; the median is reported.
const RUNS: usize = 3;

const TARGET_REPLACE_RATIO: f64 = 1.3;
const TARGET_NO_CHANGE_RATIO: f64 = 0.2;
const TARGET_PEAK_RSS_BYTES: u64 = 160_000_000;

fn main() -> anyhow::Result<()> {
    common::run_launcher_if_asked();
    database::with_database(DATABASE, |admin| async move { bench(&admin).await })
}

async fn bench(admin: &MySqlPool) -> anyhow::Result<()> {
    let work = tempfile::tempdir().context("creating a work directory")?;
    let base = work.path().join("snapshot-base");
    let repriced = work.path().join("snapshot-repriced");
    let tsv = work.path().join("rows.tsv");
    let (bodies_bytes, rows) = {
        let bodies = Bodies::generate(0);
        write_snapshot(&base, &bodies)?;
        write_snapshot(&repriced, &Bodies::generate(common::REPRICED))?;
        let rows = write_tsv(&bodies, &tsv)?;
        (bodies.large_bytes() as u64, rows)
    };
    create_database(admin, work.path()).await?;
    let pool = MySqlPool::connect(&database_url(DATABASE))
        .await
        .context("connecting to the bench database")?;

    println!(
        "sync: {rows} products, bodies {} (MB = 10^6 bytes), post-load `{POST_LOAD_SQL}` \
         (DELETE + INSERT ... SELECT of the table into `mirror`); median of {RUNS} runs",
        mb(bodies_bytes)
    );
    println!("binary: {}", binary().display());

    // The first run fills the empty table and warms the plugin cache.
    let first = sync(work.path(), &base, "replace")?;
    check_rows(&first, rows, 0)?;
    let mut replace = Vec::new();
    for _ in 0..RUNS {
        let run = sync(work.path(), &base, "replace")?;
        check_rows(&run, rows, 0)?;
        replace.push(run);
    }
    // Alternating the catalogs changes the same 3% each time.
    let mut diff_changed = Vec::new();
    for run in 0..RUNS {
        let snapshot = if run % 2 == 0 { &repriced } else { &base };
        let run = sync(work.path(), snapshot, "diff")?;
        check_rows(&run, 0, common::REPRICED as u64)?;
        diff_changed.push(run);
    }
    if RUNS % 2 == 1 {
        // Back to the base catalog for the no-change runs.
        sync(work.path(), &base, "diff")?;
    }
    let mut diff_unchanged = Vec::new();
    for _ in 0..RUNS {
        let run = sync(work.path(), &base, "diff")?;
        check_rows(&run, 0, 0)?;
        if run.report["transform_skipped"] != true {
            bail!("a diff run on the last run's input did not skip the transform");
        }
        diff_unchanged.push(run);
    }
    // The same without the state table: the transform runs, writes nothing.
    sqlx::query("DROP TABLE bitcram_sync_state")
        .execute(&pool)
        .await
        .context("dropping the state table")?;
    let mut diff_unchanged_full = Vec::new();
    for _ in 0..RUNS {
        let run = sync(work.path(), &base, "diff")?;
        check_rows(&run, 0, 0)?;
        if run.report["transform_skipped"] != false {
            bail!("a diff run without the state table skipped the transform");
        }
        diff_unchanged_full.push(run);
    }

    let (load_data, procedure) = ceiling(&pool, &tsv, rows).await?;
    pool.close().await;

    print_first(&first);
    let replace_wall = print_case("replace, full table", &replace);
    let changed_wall = print_case("diff, 3% repriced", &diff_changed);
    let unchanged_wall = print_case("diff, no change", &diff_unchanged);
    let unchanged_full_wall = print_case("diff, no change, no state", &diff_unchanged_full);
    let ceiling = load_data + procedure;
    println!(
        "ceiling: LOAD DATA LOCAL INFILE into an empty table {} + CALL update_mirror() {} = {}",
        ms(load_data),
        ms(procedure),
        ms(ceiling)
    );
    let replace_ratio = replace_wall.as_secs_f64() / ceiling.as_secs_f64();
    let no_change_ratio = unchanged_wall.as_secs_f64() / replace_wall.as_secs_f64();
    println!(
        "ratio replace/ceiling:          {replace_ratio:.3}  target <= {TARGET_REPLACE_RATIO}: {}",
        verdict(replace_ratio <= TARGET_REPLACE_RATIO)
    );
    println!(
        "ratio diff 3%/replace:          {:.3}",
        changed_wall.as_secs_f64() / replace_wall.as_secs_f64()
    );
    println!(
        "ratio diff no change/replace:   {no_change_ratio:.3}  target < {TARGET_NO_CHANGE_RATIO}: {}",
        verdict(no_change_ratio < TARGET_NO_CHANGE_RATIO)
    );
    println!(
        "ratio diff no change, no state table/replace: {:.3} (transform runs; procedure skipped)",
        unchanged_full_wall.as_secs_f64() / replace_wall.as_secs_f64()
    );
    for (name, runs) in [
        ("replace", &replace),
        ("diff 3%", &diff_changed),
        ("diff no change", &diff_unchanged),
        ("no change full", &diff_unchanged_full),
    ] {
        let peak = runs
            .iter()
            .map(|r| r.measured.peak_rss_bytes)
            .max()
            .unwrap_or(0);
        println!(
            "peak RSS {name:<15} (largest run): {}  target < {}: {}",
            mb(peak),
            mb(TARGET_PEAK_RSS_BYTES),
            verdict(peak < TARGET_PEAK_RSS_BYTES)
        );
    }
    Ok(())
}

/// The rows the transform makes of `bodies` (computed natively: the same
/// logic as the component), as a file `LOAD DATA` reads with its default
/// format: tab-separated, backslash escapes. Returns the number of rows.
fn write_tsv(bodies: &Bodies, path: &Path) -> anyhow::Result<u64> {
    use bitcram_transform::Source;
    let mut transform = bitcram_transform::Transform::new();
    transform.push(Source::Checkout, bodies.checkout.clone())?;
    transform.push(Source::Stock, bodies.stock.clone())?;
    transform.push(Source::PriceList, bodies.price_list.clone())?;
    let summary = transform.finish()?;
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut rows = 0;
    loop {
        let batch = transform.next_batch(1000)?;
        if batch.is_empty() {
            break;
        }
        for row in batch {
            write_field(&mut out, &row.id)?;
            out.write_all(b"\t")?;
            write_field(&mut out, &row.data)?;
            writeln!(out, "\t{}\t{CEILING_UPDATED_AT}", row.stock)?;
            rows += 1;
        }
    }
    out.flush()?;
    if rows != summary.rows {
        bail!(
            "the transform announced {} rows and gave {rows}",
            summary.rows
        );
    }
    Ok(rows)
}

/// A field in `LOAD DATA`'s default escaping.
fn write_field(out: &mut impl std::io::Write, text: &str) -> std::io::Result<()> {
    for &byte in text.as_bytes() {
        match byte {
            b'\\' => out.write_all(b"\\\\")?,
            b'\t' => out.write_all(b"\\t")?,
            b'\n' => out.write_all(b"\\n")?,
            b'\r' => out.write_all(b"\\r")?,
            0 => out.write_all(b"\\0")?,
            other => out.write_all(&[other])?,
        }
    }
    Ok(())
}

/// A fresh `bitcram_bench` with the target table (created by the binary's
/// own `db init`), a mirror, the procedure that fills it, and an empty copy
/// of the target table for the ceiling.
async fn create_database(admin: &MySqlPool, work: &Path) -> anyhow::Result<()> {
    database::create_database(admin, DATABASE, work).await?;
    let pool = MySqlPool::connect(&database_url(DATABASE)).await?;
    database::create_mirror(&pool).await?;
    pool.execute("CREATE TABLE ceiling LIKE raw_item_data")
        .await
        .context("creating the ceiling table")?;
    pool.close().await;
    Ok(())
}

/// Runs one sync of `snapshot` in `mode` as a measured child, and reads its
/// report.
fn sync(work: &Path, snapshot: &Path, mode: &str) -> anyhow::Result<SyncRun> {
    let url = database_url(DATABASE);
    let args = [
        OsStr::new("sync"),
        OsStr::new("--from"),
        snapshot.as_os_str(),
        OsStr::new("--database-url"),
        OsStr::new(&url),
        OsStr::new("--post-load-sql"),
        OsStr::new(POST_LOAD_SQL),
        OsStr::new("--mode"),
        OsStr::new(mode),
    ];
    SyncRun::measure(work, &args, |_| {})
}

/// Checks that a run wrote what its case implies.
fn check_rows(run: &SyncRun, inserted: u64, updated: u64) -> anyhow::Result<()> {
    let got = (
        run.rows("inserted"),
        run.rows("updated"),
        run.rows("deleted"),
    );
    if got != (inserted, updated, 0) {
        bail!(
            "a run inserted, updated and deleted {got:?} rows; expected ({inserted}, {updated}, 0)"
        );
    }
    Ok(())
}

/// The ceiling: the median time of `LOAD DATA LOCAL INFILE` of the rows
/// into the empty `ceiling` table (with the `mariadb` client, as a process),
/// and of `CALL update_mirror()` on the full target table in a transaction.
async fn ceiling(pool: &MySqlPool, tsv: &Path, rows: u64) -> anyhow::Result<(Duration, Duration)> {
    // The client refuses LOCAL unless the server allows it.
    let local_infile: i64 = sqlx::query_scalar("SELECT CAST(@@GLOBAL.local_infile AS SIGNED)")
        .fetch_one(pool)
        .await?;
    if local_infile == 0 {
        pool.execute("SET GLOBAL local_infile = 1").await?;
    }
    let statement = format!(
        "LOAD DATA LOCAL INFILE '{}' INTO TABLE ceiling CHARACTER SET utf8mb4 (id, data, stock, updated_at)",
        tsv.display()
    );
    let mut load_data = Vec::new();
    let mut result = Ok(());
    for _ in 0..RUNS {
        pool.execute("TRUNCATE TABLE ceiling").await?;
        let started = Instant::now();
        let output = Command::new("mariadb")
            .args([
                "--local-infile=1",
                "-h",
                "127.0.0.1",
                "-P",
                "3306",
                "-u",
                "root",
                DATABASE,
                "-e",
            ])
            .arg(&statement)
            .output()
            .context("running the mariadb client")?;
        load_data.push(started.elapsed());
        if !output.status.success() {
            result = Err(anyhow::anyhow!(
                "LOAD DATA failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
            break;
        }
    }
    if local_infile == 0 {
        pool.execute("SET GLOBAL local_infile = 0").await?;
    }
    result?;
    // The same rows as the sync wrote, byte for byte: else the ceiling
    // would load something else.
    let same: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM ceiling c JOIN raw_item_data r USING (id) \
         WHERE c.data = r.data AND c.stock = r.stock",
    )
    .fetch_one(pool)
    .await?;
    if same as u64 != rows {
        bail!("the ceiling loaded {same} rows equal to the synced ones, not {rows}");
    }

    let mut procedure = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let mut tx = pool.begin().await?;
        sqlx::raw_sql(POST_LOAD_SQL).execute(&mut *tx).await?;
        tx.commit().await?;
        procedure.push(started.elapsed());
    }
    Ok((median(&load_data), median(&procedure)))
}

/// The first run, on an empty table, for reference.
fn print_first(run: &SyncRun) {
    println!(
        "replace, empty table (1 run):  {:>10}  peak RSS {}  phases: {}",
        ms(run.measured.wall),
        mb(run.measured.peak_rss_bytes),
        phases(run)
    );
}

/// Prints a case's median figures and each run's phases; returns the median
/// wall time.
fn print_case(name: &str, runs: &[SyncRun]) -> Duration {
    let walls: Vec<Duration> = runs.iter().map(|r| r.measured.wall).collect();
    let rss: Vec<u64> = runs.iter().map(|r| r.measured.peak_rss_bytes).collect();
    let wall = median(&walls);
    println!(
        "{:<30} {:>10}  peak RSS {} (median)",
        format!("{name}:"),
        ms(wall),
        mb(median(&rss))
    );
    for run in runs {
        println!(
            "    run {:>10}  peak RSS {}  phases: {}  rows: inserted {} updated {} unchanged {}",
            ms(run.measured.wall),
            mb(run.measured.peak_rss_bytes),
            phases(run),
            run.rows("inserted"),
            run.rows("updated"),
            run.rows("unchanged"),
        );
    }
    wall
}

fn phases(run: &SyncRun) -> String {
    format!(
        "transform {} ms, load {} ms, post-load {} ms, total {} ms",
        run.phase("transform_ms"),
        run.phase("load_ms"),
        run.phase("post_load_ms"),
        run.phase("total_ms")
    )
}
