//! `bitcram-sync plugin check`, `plugin run` and `plugin test`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::PluginOptions;
use crate::model::Row;
use crate::snapshot::Snapshot;
use crate::transform::RowSink;

use super::gate::load_plugin;
use super::replay::transform_snapshot;

/// Passes a component through the gate and prints who it is.
pub(super) async fn check(
    options: &PluginOptions,
    path: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let loaded = load_plugin(options, path).await?;
    let id = loaded.identity();
    let mut out = std::io::stdout().lock();
    writeln!(out, "name: {}", id.name)?;
    writeln!(out, "version: {}", id.version)?;
    writeln!(out, "contract: bitcram:transform@{}", id.package_version)?;
    writeln!(out, "sha256: {}", id.sha256)?;
    writeln!(out, "source: {}", id.source)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs a component offline on a snapshot; rows as JSON lines to `out` or
/// stdout, a summary to stderr.
pub(super) async fn run(
    options: &PluginOptions,
    path: Option<PathBuf>,
    from: &Path,
    out: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let loaded = load_plugin(options, path).await?;
    let snapshot = Snapshot::open(from)?;
    let writer: Box<dyn std::io::Write> = match out {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
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

/// Runs a component on every golden case under `cases`: a line per case on
/// stdout, then a count; JUnit XML to `junit` if given. Fails (exit 1) when
/// any case does.
pub(super) async fn test(
    options: &PluginOptions,
    path: Option<PathBuf>,
    cases: &Path,
    exact: bool,
    junit: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let loaded = load_plugin(options, path).await?;
    let cases = super::cases::discover(cases)?;
    let mut results = Vec::with_capacity(cases.len());
    let mut out = std::io::stdout().lock();
    for case in &cases {
        let result = super::cases::run_case(&loaded, case, exact).await;
        match &result.failure {
            None => writeln!(
                out,
                "PASS {} ({}, {} ms)",
                result.name,
                result.checked,
                result.elapsed.as_millis()
            )?,
            Some((why, lines)) => {
                writeln!(out, "FAIL {}: {why}", result.name)?;
                for line in lines {
                    writeln!(out, "    {line}")?;
                }
            }
        }
        results.push(result);
    }
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    let id = loaded.identity();
    writeln!(
        out,
        "{} passed, {failed} failed: {} {} (sha256 {})",
        results.len() - failed,
        id.name,
        id.version,
        id.sha256
    )?;
    if let Some(path) = junit {
        let name = format!("{} {}", id.name, id.version);
        std::fs::write(path, super::cases::junit(&name, &results))
            .with_context(|| format!("writing the JUnit report {}", path.display()))?;
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} cases failed", results.len());
    }
    Ok(ExitCode::SUCCESS)
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
