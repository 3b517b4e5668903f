//! The run lock: one sync per table at a time, so that a second run fails
//! at once instead of interleaving its writes with the first.
//!
//! The lock is a server-wide named lock (`GET_LOCK`), held by the run's
//! session. A run that was stopped (SIGKILL, a lost connection, Cloud Run's
//! SIGTERM) keeps holding it until the server has rolled its transaction back,
//! which takes about as long as its writes took; a run retried meanwhile waits
//! for that rollback, within the session's lock wait bound, instead of failing
//! as if another run were loading.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use sqlx::{Any, AnyPool, Transaction};

use super::table::TableName;
use super::target::describe_db_error;
use crate::model::format_duration;

/// How often the lock is tried while a rollback finishes. Each try is a
/// `GET_LOCK` that does not wait: a waiting one would hold the connection
/// past sqlx's slow-statement threshold and log a warning each time.
const POLL: Duration = Duration::from_millis(250);

/// How often the lock is tried again when it is refused but nobody holds it.
const UNHELD_RETRIES: u32 = 3;

/// Takes the server-wide named lock of `table` (MySQL and MariaDB); returns
/// its name, for [`release`]. Lock names are at most 64 characters: the
/// database and table are hashed into one.
///
/// Held by a live run: fails at once. Held by a session whose transaction is
/// rolling back: waits for it, at most the session's `lock_wait_timeout`
/// (`--lock-wait-timeout`), then fails saying so.
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
    if get_lock(tx, &name).await? {
        return Ok(name);
    }

    let started = Instant::now();
    let mut bound = None;
    let mut unheld = 0;
    loop {
        match look_at_holder(tx, &name).await? {
            // Released between the two looks: try again at once, a few
            // times (GET_LOCK also fails, with NULL, on a server error).
            None => {
                unheld += 1;
                if unheld > UNHELD_RETRIES {
                    bail!(
                        "the run lock of table {table} could not be taken although no session \
                         holds it (GET_LOCK failed {unheld} times)"
                    );
                }
            }
            Some(Holder {
                id,
                state: HolderState::Loading { seconds },
            }) => bail!(
                "another bitcram-sync run is loading table {table} (connection {id}{}); try again \
                 when it has finished",
                seconds.map_or(String::new(), |s| format!(", in its transaction for {s} s"))
            ),
            Some(Holder {
                id,
                state: HolderState::Unseen,
            }) => bail!(
                "another bitcram-sync run holds the run lock of table {table} (connection {id}, \
                 which this user cannot see: it is loading, or its rollback is finishing); try \
                 again when it has finished"
            ),
            Some(Holder {
                id,
                state: HolderState::RollingBack { rows_left },
            }) => {
                let bound = match bound {
                    Some(bound) => bound,
                    None => {
                        let wait = session_lock_wait(tx).await?;
                        tracing::warn!(
                            "a previous run's rollback is finishing on table {table} \
                             (connection {id}{}); waiting for it, at most {} (--lock-wait-timeout)",
                            rows_left_text(rows_left),
                            format_duration(wait)
                        );
                        *bound.insert(wait)
                    }
                };
                let left = bound.saturating_sub(started.elapsed());
                if left.is_zero() {
                    bail!(
                        "a previous run's rollback is still finishing on table {table} \
                         (connection {id}{}) after waiting {} (--lock-wait-timeout); nothing was \
                         written; try again when it has finished",
                        rows_left_text(rows_left),
                        format_duration(bound)
                    );
                }
                tokio::time::sleep(left.min(POLL)).await;
                if get_lock(tx, &name).await? {
                    tracing::info!(
                        "the previous run's rollback finished after {}; the run lock of table \
                         {table} is taken",
                        format_duration(started.elapsed())
                    );
                    return Ok(name);
                }
                continue;
            }
        }
        if get_lock(tx, &name).await? {
            return Ok(name);
        }
    }
}

/// `, N rows left to undo`, where the server said.
fn rows_left_text(rows_left: Option<i64>) -> String {
    rows_left.map_or(String::new(), |n| format!(", {n} rows left to undo"))
}

/// `GET_LOCK(name, 0)`: whether the lock is now the run's.
async fn get_lock(tx: &mut Transaction<'static, Any>, name: &str) -> anyhow::Result<bool> {
    let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 0)")
        .bind(name.to_owned())
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| anyhow!("taking the run lock: {}", describe_db_error(&e)))?;
    Ok(got == Some(1))
}

/// The session holding the run lock.
#[derive(Debug)]
struct Holder {
    id: i64,
    state: HolderState,
}

#[derive(Debug)]
enum HolderState {
    /// Running or idle in its transaction.
    Loading { seconds: Option<i64> },
    /// Killed or disconnected; the server is undoing its writes (how many
    /// are left, where this user may see it).
    RollingBack { rows_left: Option<i64> },
    /// Not in the process list this user can read (another user's session,
    /// without the PROCESS privilege).
    Unseen,
}

/// Who holds the lock now, and whether its transaction is rolling back
/// (`INNODB_TRX.trx_state`, or the session's `Killed` command); `None` when
/// nobody does. Reads `information_schema`, as MySQL 8 and MariaDB both
/// keep it.
async fn look_at_holder(
    tx: &mut Transaction<'static, Any>,
    name: &str,
) -> anyhow::Result<Option<Holder>> {
    let holder: Option<i64> = sqlx::query_scalar("SELECT CAST(IS_USED_LOCK(?) AS SIGNED)")
        .bind(name.to_owned())
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| anyhow!("looking at the run lock: {}", describe_db_error(&e)))?;
    let Some(id) = holder else {
        return Ok(None);
    };
    let command: Option<String> = sqlx::query_scalar(
        "SELECT CAST(COMMAND AS CHAR) FROM information_schema.PROCESSLIST WHERE ID = ?",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(|e| {
        anyhow!(
            "looking at the run lock's holder (connection {id}): {}",
            describe_db_error(&e)
        )
    })?;
    let Some(command) = command else {
        return Ok(Some(Holder {
            id,
            state: HolderState::Unseen,
        }));
    };
    // trx_state, trx_rows_modified, seconds in the transaction. INNODB_TRX
    // needs the PROCESS privilege, which a job's user often lacks: then the
    // session's `Killed` command is all there is to go by.
    type TrxRow = (Option<String>, Option<i64>, Option<i64>);
    let trx: Option<TrxRow> = sqlx::query_as(
        "SELECT CAST(trx_state AS CHAR), CAST(trx_rows_modified AS SIGNED), \
         CAST(TIMESTAMPDIFF(SECOND, trx_started, NOW()) AS SIGNED) \
         FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = ?",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .unwrap_or(None);
    let (trx_state, rows_left, seconds) = trx.unwrap_or((None, None, None));
    let state = if trx_state.as_deref() == Some("ROLLING BACK") || command == "Killed" {
        HolderState::RollingBack { rows_left }
    } else {
        HolderState::Loading { seconds }
    };
    Ok(Some(Holder { id, state }))
}

/// The session's `lock_wait_timeout`, which `--lock-wait-timeout` sets.
async fn session_lock_wait(tx: &mut Transaction<'static, Any>) -> anyhow::Result<Duration> {
    let seconds: i64 = sqlx::query_scalar("SELECT CAST(@@SESSION.lock_wait_timeout AS SIGNED)")
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| anyhow!("reading lock_wait_timeout: {}", describe_db_error(&e)))?;
    Ok(Duration::from_secs(seconds.max(0) as u64))
}

/// Releases the lock; a failure only means the connection is gone, and the
/// server released it then.
pub(super) async fn release(pool: &AnyPool, name: String) {
    let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
        .bind(name)
        .execute(pool)
        .await;
}
