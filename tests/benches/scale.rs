//! Benchmark: how `bitcram-sync sync` scales with the catalog. Replays
//! generated snapshots of 100,000, 500,000 and 1,000,000 products with
//! `sync --from SNAPSHOT_DIR --dry-run` into an empty SQLite file (so that
//! the runs measure the job, not a database server), and reports each run's
//! peak RSS and wall time (of the process, through `common::measure`) and
//! the plugin's peak memory (`plugin_peak_memory_bytes` of the run report).
//! Then a real 1,000,000-product sync (replace mode, default limits, no
//! post-load statements) into the local MariaDB.
//!
//! Targets: the host's peak RSS at 500,000 products at most 1.25 times the
//! one at 100,000 (memory does not grow with the catalog); the plugin's peak
//! memory at 1,000,000 products at most 64 MiB; the real 1,000,000-product
//! sync succeeds.
//!
//! Run with `cargo bench -p bitcram-sync --bench scale`. Needs MariaDB on
//! 127.0.0.1:3306 (user root, no password; `.ci/start-mariadb`). Uses the
//! database `bitcram_bench_scale`, dropped first and at the end. The
//! snapshots are generated one size at a time into a temporary directory
//! (the 1,000,000-product price list is some 470 MB), and each is removed
//! once its runs are done. One run per case; the first run of the bench
//! fills the plugin's compile cache and is only reported. Prints figures and
//! whether each target is met; never fails on a missed target.

mod common;

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, bail};
use sqlx::MySqlPool;

use common::database::{self, SyncRun, database_url, db_init};
use common::{Bodies, ClearSettings as _, binary, mb, ms, verdict, write_snapshot};

const DATABASE: &str = "bitcram_bench_scale";

/// The catalog sizes of the dry runs, smallest first.
const SIZES: [usize; 3] = [100_000, 500_000, 1_000_000];
/// The size of the real sync into MariaDB.
const REAL_SYNC_PRODUCTS: usize = 1_000_000;

/// Peak RSS at 500,000 products over peak RSS at 100,000.
const TARGET_RSS_RATIO: f64 = 1.25;
/// The plugin's peak memory at 1,000,000 products.
const TARGET_PLUGIN_PEAK_BYTES: u64 = 64 * 1024 * 1024;

fn main() -> anyhow::Result<()> {
    common::run_launcher_if_asked();
    database::with_database(DATABASE, |admin| async move { bench(&admin).await })
}

/// The run's figures on one line.
fn summary(run: &SyncRun) -> String {
    format!(
        "wall {:>10}  peak RSS {:>9}  plugin peak {:>8}  (transform {} ms, load {} ms, total {} ms)",
        ms(run.measured.wall),
        mb(run.measured.peak_rss_bytes),
        mb(run.plugin_peak()),
        run.phase("transform_ms"),
        run.phase("load_ms"),
        run.phase("total_ms"),
    )
}

/// The places every run shares.
struct Work<'a> {
    /// The working directory of the runs (the binary reads `.env` from it).
    dir: &'a Path,
    /// The SQLite file the dry runs read, as a URL.
    sqlite_url: String,
}

async fn bench(admin: &MySqlPool) -> anyhow::Result<()> {
    let work_dir = tempfile::tempdir().context("creating a work directory")?;
    let sqlite = work_dir.path().join("dry-run.db");
    let work = Work {
        dir: work_dir.path(),
        sqlite_url: format!("sqlite://{}", sqlite.display()),
    };
    database::create_database(admin, DATABASE, work.dir).await?;
    db_init(&work.sqlite_url, work.dir)?;

    println!(
        "scale: sync --from SNAPSHOT_DIR of 100,000 / 500,000 / 1,000,000 products; \
         one run per case; MB = 10^6 bytes, MiB = 2^20 bytes"
    );
    println!("binary: {}", binary().display());
    let idle = common::measure(binary(), &[OsStr::new("--version")], |cmd| {
        cmd.env_clear_settings().current_dir(work.dir);
    })?;
    println!(
        "baseline `bitcram-sync --version`: wall {}  peak RSS {}",
        ms(idle.wall),
        mb(idle.peak_rss_bytes)
    );

    let mut dry_runs: Vec<(usize, SyncRun)> = Vec::new();
    let mut real: Option<SyncRun> = None;
    for products in SIZES {
        let snapshot = work.dir.join(format!("snapshot-{products}"));
        generate_snapshot(&snapshot, products)?;

        if dry_runs.is_empty() {
            let warm_up = dry_run(&work, &snapshot, products, true)?;
            println!(
                "  warm-up (fills the plugin cache; not counted): {}",
                summary(&warm_up)
            );
        }
        let run = dry_run(&work, &snapshot, products, false)?;
        println!("  dry run, {products} products: {}", summary(&run));
        dry_runs.push((products, run));

        if products == REAL_SYNC_PRODUCTS {
            let run = real_sync(&work, &snapshot, products)?;
            println!(
                "  real sync, {products} products: {}  rows inserted {}",
                summary(&run),
                run.rows("inserted")
            );
            real = Some(run);
        }
        std::fs::remove_dir_all(&snapshot)
            .with_context(|| format!("removing {}", snapshot.display()))?;
    }

    println!();
    println!("results (one run each):");
    for (products, run) in &dry_runs {
        println!(
            "dry run {:>9} products:  wall {:>10}  peak RSS {:>9}  plugin peak {:>8} ({:.1} MiB)",
            products,
            ms(run.measured.wall),
            mb(run.measured.peak_rss_bytes),
            mb(run.plugin_peak()),
            run.plugin_peak() as f64 / (1024.0 * 1024.0),
        );
    }
    let rss = |size: usize| {
        dry_runs
            .iter()
            .find(|(products, _)| *products == size)
            .map(|(_, run)| run.measured.peak_rss_bytes)
            .context("a size without a run")
    };
    let ratio = rss(500_000)? as f64 / rss(100_000)? as f64;
    println!(
        "peak RSS 500k/100k:                {ratio:.3}  target <= {TARGET_RSS_RATIO}: {}",
        verdict(ratio <= TARGET_RSS_RATIO)
    );
    let plugin_peak = dry_runs
        .iter()
        .find(|(products, _)| *products == 1_000_000)
        .map(|(_, run)| run.plugin_peak())
        .context("no run at 1,000,000 products")?;
    println!(
        "plugin peak memory at 1M:          {:.1} MiB  target <= {} MiB: {}",
        plugin_peak as f64 / (1024.0 * 1024.0),
        TARGET_PLUGIN_PEAK_BYTES / (1024 * 1024),
        verdict(plugin_peak <= TARGET_PLUGIN_PEAK_BYTES)
    );
    let real = real.context("no real sync ran")?;
    println!(
        "real sync 1M into MariaDB:         wall {}  peak RSS {}  plugin peak {}  rows inserted {}  \
         target succeeds: {} (it succeeded)",
        ms(real.measured.wall),
        mb(real.measured.peak_rss_bytes),
        mb(real.plugin_peak()),
        real.rows("inserted"),
        verdict(true)
    );
    Ok(())
}

/// Generates the bodies for `products` products and writes them as a
/// snapshot into `dir`; the bodies are dropped before this returns.
fn generate_snapshot(dir: &Path, products: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let bodies = Bodies {
        checkout: common::checkout_body(),
        stock: common::stock_body(products),
        price_list: common::price_list_body(products, 0),
    };
    let generated = started.elapsed();
    write_snapshot(dir, &bodies)
        .with_context(|| format!("writing the snapshot {}", dir.display()))?;
    println!(
        "{products} products: snapshot {} (price list {}, stock {}), generated in {}, written in {}",
        mb(bodies.large_bytes() as u64 + bodies.checkout.len() as u64),
        mb(bodies.price_list.len() as u64),
        mb(bodies.stock.len() as u64),
        ms(generated),
        ms(started.elapsed() - generated)
    );
    Ok(())
}

/// A dry run of `snapshot` against the SQLite file; checks the report says
/// it would load every product.
fn dry_run(work: &Work, snapshot: &Path, products: usize, quiet: bool) -> anyhow::Result<SyncRun> {
    let args: Vec<OsString> = vec![
        "sync".into(),
        "--from".into(),
        snapshot.into(),
        "--database-url".into(),
        work.sqlite_url.clone().into(),
        "--dry-run".into(),
    ];
    let run = sync(work, &args, quiet)?;
    if run.report["dry_run"] != true {
        bail!("a dry run's report does not say dry_run: true");
    }
    check_rows(&run, products)?;
    Ok(run)
}

/// A real sync of `snapshot` into the bench database: replace mode, default
/// limits, no post-load statements (the default procedure is not there).
fn real_sync(work: &Work, snapshot: &Path, products: usize) -> anyhow::Result<SyncRun> {
    let args: Vec<OsString> = vec![
        "sync".into(),
        "--from".into(),
        snapshot.into(),
        "--database-url".into(),
        database_url(DATABASE).into(),
        "--mode".into(),
        "replace".into(),
        "--post-load-sql".into(),
        "".into(),
    ];
    let run = sync(work, &args, false)?;
    if run.report["dry_run"] != false {
        bail!("the real sync's report does not say dry_run: false");
    }
    check_rows(&run, products)?;
    if run.rows("inserted") != products as u64 {
        bail!(
            "the real sync inserted {} rows, not {products}",
            run.rows("inserted")
        );
    }
    Ok(run)
}

/// Runs `bitcram-sync ARGS --report FILE` as a measured child and reads its
/// report. Prints the command line unless `quiet`.
fn sync(work: &Work, args: &[OsString], quiet: bool) -> anyhow::Result<SyncRun> {
    let args: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
    if !quiet {
        println!(
            "  measuring: (cd {}; env RUST_LOG=warn,sqlx::query=error PLUGIN_CACHE_DIR={} \
             bitcram-sync {} --report FILE)",
            work.dir.display(),
            work.dir.join("plugin-cache").display(),
            args.iter()
                .map(|a| shell_word(a))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    SyncRun::measure(work.dir, &args, |_| {})
}

/// Checks that a run read every product and made a row of each.
fn check_rows(run: &SyncRun, products: usize) -> anyhow::Result<()> {
    let items = run.report["source"]["price_list_items"].as_u64();
    let rows = run.rows("rows_new");
    if items != Some(products as u64) || rows != products as u64 {
        bail!("a run on {products} products read {items:?} price-list items and made {rows} rows");
    }
    Ok(())
}

/// `arg` as a shell would need it written.
fn shell_word(arg: &OsStr) -> String {
    let text = arg.to_string_lossy();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+".contains(c));
    if plain {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
