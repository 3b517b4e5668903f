//! The plugin host the commands share: built from the options, and the
//! component loaded through its gate.

use std::time::Instant;

use crate::cli::PluginOptions;
use crate::plugin::{CompileCache, Plugin, PluginHost, PluginLimits, PluginSource};

/// Creates the plugin host for these options and loads the plugin through
/// the gate.
pub(super) async fn load_plugin(
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
