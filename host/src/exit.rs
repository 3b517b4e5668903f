//! The process's exit statuses, defined once: the error mapping
//! (`app::exit_code_for`), `--help` and README.md's table use these.

/// The run failed (Bitcram, the database, the transform's output).
pub const FAILURE: u8 = 1;
/// A configuration or usage error.
pub const USAGE: u8 = 2;
/// The transform plugin was refused by the gate.
pub const PLUGIN_REFUSED: u8 = 3;
/// Stopped by SIGINT (128 + 2, as shells report it).
pub const STOPPED_BY_SIGINT: u8 = 130;
/// Stopped by SIGTERM (128 + 15), which Cloud Run sends at the task timeout.
pub const STOPPED_BY_SIGTERM: u8 = 143;

/// The exit codes, for `--help` (a macro so that it can be `concat!`ed
/// with other help text).
#[macro_export]
#[doc(hidden)]
macro_rules! exit_codes_help {
    () => {
        "Exit codes:
  0  success
  1  the run failed (Bitcram, the database, the transform's output); nothing was committed,
     unless the error says a post-load statement ended the transaction on its own
  2  configuration or usage error (including a post-load statement that would end the
     transaction)
  3  the transform plugin was refused (not a component, wrong contract version,
     imports outside the contract, sha256 mismatch)
  130, 143  stopped by SIGINT or SIGTERM (Cloud Run sends SIGTERM at the task timeout);
     the open transaction is rolled back"
    };
}
