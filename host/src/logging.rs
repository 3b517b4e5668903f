//! Logging to stderr with `tracing`; `RUST_LOG` filters.

use tracing_subscriber::EnvFilter;

/// What is logged when `RUST_LOG` is unset: this job at `info`, the
/// dependencies' chatter turned down.
const DEFAULT_FILTER: &str = "info,wasmtime=warn,cranelift_codegen=warn,sqlx=warn,hyper=warn,hyper_util=warn,reqwest=warn,rustls=warn,h2=warn";

/// Installs the global subscriber. Safe to call more than once.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
