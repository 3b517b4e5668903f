//! The commands: one function per subcommand, each turning parsed
//! arguments into work and returning the process's exit status; and the
//! mapping of an error to its exit status.

mod db;
mod demo;
mod gate;
mod plugin;
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

/// Runs the command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Every log line of the command carries the run id, the first one too.
    let run_id = crate::report::new_run_id(config::env_var("CLOUD_RUN_EXECUTION"));
    crate::logging::set_run_id(&run_id);
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
    }
}
