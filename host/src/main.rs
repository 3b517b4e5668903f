//! The `bitcram-sync` binary: parse, start logging, run, report the error.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    // `.env` first: its variables feed clap's `env` settings.
    if let Err(e) = bitcram_sync::config::load_dotenv() {
        eprintln!("error: {e}");
        return ExitCode::from(bitcram_sync::app::exit::USAGE);
    }
    let cli = bitcram_sync::cli::Cli::parse();
    bitcram_sync::logging::init();
    bitcram_sync::bitcram::install_tls_provider();
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
            let code = bitcram_sync::app::exit_code_for(&error);
            bitcram_sync::logging::report_fatal(&error);
            code
        }
    }
}
