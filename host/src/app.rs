//! The commands: each turns parsed arguments into work and returns the
//! process's exit status.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;

use crate::cli::{BitcramArgs, Cli, Command, DbCommand, PluginCommand, PluginOptions, SyncArgs};
use crate::config::{self, ConfigError, SqliteFile};
use crate::exit;
use crate::extract::Input;
use crate::extract::LiveInput;
use crate::load::create_table;
use crate::model::{Row, format_synced_at};
use crate::plugin::{CompileCache, Plugin, PluginError, PluginHost, PluginLimits, PluginSource};
use crate::report::FailedRun;
use crate::snapshot::Snapshot;
use crate::sync::{SyncJob, run_sync};
use crate::transform::{RowSink, TransformFailure, run_transform};

/// The exit status for an error that ended a command.
pub fn exit_code_for(error: &anyhow::Error) -> ExitCode {
    for cause in error.chain() {
        if cause.downcast_ref::<ConfigError>().is_some() {
            return ExitCode::from(exit::USAGE);
        }
        if let Some(PluginError::Refused { .. }) = cause.downcast_ref::<PluginError>() {
            return ExitCode::from(exit::PLUGIN_REFUSED);
        }
        if let Some(TransformFailure::Plugin(PluginError::Refused { .. })) =
            cause.downcast_ref::<TransformFailure>()
        {
            return ExitCode::from(exit::PLUGIN_REFUSED);
        }
    }
    ExitCode::from(exit::FAILURE)
}

/// Runs the command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Every log line of the command carries the run id, the first one too.
    let run_id = crate::report::new_run_id(config::env_var("CLOUD_RUN_EXECUTION"));
    crate::logging::set_run_id(&run_id);
    match cli.command {
        Command::Sync(args) => sync(*args, run_id).await,
        Command::Demo {
            database_url,
            plugin,
            plugin_options,
        } => demo(&database_url, plugin, &plugin_options, run_id).await,
        Command::Snapshot { bitcram, out } => {
            let live = live_input(&bitcram)?;
            let manifest = crate::extract::write_snapshot(live, &out).await?;
            let mut stdout = std::io::stdout().lock();
            for body in &manifest.bodies {
                writeln!(
                    stdout,
                    "{}/{}\t{} bytes\tsha256 {}",
                    out.display(),
                    body.file,
                    body.bytes,
                    body.sha256
                )?;
            }
            writeln!(stdout, "{}/manifest.json", out.display())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Db(DbCommand::Init { database, print }) => {
            let table = config::table_name(&database)?;
            if print {
                let target = config::database_target(&database, SqliteFile::Create).ok();
                let dialect = config::print_dialect(target.as_ref());
                println!("{};", crate::load::create_table_sql(&table, dialect));
                println!();
                println!("{};", crate::load::create_state_table_sql(&table, dialect));
                return Ok(ExitCode::SUCCESS);
            }
            let target = config::database_target(&database, SqliteFile::Create)?;
            let pool = target.connect().await?;
            let mut conn = pool
                .acquire()
                .await
                .context("opening a database connection")?;
            let dialect = crate::load::Dialect::detect(&mut conn).await?;
            let created = create_table(&mut conn, &table, dialect).await?;
            let state_created = crate::load::create_state_table(&mut conn, &table, dialect).await?;
            drop(conn);
            pool.close().await;
            let verb = |created: bool| if created { "created" } else { "already exists" };
            println!(
                "table {table} {} in {}",
                verb(created),
                target.description()
            );
            println!(
                "table {} {} (the record of the last run, for diff mode)",
                crate::load::state_table(&table),
                verb(state_created)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Check { path, plugin }) => {
            let loaded = load_plugin(&plugin, path).await?;
            let id = loaded.identity();
            let mut out = std::io::stdout().lock();
            writeln!(out, "name: {}", id.name)?;
            writeln!(out, "version: {}", id.version)?;
            writeln!(out, "contract: bitcram:transform@{}", id.package_version)?;
            writeln!(out, "sha256: {}", id.sha256)?;
            writeln!(out, "source: {}", id.source)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Run {
            path,
            from,
            out,
            plugin,
        }) => {
            let loaded = load_plugin(&plugin, path).await?;
            let snapshot = Snapshot::open(&from)?;
            let writer: Box<dyn std::io::Write> = match &out {
                Some(path) => Box::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut sink = JsonLinesSink {
                out: std::io::BufWriter::new(writer),
            };
            let report = transform_snapshot(&loaded, &snapshot, &mut sink).await?;
            sink.out.flush().context("writing the rows")?;
            eprintln!(
                "rows={} price_list_items={} stock_items={} dropped_stock_items={} elapsed_ms={} plugin_ms={} plugin_peak_memory_mb={:.1}",
                report.rows,
                report.summary.price_list_items,
                report.summary.stock_items,
                report.summary.dropped_stock_items,
                report.elapsed.as_millis(),
                report.plugin_time.as_millis(),
                report.plugin_peak_memory_bytes as f64 / (1024.0 * 1024.0),
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `sync`: settings are checked first, then the plugin passes the gate, and
/// only then are secrets, Bitcram and the database touched.
async fn sync(args: SyncArgs, run_id: String) -> anyhow::Result<ExitCode> {
    let synced_at = time::OffsetDateTime::now_utc();
    let database = config::database_target(&args.database, SqliteFile::MustExist)?;
    let load = config::load_settings(&args.load, &args.database, &database, synced_at)?;
    let report_path = config::report_path(&args.load)?;
    let failed = FailedRun {
        outcome: "failed",
        run_id: run_id.clone(),
        mode: load.mode,
        dry_run: load.dry_run,
        table: load.table.to_string(),
        synced_at: format_synced_at(synced_at),
        error: String::new(),
    };
    let outcome = async {
        let input = match &args.from {
            Some(dir) => Input::Snapshot(Snapshot::open(dir)?),
            None => Input::Live(Box::new(live_input(&args.bitcram)?)),
        };
        let plugin = load_plugin(&args.plugin_options, args.plugin.clone()).await?;
        tracing::info!(run_id = %run_id, database = %database.description(), table = %load.table, mode = load.mode.name(), dry_run = load.dry_run, "sync starting");
        let job = SyncJob {
            input,
            database,
            load,
        };
        run_sync(job, &plugin, run_id).await
    }
    .await;
    let report = match outcome {
        Ok(report) => report,
        Err(error) => {
            // A failed run leaves its report too, with the error, so that
            // whatever reads the file sees the failure.
            if let Some(path) = &report_path {
                let failed = FailedRun {
                    error: format!("{error:#}"),
                    ..failed
                };
                if let Err(e) = failed.write_json(path) {
                    tracing::warn!(error = %format!("{e:#}"), "could not write the report of the failed run");
                }
            }
            return Err(error);
        }
    };
    report.log();
    if let Some(path) = report_path {
        report.write_json(&path)?;
    }
    if report.dry_run {
        let r = &report.rows;
        match report.mode {
            crate::load::SyncMode::Diff => println!(
                "dry run: {} rows now, {} in the new catalog: would insert {}, update {}, delete {}, leave {} unchanged",
                r.rows_before, r.rows_new, r.inserted, r.updated, r.deleted, r.unchanged
            ),
            // What a replace run does: every row rewritten.
            crate::load::SyncMode::Replace => println!(
                "dry run: {} rows now, {} in the new catalog: replace would delete all {} and insert {} \
                 ({} current ids are not in the new catalog); nothing was written",
                r.rows_before, r.rows_new, r.rows_before, r.rows_new, r.deleted
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The sample snapshot shipped in `host/demo/snapshot`, built into the binary.
const DEMO_SNAPSHOT: &[(&str, &[u8])] = &[
    (
        "manifest.json",
        include_bytes!("../demo/snapshot/manifest.json"),
    ),
    (
        "checkout.0.json",
        include_bytes!("../demo/snapshot/checkout.0.json"),
    ),
    (
        "stock.0.json",
        include_bytes!("../demo/snapshot/stock.0.json"),
    ),
    (
        "price-list.0.json",
        include_bytes!("../demo/snapshot/price-list.0.json"),
    ),
];

/// `demo`: the sample snapshot through the real pipeline into SQLite.
async fn demo(
    database_url: &str,
    plugin_path: Option<std::path::PathBuf>,
    plugin_options: &PluginOptions,
    run_id: String,
) -> anyhow::Result<ExitCode> {
    let synced_at = time::OffsetDateTime::now_utc();
    let database = config::demo_database(database_url)?;
    let table = crate::load::TableName::parse("raw_item_data").expect("a valid literal name");
    let settings = crate::load::LoadSettings {
        table: table.clone(),
        mode: crate::load::SyncMode::Replace,
        post_load: Vec::new(),
        post_load_when: crate::load::PostLoadWhen::Changes,
        max_delete_percent: 10.0,
        allow_shrink: false,
        dry_run: false,
        synced_at,
    };
    let plugin = load_plugin(plugin_options, plugin_path).await?;

    let dir = tempfile::tempdir().context("creating a directory for the sample snapshot")?;
    for (name, bytes) in DEMO_SNAPSHOT {
        std::fs::write(dir.path().join(name), bytes).context("writing the sample snapshot")?;
    }
    let snapshot = Snapshot::open(dir.path())?;

    let pool = database.connect().await?;
    let mut conn = pool.acquire().await.context("opening the demo database")?;
    let dialect = crate::load::Dialect::detect(&mut conn).await?;
    create_table(&mut conn, &table, dialect).await?;
    drop(conn);

    let job = SyncJob {
        input: Input::Snapshot(snapshot),
        database: database.clone(),
        load: settings,
    };
    let report = run_sync(job, &plugin, run_id).await?;
    report.log();

    let rows: Vec<(String, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, stock, data FROM {} ORDER BY id LIMIT 5",
        table.quoted(dialect)
    )))
    .fetch_all(&pool)
    .await
    .context("reading back the demo rows")?;
    pool.close().await;

    let r = &report.rows;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Loaded the sample catalog of checkout {} into {} (table {table}) with {} {}:",
        report.source.checkout_number,
        database.description(),
        report.plugin.name,
        report.plugin.version
    )?;
    writeln!(
        out,
        "  {} price-list items, {} stock items ({} for products not in the catalog, dropped)",
        report.source.price_list_items,
        report.source.stock_items,
        report.source.dropped_stock_items
    )?;
    writeln!(
        out,
        "  {} rows before, {} inserted, {} deleted, in one transaction ({} ms in all)",
        r.rows_before, r.inserted, r.deleted, report.phases.total_ms
    )?;
    writeln!(out, "First rows:")?;
    for (id, stock, data) in rows {
        let name = serde_json::from_str::<serde_json::Value>(&data)
            .ok()
            .and_then(|v| {
                v.get("product_name")
                    .and_then(|n| n.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        writeln!(out, "  {id:>8}  stock {stock:>4}  {name}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The Bitcram settings for a live run, checked.
fn live_input(args: &BitcramArgs) -> anyhow::Result<LiveInput> {
    let missing = |flag: &str, var: &str| ConfigError(format!("{flag} ({var}) is not set"));
    let url = args
        .bitcram_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| missing("--bitcram-url", "URL_BITCRAM"))?;
    let checkout_number = args
        .checkout
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| missing("--checkout", "CHECKOUT"))?
        .to_owned();
    let token = config::token_source(args)?;
    let bitcram = config::bitcram_config(url, args.allow_insecure_http)?;
    Ok(LiveInput {
        bitcram,
        token,
        checkout_number,
    })
}

/// Creates the plugin host for these options and loads the plugin through
/// the gate.
pub async fn load_plugin(
    options: &PluginOptions,
    path: Option<std::path::PathBuf>,
) -> anyhow::Result<Plugin> {
    let limits = PluginLimits {
        timeout: options.plugin_timeout,
        memory_bytes: options.plugin_memory_mb as usize * 1024 * 1024,
    };
    let cache = (!options.no_plugin_cache).then(|| {
        CompileCache::new(
            options
                .plugin_cache
                .clone()
                .unwrap_or_else(CompileCache::default_dir),
        )
    });
    let host = PluginHost::new(limits, cache)?;
    let source = match path {
        Some(path) => PluginSource::Path(path),
        None => PluginSource::Embedded,
    };
    let started = Instant::now();
    let plugin = host.load(&source, options.plugin_sha256.as_deref()).await?;
    let id = plugin.identity();
    tracing::info!(
        plugin = %id.name,
        plugin_version = %id.version,
        plugin_sha256 = %id.sha256,
        contract_version = %id.package_version,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "plugin loaded"
    );
    Ok(plugin)
}

/// Runs the transform over a snapshot's bodies, read one file at a time.
pub async fn transform_snapshot<S: RowSink>(
    plugin: &Plugin,
    snapshot: &Snapshot,
    sink: &mut S,
) -> anyhow::Result<crate::transform::TransformReport> {
    let context = snapshot
        .run_info()
        .run_context(format_synced_at(time::OffsetDateTime::now_utc()));
    let pages = crate::snapshot::pages(snapshot.clone());
    Ok(run_transform(plugin, &context, futures_util::stream::iter(pages), sink).await?)
}

/// Writes rows as JSON lines: `{"id":"...","stock":N,"data":{...}}`.
struct JsonLinesSink<W: std::io::Write> {
    out: W,
}

impl<W: std::io::Write> RowSink for JsonLinesSink<W> {
    async fn accept(&mut self, rows: Vec<Row>) -> anyhow::Result<()> {
        for row in rows {
            // `data` was checked to be a JSON object: embed it as one.
            let data: &serde_json::value::RawValue = serde_json::from_str(&row.data)?;
            serde_json::to_writer(
                &mut self.out,
                &serde_json::json!({ "id": row.id, "stock": row.stock, "data": data }),
            )?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }
}
