//! The database a run writes to: how to connect, how it is named in
//! messages (never with its password), and database errors on one line.

use std::time::Duration;

use anyhow::{anyhow, bail};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

/// How long to wait for a connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A database to connect to, with a description that carries no password.
#[derive(Clone)]
pub struct DatabaseTarget {
    url: String,
    description: String,
    /// A SQLite file that must already exist (it is not created).
    existing_file: Option<std::path::PathBuf>,
    /// How long a statement waits for another session's lock (MySQL and
    /// MariaDB); the server's own setting when unset.
    lock_wait: Option<Duration>,
}

impl std::fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl DatabaseTarget {
    /// `url` may hold a password: it is never logged; `description` is.
    pub fn new(url: String, description: String) -> Self {
        Self {
            url,
            description,
            existing_file: None,
            lock_wait: None,
        }
    }

    /// Bounds how long the run's statements wait for a lock another session
    /// holds (whole seconds, at least 1).
    pub fn with_lock_wait(mut self, lock_wait: Duration) -> Self {
        self.lock_wait = Some(lock_wait);
        self
    }

    /// The bound set by [`DatabaseTarget::with_lock_wait`].
    pub fn lock_wait(&self) -> Option<Duration> {
        self.lock_wait
    }

    /// A local SQLite file; created if missing only when `create` is set
    /// (by the commands that create tables: a failed `sync` leaves no empty
    /// file behind).
    pub fn sqlite(path: &std::path::Path, create: bool) -> Self {
        let description = format!("sqlite://{}", path.display());
        let mode = if create { "rwc" } else { "rw" };
        Self {
            url: format!("{description}?mode={mode}"),
            description,
            existing_file: (!create).then(|| path.to_owned()),
            lock_wait: None,
        }
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn is_sqlite(&self) -> bool {
        self.url.starts_with("sqlite:")
    }

    /// One connection, in a pool of one so that a transaction can own it.
    pub async fn connect(&self) -> anyhow::Result<AnyPool> {
        if let Some(path) = &self.existing_file
            && !path.is_file()
        {
            bail!(
                "connecting to the database {}: the file does not exist (create it and its table \
                 with `bitcram-sync db init --database-url {}`)",
                self.description,
                self.description
            );
        }
        sqlx::any::install_default_drivers();
        let lock_wait = self
            .lock_wait
            .filter(|_| !self.is_sqlite())
            .map(|d| d.as_secs().max(1));
        AnyPoolOptions::new()
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if let Some(seconds) = lock_wait {
                        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "SET SESSION lock_wait_timeout = {seconds}, innodb_lock_wait_timeout = {seconds}"
                        )))
                        .execute(&mut *conn)
                        .await?;
                    }
                    Ok(())
                })
            })
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect(&self.url)
            .await
            .map_err(|e| {
                anyhow!(
                    "connecting to the database {}: {}",
                    self.description,
                    describe_db_error(&e)
                )
            })
    }
}

/// A database error as one line, without the connection's credentials
/// (sqlx's messages carry none; this only flattens them).
pub fn describe_db_error(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (code {code})", db.message()),
            None => db.message().to_owned(),
        },
        other => other.to_string().replace('\n', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_target_prints_its_description_never_its_url() {
        let target = DatabaseTarget::new(
            "mysql://sync:hunter2@db.internal:3306/shop".to_owned(),
            "mysql://sync@db.internal:3306/shop".to_owned(),
        );
        assert_eq!(format!("{target:?}"), "mysql://sync@db.internal:3306/shop");
        assert_eq!(target.description(), "mysql://sync@db.internal:3306/shop");
    }
}
