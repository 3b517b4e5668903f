//! `bitcram-sync demo`: the sample snapshot through the real pipeline into
//! a local SQLite file.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::PluginOptions;
use crate::config;
use crate::extract::Input;
use crate::snapshot::Snapshot;
use crate::sync::{SyncJob, run_sync};

use super::gate::load_plugin;

/// The sample snapshot shipped in `host/demo/snapshot`, built into the binary.
const DEMO_SNAPSHOT: &[(&str, &[u8])] = &[
    (
        "manifest.json",
        include_bytes!("../../demo/snapshot/manifest.json"),
    ),
    (
        "checkout.0.json",
        include_bytes!("../../demo/snapshot/checkout.0.json"),
    ),
    (
        "stock.0.json",
        include_bytes!("../../demo/snapshot/stock.0.json"),
    ),
    (
        "price-list.0.json",
        include_bytes!("../../demo/snapshot/price-list.0.json"),
    ),
];

/// `demo`: the sample snapshot through the real pipeline into SQLite.
pub(super) async fn run(
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
    let dialect = crate::load::create_tables(&pool, &table).await?.dialect;

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
        report.source.counts.price_list_items,
        report.source.counts.stock_items,
        report.source.counts.dropped_stock_items
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
