//! Command-line arguments, as parsed by clap. Every setting is also read from
//! the environment variable named in its `--help`. These are raw values:
//! [`crate::config`] turns them into checked settings.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Keeps a retailer's catalog and stock in Cloud SQL (MySQL) in step with
/// their Bitcram point-of-sale system, through a sandboxed WebAssembly
/// transform.
#[derive(Debug, Parser)]
#[command(name = "bitcram-sync", version, propagate_version = true)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The exit codes, for `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  the run failed (Bitcram, the database, the transform's output); nothing was committed
  2  configuration or usage error
  3  the transform plugin was refused (not a component, wrong contract version,
     imports outside the contract, sha256 mismatch)";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with transform plugins: check one, or run one offline on a snapshot.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Load a transform component, pass it through the gate (format, contract
    /// version, imports, type check), and print its name, version, contract
    /// version and sha256. Nothing else is touched.
    Check {
        /// The component (`.wasm`). Without it, the embedded default plugin.
        path: Option<PathBuf>,
        #[command(flatten)]
        plugin: PluginOptions,
    },
    /// Run a transform component offline on a snapshot directory and write
    /// its rows as JSON lines; a summary goes to stderr.
    Run {
        /// The component (`.wasm`). Without it, the embedded default plugin.
        path: Option<PathBuf>,
        /// The snapshot directory to read (see `bitcram-sync snapshot`).
        #[arg(long, value_name = "SNAPSHOT_DIR")]
        from: PathBuf,
        /// Where to write the rows, one JSON object per line. Default: stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        plugin: PluginOptions,
    },
}

/// How a transform component is verified, bounded and cached.
#[derive(Debug, Clone, Args)]
pub struct PluginOptions {
    /// Refuse the component unless its sha256 is this (hex).
    #[arg(long, env = "TRANSFORM_PLUGIN_SHA256", value_name = "HEX")]
    pub plugin_sha256: Option<String>,

    /// Time the transform may spend running, in all (e.g. `30s`, `1500ms`,
    /// `2m`; a bare number is seconds).
    #[arg(long, env = "PLUGIN_TIMEOUT", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub plugin_timeout: Duration,

    /// Memory the transform may use, in MiB.
    #[arg(long, env = "PLUGIN_MEMORY_MB", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(16..=16384), value_name = "MIB")]
    pub plugin_memory_mb: u32,

    /// Directory for compiled components, keyed by sha256 and wasmtime
    /// version. Default: `$XDG_CACHE_HOME/bitcram-sync/plugins` or
    /// `~/.cache/bitcram-sync/plugins`. Must be writable only by this user.
    #[arg(long, env = "PLUGIN_CACHE_DIR", value_name = "DIR")]
    pub plugin_cache: Option<PathBuf>,

    /// Compile the component on every run instead of caching it.
    #[arg(long, env = "PLUGIN_NO_CACHE")]
    pub no_plugin_cache: bool,
}

/// Parses `30`, `30s`, `1500ms`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 30s, 1500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use ms, s or m)"
            ));
        }
    };
    if !(seconds > 0.0 && seconds <= 24.0 * 3600.0) {
        return Err(format!(
            "{text:?} is out of range (more than 0, at most 24h)"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5h").is_err());
    }
}
