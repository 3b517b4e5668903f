//! The run lock: one sync per table at a time, so that a second run fails
//! at once instead of interleaving its writes with the first.

use anyhow::{anyhow, bail};
use sqlx::{Any, AnyPool, Transaction};

use super::table::TableName;
use super::target::describe_db_error;

/// Takes the server-wide named lock of `table` (MySQL and MariaDB), without
/// waiting; returns its name, for [`release`]. Lock names are at most 64
/// characters: the database and table are hashed into one.
pub(super) async fn take(
    tx: &mut Transaction<'static, Any>,
    table: &TableName,
) -> anyhow::Result<String> {
    let name: String = sqlx::query_scalar(
        "SELECT CAST(CONCAT('bitcram-sync:', LEFT(SHA2(CONCAT(COALESCE(?, DATABASE()), '.', ?), 256), 40)) AS CHAR)",
    )
    .bind(table.schema().map(str::to_owned))
    .bind(table.table().to_owned())
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| anyhow!("naming the run lock: {}", describe_db_error(&e)))?;
    let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 0)")
        .bind(name.clone())
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| anyhow!("taking the run lock: {}", describe_db_error(&e)))?;
    if got != Some(1) {
        bail!("another bitcram-sync run is loading table {table}; try again when it has finished");
    }
    Ok(name)
}

/// Releases the lock; a failure only means the connection is gone, and the
/// server released it then.
pub(super) async fn release(pool: &AnyPool, name: String) {
    let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
        .bind(name)
        .execute(pool)
        .await;
}
