//! The run lock: one sync per table. A second run fails at once while
//! another is loading, and waits, within `--lock-wait-timeout`, while the
//! server rolls back a run that was stopped, then says which it was.

use std::process::Output;
use std::time::Duration;

use sqlx::{Connection as _, MySqlConnection};

use crate::support::db::TestDb;
use crate::support::sync_run::{
    assert_success, error_line, loader_settings, seeded, snapshot, sync,
};

/// The name of the run lock of `raw_item_data` in `db`: the database and
/// table hashed. The first test checks that the loader holds this very lock.
async fn lock_name(db: &TestDb) -> String {
    sqlx::query_scalar(
        "SELECT CAST(CONCAT('bitcram-sync:', LEFT(SHA2(CONCAT(DATABASE(), '.raw_item_data'), 256), 40)) AS CHAR)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

async fn ids(db: &TestDb) -> Vec<String> {
    db.rows("raw_item_data")
        .await
        .into_iter()
        .map(|r| r.0)
        .collect()
}

async fn lock_holder(db: &TestDb) -> Option<i64> {
    sqlx::query_scalar("SELECT CAST(IS_USED_LOCK(?) AS SIGNED)")
        .bind(lock_name(db).await)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_second_run_on_the_same_table_is_refused_while_one_is_loading() {
    use bitcram_sync::load::{DatabaseTarget, Loader, SyncMode};

    let (db, old) = seeded(&[1, 2]).await;
    assert_eq!(lock_holder(&db).await, None);
    let target = DatabaseTarget::new(db.url(), db.name.clone());
    let first = Loader::begin(
        target.connect().await.unwrap(),
        loader_settings(SyncMode::Diff, vec![]),
    )
    .await
    .unwrap();
    let holder = lock_holder(&db)
        .await
        .expect("the loader holds the run lock");

    let dir = tempfile::tempdir().unwrap();
    snapshot(dir.path(), &[1, 2, 3], &[]);
    let started = std::time::Instant::now();
    let out = sync(&db, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        error_line(&out).contains(&format!(
            "another bitcram-sync run is loading table raw_item_data (connection {holder}, in its transaction for "
        )),
        "{}",
        error_line(&out)
    );
    // A live run is not waited for: the refusal comes at once, not after
    // --lock-wait-timeout's 60 s.
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(db.rows("raw_item_data").await, old);

    first.abort().await;
    // Once the first run is gone, the lock is free again.
    assert_success(&sync(&db, dir.path(), &[]));
    assert_eq!(db.rows("raw_item_data").await.len(), old.len() + 1);
    db.drop_now().await;
}

/// Rows the stopped run wrote, for the server to undo: enough that the
/// rollback lasts seconds.
const STOPPED_RUN_ROWS: i64 = 2_000_000;

/// A session (connected to `url`) that took the run lock and wrote
/// [`STOPPED_RUN_ROWS`] rows in its transaction, then was killed, as a
/// stopped run's session is: returns its id once the server is rolling it
/// back.
async fn a_stopped_run_rolling_back(db: &TestDb, url: &str) -> i64 {
    sqlx::raw_sql("CREATE TABLE undo_me (n BIGINT NOT NULL PRIMARY KEY) ENGINE = InnoDB")
        .execute(&db.pool)
        .await
        .unwrap();
    let mut stopped = MySqlConnection::connect(url).await.unwrap();
    let id: i64 = sqlx::query_scalar("SELECT CAST(CONNECTION_ID() AS SIGNED)")
        .fetch_one(&mut stopped)
        .await
        .unwrap();
    let got: i64 = sqlx::query_scalar("SELECT GET_LOCK(?, 0)")
        .bind(lock_name(db).await)
        .fetch_one(&mut stopped)
        .await
        .unwrap();
    assert_eq!(got, 1);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "START TRANSACTION; INSERT INTO undo_me SELECT seq FROM seq_1_to_{STOPPED_RUN_ROWS}"
    )))
    .execute(&mut stopped)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("KILL {id}")))
        .execute(&db.pool)
        .await
        .unwrap();
    // Rolling back: INNODB_TRX says so, or the process list shows the
    // session as `Killed` (what the job itself goes by, too).
    for _ in 0..500 {
        type Seen = (Option<String>, Option<String>, Option<i64>);
        let seen: Option<Seen> = sqlx::query_as(
            "SELECT CAST(p.COMMAND AS CHAR), CAST(t.trx_state AS CHAR), \
             CAST(t.trx_rows_modified AS SIGNED) FROM information_schema.PROCESSLIST p \
             LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID \
             WHERE p.ID = ?",
        )
        .bind(id)
        .fetch_optional(&db.pool)
        .await
        .unwrap();
        let Some((command, state, left)) = seen else {
            panic!("the killed session ended before the test saw it roll back");
        };
        if command.as_deref() == Some("Killed") || state.as_deref() == Some("ROLLING BACK") {
            if let Some(left) = left {
                assert!(
                    left > STOPPED_RUN_ROWS / 2,
                    "the rollback should have most of its rows left, has {left}"
                );
            }
            drop(stopped);
            return id;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the killed session never showed as rolling back");
}

fn spawn_sync(
    url: String,
    dir: &std::path::Path,
    extra: &[&str],
) -> tokio::task::JoinHandle<Output> {
    let dir = dir.to_owned();
    let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        crate::support::bin()
            .args(["sync", "--from"])
            .arg(&dir)
            .args([
                "--database-url",
                &url,
                "--post-load-sql",
                "CALL update_mirror()",
            ])
            .args(&extra)
            .env("RUST_LOG", "info")
            .output()
            .unwrap()
    })
}

#[tokio::test]
async fn a_run_waits_for_a_stopped_runs_rollback_within_the_lock_wait_bound_and_says_so() {
    let (db, _) = seeded(&[1, 2]).await;
    let (patient_dir, impatient_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    snapshot(patient_dir.path(), &[1, 2, 3], &[]);
    snapshot(impatient_dir.path(), &[1, 2, 3, 4], &[]);

    let stopped = a_stopped_run_rolling_back(&db, &db.url()).await;
    let impatient = spawn_sync(
        db.url(),
        impatient_dir.path(),
        &["--lock-wait-timeout", "1s"],
    );
    let patient = spawn_sync(db.url(), patient_dir.path(), &[]);
    let (impatient, patient) = (impatient.await.unwrap(), patient.await.unwrap());

    // The one whose bound ran out says it was a rollback, not another run.
    assert_eq!(
        impatient.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&impatient.stderr)
    );
    let line = error_line(&impatient);
    assert!(
        line.contains(&format!(
            "a previous run's rollback is still finishing on table raw_item_data (connection {stopped}, "
        )) && line.contains("after waiting 1 s (--lock-wait-timeout); nothing was written"),
        "{line}"
    );
    // The other waited for the rollback, said so, then loaded.
    assert_success(&patient);
    let log = String::from_utf8_lossy(&patient.stderr);
    assert!(
        log.contains(&format!(
            "a previous run's rollback is finishing on table raw_item_data (connection {stopped}, "
        )) && log.contains("at most 1 min (--lock-wait-timeout)"),
        "{log}"
    );
    assert!(
        log.contains("the previous run's rollback finished after "),
        "{log}"
    );
    assert_eq!(ids(&db).await, ["1", "2", "3"]);
    let undone: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM undo_me")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(undone, 0);
    assert_eq!(lock_holder(&db).await, None);
    db.drop_now().await;
}

#[tokio::test]
async fn a_user_without_the_process_privilege_still_tells_a_rollback_from_a_run() {
    // Such a user cannot read INNODB_TRX; it sees its own sessions, a
    // killed one as `Killed`, in the process list.
    let (db, _) = seeded(&[1, 2]).await;
    let user = format!("bitcram_noproc_{}", std::process::id());
    db.create_user(&user, "pw").await;
    db.grant_reading_procedures(&user).await;
    let url = db.url_as(&user, "pw");
    let dir = tempfile::tempdir().unwrap();
    snapshot(dir.path(), &[1, 2, 3], &[]);

    let stopped = a_stopped_run_rolling_back(&db, &url).await;
    let out = spawn_sync(url, dir.path(), &[]).await.unwrap();
    assert_success(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains(&format!(
            "a previous run's rollback is finishing on table raw_item_data (connection {stopped}); waiting for it"
        )),
        "{log}"
    );
    assert_eq!(ids(&db).await, ["1", "2", "3"]);
    db.drop_user(&user).await;
    db.drop_now().await;
}
