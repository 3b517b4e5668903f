//! The `bitcram-sync` binary: parse, start logging, run, report the error.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = bitcram_sync::cli::Cli::parse();
    bitcram_sync::logging::init();
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
    match runtime.block_on(bitcram_sync::app::run(cli)) {
        Ok(code) => code,
        Err(error) => {
            // One line: the whole chain of causes, outermost first.
            eprintln!("error: {error:#}");
            bitcram_sync::app::exit_code_for(&error)
        }
    }
}
