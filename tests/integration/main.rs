//! End-to-end tests of bitcram-sync: real components under wasmtime, the real
//! binary, real HTTP to in-test fake servers, and a real MariaDB.
//!
//! One test binary; its modules:
//! - `support`: building the test plugins, snapshots, running the binary;
//! - `transform_component`: the default component against the native logic,
//!   case by case, through the host's real plugin path;
//! - `plugin_gate`: what the gate refuses (format, version, imports, sha256)
//!   and the compile cache;
//! - `plugin_sandbox`: the time budget, the memory cap, crashes;
//! - `cli_plugin`: `plugin check` and `plugin run` through the binary, with
//!   their exit codes;
//! - `plugin_cases`: `plugin test` on the default component's golden
//!   cases, and what a failing case, `--exact` and `--junit` show;
//! - `plugin_languages`: the Python and JavaScript examples on the golden
//!   cases, and the sandbox as plugins in those languages see it;
//! - `plugin_new`: each language's starter builds as it is and passes its
//!   golden case; `plugin new` never writes into a directory with files;
//! - `cli_run`: the demo against the sample snapshot, the SQLite sink in both
//!   modes, JSON logs, exit codes;
//! - `cli_settings`: the image's entrypoint, `db init --print`, `--help`,
//!   the log format, and every setting from the environment or `.env`;
//! - `sync_live`: `sync` against fake Bitcram and Secret Manager servers
//!   into MariaDB, and where the token may not go;
//! - `snapshots`: `snapshot` against a fake Bitcram: the bodies as received,
//!   and no snapshot from a body cut off or refused;
//! - `sync_mysql`: `sync --from` and `db init` against a real MariaDB: both
//!   modes, the all-or-nothing transaction, the guards, the dry run;
//! - `failures`: whatever fails (a trapping plugin, a damaged snapshot, a
//!   post-load statement, on MariaDB and SQLite), rows, stamps and the state
//!   record stay as they were; snapshots of several pages;
//! - `load_steps`: a failed load names its step (delete, insert chunk N,
//!   commit) and changes nothing; the chunk limits;
//! - `run_lock`: one run per table; a stopped run's rollback waited for,
//!   within `--lock-wait-timeout`, and told apart from a live run;
//! - `skips`: a diff run's post-load statements after an insert, an update
//!   or a delete alone, skipped (and reported so) only when nothing changed;
//!   a replace run rewrites even on the last run's input;
//! - `post_load`: post-load statements that would end the load's
//!   transaction, refused before any write or caught before `COMMIT`;
//! - `bitcram_client`: the Bitcram client against a fake Bitcram on
//!   127.0.0.1: the calls as sent, retries, refused envelopes, redirects;
//! - `secrets`: the token through the real Secret Manager client against a
//!   fake endpoint, and failing fast without credentials.

mod support;

mod bitcram_client;
mod cli_plugin;
mod cli_run;
mod cli_settings;
mod failures;
mod load_steps;
mod plugin_cases;
mod plugin_gate;
mod plugin_languages;
mod plugin_new;
mod plugin_sandbox;
mod post_load;
mod run_lock;
mod secrets;
mod skips;
mod snapshots;
mod sync_live;
mod sync_mysql;
mod transform_component;
