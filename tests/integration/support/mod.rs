//! Shared test helpers.

#![allow(dead_code)]

pub mod db;
pub mod fake_bitcram;
pub mod nosy;
pub mod sync_run;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use bitcram_sync::model::{Row, RunContext, RunInfo, Source};
use bitcram_sync::plugin::{
    CompileCache, Plugin, PluginError, PluginHost, PluginLimits, PluginSource,
};
use bitcram_sync::transform::{RowSink, TransformFailure, TransformReport, run_transform};

/// The workspace's root folder.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

// The same guest build as the host's build script.
include!("../../../host/build_guest.rs");

/// Builds `plugins/test-plugins` with one feature as a component, once per
/// test run, and returns its path (see `host/build_guest.rs`).
#[track_caller]
pub fn test_plugin(variant: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(variant) {
        return path.clone();
    }
    let dest = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("test-plugin-{variant}.wasm"));
    build_guest("test-plugins", &[variant], &dest);
    built.insert(variant.to_owned(), dest.clone());
    dest
}

/// The default component's golden cases in the repo.
pub fn golden_cases_dir() -> PathBuf {
    workspace().join("plugins/bitcram-transform/cases")
}

/// The names of the golden cases (the subdirectories of
/// [`golden_cases_dir`]).
pub fn golden_case_names() -> Vec<String> {
    std::fs::read_dir(golden_cases_dir())
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            e.file_type()
                .unwrap()
                .is_dir()
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

/// A component written in Python or JavaScript (`python-transform`,
/// `javascript-transform`, `python-nosy`, `javascript-nosy`), built by
/// [`examples_dir`].
pub fn example_plugin(name: &str) -> PathBuf {
    examples_dir().join(format!("{name}.wasm"))
}

/// `target/examples`, where `plugins/examples/build.sh` builds the Python
/// and JavaScript components, once per test run, with their pinned
/// toolchains, which it installs there (`py/bin/componentize-py`,
/// `js/node_modules`) from PyPI and npm on first use; later runs rebuild
/// only what changed.
pub fn examples_dir() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .unwrap()
                .join("examples");
            let status = Command::new(workspace().join("plugins/examples/build.sh"))
                .arg(&dir)
                .status()
                .expect("running plugins/examples/build.sh");
            assert!(
                status.success(),
                "plugins/examples/build.sh failed (it needs python3 and npm)"
            );
            dir
        })
        .clone()
}

/// The embedded default component, written to a file (for the binary and
/// for loading by path).
pub fn default_plugin_file() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bitcram-transform.wasm");
        std::fs::write(&path, bitcram_sync::plugin::DEFAULT_PLUGIN).unwrap();
        path
    })
    .clone()
}

/// The hex sha256 of the embedded default component, computed here from
/// its bytes (what the host reports must match it).
pub fn default_plugin_sha256() -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bitcram_sync::plugin::DEFAULT_PLUGIN))
}

/// A plugin host with the given limits, sharing one compile cache across the
/// test run (compiling a component in a debug build takes seconds).
pub fn host(limits: PluginLimits) -> PluginHost {
    let cache = CompileCache::new(Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache"));
    PluginHost::new(limits, Some(cache)).expect("creating the plugin host")
}

/// Loads a plugin through the gate with default limits.
pub async fn load(source: PluginSource) -> Result<Plugin, PluginError> {
    host(PluginLimits::default()).load(&source, None).await
}

/// A context for tests.
pub fn context() -> RunContext {
    RunContext {
        checkout_number: "3".to_owned(),
        checkout_id: 17,
        warehouse_id: 5,
        synced_at: "2026-11-28T09:23:00.000000Z".to_owned(),
    }
}

/// A sink that keeps every row.
#[derive(Default)]
pub struct Collect(pub Vec<Row>);

impl RowSink for Collect {
    async fn accept(&mut self, rows: Vec<Row>) -> anyhow::Result<()> {
        self.0.extend(rows);
        Ok(())
    }
}

/// Runs `plugin` over one checkout page, the stock pages and the price-list pages.
pub async fn transform(
    plugin: &Plugin,
    stock: &[&str],
    price_list: &[&str],
) -> Result<(Vec<Row>, TransformReport), TransformFailure> {
    let pages = std::iter::once((Source::Checkout, br#"{"items":[{"id":17}]}"#.to_vec()))
        .chain(stock.iter().map(|p| (Source::Stock, p.as_bytes().to_vec())))
        .chain(
            price_list
                .iter()
                .map(|p| (Source::PriceList, p.as_bytes().to_vec())),
        )
        .map(Ok);
    let mut sink = Collect::default();
    let report = run_transform(
        plugin,
        &context(),
        futures_util::stream::iter(pages),
        &mut sink,
    )
    .await?;
    Ok((sink.0, report))
}

/// Writes a snapshot directory with one checkout page and the given pages.
pub fn write_snapshot(dir: &Path, stock: &[&str], price_list: &[&str]) {
    let info = RunInfo {
        created_at: "2026-11-28T09:23:00.000000Z".to_owned(),
        bitcram_url: "http://127.0.0.1:9".to_owned(),
        checkout_number: "3".to_owned(),
        checkout_id: 17,
        warehouse_id: 5,
    };
    let checkout: &[u8] = br#"{"items":[{"id":17,"checkout_number":3,"warehouse":{"id":5}}]}"#;
    let bodies = std::iter::once((Source::Checkout, checkout))
        .chain(stock.iter().map(|p| (Source::Stock, p.as_bytes())))
        .chain(price_list.iter().map(|p| (Source::PriceList, p.as_bytes())));
    bitcram_sync::snapshot::write(dir, &info, bodies).unwrap();
}

/// The real binary, with logs kept quiet, no cache outside the test's reach,
/// a working directory without a stray `.env`, and none of the job's
/// settings inherited from the developer's shell.
pub fn bin() -> Command {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitcram-sync"));
    for var in bitcram_sync::cli::environment_settings() {
        cmd.env_remove(var);
    }
    cmd.current_dir(tmp)
        .env("RUST_LOG", "warn")
        .env("PLUGIN_CACHE_DIR", tmp.join("plugin-cache"));
    cmd
}

/// Every file under `dir`, recursively; none when it does not exist.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(files(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}
