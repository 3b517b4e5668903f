//! The commands: one function per subcommand, each turning parsed
//! arguments into work and returning the process's exit status; and the
//! mapping of an error to its exit status.

mod cases;
mod db;
mod demo;
mod gate;
mod new;
mod plugin;
mod replay;
mod snapshot;
mod sync;

use std::process::ExitCode;

use crate::cli::{Cli, Command, DbCommand, PluginCommand};
use crate::config::{self, ConfigError};
use crate::exit;
use crate::plugin::PluginError;
use crate::transform::TransformFailure;

/// The exit status for an error that ended a command.
pub fn exit_code_for(error: &anyhow::Error) -> ExitCode {
    for cause in error.chain() {
        if let Some(stopped) = cause.downcast_ref::<Stopped>() {
            return ExitCode::from(stopped.code);
        }
        if cause.downcast_ref::<ConfigError>().is_some() {
            return ExitCode::from(exit::USAGE);
        }
        if let Some(PluginError::Refused { .. }) = cause.downcast_ref::<PluginError>() {
            return ExitCode::from(exit::PLUGIN_REFUSED);
        }
        if let Some(TransformFailure::Plugin(PluginError::Refused { .. })) =
            cause.downcast_ref::<TransformFailure>()
        {
            return ExitCode::from(exit::PLUGIN_REFUSED);
        }
    }
    ExitCode::from(exit::FAILURE)
}

/// The command was stopped by a signal before it finished.
#[derive(Debug, thiserror::Error)]
#[error(
    "stopped by {signal} before the run finished ({why}); the database rolls back the load's \
     transaction if it was still open"
)]
pub struct Stopped {
    signal: &'static str,
    why: &'static str,
    code: u8,
}

/// Runs the command until it ends or SIGTERM or SIGINT arrives; then the
/// command is dropped, which closes its database connection, and the server
/// rolls back whatever was not committed.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Every log line of the command carries the run id, the first one too.
    let run_id = crate::report::new_run_id(config::env_var("CLOUD_RUN_EXECUTION"));
    crate::logging::set_run_id(&run_id);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| anyhow::anyhow!("listening for SIGTERM: {e}"))?;
    tokio::select! {
        result = dispatch(cli) => result,
        _ = terminate.recv() => Err(Stopped {
            signal: "SIGTERM",
            why: "Cloud Run sends it at the task timeout",
            code: exit::STOPPED_BY_SIGTERM,
        }
        .into()),
        _ = tokio::signal::ctrl_c() => Err(Stopped {
            signal: "SIGINT",
            why: "interrupted",
            code: exit::STOPPED_BY_SIGINT,
        }
        .into()),
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let run_id = crate::logging::run_id();
    match cli.command {
        Command::Sync(args) => sync::run(*args, run_id).await,
        Command::Demo {
            database_url,
            plugin,
            plugin_options,
        } => demo::run(&database_url, plugin, &plugin_options, run_id).await,
        Command::Snapshot { bitcram, out } => snapshot::run(&bitcram, &out).await,
        Command::Db(DbCommand::Init { database, print }) => db::init(&database, print).await,
        Command::Plugin(PluginCommand::Check { path, plugin }) => {
            plugin::check(&plugin, path).await
        }
        Command::Plugin(PluginCommand::Run {
            path,
            from,
            out,
            plugin,
        }) => plugin::run(&plugin, path, &from, out.as_deref()).await,
        Command::Plugin(PluginCommand::New { dir, lang, name }) => {
            new::new(&dir, lang, name.as_deref())
        }
        Command::Plugin(PluginCommand::Test {
            path,
            cases,
            exact,
            junit,
            plugin,
        }) => plugin::test(&plugin, path, &cases, exact, junit.as_deref()).await,
    }
}
