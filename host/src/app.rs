//! The commands: each turns parsed arguments into work and returns the
//! process's exit status.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;

use crate::cli::{Cli, Command, PluginCommand, PluginOptions};
use crate::plugin::{
    CompileCache, Plugin, PluginError, PluginHost, PluginLimits, PluginSource, Row, Source,
    format_synced_at,
};
use crate::snapshot::Snapshot;
use crate::transform::{RowSink, TransformFailure, run_transform};

/// The exit statuses documented in `--help` and README.md.
pub mod exit {
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const PLUGIN_REFUSED: u8 = 3;
}

/// A configuration error: exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

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
    match cli.command {
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
    let pages = snapshot.manifest().bodies.iter().map(|entry| {
        snapshot
            .read_body(entry)
            .map(|body| (Source::from(entry.source), body))
    });
    Ok(run_transform(plugin, &context, pages, sink).await?)
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
