//! The benchmarks' MariaDB and their runs of the binary: a database of the
//! benchmark's own (dropped first and at the end, whatever happened), with
//! the target table made by the binary's `db init`, and a measured run of
//! the binary with its run report.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};
use sqlx::{Executor as _, MySqlPool};

use super::{ClearSettings as _, Measured, binary};

/// The local MariaDB, as the development and CI machines run it.
pub const SERVER_URL: &str = "mysql://root@127.0.0.1:3306";

/// The URL of database `name` on [`SERVER_URL`].
pub fn database_url(name: &str) -> String {
    format!("{SERVER_URL}/{name}")
}

/// Runs `bench` on a fresh runtime with an admin connection to the local
/// MariaDB, then drops the database `name`, whatever happened: the
/// benchmark leaves nothing behind.
pub fn with_database<F>(name: &str, bench: impl FnOnce(MySqlPool) -> F) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<()>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let admin = MySqlPool::connect(SERVER_URL).await.context(
            "MariaDB must listen on 127.0.0.1:3306 (user root, no password): run .ci/start-mariadb",
        )?;
        let result = bench(admin.clone()).await;
        let dropped = admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS `{name}`"
            )))
            .await;
        admin.close().await;
        result?;
        dropped.context("dropping the bench database")?;
        Ok(())
    })
}

/// Creates database `name` afresh, with the target table (and the state
/// table) made by the binary's own `db init`, run in `dir`.
pub async fn create_database(admin: &MySqlPool, name: &str, dir: &Path) -> anyhow::Result<()> {
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS `{name}`"
        )))
        .await?;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
        )))
        .await?;
    db_init(&database_url(name), dir)
}

/// `bitcram-sync db init --database-url URL`, run in `dir` (for SQLite, it
/// makes the file too).
pub fn db_init(url: &str, dir: &Path) -> anyhow::Result<()> {
    let status = Command::new(binary())
        .args(["db", "init", "--database-url", url])
        .env_clear_settings()
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .status()
        .context("running bitcram-sync db init")?;
    if !status.success() {
        bail!("bitcram-sync db init --database-url {url} failed: {status}");
    }
    Ok(())
}

/// The mirror table the post-load procedure fills, and the procedure:
/// what a shop's marketplace tables look like to the load.
pub async fn create_mirror(pool: &MySqlPool) -> anyhow::Result<()> {
    sqlx::raw_sql(
        "CREATE TABLE mirror (id VARCHAR(64) NOT NULL PRIMARY KEY, data JSON NOT NULL, \
           stock BIGINT NOT NULL) DEFAULT CHARSET = utf8mb4;
         CREATE PROCEDURE update_mirror() BEGIN
           DELETE FROM mirror;
           INSERT INTO mirror SELECT id, data, stock FROM raw_item_data;
         END;",
    )
    .execute(pool)
    .await
    .context("creating the mirror and its procedure")?;
    Ok(())
}

/// One measured run of the binary: the process's figures and its report.
pub struct SyncRun {
    pub measured: Measured,
    pub report: serde_json::Value,
}

impl SyncRun {
    /// Runs `bitcram-sync ARGS --report FILE` in `work` as a measured child
    /// (its plugin cache in `work/plugin-cache`, `configure` setting the
    /// rest of its environment), and reads its report.
    pub fn measure(
        work: &Path,
        args: &[&OsStr],
        configure: impl FnOnce(&mut Command),
    ) -> anyhow::Result<Self> {
        let report_path = work.join("report.json");
        let _ = std::fs::remove_file(&report_path);
        let mut args = args.to_vec();
        args.extend([OsStr::new("--report"), report_path.as_os_str()]);
        let plugin_cache = work.join("plugin-cache");
        let measured = super::measure(binary(), &args, |cmd| {
            // A working directory of our own: the binary reads `.env` from it.
            cmd.env_clear_settings()
                .env("PLUGIN_CACHE_DIR", &plugin_cache)
                .current_dir(work);
            configure(cmd);
        })?;
        let text = std::fs::read(&report_path)
            .with_context(|| format!("reading the run report {}", report_path.display()))?;
        let report = serde_json::from_slice(&text).context("parsing the run report")?;
        Ok(Self { measured, report })
    }

    /// A phase's milliseconds (`transform_ms`, ...).
    pub fn phase(&self, name: &str) -> u64 {
        self.report["phases"][name].as_u64().unwrap_or(0)
    }

    /// A count of the load's (`inserted`, `rows_new`, ...).
    pub fn rows(&self, name: &str) -> u64 {
        self.report["rows"][name].as_u64().unwrap_or(0)
    }

    /// The plugin's peak linear memory, in bytes.
    pub fn plugin_peak(&self) -> u64 {
        self.report["plugin_peak_memory_bytes"]
            .as_u64()
            .unwrap_or(0)
    }
}

/// Runs `work` and returns what it returned with the CPU time MariaDB used
/// meanwhile (see [`server_cpu`]).
pub fn with_server_cpu<T>(
    work: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, Option<std::time::Duration>)> {
    let before = server_cpu();
    let value = work()?;
    let used = server_cpu()
        .zip(before)
        .map(|(after, before)| after.saturating_sub(before));
    Ok((value, used))
}

/// The CPU time the local MariaDB server has used so far (user and
/// system), read from `/proc`; `None` where no `mariadbd` runs here.
pub fn server_cpu() -> Option<std::time::Duration> {
    // SAFETY: sysconf reads a constant of the system; no memory is touched.
    let ticks = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok()?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() != "mariadbd" {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        // Fields after the command's closing parenthesis; utime and stime
        // are the 14th and 15th fields of the whole line.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        return Some(std::time::Duration::from_micros(
            (utime + stime) * 1_000_000 / ticks,
        ));
    }
    None
}
