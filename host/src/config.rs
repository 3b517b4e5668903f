//! Turns parsed arguments into checked settings, once. Besides clap's `env`
//! attributes, this is the only module (with `secrets`) that reads the
//! environment: `BITCRAM_TOKEN`, `PASSWORD_DB` and `SECRET_MANAGER_ENDPOINT`
//! have no flags, so that secrets never show in a process list.

use std::path::{Path, PathBuf};

use crate::cli::{DatabaseArgs, LoadArgs};
use crate::load::{
    DatabaseTarget, Dialect, Flavor, LoadSettings, TableName, check_post_load_text,
    refusal_message, split_statements,
};
use crate::logging::LogFormat;

/// The default post-load statement on MySQL, as the original job ran it.
pub const DEFAULT_POST_LOAD_SQL: &str = "CALL app_import.update_mirror_raw_item_data()";

/// A configuration error: exit status 2 ([`crate::exit::USAGE`]).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

type Result<T> = std::result::Result<T, ConfigError>;

fn config_error(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

/// Reads `.env` from the working directory, if there is one (the original
/// job used one; variables already set win), then unsets every setting's
/// variable that is set but blank: a blank value means unset (the default),
/// as people and deploy tools write it, except for `POST_LOAD_SQL`, where
/// an empty value means "no statements". Call it before any thread starts.
pub fn load_dotenv() -> Result<()> {
    // Before .env too: dotenvy keeps a variable that is set, even blank.
    unset_blank_settings();
    match dotenvy::dotenv() {
        Ok(_) => {}
        Err(e) if e.not_found() => {}
        Err(e) => return Err(config_error(format!("reading .env: {e}"))),
    }
    unset_blank_settings();
    Ok(())
}

fn unset_blank_settings() {
    for name in crate::cli::environment_settings() {
        let blank = std::env::var_os(&name).is_some_and(|v| v.to_string_lossy().trim().is_empty());
        if blank && name != "POST_LOAD_SQL" {
            // SAFETY: called at start-up, before the runtime or any other
            // thread exists, so nothing reads the environment concurrently.
            unsafe { std::env::remove_var(&name) };
        }
    }
}

/// How the logs look: `LOG_FORMAT` (`json` or `human`); unset, JSON when
/// running as a Cloud Run Job (`CLOUD_RUN_JOB` is set), human otherwise.
pub fn log_format() -> Result<LogFormat> {
    match env_var("LOG_FORMAT").map(|v| v.trim().to_ascii_lowercase()) {
        Some(v) if v == "json" => Ok(LogFormat::Json),
        Some(v) if v == "human" => Ok(LogFormat::Human),
        Some(v) => Err(config_error(format!(
            "LOG_FORMAT is {v:?}; use `json` or `human`"
        ))),
        None if env_var("CLOUD_RUN_JOB").is_some() => Ok(LogFormat::Json),
        None => Ok(LogFormat::Human),
    }
}

/// A setting's value trimmed, `None` when unset or blank: a blank value
/// means unset.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// An environment variable, `None` when unset or empty.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Whether a `sqlite://` file may be created: by the commands that create
/// tables, not by `sync`, which would otherwise leave an empty file behind
/// when it fails on the missing table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteFile {
    Create,
    MustExist,
}

/// The database from `--database-url`, or from the Cloud SQL settings.
pub fn database_target(args: &DatabaseArgs, sqlite: SqliteFile) -> Result<DatabaseTarget> {
    let target = match (&args.database_url, &args.instance_db) {
        (Some(_), Some(_)) => Err(config_error(
            "both --database-url (DATABASE_URL) and --instance-db (INSTANCE_DB) are set; set only one",
        )),
        (Some(url), None) => database_from_url(url, sqlite),
        (None, Some(instance)) => database_from_instance(args, instance),
        (None, None) => Err(config_error(
            "no database configured: set --database-url (DATABASE_URL), or --instance-db (INSTANCE_DB) \
             with USER_DB and PASSWORD_DB",
        )),
    }?;
    Ok(target.with_lock_wait(args.lock_wait_timeout))
}

fn database_from_url(url: &str, sqlite: SqliteFile) -> Result<DatabaseTarget> {
    let url = url.trim();
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = Path::new(path.split('?').next().unwrap_or(path));
        return Ok(DatabaseTarget::sqlite(path, sqlite == SqliteFile::Create));
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| config_error(format!("--database-url (DATABASE_URL) is not a URL: {e}")))?;
    let mut normalized = parsed.clone();
    match parsed.scheme() {
        "mysql" => {}
        "mariadb" => {
            normalized = reqwest::Url::parse(&url.replacen("mariadb://", "mysql://", 1))
                .map_err(|e| config_error(format!("--database-url (DATABASE_URL): {e}")))?;
        }
        other => {
            return Err(config_error(format!(
                "--database-url (DATABASE_URL) has scheme {other:?}; use mysql:// or sqlite://"
            )));
        }
    }
    let mut shown = normalized.clone();
    let _ = shown.set_password(None);
    shown.set_query(None);
    Ok(DatabaseTarget::new(
        normalized.to_string(),
        shown.to_string(),
    ))
}

/// The demo's database: any URL `--database-url` takes.
pub fn demo_database(url: &str) -> Result<DatabaseTarget> {
    database_from_url(url, SqliteFile::Create)
}

fn database_from_instance(args: &DatabaseArgs, instance: &str) -> Result<DatabaseTarget> {
    let instance = instance.trim();
    let parts: Vec<&str> = instance.split(':').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty() || p.contains('/')) {
        return Err(config_error(format!(
            "--instance-db (INSTANCE_DB) is {instance:?}; expected a Cloud SQL connection name project:region:instance"
        )));
    }
    let user = given(&args.user_db).ok_or_else(|| {
        config_error("--instance-db (INSTANCE_DB) is set but --user-db (USER_DB) is not")
    })?;
    let password = env_var("PASSWORD_DB");
    let socket = args.cloud_sql_socket_dir.join(instance);
    let mut url = reqwest::Url::parse("mysql://localhost/").expect("a literal URL parses");
    url.set_username(user)
        .map_err(|()| config_error("--user-db (USER_DB) cannot be used in a connection"))?;
    // An empty password sends none: a scrambled empty password is refused.
    if let Some(password) = &password {
        url.set_password(Some(password))
            .map_err(|()| config_error("PASSWORD_DB cannot be used in a connection"))?;
    }
    url.set_path(&args.name_db);
    url.query_pairs_mut()
        .append_pair("socket", &socket.display().to_string());
    let description = format!(
        "Cloud SQL {instance} (socket {}), database {}, user {user}",
        socket.display(),
        args.name_db
    );
    Ok(DatabaseTarget::new(url.to_string(), description))
}

/// The target table's name, checked.
pub fn table_name(args: &DatabaseArgs) -> Result<TableName> {
    TableName::parse(args.table.trim())
        .map_err(|e| config_error(format!("--table (TARGET_TABLE): {e}")))
}

/// The load's settings; `synced_at` is the run's start.
pub fn load_settings(
    args: &LoadArgs,
    database: &DatabaseArgs,
    target: &DatabaseTarget,
    synced_at: time::OffsetDateTime,
) -> Result<LoadSettings> {
    if !(0.0..=100.0).contains(&args.max_delete_percent) {
        return Err(config_error(format!(
            "--max-delete-percent (MAX_DELETE_PERCENT) is {}; expected 0 to 100",
            args.max_delete_percent
        )));
    }
    // POST_LOAD_SQL holds statements separated by `;` (outside quotes and
    // comments); each --post-load-sql value is one statement, taken whole.
    let from_env = std::env::var("POST_LOAD_SQL").ok();
    let post_load = match &args.post_load_sql {
        Some(values) if values.len() == 1 && from_env.as_deref() == Some(values[0].as_str()) => {
            split_statements(&values[0])
        }
        Some(statements) => statements
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        None if target.is_sqlite() => Vec::new(),
        None => vec![DEFAULT_POST_LOAD_SQL.to_owned()],
    };
    // What can be refused without the server is refused here, before the run
    // connects; the procedures they call are checked when the load begins.
    let flavor = if target.is_sqlite() {
        Flavor::Sqlite
    } else {
        Flavor::MySql
    };
    for (k, statement) in post_load.iter().enumerate() {
        check_post_load_text(statement, flavor).map_err(|refusal| {
            config_error(format!(
                "--post-load-sql (POST_LOAD_SQL): {}",
                refusal_message(k, statement, "", &refusal)
            ))
        })?;
    }
    Ok(LoadSettings {
        table: table_name(database)?,
        mode: args.mode,
        post_load,
        post_load_when: args.post_load_when,
        max_delete_percent: args.max_delete_percent,
        allow_shrink: args.allow_shrink,
        dry_run: args.dry_run,
        synced_at,
    })
}

/// The dialect `db init --print` shows.
pub fn print_dialect(target: Option<&DatabaseTarget>) -> Dialect {
    match target {
        Some(t) if t.is_sqlite() => Dialect::Sqlite,
        _ => Dialect::MySql,
    }
}

/// `--report FILE`, checked for a usable parent directory before the run.
pub fn report_path(args: &LoadArgs) -> Result<Option<PathBuf>> {
    let Some(path) = &args.report else {
        return Ok(None);
    };
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(config_error(format!(
            "--report (REPORT_FILE): directory {} does not exist",
            parent.display()
        )));
    }
    Ok(Some(path.clone()))
}

/// The token: `BITCRAM_TOKEN` if set (local runs), otherwise the Secret
/// Manager secret named by --project-id and --secret-id.
pub fn token_source(args: &crate::cli::BitcramArgs) -> Result<crate::extract::TokenSource> {
    use crate::extract::TokenSource;
    use crate::secrets::{SecretRef, Token};
    if let Some(raw) = env_var("BITCRAM_TOKEN") {
        let token = Token::new(raw).map_err(|e| config_error(format!("BITCRAM_TOKEN: {e}")))?;
        return Ok(TokenSource::Env(token));
    }
    let project = given(&args.project_id);
    let secret = given(&args.secret_id);
    let (project, secret) = match (project, secret) {
        (Some(project), Some(secret)) => (project, secret),
        (None, None) => {
            return Err(config_error(
                "no Bitcram token: set --project-id (PROJECT_ID) and --secret-id (SECRET_ID) to read it \
                 from Secret Manager, or BITCRAM_TOKEN for a local run",
            ));
        }
        (None, Some(_)) => {
            return Err(config_error(
                "--secret-id (SECRET_ID) is set but --project-id (PROJECT_ID) is not",
            ));
        }
        (Some(_), None) => {
            return Err(config_error(
                "--project-id (PROJECT_ID) is set but --secret-id (SECRET_ID) is not",
            ));
        }
    };
    let secret = SecretRef {
        project_id: project.to_owned(),
        secret_id: secret.to_owned(),
        version: args.secret_version.trim().to_owned(),
        endpoint: env_var("SECRET_MANAGER_ENDPOINT"),
    };
    secret
        .validate()
        .map_err(|e| config_error(format!("{e:#}")))?;
    Ok(TokenSource::SecretManager(secret))
}

/// The Bitcram client's settings: the URL checked (https, or http to this
/// machine unless allowed), default timeouts and retries.
pub fn bitcram_config(
    url: &str,
    allow_insecure_http: bool,
) -> Result<crate::bitcram::BitcramConfig> {
    let base_url = crate::bitcram::parse_base_url(url, allow_insecure_http)
        .map_err(|e| config_error(format!("--bitcram-url (URL_BITCRAM): {e:#}")))?;
    let mut config = crate::bitcram::BitcramConfig::new(base_url);
    config.allow_insecure_http = allow_insecure_http;
    Ok(config)
}

/// The Bitcram settings for a live run, checked.
pub fn live_input(args: &crate::cli::BitcramArgs) -> Result<crate::extract::LiveInput> {
    let missing = |flag: &str, var: &str| ConfigError(format!("{flag} ({var}) is not set"));
    let url = given(&args.bitcram_url).ok_or_else(|| missing("--bitcram-url", "URL_BITCRAM"))?;
    let checkout_number = given(&args.checkout)
        .ok_or_else(|| missing("--checkout", "CHECKOUT"))?
        .to_owned();
    let token = token_source(args)?;
    let bitcram = bitcram_config(url, args.allow_insecure_http)?;
    Ok(crate::extract::LiveInput {
        bitcram,
        token,
        checkout_number,
        deadline: args.extract_timeout,
    })
}
