//! A fresh MariaDB/MySQL database per test, on the server at
//! `BITCRAM_TEST_MYSQL` (default `mysql://root@127.0.0.1:3306`). Tests fail,
//! never skip, when the server is missing: `.ci/start-mariadb` starts one.

use std::path::Path;

use sqlx::{Executor as _, MySqlPool};

/// The server the database tests use.
pub fn server_url() -> String {
    std::env::var("BITCRAM_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned())
}

/// A database that exists for one test; dropped by [`TestDb::drop_now`]
/// (a failed test leaves it for inspection, and the next run removes it).
pub struct TestDb {
    pub name: String,
    pub pool: MySqlPool,
}

impl TestDb {
    /// Creates `bitcram_test_<pid>_<n>` with the target table
    /// `raw_item_data`, a `mirror` table and two procedures: `update_mirror`
    /// copies the table into the mirror, `failing_mirror` does the same and
    /// then signals an error.
    pub async fn new() -> Self {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let admin = MySqlPool::connect(&server_url()).await.expect(
            "MariaDB must listen on 127.0.0.1:3306 (user root, no password): run .ci/start-mariadb",
        );
        remove_stale_databases(&admin).await;
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("bitcram_test_{}_{n}", std::process::id());
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
            )))
            .await
            .unwrap();
        admin.close().await;
        let pool = MySqlPool::connect(&format!("{}/{name}", server_url()))
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE raw_item_data (id VARCHAR(64) NOT NULL PRIMARY KEY, data JSON NOT NULL, \
               stock BIGINT NOT NULL, updated_at DATETIME(6) NOT NULL) DEFAULT CHARSET = utf8mb4;
             CREATE TABLE mirror (id VARCHAR(64) NOT NULL PRIMARY KEY, data JSON NOT NULL, stock BIGINT NOT NULL);
             CREATE PROCEDURE update_mirror() BEGIN
               DELETE FROM mirror;
               INSERT INTO mirror (id, data, stock) SELECT id, data, stock FROM raw_item_data;
             END;
             CREATE PROCEDURE failing_mirror() BEGIN
               DELETE FROM mirror;
               INSERT INTO mirror (id, data, stock) SELECT id, data, stock FROM raw_item_data;
               SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mirror refused the catalog';
             END;",
        )
        .execute(&pool)
        .await
        .unwrap();
        Self { name, pool }
    }

    /// `mysql://root@127.0.0.1:3306/<name>`.
    pub fn url(&self) -> String {
        format!("{}/{}", server_url(), self.name)
    }

    /// Every row of `table`, ordered by id: (id, data, stock).
    pub async fn rows(&self, table: &str) -> Vec<(String, String, i64)> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, CAST(data AS CHAR), stock FROM {table} ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    /// Each row's `updated_at`, as text, ordered by id.
    pub async fn updated_at(&self) -> Vec<(String, String)> {
        sqlx::query_as("SELECT id, CAST(updated_at AS CHAR) FROM raw_item_data ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    /// A user `user`@`%` with `password` and every privilege on this
    /// database (users are server-wide: drop it with [`TestDb::drop_user`]).
    pub async fn create_user(&self, user: &str, password: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}'; \
             GRANT ALL ON `{}`.* TO '{user}'@'%'",
            self.name
        )))
        .execute(&self.pool)
        .await
        .unwrap();
    }

    /// What README.md tells MariaDB users to grant so that the job can read
    /// the bodies of procedures it did not define.
    pub async fn grant_reading_procedures(&self, user: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "GRANT SELECT ON mysql.proc TO '{user}'@'%'"
        )))
        .execute(&self.pool)
        .await
        .unwrap();
    }

    pub async fn drop_user(&self, user: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP USER IF EXISTS '{user}'@'%'"
        )))
        .execute(&self.pool)
        .await
        .unwrap();
    }

    /// `mysql://user:password@host:port/<name>`.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        let server = server_url();
        let host = server.rsplit('@').next().unwrap();
        format!("mysql://{user}:{password}@{host}/{}", self.name)
    }

    /// Kills every connection to the database but the one asking (the
    /// pool reconnects): the loader's, mid-transaction.
    pub async fn kill_other_connections(&self) {
        let victims: Vec<i64> = sqlx::query_scalar(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID()",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap();
        assert!(!victims.is_empty(), "the loader's connection is visible");
        for id in victims {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("KILL {id}")))
                .execute(&self.pool)
                .await;
        }
    }

    pub async fn drop_now(self) {
        self.pool.close().await;
        let admin = MySqlPool::connect(&server_url()).await.unwrap();
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS `{}`",
                self.name
            )))
            .await
            .unwrap();
        admin.close().await;
    }
}

/// Drops databases left by earlier test runs (process ids no longer
/// running), once.
async fn remove_stale_databases(admin: &MySqlPool) {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'bitcram\\_test\\_%'",
        )
        .fetch_all(admin)
        .await
        .unwrap();
        // Only those of test processes that have ended: a suite running
        // beside this one (another checkout, a mutation check) keeps its own.
        let ended = |name: &String| {
            let pid = name
                .strip_prefix("bitcram_test_")
                .and_then(|rest| rest.split('_').next())
                .and_then(|pid| pid.parse::<u32>().ok());
            pid.is_some_and(|pid| pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists())
        };
        for name in names.into_iter().filter(ended) {
            let _ = admin
                .execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS `{name}`")))
                .await;
        }
    })
    .await;
}
