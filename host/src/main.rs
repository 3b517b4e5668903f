//! The `bitcram-sync` binary: parse, start logging, run, report the error.

use std::process::ExitCode;

use bitcram_sync::{commands, config, logging};
use clap::Parser as _;

fn main() -> ExitCode {
    // `.env` first: its variables feed clap's `env` settings.
    let format = match config::load_dotenv().and_then(|()| config::log_format()) {
        Ok(format) => format,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(bitcram_sync::exit::USAGE);
        }
    };
    let cli = bitcram_sync::cli::Cli::parse();
    logging::init(format);
    bitcram_sync::net::install_tls_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(commands::run(cli));
    // Whatever still runs aside (a compile a signal cut short) is not waited
    // for: the command has ended, and its connections are closed.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(error) => {
            logging::report_fatal(&error, format);
            commands::exit_code_for(&error)
        }
    }
}
