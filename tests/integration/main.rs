//! End-to-end tests of bitcram-sync: real components under wasmtime, the real
//! binary, and (in later modules) real HTTP and a real MariaDB.
//!
//! One test binary; its modules:
//! - `support`: building the test plugins, snapshots, running the binary;
//! - `transform_component`: the default component against the native logic,
//!   case by case, through the host's real plugin path;
//! - `plugin_gate`: what the gate refuses (format, version, imports, sha256)
//!   and the compile cache;
//! - `plugin_sandbox`: the time budget, the memory cap, crashes;
//! - `cli_plugin`: `plugin check` and `plugin run` through the binary, with
//!   their exit codes.

mod support;

mod cli_plugin;
mod plugin_gate;
mod plugin_sandbox;
mod transform_component;
