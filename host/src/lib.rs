//! bitcram-sync: keeps a retailer's catalog and stock in Cloud SQL (MySQL) in
//! step with their Bitcram point-of-sale system.
//!
//! The binary's modules, one job each:
//! - [`cli`]: the command-line arguments;
//! - [`config`]: the arguments turned into checked settings;
//! - [`commands`]: one function per subcommand, and their exit codes;
//! - [`logging`]: tracing to stderr;
//! - [`secrets`]: the Bitcram token from Secret Manager;
//! - [`bitcram`]: the Bitcram API client;
//! - [`extract`]: the bodies of a run, from Bitcram or a snapshot;
//! - [`plugin`]: the sandboxed WebAssembly transform runtime;
//! - [`transform`]: driving one transform and checking its rows;
//! - [`load`]: the all-or-nothing load transaction;
//! - [`sync`]: one sync, end to end;
//! - [`report`]: the run report;
//! - [`snapshot`]: the raw API bodies of one run, on disk;
//! - [`model`]: what every stage shares (sources, rows, the run's context).

pub mod bitcram;
pub mod cli;
pub mod commands;
pub mod config;
pub mod exit;
pub mod extract;
pub mod load;
pub mod logging;
pub mod model;
pub mod net;
pub mod plugin;
pub mod report;
pub mod secrets;
pub mod snapshot;
pub mod sync;
pub mod transform;
