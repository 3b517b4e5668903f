//! `bitcram-sync sync`.

use std::process::ExitCode;

use crate::cli::SyncArgs;
use crate::config::{self, SqliteFile};
use crate::extract::Input;
use crate::model::format_synced_at;
use crate::report::FailedRun;
use crate::snapshot::Snapshot;
use crate::sync::{SyncJob, run_sync};

use super::gate::load_plugin;

/// What the report says while the run goes on, and after it if the run
/// could not say more.
const UNFINISHED: &str = "the run did not finish: it was stopped (by SIGTERM at the task timeout, \
     SIGINT, or the system) before it could report; the database rolls back a load that had not \
     committed";

/// `sync`: settings are checked first, then the plugin passes the gate, and
/// only then are secrets, Bitcram and the database touched.
pub(super) async fn run(args: SyncArgs, run_id: String) -> anyhow::Result<ExitCode> {
    let synced_at = time::OffsetDateTime::now_utc();
    let database = config::database_target(&args.database, SqliteFile::MustExist)?;
    let load = config::load_settings(&args.load, &args.database, &database, synced_at)?;
    let report_path = config::report_path(&args.load)?;
    let failed = FailedRun {
        outcome: "failed",
        run_id: run_id.clone(),
        mode: load.mode,
        dry_run: load.dry_run,
        table: load.table.to_string(),
        synced_at: format_synced_at(synced_at),
        error: String::new(),
    };
    // Until the run ends, its report says that it did not: a run stopped by
    // a signal, the task timeout or the system must not leave the last
    // run's report standing for whatever reads the file.
    if let Some(path) = &report_path {
        let unfinished = FailedRun {
            error: UNFINISHED.to_owned(),
            ..failed.clone()
        };
        unfinished.write_json(path)?;
    }
    let outcome = async {
        let input = match &args.from {
            Some(dir) => Input::Snapshot(Snapshot::open(dir)?),
            None => Input::Live(Box::new(config::live_input(&args.bitcram)?)),
        };
        let plugin = load_plugin(&args.plugin_options, args.plugin.clone()).await?;
        tracing::info!(run_id = %run_id, database = %database.description(), table = %load.table, mode = load.mode.name(), dry_run = load.dry_run, "sync starting");
        let job = SyncJob {
            input,
            database,
            load,
        };
        let lock_wait = job.database.lock_wait();
        run_sync(job, &plugin, run_id)
            .await
            .map_err(|e| explain_lock_wait(e, lock_wait))
    }
    .await;
    let report = match outcome {
        Ok(report) => report,
        Err(error) => {
            // A failed run leaves its report too, with the error, so that
            // whatever reads the file sees the failure.
            if let Some(path) = &report_path {
                let failed = FailedRun {
                    error: format!("{error:#}"),
                    ..failed
                };
                if let Err(e) = failed.write_json(path) {
                    tracing::warn!(error = %format!("{e:#}"), "could not write the report of the failed run");
                }
            }
            return Err(error);
        }
    };
    report.log();
    if let Some(path) = report_path {
        report.write_json(&path)?;
    }
    if report.dry_run {
        let r = &report.rows;
        match report.mode {
            crate::load::SyncMode::Diff => println!(
                "dry run: {} rows now, {} in the new catalog: would insert {}, update {}, delete {}, leave {} unchanged",
                r.rows_before, r.rows_new, r.inserted, r.updated, r.deleted, r.unchanged
            ),
            // What a replace run does: every row rewritten.
            crate::load::SyncMode::Replace => println!(
                "dry run: {} rows now, {} in the new catalog: replace would delete all {} and insert {} \
                 ({} current ids are not in the new catalog); nothing was written",
                r.rows_before, r.rows_new, r.rows_before, r.rows_new, r.deleted
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A statement that gave up waiting for another session's lock: says so
/// first, with the bound, before the step and the server's words.
fn explain_lock_wait(
    error: anyhow::Error,
    lock_wait: Option<std::time::Duration>,
) -> anyhow::Error {
    let waited = format!("{error:#}").contains("Lock wait timeout exceeded");
    match lock_wait {
        Some(bound) if waited => error.context(format!(
            "waited more than {} (--lock-wait-timeout) for a lock another session holds on the table; \
             nothing was committed",
            crate::model::format_duration(bound)
        )),
        _ => error,
    }
}
