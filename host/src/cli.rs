//! Command-line arguments, as parsed by clap. Every setting is also read from
//! the environment variable named in its `--help`. These are raw values:
//! [`crate::config`] turns them into checked settings.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};

/// Keeps a retailer's catalog and stock in Cloud SQL (MySQL) in step with
/// their Bitcram point-of-sale system, through a sandboxed WebAssembly
/// transform.
#[derive(Debug, Parser)]
#[command(name = "bitcram-sync", version, propagate_version = true)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The exit codes, for `--help`.
pub const EXIT_CODES_HELP: &str = crate::exit_codes_help!();

/// The settings that have no flag, and the exit codes, for `sync --help`.
pub const SYNC_AFTER_HELP: &str = concat!(
    "Environment only (secrets never go on the command line):
  BITCRAM_TOKEN            the Bitcram token itself, for local runs (wins over Secret Manager)
  PASSWORD_DB              the database password, with --instance-db
  SECRET_MANAGER_ENDPOINT  Secret Manager endpoint override (emulators, tests)
  LOG_FORMAT               `json` (default when CLOUD_RUN_JOB is set) or `human`
  RUST_LOG                 log filter
A .env file in the working directory is read if present.

",
    crate::exit_codes_help!()
);

/// The settings that have no flag, and the exit codes, for `snapshot --help`.
pub const SNAPSHOT_AFTER_HELP: &str = concat!(
    "Environment only (secrets never go on the command line):
  BITCRAM_TOKEN            the Bitcram token itself, for local runs (wins over Secret Manager)
  SECRET_MANAGER_ENDPOINT  Secret Manager endpoint override (emulators, tests)
  LOG_FORMAT               `json` (default when CLOUD_RUN_JOB is set) or `human`
  RUST_LOG                 log filter
A .env file in the working directory is read if present.

",
    crate::exit_codes_help!()
);

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one sync: token, extract, transform, and load in one transaction.
    Sync(Box<SyncArgs>),
    /// Run the whole pipeline on the sample snapshot built into the binary,
    /// with the default transform, into a local SQLite file; no cloud account
    /// needed. Prints what it did and a few rows.
    Demo {
        /// Where to load the sample (`sqlite://FILE`). DATABASE_URL is
        /// deliberately not read: a demo never writes to a real database by
        /// accident.
        #[arg(long, default_value = "sqlite://bitcram-demo.db", value_name = "URL")]
        database_url: String,
        /// Another transform component to run on the sample.
        #[arg(long, value_name = "PATH")]
        plugin: Option<PathBuf>,
        #[command(flatten)]
        plugin_options: PluginOptions,
    },
    /// Fetch the raw API bodies of one run from Bitcram into a directory, to
    /// develop a plugin or replay a run offline (`sync --from`, `plugin run --from`).
    #[command(after_long_help = SNAPSHOT_AFTER_HELP)]
    Snapshot {
        #[command(flatten)]
        bitcram: BitcramArgs,
        /// The directory to write (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Manage the target table.
    #[command(subcommand)]
    Db(DbCommand),
    /// Work with transform plugins: check one, or run one offline on a snapshot.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

/// Everything `sync` needs.
#[derive(Debug, Args)]
#[command(after_long_help = SYNC_AFTER_HELP)]
pub struct SyncArgs {
    #[command(flatten)]
    pub bitcram: BitcramArgs,

    /// Replay a snapshot directory instead of calling Bitcram (no token needed).
    #[arg(long, value_name = "SNAPSHOT_DIR", help_heading = "Source")]
    pub from: Option<PathBuf>,

    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub load: LoadArgs,

    /// The transform component (`.wasm`). Default: the embedded bitcram-transform.
    #[arg(
        long,
        env = "TRANSFORM_PLUGIN",
        value_name = "PATH",
        help_heading = "Transform"
    )]
    pub plugin: Option<PathBuf>,

    #[command(flatten)]
    pub plugin_options: PluginOptions,
}

/// Where the data comes from. The token is read from Secret Manager, or from
/// the `BITCRAM_TOKEN` environment variable for local runs (it wins; it has
/// no flag so that it never shows in a process list).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Bitcram")]
pub struct BitcramArgs {
    /// Base URL of the Bitcram instance: https://..., or http:// to this
    /// machine (localhost, 127.0.0.1, [::1]) for tests and stand-ins.
    #[arg(long, env = "URL_BITCRAM", value_name = "URL")]
    pub bitcram_url: Option<String>,

    /// The checkout number to sync.
    #[arg(long, env = "CHECKOUT", value_name = "NUMBER")]
    pub checkout: Option<String>,

    /// Google Cloud project of the token's secret.
    #[arg(long, env = "PROJECT_ID", value_name = "PROJECT")]
    pub project_id: Option<String>,

    /// Secret Manager secret holding the Bitcram token.
    #[arg(long, env = "SECRET_ID", value_name = "SECRET")]
    pub secret_id: Option<String>,

    /// Version of the secret to read.
    #[arg(
        long,
        env = "SECRET_VERSION",
        default_value = "latest",
        value_name = "VERSION"
    )]
    pub secret_version: String,

    /// The longest the extraction may take in all (the token and every call,
    /// retries and the bodies' arrival included; e.g. `5m`, `90s`): the
    /// default keeps a run inside Cloud Run's default 10-minute task
    /// timeout. The run holds no row lock until it has rows to write, and a
    /// run that times out commits nothing.
    #[arg(long, env = "EXTRACT_TIMEOUT", default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub extract_timeout: Duration,

    /// Allow plain http:// to a host that is not on this machine.
    #[arg(long, env = "BITCRAM_ALLOW_INSECURE_HTTP", value_parser = BoolishValueParser::new())]
    pub allow_insecure_http: bool,
}

/// Which database to write to. Either a URL, or the original job's Cloud SQL
/// settings (`INSTANCE_DB`, `USER_DB`, `PASSWORD_DB`, `NAME_DB`), which
/// connect through the Unix socket Cloud Run mounts at
/// `/cloudsql/<INSTANCE_DB>`. The password is read from `PASSWORD_DB` only.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseArgs {
    /// `mysql://user:password@host:port/database`, or `sqlite://FILE` for a
    /// local file.
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Cloud SQL connection name, `project:region:instance`.
    #[arg(long, env = "INSTANCE_DB", value_name = "CONNECTION_NAME")]
    pub instance_db: Option<String>,

    /// Database user, with --instance-db.
    #[arg(long, env = "USER_DB", value_name = "USER")]
    pub user_db: Option<String>,

    /// Database name, with --instance-db.
    #[arg(long, env = "NAME_DB", default_value = "bitcram", value_name = "NAME")]
    pub name_db: String,

    /// Directory holding the Cloud SQL sockets, with --instance-db.
    #[arg(
        long,
        env = "CLOUD_SQL_SOCKET_DIR",
        default_value = "/cloudsql",
        value_name = "DIR"
    )]
    pub cloud_sql_socket_dir: PathBuf,

    /// The target table, `table` or `schema.table`.
    #[arg(
        long,
        env = "TARGET_TABLE",
        default_value = "raw_item_data",
        value_name = "TABLE"
    )]
    pub table: String,

    /// The longest a statement of the run waits for a lock another session
    /// holds (a `LOCK TABLES`, a long transaction) before the run fails and
    /// rolls back; MySQL and MariaDB (`lock_wait_timeout` and
    /// `innodb_lock_wait_timeout` of the run's session). Also the longest the
    /// run waits for a stopped run's rollback to release the run lock.
    #[arg(long, env = "LOCK_WAIT_TIMEOUT", default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub lock_wait_timeout: Duration,
}

/// How the rows are loaded.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Load")]
pub struct LoadArgs {
    /// `replace`: delete every row and insert the new catalog. `diff`: insert
    /// new ids, update changed rows, delete vanished ids.
    #[arg(long, env = "SYNC_MODE", value_enum, default_value = "replace")]
    pub mode: crate::load::SyncMode,

    /// A statement to run after the rows, in the same transaction
    /// (repeatable, each value taken whole; in POST_LOAD_SQL separate them
    /// with `;`, which counts only outside quotes and comments). Default on MySQL:
    /// `CALL app_import.update_mirror_raw_item_data()`; none on SQLite. An
    /// empty value runs none. Statements that commit or end the transaction
    /// (TRUNCATE and other DDL, COMMIT, ROLLBACK, LOCK TABLES, ...), and
    /// procedures that run them, are refused before anything is written.
    #[arg(long = "post-load-sql", env = "POST_LOAD_SQL", value_name = "SQL")]
    pub post_load_sql: Option<Vec<String>>,

    /// When the post-load statements run. `changes`: whenever rows were
    /// written or deleted; a diff run that changed nothing skips them, since
    /// the run that last changed the table ran them in its own transaction.
    /// `always`: on every run, for statements that also read tables this job
    /// does not write. Replace mode rewrites every row, so they always run.
    #[arg(
        long,
        env = "POST_LOAD_WHEN",
        value_enum,
        default_value = "changes",
        value_name = "WHEN"
    )]
    pub post_load_when: crate::load::PostLoadWhen,

    /// Refuse a load that would delete more than this percentage of the
    /// current rows.
    #[arg(
        long,
        env = "MAX_DELETE_PERCENT",
        default_value_t = 10.0,
        value_name = "PERCENT"
    )]
    pub max_delete_percent: f64,

    /// Load even an empty catalog, or one that deletes more than
    /// --max-delete-percent.
    #[arg(long, env = "ALLOW_SHRINK", value_parser = BoolishValueParser::new())]
    pub allow_shrink: bool,

    /// Do everything up to the write, report what would change, write nothing.
    #[arg(long, env = "DRY_RUN", value_parser = BoolishValueParser::new())]
    pub dry_run: bool,

    /// Also write the run report as JSON to this file.
    #[arg(long, env = "REPORT_FILE", value_name = "FILE")]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create the target table if it does not exist (safe to run again).
    Init {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Print the CREATE TABLE statements (the target table and the
        /// state table) instead of running them: SQLite's for a sqlite://
        /// --database-url, MySQL's otherwise.
        #[arg(long)]
        print: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Load a transform component, pass it through the gate (format, contract
    /// version, imports, type check), and print its name, version, contract
    /// version and sha256. Nothing else is touched.
    Check {
        /// The component (`.wasm`). Without it, the embedded default plugin.
        path: Option<PathBuf>,
        #[command(flatten)]
        plugin: PluginOptions,
    },
    /// Run a transform component offline on a snapshot directory and write
    /// its rows as JSON lines; a summary goes to stderr.
    Run {
        /// The component (`.wasm`). Without it, the embedded default plugin.
        path: Option<PathBuf>,
        /// The snapshot directory to read (see `bitcram-sync snapshot`).
        #[arg(long, value_name = "SNAPSHOT_DIR")]
        from: PathBuf,
        /// Where to write the rows, one JSON object per line. Default: stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        plugin: PluginOptions,
    },
    /// Write a starter transform project into DIR (new or empty) that builds
    /// as it is: the contract's WIT, the glue for the language, a transform
    /// of a few plain rules, one golden case under `cases/`, and a README
    /// with the build, check and test commands.
    New {
        /// The directory to create.
        dir: PathBuf,
        /// The language of the starter.
        #[arg(long, value_enum)]
        lang: StarterLanguage,
        /// The plugin's name (its package name and what `info()` returns).
        /// Default: DIR's last component.
        #[arg(long, value_parser = plugin_name)]
        name: Option<String>,
    },
    /// Run a transform component on golden cases and say, case by case,
    /// whether it made the expected rows or error; for a plugin's CI.
    ///
    /// Each subdirectory of `--cases` is a case: a snapshot (the layout
    /// `bitcram-sync snapshot` writes) plus `expected.jsonl` (the rows, as
    /// `plugin run` writes them, in order) or `expected-error.json`
    /// (`{"case": "duplicate-key", "product_id": "17"}`; `case` is one of the
    /// contract's `transform-error` cases, `product_id` optional). Prints a
    /// line per case, and for a failure the first differing rows, expected
    /// above actual. Exit status: 0 when every case passes, 1 when one fails
    /// or cannot be read, 3 when the gate refuses the component.
    Test {
        /// The component (`.wasm`). Without it, the embedded default plugin.
        path: Option<PathBuf>,
        /// The directory of cases.
        #[arg(long, value_name = "DIR")]
        cases: PathBuf,
        /// Compare `data` as text: key order and the spelling of numbers
        /// matter (by default rows are compared as JSON values).
        #[arg(long)]
        exact: bool,
        /// Also write the results as JUnit XML, for a CI dashboard.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        #[command(flatten)]
        plugin: PluginOptions,
    },
}

/// The languages `plugin new` writes a starter in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StarterLanguage {
    /// Rust, with wit-bindgen (`cargo build --target wasm32-wasip2`).
    Rust,
    /// Python, with componentize-py.
    Python,
    /// JavaScript, with componentize-js.
    Javascript,
}

impl StarterLanguage {
    /// The language's name, for people.
    pub fn title(self) -> &'static str {
        match self {
            Self::Rust => "Rust",
            Self::Python => "Python",
            Self::Javascript => "JavaScript",
        }
    }

    /// The value of `--lang` that names it.
    pub fn flag(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Python => "python",
            Self::Javascript => "javascript",
        }
    }
}

/// Whether `name` can name a plugin: it becomes the package name in every
/// language (a Cargo crate, an npm package), so lowercase ASCII letters,
/// digits and hyphens, starting with a letter, at most 64.
pub fn check_plugin_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if starts_with_letter && rest_ok && name.len() <= 64 && !name.ends_with('-') {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a plugin name: use lowercase letters, digits and hyphens, starting \
             with a letter, at most 64 (it becomes the package name)"
        ))
    }
}

fn plugin_name(name: &str) -> Result<String, String> {
    check_plugin_name(name).map(|()| name.to_owned())
}

/// How a transform component is verified, bounded and cached.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Transform")]
pub struct PluginOptions {
    /// Refuse the component unless its sha256 is this (hex).
    #[arg(long, env = "TRANSFORM_PLUGIN_SHA256", value_name = "HEX")]
    pub plugin_sha256: Option<String>,

    /// Time the transform may spend running, in all (e.g. `30s`, `1500ms`,
    /// `2m`; a bare number is seconds).
    #[arg(long, env = "PLUGIN_TIMEOUT", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub plugin_timeout: Duration,

    /// Memory the transform may use, in MiB.
    #[arg(long, env = "PLUGIN_MEMORY_MB", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(16..=16384), value_name = "MIB")]
    pub plugin_memory_mb: u32,

    /// Directory for compiled components, keyed by sha256 and wasmtime
    /// version. Default: `$XDG_CACHE_HOME/bitcram-sync/plugins` or
    /// `~/.cache/bitcram-sync/plugins`. Must be writable only by this user.
    #[arg(long, env = "PLUGIN_CACHE_DIR", value_name = "DIR")]
    pub plugin_cache: Option<PathBuf>,

    /// Compile the component on every run instead of caching it.
    #[arg(long, env = "PLUGIN_NO_CACHE", value_parser = BoolishValueParser::new())]
    pub no_plugin_cache: bool,
}

/// Settings read from the environment that have no flag (see
/// [`SYNC_AFTER_HELP`]), besides `RUST_LOG`.
pub const ENV_ONLY_SETTINGS: &[&str] = &[
    "BITCRAM_TOKEN",
    "PASSWORD_DB",
    "SECRET_MANAGER_ENDPOINT",
    "LOG_FORMAT",
    "CLOUD_RUN_JOB",
    "CLOUD_RUN_EXECUTION",
];

/// Every environment variable the job reads as a setting: those of every
/// flag of every command, and [`ENV_ONLY_SETTINGS`]. Tests and benchmarks
/// clear them so that nothing leaks in from the caller's shell.
pub fn environment_settings() -> Vec<String> {
    fn walk(command: &clap::Command, out: &mut Vec<String>) {
        for arg in command.get_arguments() {
            if let Some(name) = arg.get_env().and_then(|n| n.to_str()) {
                out.push(name.to_owned());
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out: Vec<String> = ENV_ONLY_SETTINGS.iter().map(|s| (*s).to_owned()).collect();
    walk(&<Cli as clap::CommandFactory>::command(), &mut out);
    out.sort();
    out.dedup();
    out
}

/// Parses `30`, `30s`, `1500ms`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 30s, 1500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use ms, s or m)"
            ));
        }
    };
    if !(seconds > 0.0 && seconds <= 24.0 * 3600.0) {
        return Err(format!(
            "{text:?} is out of range (more than 0, at most 24h)"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn environment_settings_cover_flags_and_env_only_variables() {
        let names = environment_settings();
        for name in [
            "URL_BITCRAM",
            "DATABASE_URL",
            "PLUGIN_TIMEOUT",
            "TRANSFORM_PLUGIN",
            "BITCRAM_TOKEN",
            "PASSWORD_DB",
        ] {
            assert!(
                names.iter().any(|n| n == name),
                "{name} missing from {names:?}"
            );
        }
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn plugin_names_are_package_names() {
        for good in ["my-transform", "t", "shop2-prices"] {
            assert_eq!(check_plugin_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "My-Transform",
            "2shop",
            "my transform",
            "my_transform",
            "a-",
            "á",
        ] {
            assert!(check_plugin_name(bad).is_err(), "{bad:?} was taken");
        }
        assert!(check_plugin_name(&"a".repeat(64)).is_ok());
        assert!(check_plugin_name(&"a".repeat(65)).is_err());
    }
}
