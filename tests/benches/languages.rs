//! Benchmark (plugin languages): for the 100,000-product catalog, each
//! language's transform time and plugin peak memory next to the default
//! Rust component's, and each component's load time with an empty compile
//! cache (a compile) and a warm one. The Python and JavaScript examples are
//! built first by `plugins/examples/build.sh` (pinned toolchains).
//!
//! Run with `cargo bench -p bitcram-sync --bench languages`. Prints figures
//! (one run of everything, so the ratios are of the same moment of this
//! shared machine); never fails on a figure.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use bitcram_sync::model::{Row, RunContext, Source};
use bitcram_sync::plugin::{CompileCache, PluginHost, PluginLimits, PluginSource};
use bitcram_sync::transform::{RowSink, run_transform};

use common::{Bodies, ms};

fn main() -> anyhow::Result<()> {
    common::run_launcher_if_asked();
    let examples = build_examples()?;
    let bodies = Bodies::generate(0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(&bodies, &examples))
}

/// Builds the Python and JavaScript examples; returns their directory.
fn build_examples() -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = root.join("target/examples");
    let status = std::process::Command::new(root.join("plugins/examples/build.sh"))
        .arg(&out)
        .status()
        .context("running plugins/examples/build.sh")?;
    if !status.success() {
        bail!("plugins/examples/build.sh failed");
    }
    Ok(out)
}

async fn run(bodies: &Bodies, examples: &Path) -> anyhow::Result<()> {
    println!(
        "languages: {} price-list items ({}), {} stock items ({}); one run each, default limits",
        common::count_items(&bodies.price_list)?,
        common::mb(bodies.price_list.len() as u64),
        common::count_items(&bodies.stock)?,
        common::mb(bodies.stock.len() as u64),
    );
    let context = RunContext {
        checkout_number: common::CHECKOUT_NUMBER.to_owned(),
        checkout_id: common::CHECKOUT_ID,
        warehouse_id: common::WAREHOUSE_ID,
        synced_at: "2026-11-28T09:23:00.000000Z".to_owned(),
    };
    let components = [
        ("Rust (default)", PluginSource::Embedded),
        (
            "Python",
            PluginSource::Path(examples.join("python-transform.wasm")),
        ),
        (
            "JavaScript",
            PluginSource::Path(examples.join("javascript-transform.wasm")),
        ),
    ];
    println!(
        "{:<16} {:>10} {:>12} {:>14} {:>12} {:>12} {:>9}",
        "component", "size", "transform", "inside plugin", "peak memory", "cold load", "warm load"
    );
    let mut rust_time = None;
    for (name, source) in components {
        let size = match &source {
            PluginSource::Embedded => bitcram_sync::plugin::DEFAULT_PLUGIN.len() as u64,
            PluginSource::Path(path) => std::fs::metadata(path)?.len(),
        };
        let cache_dir = tempfile::tempdir()?;
        let host = PluginHost::new(
            PluginLimits::default(),
            Some(CompileCache::new(cache_dir.path())),
        )?;
        let started = Instant::now();
        host.load(&source, None).await?;
        let cold = started.elapsed();
        let started = Instant::now();
        let plugin = host.load(&source, None).await?;
        let warm = started.elapsed();

        let pages = vec![
            (Source::Checkout, bodies.checkout.clone()),
            (Source::Stock, bodies.stock.clone()),
            (Source::PriceList, bodies.price_list.clone()),
        ];
        let mut sink = CountRows(0);
        let started = Instant::now();
        let report = match run_transform(
            &plugin,
            &context,
            futures_util::stream::iter(pages.into_iter().map(Ok)),
            &mut sink,
        )
        .await
        {
            Ok(report) => report,
            // A component over its limits is a figure too: say so, go on.
            Err(e) => {
                println!(
                    "{name:<16} {:>10} failed after {}: {e}   (cold load {}, warm load {})",
                    common::mb(size),
                    ms(started.elapsed()),
                    ms(cold),
                    ms(warm)
                );
                continue;
            }
        };
        let elapsed = started.elapsed();
        let rust = *rust_time.get_or_insert(elapsed);
        println!(
            "{name:<16} {:>10} {:>12} {:>14} {:>9.1} MiB {:>12} {:>9}   {:.1}x the Rust component's time",
            common::mb(size),
            ms(elapsed),
            ms(report.plugin_time),
            report.plugin_peak_memory_bytes as f64 / (1024.0 * 1024.0),
            ms(cold),
            ms(warm),
            elapsed.as_secs_f64() / rust.as_secs_f64(),
        );
        if sink.0 as usize != common::PRODUCTS {
            bail!("the {name} component gave {} rows", sink.0);
        }
    }
    println!(
        "(transform: run_transform wall time, host row checks included; the time budget is 30 s, the memory cap 512 MiB)"
    );
    Ok(())
}

/// Counts rows and drops them.
struct CountRows(u64);

impl RowSink for CountRows {
    async fn accept(&mut self, rows: Vec<Row>) -> anyhow::Result<()> {
        self.0 += rows.len() as u64;
        Ok(())
    }
}
