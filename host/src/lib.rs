//! bitcram-sync: keeps a retailer's catalog and stock in Cloud SQL (MySQL) in
//! step with their Bitcram point-of-sale system.
//!
//! The binary's modules, one job each:
//! - [`cli`]: the command-line arguments;
//! - [`app`]: the commands and their exit codes;
//! - [`logging`]: tracing to stderr;
//! - [`plugin`]: the sandboxed WebAssembly transform runtime;
//! - [`transform`]: driving one transform and checking its rows;
//! - [`snapshot`]: the raw API bodies of one run, on disk.

pub mod app;
pub mod cli;
pub mod logging;
pub mod plugin;
pub mod snapshot;
pub mod transform;
