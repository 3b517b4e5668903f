//! bitcram-sync: keeps a retailer's catalog and stock in Cloud SQL (MySQL) in
//! step with their Bitcram point-of-sale system.
//!
//! The modules, from the top of a run down; each imports only modules
//! below it:
//! - [`cli`]: the command-line arguments, raw;
//! - [`commands`]: one function per subcommand, and the exit code of an error;
//! - [`config`]: arguments and environment turned into checked settings,
//!   once (with `secrets`, the only reader of the environment);
//! - `sync`: one sync, end to end: extract, transform and load overlapping;
//! - `extract`: the bodies of a run, from Bitcram or a snapshot;
//! - [`transform`]: driving one transform and checking its rows;
//! - [`load`]: the all-or-nothing load transaction;
//! - `report`: the run report;
//! - [`bitcram`]: the Bitcram API client;
//! - [`secrets`]: the Bitcram token from Secret Manager;
//! - [`snapshot`]: the raw API bodies of one run, on disk;
//! - [`plugin`]: the sandboxed WebAssembly transform runtime;
//! - [`logging`]: tracing to stderr, in the format it is given;
//! - [`net`], [`exit`], [`model`], `id_set`: the leaves: TLS and error
//!   chains, exit codes, the types every stage shares, a compact set of ids.
//!
//! Public beyond the binary are the modules the integration tests and the
//! benchmarks drive directly (the client, the gate and sandbox, the loader,
//! snapshots, settings); `sync`, `extract` and `report` are reached only
//! through the binary.

pub mod bitcram;
pub mod body;
pub mod cli;
pub mod commands;
pub mod config;
pub mod exit;
mod extract;
mod id_set;
pub mod load;
pub mod logging;
pub mod model;
pub mod net;
pub mod plugin;
mod report;
pub mod secrets;
pub mod snapshot;
mod sync;
pub mod transform;
